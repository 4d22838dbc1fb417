"""MIKEY HMAC-authenticated Diffie-Hellman, DHHMAC (RFC 4650).

I_MESSAGE = HDR(data type 7), T, RAND, [IDi], [IDr], {SP}, DHi, KEMAC
R_MESSAGE = HDR(data type 8), T, [IDr], [IDi], DHr, DHi, KEMAC

* RFC 4650 §3: the KEMAC carries no key (encr alg NULL, empty encr data) and only the MAC;
  the MAC (HMAC-SHA-1-160) covers the whole message up to the MAC field, with auth_key derived
  from the pre-shared key, CSB ID and the initiator's RAND as in RFC 3830 §4.1.4 (cs_id 0xFF).
* TGK = g^(xi*xr) mod p at the group's width (RFC 4650 §3, RFC 3830 §3.3); TEK/salt per crypto
  session as in RFC 3830 §4.1.3. Perfect forward secrecy: knowing the PSK later does not reveal
  the TGK, but whoever knows the PSK *during* the call can MITM it (study table).
* Wrong PSK -> ``Invalid MAC`` Error message.

The KEMAC and MAC rules above are **unverified against the RFC 4650 text** (only its abstract
and table of contents could be read here); they follow minisip's ``MikeyMessageDHHMAC``. The
data types 7/8 are confirmed by the IANA registry text (see :mod:`ims.mikey.constants`).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    decode_checked,
    derive_session_keys,
    id_payload,
    replay_key,
    require_rand,
    require_t,
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
    if not isinstance(kemac, KemacPayload) or kemac.mac_alg is not MacAlg.HMAC_SHA1_160:
        raise MikeyError(
            "KEMAC with HMAC must end a DHHMAC message", mikey_error=ErrorNo.INVALID_HA
        )
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
        idi: str | bytes | None = None,
        idr: str | bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
    ) -> None:
        self.dh_key = dh_key if dh_key is not None else DhKeyPair.generate(group)
        self.sessions = tuple(sessions)
        self.idi, self.idr = idi, idr
        self.csb_id = csb_id if csb_id is not None else int.from_bytes(random_bytes(4), "big")
        self.rand = rand if rand is not None else random_bytes(16)
        self._auth = derive_transport_keys(psk, self.csb_id, self.rand).auth_key
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None
        self._hdr: HdrPayload | None = None
        self._sps: tuple[SpPayload, ...] = ()

    def initiate(self, now: float) -> bytes:
        hdr = HdrPayload(
            data_type=DataType.DHHMAC_INIT, csb_id=self.csb_id, cs_map=build_cs_map(self.sessions)
        )
        self._hdr = hdr
        payloads: list[Payload] = [timestamp(now), RandPayload(data=self.rand)]
        for ident in (id_payload(self.idi), id_payload(self.idr)):
            if ident is not None:
                payloads.append(ident)
        self._sps = build_sps(self.sessions)
        payloads.extend(self._sps)
        payloads.append(DhPayload(group=self.dh_key.group, value=self.dh_key.public))
        self.machine.fire(Input.INITIATE)
        return _seal(hdr, payloads, self._auth)

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.machine.expect(State.WAIT_RESPONSE)
        try:
            msg = decode_checked(data, DataType.DHHMAC_RESP)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            require_t(msg)
            _check_mac(data, msg, self._auth)
            tgk = response_tgk(msg, self.dh_key)
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        assert self._hdr is not None
        ids = msg.find_all(IdPayload)
        self.result = KeyExchangeResult(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=tgk,
            keys=derive_session_keys(
                tgk=tgk,
                csb_id=self.csb_id,
                rand=self.rand,
                cs_map=self._hdr.cs_map,
                policies=self._sps,
            ),
            peer_id=ids[0].data if ids else None,
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
        replay: ReplayCache | None = None,
    ) -> None:
        self._lookup: PskLookup = psk if callable(psk) else fixed_psk(psk)
        self.dh_key = dh_key
        self.idr = idr
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.DHHMAC_INIT)
        t = require_t(msg)
        rand = require_rand(msg)
        ids = msg.find_all(IdPayload)
        idi_p = ids[0] if ids else None
        psk = self._lookup(idi_p.data if idi_p else None)
        if psk is None:
            raise MikeyError("no PSK for this initiator", mikey_error=ErrorNo.INVALID_ID)
        auth = derive_transport_keys(psk, msg.hdr.csb_id, rand).auth_key
        _check_mac(data, msg, auth)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        dhi, _ = split_dh(msg)
        key = self.dh_key if self.dh_key is not None else DhKeyPair.generate(dhi.group)
        if key.group is not dhi.group:
            raise MikeyError("DH group not supported", mikey_error=ErrorNo.INVALID_DH)
        tgk = key.shared_secret(dhi.value)
        hdr = HdrPayload(
            data_type=DataType.DHHMAC_RESP, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map
        )
        payloads: list[Payload] = [timestamp(now)]
        idr_p = id_payload(self.idr)
        if idr_p is not None:
            payloads.append(idr_p)
        if idi_p is not None:
            payloads.append(idi_p)
        payloads.append(DhPayload(group=key.group, value=key.public))
        payloads.append(dhi)
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
            ),
            peer_id=idi_p.data if idi_p else None,
        )
        return ResponderReply(message=_seal(hdr, payloads, auth), result=result)
