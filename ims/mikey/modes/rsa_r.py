"""MIKEY-RSA-R, the reverse RSA mode (RFC 4738), unicast.

I_MESSAGE = HDR(data type 9, V=1), T, [RAND], IDi, CERTi, [IDr], {SP}, [GenExt(SDP IDs)], SIGNi
R_MESSAGE = HDR(data type 10), T, [RAND], IDi, IDr, CERTr, {SP}, KEMAC, PKE, SIGNr

RFC 4738 §3.1 Figure 1 gives ``R_MESSAGE = HDR, [GenExt(CSB_ID)], T, [RAND], [IDr|CERTr],
[SP], KEMAC, PKE, SIGNr``; what we do, clause by clause:

* §3.4 "The V bit MUST be set to '1' and ignored by the Responder, as a response is MANDATORY
  in this mode." The I_MESSAGE "MUST be signed by the Initiator following the procedure to
  sign MIKEY messages specified in RFC 3830" (SIGNi as in :mod:`ims.mikey.modes.pk`).
* §3.4 "The RAND payload SHOULD be included in the I_MESSAGE" (``send_rand``, default on);
  §3.6 "If the I_MESSAGE did not include the RAND payload, it MUST be present in the
  R_MESSAGE. In case it has been included in the I_MESSAGE, it MUST NOT be present in the
  R_MESSAGE"; §3.7 "If the I_MESSAGE contained a RAND payload, the Initiator MUST silently
  discard an R_MESSAGE that contains a RAND payload. Similarly, if the I_MESSAGE did not
  contain a RAND payload, the Initiator MUST silently discard an R_MESSAGE that does not
  contain a RAND payload." (Our initiator raises; it never answers a response anyway.)
* §3.6 "The T payload is exactly the same as that received in the I_MESSAGE." It is also
  the T of the AES-CM IV (RFC 3830 §4.2.3 "T is the 64-bit timestamp sent by the Initiator").
* §3.6 "KEMAC = E(encr_key, IDr || {TGK}) || MAC" with keys from env_key (RFC 3830 §4.1.4),
  "PKE = E(PKi, env_key)"; the initiator checks that the encrypted IDr equals the clear one
  (as RFC 3830 §3.2 does for IDi). With AES-KW the NULL MAC is accepted (RFC 3830 §4.2.3).
* §3.6 SIGNr: "the Responder MUST sign: R_MESSAGE (excluding the SIGNr payload itself) ||
  IDi || IDr || T. Note that the added identities and timestamp are identical to those
  transported in the ID and T payloads." **The SIGN header question**: "excluding the SIGNr
  payload itself" could exclude the 2-byte S type/length header too. We keep the header
  *inside* the signed data, because (1) §3.3 says "Preparation and parsing of RSA-R messages
  are as described in Sections 5.2 and 5.3 of RFC 3830", and RFC 3830 §5.2 signs "the entire
  MIKEY message, except the MAC/Signature field" after the payload was concatenated "without
  the MAC/signature field filled in", so the header is covered in every other signed MIKEY
  message; (2) the header carries the S type, which then cannot be swapped; (3) the one other
  RSA-R implementation, minisip (libmikey ``MikeyPayloads::buildSignData``, revision ee3cca78
  "RSA-R: Fix SIGN payload of R_MESSAGE, need to be calculated over the identities and the
  timestamp"), signs the raw message minus the signature length, i.e. header included,
  then appends the data of the message's first and second ID payloads and its 64-bit T.
  To make "the added identities [...] identical to those transported in the ID payloads"
  unambiguous, the R_MESSAGE carries IDi and IDr in clear, in that order (the first and
  second ID payloads, which is also exactly what minisip's rule reads).
* §3.5 "The Responder SHOULD send an Error message 'Message type not supported' (Error no.
  13), if it cannot correctly parse the received MIKEY message."
* §3.6 "if an SP payload was in the I_MESSAGE, then the R_MESSAGE MUST contain an SP payload";
  we return the initiator's policies; §3.7 "If the SP payload contains a policy not specified
  in the SP message, if present, in the I_MESSAGE, such an R_MESSAGE MUST be discarded".
* §3.8 "the X.509v3 URL Cert type from Table 6.7.b [RFC3830] is the default method in RSA-R
  mode and MUST be implemented": ``certificate_url=`` sends one, ``resolve_url=`` fetches the
  peer's (:mod:`ims.mikey.aio_certurl` has the HTTP resolver).
* Group mode (§3.2, GenExt(CSB_ID)) is not implemented: "The General Extension Payload
  carrying a CSB_ID MUST NOT be present in case of unicast communication", and an R_MESSAGE
  carrying one is refused.

LI: with the initiator's private key (study case C for RSA-R), ``inspect.open_message`` opens
the R_MESSAGE envelope; a MITM answers with its own PKE/KEMAC/SIGN (cases B and D).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cryptography import x509

from ims.mikey.certs import Credentials, TrustStore
from ims.mikey.constants import (
    DataType,
    EncrAlg,
    ErrorNo,
    GenExtType,
    IdType,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignType,
)
from ims.mikey.crypto import (
    DEFAULT_SIGN_HASH,
    EnvelopePadding,
    SignHash,
    envelope_decrypt,
    envelope_encrypt,
    random_bytes,
)
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import derive_transport_keys
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
    derive_session_keys,
    id_bytes,
    id_payload,
    replay_key,
    require_t,
    sdp_ids_payload,
    timestamp,
)
from ims.mikey.modes.pk import (
    UrlResolver,
    cert_payloads,
    certificate_identities,
    certificate_identity,
    check_pk_kemac_mac,
    check_signature,
    clear_idi,
    kemac_with_mac,
    public_key_of,
    signed_message,
    validated_peer,
)
from ims.mikey.modes.psk import build_kemac, open_kemac, tgk_from_sub_payloads
from ims.mikey.payloads import (
    GeneralExtPayload,
    HdrPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Payload,
    PkePayload,
    RandPayload,
    SpPayload,
    TPayload,
)
from ims.mikey.replay import ReplayCache


def signr_extra(idi: bytes, idr: bytes, t: TPayload) -> bytes:
    """What RFC 4738 §3.6 appends to the R_MESSAGE for SIGNr: ``IDi || IDr || T``."""
    return idi + idr + t.value_bytes()


class RsaRInitiator:
    """Initiator of an RSA-R exchange: asks the responder for keys, receives them encrypted."""

    mode = "rsa-r"

    def __init__(
        self,
        *,
        credentials: Credentials,
        trust: TrustStore,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        sign_hash: SignHash = DEFAULT_SIGN_HASH,
        envelope_padding: EnvelopePadding = "pkcs1v15",
        responder_certificate: x509.Certificate | None = None,
        idi: str | bytes | None = None,
        idr: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        send_rand: bool = True,
        replay: ReplayCache | None = None,
        sdp_ids: str | None = None,
        certificate_url: str | None = None,
        resolve_url: UrlResolver | None = None,
        established_csb_ids: Collection[int] = (),
    ) -> None:
        self.credentials = credentials
        self.trust = trust
        self.sessions = tuple(sessions)
        self.sign_type = sign_type
        self.sign_hash: SignHash = sign_hash
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.responder_certificate = responder_certificate
        self.idi = idi if idi is not None else certificate_identity(credentials.certificate)
        self.idr = idr
        self.csb_id = choose_csb_id(csb_id, established_csb_ids)
        self.send_rand = send_rand
        self.rand: bytes = (rand if rand is not None else random_bytes(16)) if send_rand else b""
        self.replay = replay if replay is not None else ReplayCache()
        self.sdp_ids = sdp_ids
        self.certificate_url = certificate_url
        self.resolve_url = resolve_url
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None
        self._t: TPayload | None = None
        self._sps: tuple[SpPayload, ...] = ()

    def initiate(self, now: float) -> bytes:
        hdr = HdrPayload(
            data_type=DataType.RSA_R_INIT,
            csb_id=self.csb_id,
            cs_map=build_cs_map(self.sessions),
            v_flag=True,  # RFC 4738 §3.4: "The V bit MUST be set to '1'"
        )
        self._t = timestamp(now)
        payloads: list[Payload] = [self._t]
        if self.send_rand:
            payloads.append(RandPayload(data=self.rand))
        idi_p = id_payload(self.idi)
        assert idi_p is not None
        payloads.append(idi_p)
        payloads.extend(cert_payloads(self.credentials, self.certificate_url))
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        self._sps = build_sps(self.sessions)
        payloads.extend(self._sps)
        ext = sdp_ids_payload(self.sdp_ids)
        if ext is not None:
            payloads.append(ext)
        self.machine.fire(Input.INITIATE)
        return signed_message(
            hdr, payloads, self.credentials, self.sign_type, sign_hash=self.sign_hash
        )

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.machine.expect(State.WAIT_RESPONSE)
        assert self._t is not None
        try:
            msg = decode_checked(data, DataType.RSA_R_RESP, self._t)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            if any(g.ext_type == GenExtType.CSB_ID for g in msg.find_all(GeneralExtPayload)):
                raise MikeyError(
                    "GenExt(CSB_ID) in a unicast R_MESSAGE (RFC 4738 §3.6)",
                    mikey_error=ErrorNo.UNSPECIFIED,
                )
            t = require_t(msg)
            check_t_echo(msg, self._t)
            rand = self._response_rand(msg)
            idi, idr = self._signed_ids(msg)
            cert = validated_peer(
                msg, self.trust, now, self.responder_certificate, self.resolve_url
            )
            check_signature(
                data,
                msg,
                public_key_of(cert),
                extra=signr_extra(idi, idr, t),
                sign_hash=self.sign_hash,
            )
            self._check_responder_identity(idr, cert)
            self._check_policies(msg)
            self.replay.check_and_store(replay_key(msg, data), t, now, self.csb_id)
            pke = msg.find(PkePayload)
            kemac = msg.find(KemacPayload)
            if pke is None or kemac is None:
                raise MikeyError("PKE or KEMAC payload missing", mikey_error=ErrorNo.UNSPECIFIED)
            env_key = envelope_decrypt(
                self.credentials.private_key, pke.data, self.envelope_padding
            )
            keys = derive_transport_keys(env_key, self.csb_id, rand)
            check_pk_kemac_mac(kemac, keys)
            subs = open_kemac(kemac, keys, csb_id=self.csb_id, t=t, first=PayloadType.ID)
            inner = subs[0] if subs else None
            if not isinstance(inner, IdPayload) or (idr and inner.data != idr):
                raise MikeyError(
                    "encrypted IDr is not the clear IDr", mikey_error=ErrorNo.AUTH_FAILURE
                )
            tgk, teks, tgk_salt = tgk_from_sub_payloads(subs)
            # RFC 4738 §3.6: the responder may return its own policy; otherwise ours applies.
            sps = msg.find_all(SpPayload) or self._sps
            session_keys = derive_session_keys(
                tgk=tgk,
                csb_id=self.csb_id,
                rand=rand,
                cs_map=msg.hdr.cs_map,
                policies=sps,
                tek_override=teks,
                salt_override=tgk_salt,
            )
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        self.result = KeyExchangeResult(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=rand,
            tgk=tgk,
            keys=session_keys,
            peer_id=inner.data,
            peer_certificate=cert,
        )
        return self.result

    def _response_rand(self, msg: MikeyMessage) -> bytes:
        """The RAND for key derivation, under the §3.6/§3.7 either-side rule."""
        r = msg.find(RandPayload)
        if self.send_rand:
            if r is not None:
                raise MikeyError(
                    "R_MESSAGE carries a RAND although the I_MESSAGE had one (RFC 4738 §3.7)",
                    mikey_error=ErrorNo.UNSPECIFIED,
                )
            return self.rand
        if r is None or not r.data:
            raise MikeyError(
                "R_MESSAGE carries no RAND although the I_MESSAGE had none (RFC 4738 §3.7)",
                mikey_error=ErrorNo.UNSPECIFIED,
            )
        self.rand = r.data
        return r.data

    def _signed_ids(self, msg: MikeyMessage) -> tuple[bytes, bytes]:
        """(IDi, IDr) as carried in the R_MESSAGE's first and second ID payloads."""
        ids = [p.data for p in msg.find_all(IdPayload)]
        own = id_bytes(self.idi)
        if len(ids) >= 2:
            if ids[0] != own:
                raise MikeyError("R_MESSAGE names another IDi", mikey_error=ErrorNo.AUTH_FAILURE)
            return ids[0], ids[1]
        # a peer that sends only IDr (Figure 1's shape): IDi is the one we sent
        return own, ids[0] if ids else b""

    def _check_responder_identity(self, idr: bytes, cert: x509.Certificate) -> None:
        """The clear IDr must be an identity the responder's certificate vouches for, and the
        requested IDr (if any) too: §3.4 "If the Initiator's policy does not allow acceptance
        of an R_MESSAGE from any entity other than one that can assert a specific identity,
        the Initiator MUST include that specific identity in an IDr payload"."""
        names = certificate_identities(cert)
        if idr and idr not in names:
            raise MikeyError(
                f"IDr {idr!r} is not an identity of the responder's certificate",
                mikey_error=ErrorNo.INVALID_ID,
            )
        if self.idr is not None and id_bytes(self.idr) not in names:
            raise MikeyError(
                "the responder cannot assert the requested IDr", mikey_error=ErrorNo.INVALID_ID
            )

    def _check_policies(self, msg: MikeyMessage) -> None:
        offered = {(sp.prot_type, sp.params) for sp in self._sps}
        for sp in msg.find_all(SpPayload):
            if (sp.prot_type, sp.params) not in offered:
                raise MikeyError(
                    "R_MESSAGE policy was not offered (RFC 4738 §3.7)",
                    mikey_error=ErrorNo.INVALID_SPPAR,
                )


class RsaRResponder(ResponderBase):
    """Responder of an RSA-R exchange: chooses the TGK and seals it to the initiator's key."""

    mode = "rsa-r"

    def __init__(
        self,
        *,
        credentials: Credentials,
        trust: TrustStore,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        sign_hash: SignHash = DEFAULT_SIGN_HASH,
        envelope_padding: EnvelopePadding = "pkcs1v15",
        encr_alg: EncrAlg = EncrAlg.AES_CM_128,
        mac_alg: MacAlg = MacAlg.HMAC_SHA1_160,
        idr: str | bytes | None = None,
        tgk: bytes | None = None,
        env_key: bytes | None = None,
        rand: bytes | None = None,
        tgk_len: int = 16,
        replay: ReplayCache | None = None,
        sdp_ids: str | None = None,
        certificate_url: str | None = None,
        resolve_url: UrlResolver | None = None,
    ) -> None:
        self.credentials = credentials
        self.trust = trust
        self.sign_type = sign_type
        self.sign_hash: SignHash = sign_hash
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.encr_alg = encr_alg
        self.mac_alg = mac_alg
        self.idr = idr if idr is not None else certificate_identity(credentials.certificate)
        self.tgk = tgk
        self.env_key = env_key
        self.rand = rand
        self.tgk_len = tgk_len
        self.replay = replay if replay is not None else ReplayCache()
        self.sdp_ids = sdp_ids
        self.certificate_url = certificate_url
        self.resolve_url = resolve_url
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        try:
            msg = decode_checked(data, DataType.RSA_R_INIT)
        except MikeyDecodeError as exc:
            # RFC 4738 §3.5: "Error no. 13 [...] if it cannot correctly parse" the message
            raise MikeyDecodeError(
                str(exc), offset=exc.offset, mikey_error=ErrorNo.UNSUPPORTED_MSG_TYPE
            ) from None
        t_i = require_t(msg)
        cert = validated_peer(msg, self.trust, now, resolve_url=self.resolve_url)
        check_signature(data, msg, public_key_of(cert), sign_hash=self.sign_hash)
        check_sdp_ids(msg, self.sdp_ids)
        self.replay.check_and_store(replay_key(msg, data), t_i, now, msg.hdr.csb_id)
        csb_id = msg.hdr.csb_id
        rand_p = msg.find(RandPayload)
        # §3.6: either the Initiator or the Responder (not both) sends the RAND
        rand = rand_p.data if rand_p is not None and rand_p.data else None
        extra_rand: RandPayload | None = None
        if rand is None:
            rand = self.rand if self.rand is not None else random_bytes(16)
            extra_rand = RandPayload(data=rand)
        tgk = self.tgk if self.tgk is not None else random_bytes(self.tgk_len)
        env_key = self.env_key if self.env_key is not None else random_bytes(16)
        keys = derive_transport_keys(env_key, csb_id, rand)
        clear = clear_idi(msg)
        idi = clear if clear is not None else certificate_identity(cert)
        idr = id_bytes(self.idr)
        hdr = HdrPayload(data_type=DataType.RSA_R_RESP, csb_id=csb_id, cs_map=msg.hdr.cs_map)
        sps = msg.find_all(SpPayload)
        payloads: list[Payload] = [t_i]  # §3.6: "exactly the same as that received"
        if extra_rand is not None:
            payloads.append(extra_rand)
        payloads.append(IdPayload(id_type=_id_type(msg), data=idi))
        idr_p = id_payload(self.idr)
        assert idr_p is not None
        payloads.append(idr_p)
        payloads.extend(cert_payloads(self.credentials, self.certificate_url))
        payloads.extend(sps)
        kemac = build_kemac(
            encr_alg=self.encr_alg,
            mac_alg=self.mac_alg,
            keys=keys,
            sub_payloads=[idr_p, KeyDataPayload(key_type=KeyDataType.TGK, key=tgk)],
            csb_id=csb_id,
            t=t_i,
        )
        payloads.append(kemac_with_mac(kemac, keys.auth_key))
        payloads.append(
            PkePayload(data=envelope_encrypt(public_key_of(cert), env_key, self.envelope_padding))
        )
        r = signed_message(
            hdr,
            payloads,
            self.credentials,
            self.sign_type,
            extra=signr_extra(idi, idr, t_i),
            sign_hash=self.sign_hash,
        )
        result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=csb_id,
            rand=rand,
            tgk=tgk,
            cs_map=msg.hdr.cs_map,
            policies=sps,
            peer_id=idi,
            peer_certificate=cert,
        )
        return ResponderReply(message=r, result=result)


def _id_type(msg: MikeyMessage) -> IdType:
    """The IDi payload's ID type, echoed (URI when the initiator sent none)."""
    ids = msg.find_all(IdPayload)
    return ids[0].id_type if ids else IdType.URI
