"""MIKEY HMAC-authenticated Diffie-Hellman, DHHMAC (RFC 4650).

I_MESSAGE = HDR(data type 7), T, RAND, [IDi], IDr, {SP}, [GenExt(SDP IDs)], DHi, KEMAC
R_MESSAGE = HDR(data type 8), T, [IDr], IDi, DHr, DHi, KEMAC

* RFC 4650 §3: "The initiator SHALL always include the recipient's identity" and "The
  responder SHALL always include the initiator's identity IDi regardless of whether the
  I_message conveyed any IDi": an I_MESSAGE without IDr is refused (``Invalid ID``), a
  responder that does not know IDi (neither in the message nor configured with ``idi=``)
  refuses too, and the initiator refuses a response whose IDi is not its own. With one ID
  payload in the I_MESSAGE it is IDr (the mandatory one); with one in the R_MESSAGE it is IDi.
* RFC 4650 §4.2: the KEMAC carries no key ("Encr data len SHALL be set to 0") and only the
  MAC; "The HMAC is then calculated over the entire MIKEY message, excluding the MAC field
  using auth_key as described in [2] section 5.2". auth_key is derived from the PSK, CSB ID
  and the initiator's RAND as in RFC 3830 §4.1.4 (cs_id 0xFF) (RFC 4650 §1.1: "auth_key
  Pre-shared authentication key, PRF-derived from the pre-shared key s").
* **RFC 4650 §4.2 contradicts RFC 3830**: its Table 4.2.a lists "HMAC-SHA-1 | 0" and
  "NULL | 1", and its text "Encr alg SHALL be set to 2 (NULL)", where RFC 3830 Tables 6.2.a/b
  (which RFC 4650 §4 says it re-uses: "This document does not define new payload formats but
  re-uses MIKEY payloads") have NULL encryption = 0, AES-KW-128 = 2, MAC NULL = 0 and
  HMAC-SHA-1-160 = 1. Following 4650's numbers would make a DHHMAC KEMAC claim AES key wrap
  and a NULL MAC; we keep RFC 3830's codes (encr alg 0, MAC alg 1), as Wireshark and minisip
  do, and ``tests/ims/mikey/test_rfc_items.py`` pins the choice.
* §3: the responder echoes the initiator's T (RFC 3830 §5.2); the initiator checks it.
* §4.4: "this payload SHALL list all key management protocol identifiers of a surrounding
  encapsulation protocol, such as SDP" (``sdp_ids=``), inside the HMAC coverage.
* TGK = g^(xi*xr) mod p at the group's width (RFC 4650 §3, RFC 3830 §3.3); TEK/salt per crypto
  session as in RFC 3830 §4.1.3. Perfect forward secrecy: knowing the PSK later does not reveal
  the TGK, but whoever knows the PSK *during* the call can MITM it (study table).
* Wrong PSK -> ``Invalid MAC`` Error message (§4.1: "In case of a decoding error or of a failed
  HMAC authentication verification, the responder SHALL apply the Error payload data type").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ims.mikey.constants import DataType, DhGroup, EncrAlg, ErrorNo, MacAlg
from ims.mikey.crypto import MAC_LEN, DhKeyPair, hmac_sha1_160, mac_equal, random_bytes
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
    id_bytes,
    id_payload,
    replay_key,
    require_rand,
    require_t,
    sdp_ids_payload,
    timestamp,
)
from ims.mikey.modes.dh import response_tgk, split_dh
from ims.mikey.modes.psk import PskLookup, fixed_psk
from ims.mikey.payloads import (
    DhPayload,
    HdrPayload,
    IdPayload,
    KemacPayload,
    Payload,
    RandPayload,
    SpPayload,
    TPayload,
)
from ims.mikey.replay import ReplayCache


def _mac_kemac() -> KemacPayload:
    return KemacPayload(
        encr_alg=EncrAlg.NULL, encr_data=b"", mac_alg=MacAlg.HMAC_SHA1_160, mac=b"\x00" * MAC_LEN
    )


def _seal(hdr: HdrPayload, payloads: Sequence[Payload], auth_key: bytes) -> bytes:
    data = MikeyMessage(hdr=hdr, payloads=(*payloads, _mac_kemac())).encode()
    return data[:-MAC_LEN] + hmac_sha1_160(auth_key, data[:-MAC_LEN])


def _check_mac(data: bytes, msg: MikeyMessage, auth_key: bytes) -> None:
    kemac = msg.payloads[-1] if msg.payloads else None
    if not isinstance(kemac, KemacPayload):
        raise MikeyError("KEMAC must end a DHHMAC message", mikey_error=ErrorNo.UNSPECIFIED)
    if kemac.mac_alg is not MacAlg.HMAC_SHA1_160:
        raise MikeyError("DHHMAC needs HMAC-SHA-1", mikey_error=ErrorNo.INVALID_MAC)
    if not mac_equal(hmac_sha1_160(auth_key, data[:-MAC_LEN]), kemac.mac):
        raise MikeyError("DHHMAC MAC is wrong (wrong PSK?)", mikey_error=ErrorNo.INVALID_MAC)


class DhHmacInitiator:
    """Initiator of a DHHMAC exchange."""

    mode = "dhhmac"

    def __init__(
        self,
        *,
        psk: bytes,
        group: DhGroup = DhGroup.OAKLEY_5,
        dh_key: DhKeyPair | None = None,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        idr: str
        | bytes,  # RFC 4650 §3: "The initiator SHALL always include the recipient's identity."
        idi: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        sdp_ids: str | None = None,
        established_csb_ids: Collection[int] = (),
    ) -> None:
        self.dh_key = dh_key if dh_key is not None else DhKeyPair.generate(group)
        self.sessions = tuple(sessions)
        self.idi, self.idr = idi, idr
        self.sdp_ids = sdp_ids
        self.csb_id = choose_csb_id(csb_id, established_csb_ids)
        self.rand = rand if rand is not None else random_bytes(16)
        self._auth = derive_transport_keys(psk, self.csb_id, self.rand).auth_key
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None
        self._hdr: HdrPayload | None = None
        self._sps: tuple[SpPayload, ...] = ()
        self._t: TPayload | None = None

    def initiate(self, now: float) -> bytes:
        hdr = HdrPayload(
            data_type=DataType.DHHMAC_INIT, csb_id=self.csb_id, cs_map=build_cs_map(self.sessions)
        )
        self._hdr = hdr
        self._t = timestamp(now)
        payloads: list[Payload] = [self._t, RandPayload(data=self.rand)]
        for ident in (id_payload(self.idi), id_payload(self.idr)):
            if ident is not None:
                payloads.append(ident)
        self._sps = build_sps(self.sessions)
        payloads.extend(self._sps)
        ext = sdp_ids_payload(self.sdp_ids)
        if ext is not None:
            payloads.append(ext)
        payloads.append(DhPayload(group=self.dh_key.group, value=self.dh_key.public))
        self.machine.fire(Input.INITIATE)
        return _seal(hdr, payloads, self._auth)

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.machine.expect(State.WAIT_RESPONSE)
        assert self._t is not None
        try:
            msg = decode_checked(data, DataType.DHHMAC_RESP, self._t)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            require_t(msg)
            _check_mac(data, msg, self._auth)
            check_t_echo(msg, self._t)
            ids = [p.data for p in msg.find_all(IdPayload)]
            # R_message = HDR, T, [IDr], IDi, ...: IDi is the last ID payload
            if not ids or (self.idi is not None and ids[-1] != id_bytes(self.idi)):
                raise MikeyError(
                    "response does not carry our IDi (RFC 4650 §3)",
                    mikey_error=ErrorNo.INVALID_ID,
                )
            tgk = response_tgk(msg, self.dh_key)
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        assert self._hdr is not None
        peer = ids[0] if len(ids) >= 2 else None
        self.result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=tgk,
            cs_map=self._hdr.cs_map,
            policies=self._sps,
            peer_id=peer,
        )
        return self.result


class DhHmacResponder(ResponderBase):
    """Responder of a DHHMAC exchange; ``psk`` may be a lookup ``f(idi) -> psk | None``."""

    mode = "dhhmac"

    def __init__(
        self,
        *,
        psk: bytes | PskLookup,
        dh_key: DhKeyPair | None = None,
        idr: str | bytes | None = None,
        idi: str | bytes | None = None,
        replay: ReplayCache | None = None,
        sdp_ids: str | None = None,
    ) -> None:
        self._lookup: PskLookup = psk if callable(psk) else fixed_psk(psk)
        self.dh_key = dh_key
        self.idr = idr
        self.idi = idi
        self.sdp_ids = sdp_ids
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.DHHMAC_INIT)
        t = require_t(msg)
        rand = require_rand(msg)
        # I_message = HDR, T, RAND, [IDi], IDr, ...: with one ID payload it is IDr
        ids = msg.find_all(IdPayload)
        if not ids:
            raise MikeyError(
                "DHHMAC I_MESSAGE without IDr (RFC 4650 §3)", mikey_error=ErrorNo.INVALID_ID
            )
        idr_in = ids[-1]
        if self.idr is not None and idr_in.data != id_bytes(self.idr):
            raise MikeyError("I_MESSAGE is for another IDr", mikey_error=ErrorNo.INVALID_ID)
        idi_p = ids[0] if len(ids) >= 2 else id_payload(self.idi)
        if idi_p is None:
            raise MikeyError(
                "IDi unknown: the response must carry it (RFC 4650 §3)",
                mikey_error=ErrorNo.INVALID_ID,
            )
        psk = self._lookup(idi_p.data)
        if psk is None:
            raise MikeyError("no PSK for this initiator", mikey_error=ErrorNo.INVALID_ID)
        auth = derive_transport_keys(psk, msg.hdr.csb_id, rand).auth_key
        _check_mac(data, msg, auth)
        check_sdp_ids(msg, self.sdp_ids)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        dhi, _ = split_dh(msg)
        key = self.dh_key if self.dh_key is not None else DhKeyPair.generate(dhi.group)
        if key.group is not dhi.group:
            raise MikeyError("DH group not supported", mikey_error=ErrorNo.INVALID_DH)
        tgk = key.shared_secret(dhi.value)
        hdr = HdrPayload(
            data_type=DataType.DHHMAC_RESP, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map
        )
        payloads: list[Payload] = [t]  # the initiator's T, echoed (RFC 3830 §5.2)
        idr_p = id_payload(self.idr)
        payloads.append(idr_p if idr_p is not None else idr_in)
        payloads.append(idi_p)
        payloads.append(DhPayload(group=key.group, value=key.public))
        payloads.append(dhi)
        result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=msg.hdr.csb_id,
            rand=rand,
            tgk=tgk,
            cs_map=msg.hdr.cs_map,
            policies=msg.find_all(SpPayload),
            peer_id=idi_p.data,
        )
        return ResponderReply(message=_seal(hdr, payloads, auth), result=result)


def mac_verifies(data: bytes, rand: bytes, psk: bytes) -> bool:
    """Whether ``data`` (a DHHMAC I_ or R_MESSAGE) carries the MAC of ``psk`` for this exchange
    (auth_key from the PSK, the CSB ID and the initiator's RAND). Never raises on bad input."""
    from ims.mikey.message import decode_message

    try:
        msg = decode_message(data)
        _check_mac(data, msg, derive_transport_keys(psk, msg.hdr.csb_id, rand).auth_key)
    except (MikeyError, MikeyDecodeError):
        return False
    return True


def reseal(data: bytes, rand: bytes, *, old_psk: bytes, new_psk: bytes) -> bytes:
    """The same DHHMAC message authenticated for the next hop (study 2.3.4: "running the HMAC
    authentication between the end users and intermediaries"): the MAC is checked with
    ``old_psk``'s auth_key and recomputed with ``new_psk``'s over the same bytes -- RFC 4650
    §4.2, "The HMAC is then calculated over the entire MIKEY message, excluding the MAC field"
    -- so the DH values, T, RAND and IDs cross unchanged and the intermediary learns no TGK."""
    from ims.mikey.message import decode_message

    msg = decode_message(data)
    if msg.data_type not in (DataType.DHHMAC_INIT, DataType.DHHMAC_RESP):
        raise MikeyError("not a DHHMAC message", mikey_error=ErrorNo.UNSPECIFIED)
    _check_mac(data, msg, derive_transport_keys(old_psk, msg.hdr.csb_id, rand).auth_key)
    auth = derive_transport_keys(new_psk, msg.hdr.csb_id, rand).auth_key
    return data[:-MAC_LEN] + hmac_sha1_160(auth, data[:-MAC_LEN])
