"""MIKEY Diffie-Hellman mode with signatures, DH-SIGN (RFC 3830 §3.3).

I_MESSAGE = HDR(data type 4), T, RAND, [IDi|CERTi], [IDr], {SP}, DHi, SIGNi
R_MESSAGE = HDR(data type 5), T, [IDr|CERTr], IDi, DHr, DHi, SIGNr

* TGK = g^(xi*xr) mod p, the full shared secret at the fixed width of the group (§3.3, §4.2.7);
  it is never transported, so a passive observer cannot recover it (perfect forward secrecy).
  TEK/salt per crypto session from the TGK with the initiator's RAND (§4.1.3).
* Both messages are signed over the whole message (§5.2). The V flag is ignored (§6.1: "The
  V flag SHALL be ignored by the receiver in the DH method (as the response is MANDATORY)").
* §3.3: "The timestamp that is included in the answer is the same as the one included in the
  Initiator's message": the responder echoes T_i and the initiator refuses any other T.
* The initiator checks that the R_MESSAGE echoes its own DHi (§3.3) and that the responder's
  certificate chains to a trust anchor.
* SDP IDs (RFC 4567 §7) as in :mod:`ims.mikey.modes.psk`, inside SIGNi.

A media MITM (study: DH + SIGN with operator-issued or self-signed certificates) runs a
:class:`DhResponder` toward the caller and a :class:`DhInitiator` toward the callee, each with
its own :class:`~ims.mikey.crypto.DhKeyPair`, and re-encrypts SRTP between the two key sets.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cryptography import x509

from ims.mikey.certs import Credentials, TrustStore
from ims.mikey.constants import DataType, DhGroup, ErrorNo, IdType, SignType
from ims.mikey.crypto import DEFAULT_SIGN_HASH, DhKeyPair, SignHash, random_bytes
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import MikeyMessage
from ims.mikey.modes.base import (
    DEFAULT_SESSIONS,
    CryptoSession,
    Input,
    KeyExchangeResult,
    Machine,
    ResponderBase,
    ResponderReply,
    State,
    build_cs_map,
    build_sps,
    check_sdp_ids,
    check_t_echo,
    choose_csb_id,
    decode_checked,
    id_payload,
    replay_key,
    require_rand,
    require_t,
    sdp_ids_payload,
    timestamp,
)
from ims.mikey.modes.pk import (
    cert_payloads,
    certificate_identity,
    check_signature,
    public_key_of,
    signed_message,
    validated_peer,
)
from ims.mikey.payloads import (
    CertPayload,
    DhPayload,
    HdrPayload,
    IdPayload,
    Payload,
    RandPayload,
    SpPayload,
    TPayload,
)
from ims.mikey.replay import ReplayCache


def split_dh(msg: MikeyMessage, own: bytes | None = None) -> tuple[DhPayload, DhPayload | None]:
    """(peer DH, echoed own DH) of a response; (DHi, None) for an initiation."""
    dhs = msg.find_all(DhPayload)
    if not dhs:
        raise MikeyError("DH payload missing", mikey_error=ErrorNo.INVALID_DH)
    if own is None:
        return dhs[0], None
    if len(dhs) < 2:
        raise MikeyError("response does not echo DHi", mikey_error=ErrorNo.INVALID_DH)
    return dhs[0], dhs[1]


def response_tgk(msg: MikeyMessage, dh_key: DhKeyPair) -> bytes:
    """The TGK from a DH response: it must echo our DHi in our group (RFC 3830 §3.3)."""
    dhr, dhi = split_dh(msg, dh_key.public)
    if dhi is None or dhi.value != dh_key.public:
        raise MikeyError("response echoes a different DHi", mikey_error=ErrorNo.INVALID_DH)
    if dhr.group is not dh_key.group:
        raise MikeyError("DH group mismatch", mikey_error=ErrorNo.INVALID_DH)
    return dh_key.shared_secret(dhr.value)


class DhInitiator:
    """Initiator of a DH-SIGN exchange."""

    mode = "dh"

    def __init__(
        self,
        *,
        credentials: Credentials,
        trust: TrustStore,
        group: DhGroup = DhGroup.OAKLEY_5,
        dh_key: DhKeyPair | None = None,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        sign_hash: SignHash = DEFAULT_SIGN_HASH,
        responder_certificate: x509.Certificate | None = None,
        idi: str | bytes | None = None,
        idr: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        sdp_ids: str | None = None,
        established_csb_ids: Collection[int] = (),
    ) -> None:
        self.credentials = credentials
        self.sign_hash: SignHash = sign_hash
        self.sdp_ids = sdp_ids
        self.trust = trust
        self.dh_key = dh_key if dh_key is not None else DhKeyPair.generate(group)
        self.sessions = tuple(sessions)
        self.sign_type = sign_type
        self.responder_certificate = responder_certificate
        self.idi = idi if idi is not None else certificate_identity(credentials.certificate)
        self.idr = idr
        self.csb_id = choose_csb_id(csb_id, established_csb_ids)
        self.rand = rand if rand is not None else random_bytes(16)
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None
        self._hdr: HdrPayload | None = None
        self._sps: tuple[SpPayload, ...] = ()
        self._t: TPayload | None = None

    def initiate(self, now: float) -> bytes:
        hdr = HdrPayload(
            data_type=DataType.DH_INIT, csb_id=self.csb_id, cs_map=build_cs_map(self.sessions)
        )
        self._hdr = hdr
        self._t = timestamp(now)
        payloads: list[Payload] = [self._t, RandPayload(data=self.rand)]
        payloads.extend(cert_payloads(self.credentials))
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        self._sps = build_sps(self.sessions)
        payloads.extend(self._sps)
        ext = sdp_ids_payload(self.sdp_ids)
        if ext is not None:
            payloads.append(ext)
        payloads.append(DhPayload(group=self.dh_key.group, value=self.dh_key.public))
        data = signed_message(
            hdr, payloads, self.credentials, self.sign_type, sign_hash=self.sign_hash
        )
        self.machine.fire(Input.INITIATE)
        return data

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.machine.expect(State.WAIT_RESPONSE)
        assert self._t is not None
        try:
            msg = decode_checked(data, DataType.DH_RESP, self._t)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            require_t(msg)
            cert = validated_peer(msg, self.trust, now, self.responder_certificate)
            check_signature(data, msg, public_key_of(cert), sign_hash=self.sign_hash)
            check_t_echo(msg, self._t)
            tgk = response_tgk(msg, self.dh_key)
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        assert self._hdr is not None
        ids = msg.find_all(IdPayload)
        self.result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=tgk,
            cs_map=self._hdr.cs_map,
            policies=self._sps,
            peer_id=certificate_identity(cert) if not ids else ids[0].data,
            peer_certificate=cert,
        )
        return self.result


class DhResponder(ResponderBase):
    """Responder of a DH-SIGN exchange."""

    mode = "dh"

    def __init__(
        self,
        *,
        credentials: Credentials,
        trust: TrustStore,
        dh_key: DhKeyPair | None = None,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        sign_hash: SignHash = DEFAULT_SIGN_HASH,
        initiator_certificate: x509.Certificate | None = None,
        idr: str | bytes | None = None,
        replay: ReplayCache | None = None,
        sdp_ids: str | None = None,
    ) -> None:
        self.credentials = credentials
        self.sign_hash: SignHash = sign_hash
        self.sdp_ids = sdp_ids
        self.trust = trust
        self.dh_key = dh_key
        self.sign_type = sign_type
        self.initiator_certificate = initiator_certificate
        self.idr = idr
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.DH_INIT)
        t = require_t(msg)
        rand = require_rand(msg)
        cert = validated_peer(msg, self.trust, now, self.initiator_certificate)
        check_signature(data, msg, public_key_of(cert), sign_hash=self.sign_hash)
        check_sdp_ids(msg, self.sdp_ids)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        dhi, _ = split_dh(msg)
        key = self.dh_key if self.dh_key is not None else DhKeyPair.generate(dhi.group)
        if key.group is not dhi.group:
            raise MikeyError("DH group not supported", mikey_error=ErrorNo.INVALID_DH)
        tgk = key.shared_secret(dhi.value)
        ids = msg.find_all(IdPayload)
        # IDi: the ID payload when the initiator sent one instead of CERTi, else its cert name.
        idi = ids[0].data if ids and not msg.find_all(CertPayload) else certificate_identity(cert)
        hdr = HdrPayload(data_type=DataType.DH_RESP, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map)
        payloads: list[Payload] = [t]  # §3.3: "the same as the one included in the Initiator's"
        payloads.extend(cert_payloads(self.credentials))
        payloads.append(IdPayload(id_type=IdType.URI, data=idi))
        payloads.append(DhPayload(group=key.group, value=key.public))
        payloads.append(dhi)
        r = signed_message(
            hdr, payloads, self.credentials, self.sign_type, sign_hash=self.sign_hash
        )
        result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=msg.hdr.csb_id,
            rand=rand,
            tgk=tgk,
            cs_map=msg.hdr.cs_map,
            policies=msg.find_all(SpPayload),
            peer_id=idi,
            peer_certificate=cert,
        )
        return ResponderReply(message=r, result=result)
