"""MIKEY public-key encryption mode (RFC 3830 §3.2).

I_MESSAGE = HDR(data type 2, V flag), T, RAND, [IDi|CERTi], [IDr], {SP}, KEMAC, [CHASH], PKE, SIGNi

* CHASH (§6.8, optional, ``send_chash=True``): hash of the responder certificate the envelope
  is encrypted to (SHA-1 of its DER); a responder refuses a CHASH naming another certificate
  (``Invalid Cert``).
R_MESSAGE = HDR(data type 3), T, [IDr], V                    (only when the V flag was set)

* The initiator picks the TGK and a random envelope key env_key; PKE = E(PKr, env_key)
  (§3.2, §6.3; RSAES-PKCS1-v1_5 by default, OAEP selectable). encr_key/auth_key/salt_key come
  from env_key with cs_id 0xFF (§4.1.4).
* KEMAC = E(encr_key, IDi || {TGK}) || MAC (§3.2); the MAC covers the KEMAC payload only
  (see :mod:`ims.mikey.modes.pk`). SIGNi covers the whole message (§5.2).
* V as in PSK mode with auth_key from env_key (§3.2 refers to §3.1).
* Responder checks, in order: certificate chain (Invalid Cert), SIGNi (Authentication failure),
  envelope (Authentication failure; with PKCS#1 v1.5 the decryption uses implicit rejection, so
  a wrong key usually shows up as the next check failing), KEMAC MAC (Invalid MAC), then the
  timestamp window and replay cache (Invalid TS) — authenticity first, so a forged T cannot
  be told apart from a late one.

For LI (study cases B-D) the pieces are reusable: :func:`ims.mikey.inspect.open_message` opens
the envelope with a private key (case C); a MITM answers the initiator as a
:class:`PkeResponder` with substitute credentials and forwards the same TGK/RAND/CSB ID to the
real responder through a :class:`PkeInitiator` (``tgk=``, ``rand=``, ``csb_id=``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from ims.mikey.certs import Credentials, TrustStore
from ims.mikey.constants import (
    DataType,
    EncrAlg,
    ErrorNo,
    HashFunc,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignType,
)
from ims.mikey.crypto import (
    MAC_LEN,
    EnvelopePadding,
    envelope_decrypt,
    envelope_encrypt,
    hmac_sha1_160,
    mac_equal,
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
    decode_checked,
    derive_session_keys,
    id_bytes,
    id_payload,
    replay_key,
    require_rand,
    require_t,
    timestamp,
)
from ims.mikey.modes.pk import (
    cert_payloads,
    certificate_identity,
    certificate_md5,
    certificate_sha1,
    check_signature,
    kemac_mac_input,
    kemac_with_mac,
    public_key_of,
    signed_message,
    validated_peer,
)
from ims.mikey.modes.psk import (
    build_kemac,
    check_verification,
    open_kemac,
    tgk_from_sub_payloads,
    verification_mac,
)
from ims.mikey.payloads import (
    ChashPayload,
    HdrPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Payload,
    PkePayload,
    RandPayload,
    SpPayload,
    TPayload,
    VPayload,
)
from ims.mikey.replay import ReplayCache


class PkeInitiator:
    """Initiator of a public-key exchange (needs the responder's certificate beforehand)."""

    mode = "pke"

    def __init__(
        self,
        *,
        credentials: Credentials,
        responder_certificate: x509.Certificate,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        verification: bool = True,
        encr_alg: EncrAlg = EncrAlg.AES_CM_128,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        envelope_padding: EnvelopePadding = "pkcs1v15",
        send_certificate: bool = True,
        send_chash: bool = False,
        idi: str | bytes | None = None,
        idr: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        tgk: bytes | None = None,
        env_key: bytes | None = None,
        tgk_len: int = 16,
    ) -> None:
        self.credentials = credentials
        self.responder_certificate = responder_certificate
        self.sessions = tuple(sessions)
        self.verification = verification
        self.encr_alg = encr_alg
        self.sign_type = sign_type
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.send_certificate = send_certificate
        self.send_chash = send_chash
        self.idi = idi if idi is not None else certificate_identity(credentials.certificate)
        self.idr = idr
        self.csb_id = csb_id if csb_id is not None else int.from_bytes(random_bytes(4), "big")
        self.rand = rand if rand is not None else random_bytes(16)
        self.tgk = tgk if tgk is not None else random_bytes(tgk_len)
        self.env_key = env_key if env_key is not None else random_bytes(16)
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None
        self._keys = derive_transport_keys(self.env_key, self.csb_id, self.rand)
        self._t: TPayload | None = None

    def initiate(self, now: float) -> bytes:
        t = timestamp(now)
        self._t = t
        hdr = HdrPayload(
            data_type=DataType.PK_INIT,
            csb_id=self.csb_id,
            cs_map=build_cs_map(self.sessions),
            v_flag=self.verification,
        )
        payloads: list[Payload] = [t, RandPayload(data=self.rand)]
        idi_p = id_payload(self.idi)
        assert idi_p is not None
        if self.send_certificate:
            payloads.extend(cert_payloads(self.credentials))
        else:
            payloads.append(idi_p)
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        sps = build_sps(self.sessions)
        payloads.extend(sps)
        kemac = build_kemac(
            encr_alg=self.encr_alg,
            mac_alg=MacAlg.HMAC_SHA1_160,
            keys=self._keys,
            sub_payloads=[idi_p, KeyDataPayload(key_type=KeyDataType.TGK, key=self.tgk)],
            csb_id=self.csb_id,
            t=t,
        )
        payloads.append(kemac_with_mac(kemac, self._keys.auth_key))
        if self.send_chash:
            digest = certificate_sha1(self.responder_certificate)
            payloads.append(ChashPayload(hash_func=HashFunc.SHA1, digest=digest))
        pub = public_key_of(self.responder_certificate)
        payloads.append(PkePayload(data=envelope_encrypt(pub, self.env_key, self.envelope_padding)))
        data = signed_message(hdr, payloads, self.credentials, self.sign_type)
        self.result = KeyExchangeResult(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=self.tgk,
            keys=derive_session_keys(
                tgk=self.tgk, csb_id=self.csb_id, rand=self.rand, cs_map=hdr.cs_map, policies=sps
            ),
            peer_certificate=self.responder_certificate,
        )
        self.machine.fire(Input.INITIATE if self.verification else Input.INITIATE_ONE_WAY)
        return data

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.machine.expect(State.WAIT_RESPONSE)
        try:
            assert self._t is not None
            check_verification(
                data,
                DataType.PK_RESP,
                csb_id=self.csb_id,
                auth_key=self._keys.auth_key,
                idi=id_bytes(self.idi),
                t_i=self._t,
            )
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        assert self.result is not None
        return self.result


class PkeResponder(ResponderBase):
    """Responder of a public-key exchange: opens the envelope with its private key."""

    mode = "pke"

    def __init__(
        self,
        *,
        credentials: Credentials,
        trust: TrustStore,
        idr: str | bytes | None = None,
        envelope_padding: EnvelopePadding = "pkcs1v15",
        initiator_certificate: x509.Certificate | None = None,
        replay: ReplayCache | None = None,
    ) -> None:
        self.credentials = credentials
        self.trust = trust
        self.idr = idr
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.initiator_certificate = initiator_certificate
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.PK_INIT)
        t = require_t(msg)
        rand = require_rand(msg)
        cert = validated_peer(msg, self.trust, now, self.initiator_certificate)
        check_signature(data, msg, public_key_of(cert))
        chash = msg.find(ChashPayload)
        if chash is not None:
            own = self.credentials.certificate
            digest = (
                certificate_sha1(own) if chash.hash_func is HashFunc.SHA1 else certificate_md5(own)
            )
            if chash.digest != digest:
                raise MikeyError(
                    "CHASH names another certificate than ours", mikey_error=ErrorNo.INVALID_CERT
                )
        pke = msg.find(PkePayload)
        kemac = msg.find(KemacPayload)
        if pke is None or kemac is None:
            raise MikeyError("PKE or KEMAC payload missing", mikey_error=ErrorNo.UNSPECIFIED)
        env_key = envelope_decrypt(self.credentials.private_key, pke.data, self.envelope_padding)
        keys = derive_transport_keys(env_key, msg.hdr.csb_id, rand)
        if kemac.mac_alg is not MacAlg.HMAC_SHA1_160 or not mac_equal(
            hmac_sha1_160(keys.auth_key, kemac_mac_input(kemac)), kemac.mac
        ):
            raise MikeyError("KEMAC MAC is wrong", mikey_error=ErrorNo.INVALID_MAC)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        subs = open_kemac(kemac, keys, csb_id=msg.hdr.csb_id, t=t, first=PayloadType.ID)
        inner_ids = [p for p in subs if isinstance(p, IdPayload)]
        idi = inner_ids[0].data if inner_ids else b""
        tgk, teks, tgk_salt = tgk_from_sub_payloads(subs)
        result = KeyExchangeResult(
            mode=self.mode,
            csb_id=msg.hdr.csb_id,
            rand=rand,
            tgk=tgk,
            keys=derive_session_keys(
                tgk=tgk,
                csb_id=msg.hdr.csb_id,
                rand=rand,
                cs_map=msg.hdr.cs_map,
                policies=msg.find_all(SpPayload),
                tek_override=teks,
                salt_override=tgk_salt,
            ),
            peer_id=idi,
            peer_certificate=cert,
        )
        if not msg.hdr.v_flag:
            return ResponderReply(message=None, result=result)
        payloads: list[Payload] = [t]  # the initiator's T, echoed (RFC 3830 §5.2)
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        payloads.append(VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=b"\x00" * MAC_LEN))
        hdr = HdrPayload(data_type=DataType.PK_RESP, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map)
        r = MikeyMessage(hdr=hdr, payloads=tuple(payloads)).encode()
        v = verification_mac(keys.auth_key, r[:-MAC_LEN], idi, id_bytes(self.idr), t)
        return ResponderReply(message=r[:-MAC_LEN] + v, result=result)
