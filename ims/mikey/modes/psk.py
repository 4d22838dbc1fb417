"""MIKEY pre-shared key mode (RFC 3830 §3.1), with and without the verification message.

I_MESSAGE = HDR(data type 0, V flag), T, RAND, [IDi], [IDr], {SP}, [GenExt(SDP IDs)], KEMAC
R_MESSAGE = HDR(data type 1), T, [IDr], V                  (only when the V flag was set)

* KEMAC = E(encr_key, {TGK}) || MAC (§3.1, §6.2); encr_key/auth_key/salt_key come from the
  PSK with cs_id 0xFF (§4.1.4). §3.1: "The MAC is a Message Authentication Code covering the
  entire MIKEY message using the authentication key"; §6.2: "this Key data transport payload
  is the last payload in the message", so the MAC input is ``data[:-20]``.
* V (§3.1, §5.2): §5.2 "In the case of the verification message, the Identity_i ||
  Identity_r || Timestamp MUST directly follow the MIKEY message in the Verification MAC
  calculation. Note that the added identities and timestamp are identical to those
  transported in the ID and T payloads." So V = HMAC-SHA-1(auth_key, R_MESSAGE without the
  MAC field || IDi || IDr || T), IDi the ID data the initiator sent, IDr the one the responder
  sends (empty when absent), T the *initiator's* timestamp value, which the R_MESSAGE echoes
  ("The Responder does not create a new timestamp, but uses the timestamp used by the
  Initiator"); the initiator checks the echo.
* SDP IDs (RFC 4567 §7): with ``sdp_ids`` the initiator lists the SDP's key-mgmt protocol
  identifiers in a General Extension inside the MAC coverage; a responder given the list it
  saw in SDP refuses an I_MESSAGE whose list differs or is missing (bidding-down protection).
* The responder checks the MAC first (a wrong PSK is answered with an Error message carrying
  ``Invalid MAC``, §6.12 error 3), then the timestamp window and the replay cache (§5.4,
  ``Invalid TS``), so that a forged T is reported as a forgery. (§5.3 RECOMMENDS the
  timestamp first; we check authenticity first and state why in docs/mikey.md.)
* NULL MAC (§4.2.4: "can be used together with the NULL encryption algorithm") is accepted
  only with NULL encryption; §4.2.3: "the NULL MAC SHOULD NOT be used in the pre-shared key
  case" otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from ims.mikey.constants import DataType, EncrAlg, ErrorNo, KeyDataType, MacAlg, PayloadType
from ims.mikey.crypto import (
    MAC_LEN,
    hmac_sha1_160,
    kemac_decrypt,
    kemac_encrypt,
    mac_equal,
    random_bytes,
)
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import TransportKeys, derive_transport_keys
from ims.mikey.message import MikeyMessage, decode_subpayloads, encode_subpayloads
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
    id_bytes,
    id_payload,
    replay_key,
    require_rand,
    require_t,
    sdp_ids_payload,
    timestamp,
)
from ims.mikey.payloads import (
    HdrPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Payload,
    RandPayload,
    SpPayload,
    TPayload,
    VPayload,
)
from ims.mikey.replay import ReplayCache


def mac_message(auth_key: bytes, data_without_mac: bytes) -> bytes:
    return hmac_sha1_160(auth_key, data_without_mac)


def verification_mac(
    auth_key: bytes, r_without_mac: bytes, idi: bytes, idr: bytes, t_i: TPayload
) -> bytes:
    """V payload MAC (RFC 3830 §5.2): R_MESSAGE-without-MAC || IDi || IDr || T_i."""
    return hmac_sha1_160(auth_key, r_without_mac + idi + idr + t_i.value_bytes())


def response_id(msg: MikeyMessage) -> bytes:
    """IDr for the V MAC: the ID payload the responder put in its R_MESSAGE (or nothing)."""
    ids = msg.find_all(IdPayload)
    return ids[0].data if ids else b""


def check_verification(
    data: bytes, expected: DataType, *, csb_id: int, auth_key: bytes, idi: bytes, t_i: TPayload
) -> MikeyMessage:
    """Decode an R_MESSAGE with a V payload and check its MAC (PSK and PKE initiators alike).

    Raises MikeyError (INVALID_MAC for a missing or wrong V) or MikeyDecodeError.
    """
    msg = decode_checked(data, expected, t_i)
    if msg.hdr.csb_id != csb_id:
        raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
    check_t_echo(msg, t_i)
    v = msg.find(VPayload)
    if v is None or v.auth_alg is not MacAlg.HMAC_SHA1_160:
        raise MikeyError("V payload missing", mikey_error=ErrorNo.INVALID_MAC)
    want = verification_mac(auth_key, data[:-MAC_LEN], idi, response_id(msg), t_i)
    if not mac_equal(want, v.data):
        raise MikeyError("verification message MAC is wrong", mikey_error=ErrorNo.INVALID_MAC)
    return msg


def build_kemac(
    *,
    encr_alg: EncrAlg,
    mac_alg: MacAlg,
    keys: TransportKeys,
    sub_payloads: Sequence[Payload],
    csb_id: int,
    t: TPayload,
) -> KemacPayload:
    """A KEMAC with a placeholder MAC (zeros) of the right length; caller fills the MAC."""
    plaintext = encode_subpayloads(sub_payloads)
    encr = kemac_encrypt(encr_alg, keys, plaintext, csb_id=csb_id, t_value=t.value_bytes())
    return KemacPayload(
        encr_alg=encr_alg,
        encr_data=encr,
        mac_alg=mac_alg,
        mac=b"\x00" * (MAC_LEN if mac_alg is MacAlg.HMAC_SHA1_160 else 0),
    )


def open_kemac(
    kemac: KemacPayload,
    keys: TransportKeys | None,
    *,
    csb_id: int,
    t: TPayload,
    first: PayloadType,
) -> tuple[Payload, ...]:
    """Decrypt and decode a KEMAC sub-payload chain."""
    plain = kemac_decrypt(
        kemac.encr_alg, keys, kemac.encr_data, csb_id=csb_id, t_value=t.value_bytes()
    )
    if kemac.encr_alg is EncrAlg.AES_KW_128:
        plain = _strip_chain_padding(plain, first)
    return decode_subpayloads(plain, first)


def _strip_chain_padding(plain: bytes, first: PayloadType) -> bytes:
    """Drop the zero padding added before AES key wrap (see ims.mikey.crypto)."""
    for end in range(len(plain), max(len(plain) - 24, 0) - 1, -1):
        if plain[end:].strip(b"\x00"):
            break
        try:
            decode_subpayloads(plain[:end], first)
        except MikeyDecodeError:
            continue
        return plain[:end]
    return plain


def tgk_from_sub_payloads(
    subs: Sequence[Payload],
) -> tuple[bytes, list[tuple[bytes, bytes]] | None, bytes | None]:
    """(TGK, directly transported TEKs or None, transported salt or None) from Key data.

    RFC 3830 §6.13: a TGK may carry a salt (type TGK+SALT); we then use it as the SRTP master
    salt of every crypto session instead of deriving one (the reason to transport it). Key
    data of type TEK/TEK+SALT carries SRTP keys directly (GStreamer, RTSP cameras), a TEK
    without salt field holding key || salt in one field.
    """
    kds = [p for p in subs if isinstance(p, KeyDataPayload)]
    if not kds:
        raise MikeyError("no key data in KEMAC", mikey_error=ErrorNo.UNSPECIFIED)
    first = kds[0]
    if first.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT):
        return first.key, None, first.salt
    teks: list[tuple[bytes, bytes]] = []
    for kd in kds:
        if kd.salt is not None:
            teks.append((kd.key, kd.salt))
        else:  # key || salt in one field (GStreamer, RTSP cameras)
            teks.append((kd.key[:16], kd.key[16:]))
    return first.key, teks, None


class PskInitiator:
    """Initiator of a PSK exchange. ``initiate(now)`` -> I_MESSAGE bytes;
    ``receive(data, now)`` -> result (only when ``verification`` is on)."""

    mode = "psk"

    def __init__(
        self,
        *,
        psk: bytes,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        verification: bool = True,
        encr_alg: EncrAlg = EncrAlg.AES_CM_128,
        mac_alg: MacAlg = MacAlg.HMAC_SHA1_160,
        idi: str | bytes | None = None,
        idr: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        tgk: bytes | None = None,
        tgk_len: int = 16,
        tgk_salt: bytes | None = None,
        sdp_ids: str | None = None,
        established_csb_ids: Collection[int] = (),
    ) -> None:
        self.psk = psk
        self.sdp_ids = sdp_ids
        self.tgk_salt = tgk_salt
        self.sessions = tuple(sessions)
        self.verification = verification
        self.encr_alg = encr_alg
        self.mac_alg = mac_alg
        self.idi, self.idr = idi, idr
        self.csb_id = choose_csb_id(csb_id, established_csb_ids)
        self.rand = rand if rand is not None else random_bytes(16)
        self.tgk = tgk if tgk is not None else random_bytes(tgk_len)
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None
        self._t: TPayload | None = None
        self._keys = derive_transport_keys(psk, self.csb_id, self.rand)

    def initiate(self, now: float) -> bytes:
        t = timestamp(now)
        self._t = t
        hdr = HdrPayload(
            data_type=DataType.PSK_INIT,
            csb_id=self.csb_id,
            cs_map=build_cs_map(self.sessions),
            v_flag=self.verification,
        )
        payloads: list[Payload] = [t, RandPayload(data=self.rand)]
        for ident in (id_payload(self.idi), id_payload(self.idr)):
            if ident is not None:
                payloads.append(ident)
        sps = build_sps(self.sessions)
        payloads.extend(sps)
        ext = sdp_ids_payload(self.sdp_ids)
        if ext is not None:
            payloads.append(ext)
        kd = KeyDataPayload(
            key_type=KeyDataType.TGK if self.tgk_salt is None else KeyDataType.TGK_SALT,
            key=self.tgk,
            salt=self.tgk_salt,
        )
        kemac = build_kemac(
            encr_alg=self.encr_alg,
            mac_alg=self.mac_alg,
            keys=self._keys,
            sub_payloads=[kd],
            csb_id=self.csb_id,
            t=t,
        )
        payloads.append(kemac)
        data = MikeyMessage(hdr=hdr, payloads=tuple(payloads)).encode()
        if self.mac_alg is MacAlg.HMAC_SHA1_160:
            data = data[:-MAC_LEN] + mac_message(self._keys.auth_key, data[:-MAC_LEN])
        self.result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=self.tgk,
            cs_map=hdr.cs_map,
            policies=sps,
            salt_override=self.tgk_salt,
        )
        self.machine.fire(Input.INITIATE if self.verification else Input.INITIATE_ONE_WAY)
        return data

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        """Check the R_MESSAGE (V payload); raises MikeyError / MikeyDecodeError."""
        self.machine.expect(State.WAIT_RESPONSE)
        try:
            assert self._t is not None
            msg = check_verification(
                data,
                DataType.PSK_RESP,
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
        peer = msg.find(IdPayload)
        self.result = _with_peer(self.result, peer.data if peer else None)
        return self.result


def _with_peer(r: KeyExchangeResult, peer_id: bytes | None) -> KeyExchangeResult:
    return KeyExchangeResult(
        mode=r.mode,
        csb_id=r.csb_id,
        rand=r.rand,
        tgk=r.tgk,
        keys=r.keys,
        peer_id=peer_id,
        peer_certificate=r.peer_certificate,
    )


PskLookup = Callable[[bytes | None], bytes | None]


def fixed_psk(psk: bytes) -> PskLookup:
    """A PSK lookup returning the same key for every initiator."""

    def lookup(_idi: bytes | None) -> bytes | None:
        return psk

    return lookup


class PskResponder(ResponderBase):
    """Responder of a PSK exchange. ``receive(data, now)`` never raises for peer input: it
    returns a :class:`ResponderReply` with the R_MESSAGE (or None) or an Error message."""

    mode = "psk"

    def __init__(
        self,
        *,
        psk: bytes | PskLookup,
        idr: str | bytes | None = None,
        replay: ReplayCache | None = None,
        sdp_ids: str | None = None,
    ) -> None:
        self._lookup: PskLookup = psk if callable(psk) else fixed_psk(psk)
        self.idr = idr
        self.sdp_ids = sdp_ids
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.PSK_INIT)
        t = require_t(msg)
        rand = require_rand(msg)
        ids = msg.find_all(IdPayload)
        idi = ids[0].data if ids else None
        psk = self._lookup(idi)
        if psk is None:
            raise MikeyError("no PSK for this initiator", mikey_error=ErrorNo.INVALID_ID)
        kemac = msg.find(KemacPayload)
        if kemac is None or msg.payloads[-1] is not kemac:
            raise MikeyError("KEMAC must be the last payload", mikey_error=ErrorNo.UNSPECIFIED)
        keys = derive_transport_keys(psk, msg.hdr.csb_id, rand)
        if kemac.mac_alg is MacAlg.HMAC_SHA1_160:
            if not mac_equal(mac_message(keys.auth_key, data[:-MAC_LEN]), kemac.mac):
                raise MikeyError("KEMAC MAC is wrong (wrong PSK?)", mikey_error=ErrorNo.INVALID_MAC)
        elif kemac.encr_alg is not EncrAlg.NULL:
            raise MikeyError("encrypted KEMAC without MAC", mikey_error=ErrorNo.INVALID_MAC)
        check_sdp_ids(msg, self.sdp_ids)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        subs = open_kemac(kemac, keys, csb_id=msg.hdr.csb_id, t=t, first=PayloadType.KEY_DATA)
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
        )
        if not msg.hdr.v_flag:
            return ResponderReply(message=None, result=result)
        idr_p = id_payload(self.idr)
        payloads: list[Payload] = [t]  # the initiator's T, echoed (§5.2)
        if idr_p is not None:
            payloads.append(idr_p)
        payloads.append(VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=b"\x00" * MAC_LEN))
        hdr = HdrPayload(data_type=DataType.PSK_RESP, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map)
        r = MikeyMessage(hdr=hdr, payloads=tuple(payloads)).encode()
        v = verification_mac(keys.auth_key, r[:-MAC_LEN], idi or b"", id_bytes(self.idr), t)
        return ResponderReply(message=r[:-MAC_LEN] + v, result=result)
