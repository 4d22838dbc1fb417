"""MIKEY public-key encryption mode (RFC 3830 §3.2).

I_MESSAGE = HDR(data type 2, V flag), T, RAND, [IDi|CERTi], [IDr], {SP}, [GenExt(SDP IDs)],
            KEMAC, [CHASH], PKE, SIGNi
R_MESSAGE = HDR(data type 3), T, [IDr], V                    (only when the V flag was set)

* The initiator picks the TGK and a random envelope key env_key; "PKE = E(PKr, env_key)"
  (§3.2, §6.3; RSAES-PKCS1-v1_5 by default, OAEP selectable, §4.2.5). encr_key/auth_key/
  salt_key come from env_key with cs_id 0xFF (§4.1.4).
* "KEMAC = E(encr_key, IDi || {TGK}) || MAC" (§3.2); the MAC covers the KEMAC payload only
  (§5.2, see :mod:`ims.mikey.modes.pk`); with AES-KW the NULL MAC is accepted and may be
  sent (``mac_alg=MacAlg.NULL``; §4.2.3 RECOMMENDS it). SIGNi covers the whole message (§5.2).
* Clear IDi *and* CERTi are both sent (§3.2: "The cleartext ID fields and certificate SHOULD
  be included"). "The encrypted IDi MUST always be verified to be equal with the expected
  IDi": the responder's expected IDi is, in order, the one it was configured with (``idi=``,
  e.g. the SIP identity), else the clear IDi of the I_MESSAGE, else an identity the validated
  certificate vouches for (its CN or a SAN URI); a mismatch is an ``Authentication failure``
  (the check is "a countermeasure for certain man-in-the-middle attacks").
* CHASH (§6.8, optional, ``send_chash=True``): hash of the responder certificate the envelope
  is encrypted to; a responder refuses a CHASH naming another certificate (``Invalid Cert``).
* V as in PSK mode with auth_key from env_key (§3.2: "V is calculated in the same way as in
  the pre-shared key mode"), the initiator's T echoed and checked.
* Responder checks, in order: certificate chain (Invalid Cert), SIGNi (Authentication failure),
  envelope (Authentication failure; with PKCS#1 v1.5 the decryption uses implicit rejection, so
  a wrong key usually shows up as the next check failing), KEMAC MAC (Invalid MAC), SDP IDs,
  then the timestamp window and replay cache (Invalid TS) — authenticity first, so a forged T
  cannot be told apart from a late one.

For LI (study cases B-D) the pieces are reusable: :func:`ims.mikey.inspect.open_message` opens
the envelope with a private key (case C); a MITM answers the initiator as a
:class:`PkeResponder` with substitute credentials and forwards the same TGK/RAND/CSB ID to the
real responder through a :class:`PkeInitiator` (``tgk=``, ``rand=``, ``csb_id=``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

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
    DEFAULT_SIGN_HASH,
    MAC_LEN,
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
    choose_csb_id,
    decode_checked,
    id_bytes,
    id_payload,
    replay_key,
    require_rand,
    require_t,
    sdp_ids_payload,
    timestamp,
)
from ims.mikey.modes.pk import (
    cert_payloads,
    certificate_identities,
    certificate_identity,
    certificate_md5,
    certificate_sha1,
    check_pk_kemac_mac,
    check_signature,
    clear_idi,
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
        mac_alg: MacAlg = MacAlg.HMAC_SHA1_160,
        sign_type: SignType = SignType.RSA_PKCS1_V15,
        sign_hash: SignHash = DEFAULT_SIGN_HASH,
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
        sdp_ids: str | None = None,
        established_csb_ids: Collection[int] = (),
    ) -> None:
        self.credentials = credentials
        self.responder_certificate = responder_certificate
        self.sessions = tuple(sessions)
        self.verification = verification
        self.encr_alg = encr_alg
        self.mac_alg = mac_alg
        self.sign_type = sign_type
        self.sign_hash: SignHash = sign_hash
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.send_certificate = send_certificate
        self.send_chash = send_chash
        self.sdp_ids = sdp_ids
        self.idi = idi if idi is not None else certificate_identity(credentials.certificate)
        self.idr = idr
        self.csb_id = choose_csb_id(csb_id, established_csb_ids)
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
        payloads.append(idi_p)
        if self.send_certificate:
            payloads.extend(cert_payloads(self.credentials))
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        sps = build_sps(self.sessions)
        payloads.extend(sps)
        ext = sdp_ids_payload(self.sdp_ids)
        if ext is not None:
            payloads.append(ext)
        kemac = build_kemac(
            encr_alg=self.encr_alg,
            mac_alg=self.mac_alg,
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
        data = signed_message(
            hdr, payloads, self.credentials, self.sign_type, sign_hash=self.sign_hash
        )
        self.result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=self.tgk,
            cs_map=hdr.cs_map,
            policies=sps,
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
        idi: str | bytes | None = None,
        envelope_padding: EnvelopePadding = "pkcs1v15",
        sign_hash: SignHash = DEFAULT_SIGN_HASH,
        initiator_certificate: x509.Certificate | None = None,
        replay: ReplayCache | None = None,
        sdp_ids: str | None = None,
    ) -> None:
        self.credentials = credentials
        self.trust = trust
        self.idr = idr
        self.idi = idi
        self.sign_hash: SignHash = sign_hash
        self.sdp_ids = sdp_ids
        self.envelope_padding: EnvelopePadding = envelope_padding
        self.initiator_certificate = initiator_certificate
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.PK_INIT)
        t = require_t(msg)
        rand = require_rand(msg)
        cert = validated_peer(msg, self.trust, now, self.initiator_certificate)
        check_signature(data, msg, public_key_of(cert), sign_hash=self.sign_hash)
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
        check_pk_kemac_mac(kemac, keys)
        subs = open_kemac(kemac, keys, csb_id=msg.hdr.csb_id, t=t, first=PayloadType.ID)
        idi = self._verified_idi(msg, subs, cert)
        check_sdp_ids(msg, self.sdp_ids)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        tgk, teks, tgk_salt = tgk_from_sub_payloads(subs)
        result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=msg.hdr.csb_id,
            rand=rand,
            tgk=tgk,
            cs_map=msg.hdr.cs_map,
            policies=msg.find_all(SpPayload),
            tek_override=teks,
            salt_override=tgk_salt,
            peer_id=idi,
            peer_certificate=cert,
        )
        if not msg.hdr.v_flag:
            return ResponderReply(message=None, result=result)
        payloads: list[Payload] = [t]  # the initiator's T, echoed (RFC 3830 §5.2)
        return self._verification(msg, payloads, keys.auth_key, idi, t, result)

    def _verified_idi(
        self, msg: MikeyMessage, subs: Sequence[Payload], cert: x509.Certificate
    ) -> bytes:
        """The encrypted IDi, checked against the expected IDi (§3.2, module docstring)."""
        inner = subs[0] if subs else None
        if not isinstance(inner, IdPayload):
            raise MikeyError("KEMAC does not start with IDi", mikey_error=ErrorNo.AUTH_FAILURE)
        clear = clear_idi(msg)
        if self.idi is not None:
            expected = {id_bytes(self.idi)}
        elif clear is not None:
            expected = {clear}
        else:
            expected = certificate_identities(cert)
        if inner.data not in expected:
            raise MikeyError(
                "encrypted IDi is not the expected IDi", mikey_error=ErrorNo.AUTH_FAILURE
            )
        return inner.data

    def _verification(
        self,
        msg: MikeyMessage,
        payloads: list[Payload],
        auth_key: bytes,
        idi: bytes,
        t: TPayload,
        result: KeyExchangeResult,
    ) -> ResponderReply:
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        payloads.append(VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=b"\x00" * MAC_LEN))
        hdr = HdrPayload(data_type=DataType.PK_RESP, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map)
        r = MikeyMessage(hdr=hdr, payloads=tuple(payloads)).encode()
        v = verification_mac(auth_key, r[:-MAC_LEN], idi, id_bytes(self.idr), t)
        return ResponderReply(message=r[:-MAC_LEN] + v, result=result)
