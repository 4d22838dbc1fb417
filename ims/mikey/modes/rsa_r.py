"""MIKEY-RSA-R, the reverse RSA mode (RFC 4738).

I_MESSAGE = HDR(data type 9), T, RAND, [IDi|CERTi], [IDr], {SP}, SIGNi
R_MESSAGE = HDR(data type 10), T, [IDr|CERTr], {SP}, KEMAC, PKE, SIGNr

* The *responder* chooses the TGK and an envelope key, and encrypts the envelope key to the
  *initiator's* public key taken from CERTi (RFC 4738 §3): PKE = E(PKi, env_key).
  KEMAC = E(encr_key, IDr || {TGK}) || MAC, keys from env_key, the CSB ID and the initiator's
  RAND (RFC 3830 §4.1.4); the KEMAC MAC covers the KEMAC payload (as in PK mode).
* SIGNi covers the whole I_MESSAGE; SIGNr the whole R_MESSAGE (RFC 3830 §5.2 rule, which
  we assume RFC 4738 reuses). **Unverified against the RFC text** (RFC 4738 §3/§4 could not
  be read here). The IETF 62 MSEC slides of the RFC 4738 authors confirm the shape used here:
  "PKE encrypted with Initiator public KEY (PKi); KEMAC includes encrypted Identity of
  responder (IDr) & TGKs, plus a Message Authentication Code (MAC)". minisip is no help for
  SIGNr: its revision 32ef23e signs the response alone (default ``addIdsAndT = false``), its
  revision c7f4f4b switches to ``true`` (appending its first two ID payloads and the
  response's own T) with the ``false`` left commented out. We keep the plain rule; recorded
  in docs/mikey.md.
* The initiator must send CERTi (the responder needs its public key).

LI: with the initiator's private key (study case C for RSA-R), ``inspect.open_message`` opens
the R_MESSAGE envelope; a MITM answers with its own PKE/KEMAC/SIGN (cases B and D).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from ims.mikey.certs import Credentials, TrustStore
from ims.mikey.constants import (
    DataType,
    EncrAlg,
    ErrorNo,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignType,
)
from ims.mikey.crypto import (
    EnvelopePadding,
    envelope_decrypt,
    envelope_encrypt,
    hmac_sha1_160,
    mac_equal,
    random_bytes,
)
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import derive_transport_keys
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
    decode_checked,
    derive_session_keys,
    id_payload,
    replay_key,
    require_rand,
    require_t,
    timestamp,
)
from ims.mikey.modes.pk import (
    cert_payloads,
    certificate_identity,
    check_signature,
    kemac_mac_input,
    kemac_with_mac,
    public_key_of,
    signed_message,
    validated_peer,
)
from ims.mikey.modes.psk import build_kemac, open_kemac, tgk_from_sub_payloads
from ims.mikey.payloads import (
    HdrPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Payload,
    PkePayload,
    RandPayload,
    SpPayload,
)
from ims.mikey.replay import ReplayCache


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
        envelope_padding: EnvelopePadding = "pkcs1v15",
        responder_certificate: x509.Certificate | None = None,
        idr: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        replay: ReplayCache | None = None,
    ) -> None:
        self.credentials = credentials
        self.trust = trust
        self.sessions = tuple(sessions)
        self.sign_type = sign_type
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.responder_certificate = responder_certificate
        self.idr = idr
        self.csb_id = csb_id if csb_id is not None else int.from_bytes(random_bytes(4), "big")
        self.rand = rand if rand is not None else random_bytes(16)
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None

    def initiate(self, now: float) -> bytes:
        hdr = HdrPayload(
            data_type=DataType.RSA_R_INIT, csb_id=self.csb_id, cs_map=build_cs_map(self.sessions)
        )
        payloads: list[Payload] = [timestamp(now), RandPayload(data=self.rand)]
        payloads.extend(cert_payloads(self.credentials))
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        payloads.extend(build_sps(self.sessions))
        self.machine.fire(Input.INITIATE)
        return signed_message(hdr, payloads, self.credentials, self.sign_type)

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.machine.expect(State.WAIT_RESPONSE)
        try:
            msg = decode_checked(data, DataType.RSA_R_RESP)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            t = require_t(msg)
            cert = validated_peer(msg, self.trust, now, self.responder_certificate)
            check_signature(data, msg, public_key_of(cert))
            self.replay.check_and_store(replay_key(msg, data), t, now, self.csb_id)
            pke = msg.find(PkePayload)
            kemac = msg.find(KemacPayload)
            if pke is None or kemac is None:
                raise MikeyError("PKE or KEMAC payload missing", mikey_error=ErrorNo.UNSPECIFIED)
            env_key = envelope_decrypt(
                self.credentials.private_key, pke.data, self.envelope_padding
            )
            keys = derive_transport_keys(env_key, self.csb_id, self.rand)
            if kemac.mac_alg is not MacAlg.HMAC_SHA1_160 or not mac_equal(
                hmac_sha1_160(keys.auth_key, kemac_mac_input(kemac)), kemac.mac
            ):
                raise MikeyError("KEMAC MAC is wrong", mikey_error=ErrorNo.INVALID_MAC)
            subs = open_kemac(kemac, keys, csb_id=self.csb_id, t=t, first=PayloadType.ID)
            tgk, teks, tgk_salt = tgk_from_sub_payloads(subs)
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        inner = [p for p in subs if isinstance(p, IdPayload)]
        # RFC 4738: the responder may return its own policy; otherwise ours applies.
        sps = msg.find_all(SpPayload) or build_sps(self.sessions)
        self.result = KeyExchangeResult(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=tgk,
            keys=derive_session_keys(
                tgk=tgk,
                csb_id=self.csb_id,
                rand=self.rand,
                cs_map=msg.hdr.cs_map,
                policies=sps,
                tek_override=teks,
                salt_override=tgk_salt,
            ),
            peer_id=inner[0].data if inner else certificate_identity(cert),
            peer_certificate=cert,
        )
        return self.result


class RsaRResponder(ResponderBase):
    """Responder of an RSA-R exchange: chooses the TGK and seals it to the initiator's key."""

    mode = "rsa-r"

    def __init__(
        self,
        *,
        credentials: Credentials,
        trust: TrustStore,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        envelope_padding: EnvelopePadding = "pkcs1v15",
        encr_alg: EncrAlg = EncrAlg.AES_CM_128,
        idr: str | bytes | None = None,
        tgk: bytes | None = None,
        env_key: bytes | None = None,
        tgk_len: int = 16,
        replay: ReplayCache | None = None,
    ) -> None:
        self.credentials = credentials
        self.trust = trust
        self.sign_type = sign_type
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.encr_alg = encr_alg
        self.idr = idr if idr is not None else certificate_identity(credentials.certificate)
        self.tgk = tgk
        self.env_key = env_key
        self.tgk_len = tgk_len
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.RSA_R_INIT)
        t_i = require_t(msg)
        rand = require_rand(msg)
        cert = validated_peer(msg, self.trust, now)
        check_signature(data, msg, public_key_of(cert))
        self.replay.check_and_store(replay_key(msg, data), t_i, now, msg.hdr.csb_id)
        csb_id = msg.hdr.csb_id
        tgk = self.tgk if self.tgk is not None else random_bytes(self.tgk_len)
        env_key = self.env_key if self.env_key is not None else random_bytes(16)
        keys = derive_transport_keys(env_key, csb_id, rand)
        t = timestamp(now)
        idr_p = id_payload(self.idr)
        assert idr_p is not None
        hdr = HdrPayload(data_type=DataType.RSA_R_RESP, csb_id=csb_id, cs_map=msg.hdr.cs_map)
        sps = msg.find_all(SpPayload)
        payloads: list[Payload] = [t]
        payloads.extend(cert_payloads(self.credentials))
        payloads.extend(sps)
        kemac = build_kemac(
            encr_alg=self.encr_alg,
            mac_alg=MacAlg.HMAC_SHA1_160,
            keys=keys,
            sub_payloads=[idr_p, KeyDataPayload(key_type=KeyDataType.TGK, key=tgk)],
            csb_id=csb_id,
            t=t,
        )
        payloads.append(kemac_with_mac(kemac, keys.auth_key))
        payloads.append(
            PkePayload(data=envelope_encrypt(public_key_of(cert), env_key, self.envelope_padding))
        )
        r = signed_message(hdr, payloads, self.credentials, self.sign_type)
        result = KeyExchangeResult(
            mode=self.mode,
            csb_id=csb_id,
            rand=rand,
            tgk=tgk,
            keys=derive_session_keys(
                tgk=tgk, csb_id=csb_id, rand=rand, cs_map=msg.hdr.cs_map, policies=sps
            ),
            peer_id=certificate_identity(cert),
            peer_certificate=cert,
        )
        return ResponderReply(message=r, result=result)
