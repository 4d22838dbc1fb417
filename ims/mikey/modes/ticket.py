"""MIKEY-TICKET Ticket Request and Ticket Resolve exchanges, PSK variants (RFC 6043 §4.2.1, §4.2.3).

::

    Initiator -> KMS   REQUEST_INIT_PSK = HDR, T, RANDRi, [IDRi], [IDRkms], TP, [IDRpsk], V
    KMS -> Initiator   REQUEST_RESP     = HDR, T, [IDRkms], TICKET, KEMAC, V
    Responder -> KMS   RESOLVE_INIT_PSK = HDR, T, RANDRr, [IDRr], [IDRkms], TICKET, [IDRpsk], V
    KMS -> Responder   RESOLVE_RESP     = HDR, T, [IDRkms], KEMAC, [IDRr], [RANDRkms], V

* HDR (§4.2.1.1, §4.2.3.1): "The V flag MUST be set to '1'" in the initial messages, '0' in
  the responses; "#CS MUST be set to '0' and the CS ID map type SHALL be the 'Empty map'";
  responses keep the request's CSB ID (§4.2.1.5, §4.2.3.5).
* Keys (§5.1.2): from the user's PSK with CSB ID, 0x01 (initial) / 0x02 (response) and RANDRi
  (request exchange) or RANDRr (resolve exchange).
* V (§5.5 Table 5.2): REQUEST_INIT || Identity_i || Identity_kms; REQUEST_RESP || REQUEST_INIT;
  RESOLVE_INIT || Identity_r || Identity_kms; RESOLVE_RESP || RESOLVE_INIT - identities are
  the ID Data of IDRi/IDRr/IDRkms (empty when absent), HMAC-SHA-1-160.
* KEMAC (§4.2.1.5, §4.2.3.5): NULL MAC, "KEMAC = E(encr_key, MPKi || [MPKr] || {TEK|TGK|GTGK})"
  with the response's encr_key/salt_key, the IV from this message's CSB ID and T.
* The ticket is a MIKEY base ticket (Appendix A, :mod:`ims.mikey.ticket_base`) sealed with the
  KMS's TPK; MPKi = the Appendix A.2.2 derivation of its MPK. Granted policy: D (KMS-made), E
  (resolve mandatory: only the KMS holds the TPK), F (TRANSFER_RESP), H (RANDRi in the key
  derivation; G off), N and O (standard processing), K when it differs from the request, J
  never (no reuse); TP Data = IDRkms, IDRi, TRs, TRe, (IDRr).

The Ticket Transfer exchange is :mod:`ims.mikey.modes.ticket_transfer`. Not here: the PK
variants and key forking (I flag).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ims.mikey.constants import (
    DataType,
    EncrAlg,
    ErrorNo,
    IdType,
    KeyDataType,
    KvType,
    MacAlg,
    MapType,
    PayloadType,
    TsType,
)
from ims.mikey.crypto import (
    MAC_LEN,
    hmac_sha1_160,
    kemac_decrypt,
    kemac_encrypt,
    mac_equal,
    random_bytes,
)
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import TransportKeys
from ims.mikey.message import (
    MikeyMessage,
    decode_message,
    decode_subpayloads,
    encode_subpayloads,
)
from ims.mikey.modes.base import (
    Input,
    Machine,
    State,
    csb_of,
    decode_checked,
    error_message,
    replay_key,
    require_t,
    timestamp,
)
from ims.mikey.payloads import HdrPayload, KemacPayload, KeyDataPayload, Payload, VPayload
from ims.mikey.payloads_kms import (
    IdRole,
    IdrPayload,
    RandRole,
    RandrPayload,
    TicketFlags,
    TicketPayload,
    TicketType,
    TpPayload,
    TrPayload,
    TsRole,
)
from ims.mikey.replay import ReplayCache, ntp_from_unix, unix_from_ntp
from ims.mikey.ticket import encode_chain, tp_data_view
from ims.mikey.ticket_base import BaseTicketContents, open_base_ticket, seal_base_ticket
from ims.mikey.ticket_kdf import message_keys, mpk_pair

KEY_LEN = 16
GRANTED_FLAGS = (
    TicketFlags.D | TicketFlags.E | TicketFlags.F | TicketFlags.H | TicketFlags.N | TicketFlags.O
)


# ------------------------------------------------------------------------------ helpers
def _idr(role: IdRole, value: str | bytes) -> IdrPayload:
    data = value.encode() if isinstance(value, str) else value
    return IdrPayload(role=role, id_type=IdType.URI, data=data)


def _idr_data(msg: MikeyMessage, role: IdRole) -> bytes:
    """Identity for the MAC (§5.5: "the identities (not whole payloads)"), b"" when absent."""
    for p in msg.find_all(IdrPayload):
        if p.role is role:
            return p.data
    return b""


def _randr(msg: MikeyMessage, role: RandRole) -> bytes:
    for p in msg.find_all(RandrPayload):
        if p.role is role and p.data:
            return p.data
    raise MikeyError(f"RANDR ({role.name}) missing", mikey_error=ErrorNo.UNSPECIFIED)


def _hdr(data_type: DataType, csb_id: int, *, v: bool) -> HdrPayload:
    return HdrPayload(data_type=data_type, csb_id=csb_id, v_flag=v, map_type=MapType.EMPTY)


def _seal(hdr: HdrPayload, payloads: Sequence[Payload], auth_key: bytes, extra: bytes) -> bytes:
    """Encode with V last, its MAC over the message (minus the MAC) followed by ``extra``."""
    v = VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=bytes(MAC_LEN))
    data = MikeyMessage(hdr=hdr, payloads=(*payloads, v)).encode()
    return data[:-MAC_LEN] + hmac_sha1_160(auth_key, data[:-MAC_LEN] + extra)


def _check_v(data: bytes, msg: MikeyMessage, auth_key: bytes, extra: bytes) -> None:
    v = msg.payloads[-1] if msg.payloads else None
    if not isinstance(v, VPayload) or v.auth_alg is not MacAlg.HMAC_SHA1_160:
        raise MikeyError("V payload must end the message", mikey_error=ErrorNo.INVALID_MAC)
    if not mac_equal(hmac_sha1_160(auth_key, data[:-MAC_LEN] + extra), v.data):
        raise MikeyError("V MAC is wrong (wrong PSK?)", mikey_error=ErrorNo.INVALID_MAC)


def _key(key_type: KeyDataType, key: bytes, spi: bytes) -> KeyDataPayload:
    """Key data with its SPI: RFC 6043 §6.2.1 "An SPI (or MKI) MUST be specified for each key"."""
    return KeyDataPayload(
        key_type=key_type, key=key, kv_type=KvType.SPI, kv_data=bytes([len(spi)]) + spi
    )


def _kemac(
    keys: TransportKeys, subs: Sequence[Payload], csb_id: int, t_value: bytes
) -> KemacPayload:
    plain = encode_subpayloads(subs)
    enc = kemac_encrypt(EncrAlg.AES_CM_128, keys, plain, csb_id=csb_id, t_value=t_value)
    return KemacPayload(encr_alg=EncrAlg.AES_CM_128, encr_data=enc, mac_alg=MacAlg.NULL)


def _open_kemac(msg: MikeyMessage, keys: TransportKeys) -> tuple[KeyDataPayload, ...]:
    kemac = msg.find(KemacPayload)
    if kemac is None or kemac.mac_alg is not MacAlg.NULL:
        raise MikeyError("KEMAC with the NULL MAC missing", mikey_error=ErrorNo.UNSPECIFIED)
    t = require_t(msg)
    plain = kemac_decrypt(
        kemac.encr_alg, keys, kemac.encr_data, csb_id=msg.hdr.csb_id, t_value=t.value_bytes()
    )
    kds = tuple(
        p for p in decode_subpayloads(plain, PayloadType.KEY_DATA) if isinstance(p, KeyDataPayload)
    )
    if not kds or kds[0].key_type is not KeyDataType.MPK:
        raise MikeyError("KEMAC does not start with MPKi", mikey_error=ErrorNo.UNSPECIFIED)
    return kds


def _ntp_seconds(tr: TrPayload | None) -> float | None:
    if tr is None:
        return None
    if tr.ts_type is TsType.NTP_UTC_32:
        return float(tr.value - 2_208_988_800)
    return unix_from_ntp(tr.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketKeys:
    """What a REQUEST_RESP or RESOLVE_RESP delivers: MPKi and the session keys (TGK...)."""

    mpki: bytes = field(repr=False)
    keys: tuple[KeyDataPayload, ...] = field(repr=False)
    mpk_spi: bytes = b""  # the SPI the KEMAC gave MPKi (RFC 6043 §6.2.1)

    @property
    def tgk(self) -> bytes:
        for k in self.keys:
            if k.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT):
                return k.key
        raise MikeyError("no TGK in the ticket's keys", mikey_error=ErrorNo.UNSPECIFIED)


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantedTicket:
    """The Initiator's result of the Ticket Request exchange."""

    ticket: TicketPayload
    keys: TicketKeys


# ------------------------------------------------------------------------- Initiator side
class _KmsClient:
    """Shared initiator half of the two KMS exchanges (a PSK shared with the KMS)."""

    data_type: DataType
    resp_type: DataType
    own_role: IdRole
    rand_role: RandRole

    def __init__(
        self,
        *,
        identity: str,
        kms_id: str,
        psk: bytes,
        psk_id: bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
    ) -> None:
        self.identity, self.kms_id, self.psk, self.psk_id = identity, kms_id, psk, psk_id
        self.csb_id = csb_id if csb_id is not None else int.from_bytes(random_bytes(4), "big")
        self.rand = rand if rand is not None else random_bytes(16)
        self.machine = Machine()
        self._sent: bytes | None = None

    def _keys(self, *, response: bool) -> TransportKeys:
        """§5.1.2: RANDRi in the Ticket Request exchange, RANDRr in the Ticket Resolve one."""
        mine = self.rand_role is RandRole.INITIATOR
        return message_keys(
            self.psk,
            self.csb_id,
            response=response,
            randri=self.rand if mine else None,
            randrr=None if mine else self.rand,
        )

    def _initiate(self, now: float, middle: Sequence[Payload]) -> bytes:
        keys = self._keys(response=False)
        payloads: list[Payload] = [
            timestamp(now),
            RandrPayload(role=self.rand_role, data=self.rand),
            _idr(self.own_role, self.identity),
            _idr(IdRole.KMS, self.kms_id),
            *middle,
        ]
        if self.psk_id is not None:
            payloads.append(
                IdrPayload(role=IdRole.PSK, id_type=IdType.BYTE_STRING, data=self.psk_id)
            )
        extra = self.identity.encode() + self.kms_id.encode()
        data = _seal(_hdr(self.data_type, self.csb_id, v=True), payloads, keys.auth_key, extra)
        self._sent = data
        self.machine.fire(Input.INITIATE)
        return data

    def _receive(self, data: bytes) -> tuple[MikeyMessage, TicketKeys]:
        self.machine.expect(State.WAIT_RESPONSE)
        assert self._sent is not None
        try:
            msg = decode_checked(data, self.resp_type)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            keys = self._keys(response=True)
            _check_v(data, msg, keys.auth_key, self._sent)
            kds = _open_kemac(msg, keys)
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        return msg, TicketKeys(mpki=kds[0].key, keys=kds[1:], mpk_spi=kds[0].kv_data[1:])


class TicketRequester(_KmsClient):
    """The Initiator's side of the Ticket Request exchange (REQUEST_INIT_PSK / REQUEST_RESP)."""

    data_type, resp_type = DataType.REQUEST_INIT_PSK, DataType.REQUEST_RESP
    own_role, rand_role = IdRole.INITIATOR, RandRole.INITIATOR

    def __init__(
        self,
        *,
        identity: str,
        kms_id: str,
        psk: bytes,
        responders: Sequence[str],
        validity: float = 3600.0,
        psk_id: bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
    ) -> None:
        super().__init__(
            identity=identity, kms_id=kms_id, psk=psk, psk_id=psk_id, csb_id=csb_id, rand=rand
        )
        self.responders = tuple(responders)
        self.validity = validity

    def initiate(self, now: float) -> bytes:
        """REQUEST_INIT_PSK with the desired Ticket Policy (§4.2.1.1: validity, responders)."""
        tp_data = encode_chain(
            [
                _idr(IdRole.KMS, self.kms_id),
                _idr(IdRole.INITIATOR, self.identity),
                TrPayload(
                    role=TsRole.VALIDITY_START, ts_type=TsType.NTP_UTC, value=ntp_from_unix(now)
                ),
                TrPayload(
                    role=TsRole.VALIDITY_END,
                    ts_type=TsType.NTP_UTC,
                    value=ntp_from_unix(now + self.validity),
                ),
                *(_idr(IdRole.RESPONDER, r) for r in self.responders),
            ]
        )
        tp = TpPayload(
            ticket_type=TicketType.MIKEY_BASE,
            subtype=1,
            version=1,
            prf=0,
            flags=GRANTED_FLAGS,
            tp_data=tp_data,
        )
        return self._initiate(now, [tp])

    def receive(self, data: bytes, now: float) -> GrantedTicket:
        """Check REQUEST_RESP (V over it || REQUEST_INIT) and open its KEMAC."""
        msg, keys = self._receive(data)
        ticket = msg.find(TicketPayload)
        if ticket is None:
            raise MikeyError("TICKET missing", mikey_error=ErrorNo.UNSPECIFIED)
        return GrantedTicket(ticket=ticket, keys=keys)


class TicketResolver(_KmsClient):
    """The Responder's side of the Ticket Resolve exchange (RESOLVE_INIT_PSK / RESOLVE_RESP)."""

    data_type, resp_type = DataType.RESOLVE_INIT_PSK, DataType.RESOLVE_RESP
    own_role, rand_role = IdRole.RESPONDER, RandRole.RESPONDER

    def __init__(
        self,
        *,
        identity: str,
        kms_id: str,
        psk: bytes,
        ticket: TicketPayload,
        psk_id: bytes | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
    ) -> None:
        super().__init__(
            identity=identity, kms_id=kms_id, psk=psk, psk_id=psk_id, csb_id=csb_id, rand=rand
        )
        self.ticket = ticket

    def initiate(self, now: float) -> bytes:
        return self._initiate(now, [self.ticket])

    def receive(self, data: bytes, now: float) -> TicketKeys:
        return self._receive(data)[1]


# ------------------------------------------------------------------------------- the KMS
PskLookup = Callable[[bytes, bytes | None], bytes | None]  # (identity, IDRpsk) -> PSK


@dataclass(frozen=True, slots=True, kw_only=True)
class KmsReply:
    """What the KMS answers: the response message, or an Error message and the error."""

    message: bytes | None  # None only for an Error message received (no error to an error)
    error: MikeyError | MikeyDecodeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class TicketKms:
    """The sans-I/O KMS core for REQUEST_INIT_PSK and RESOLVE_INIT_PSK; :meth:`receive` never
    raises for peer input (a reply or an Error message). ``psk`` finds a subscriber's PSK by
    identity (and IDRpsk); the TPK never leaves the KMS, so only it resolves its tickets -
    and :meth:`open_ticket` is how its LI function gets any ticketed session's keys."""

    mode = "ticket-kms"

    def __init__(
        self,
        *,
        kms_id: str,
        psk: PskLookup,
        tpk: bytes | None = None,
        max_validity: float = 86_400.0,
        replay: ReplayCache | None = None,
    ) -> None:
        self.kms_id = kms_id
        self._psk = psk
        self._tpk = tpk if tpk is not None else random_bytes(32)
        self.max_validity = max_validity
        self.replay = replay if replay is not None else ReplayCache()

    def receive(self, data: bytes, now: float) -> KmsReply:
        """Serve one REQUEST_INIT_PSK or RESOLVE_INIT_PSK; never raises for peer input."""
        try:
            msg = decode_message(data)
            if msg.data_type is DataType.ERROR:  # §5.4: errors are not reported for errors
                err = MikeyError("peer sent an Error message", remote=True)
                return KmsReply(message=None, error=err)
            if msg.data_type is DataType.REQUEST_INIT_PSK:
                return KmsReply(message=self._request(data, msg, now))
            if msg.data_type is DataType.RESOLVE_INIT_PSK:
                return KmsReply(message=self._resolve(data, msg, now))
            raise MikeyError(
                f"a KMS does not take {msg.data_type.name}", mikey_error=ErrorNo.INVALID_DT
            )
        except (MikeyError, MikeyDecodeError) as exc:
            return KmsReply(message=error_message(csb_of(data), exc.mikey_error, now), error=exc)

    def open_ticket(self, ticket: TicketPayload) -> BaseTicketContents:
        return open_base_ticket(ticket, self._tpk)

    def _user_psk(self, msg: MikeyMessage, role: IdRole) -> tuple[bytes, bytes]:
        """(identity, PSK) of the requesting subscriber."""
        identity = _idr_data(msg, role)
        if not identity:
            raise MikeyError(f"{role.name} identity missing", mikey_error=ErrorNo.INVALID_ID)
        kms = _idr_data(msg, IdRole.KMS)
        if kms and kms != self.kms_id.encode():
            raise MikeyError("addressed to another KMS", mikey_error=ErrorNo.INVALID_ID)
        psk_ids = [p.data for p in msg.find_all(IdrPayload) if p.role is IdRole.PSK]
        psk = self._psk(identity, psk_ids[0] if psk_ids else None)
        if psk is None:
            raise MikeyError("unknown subscriber", mikey_error=ErrorNo.INVALID_ID)
        return identity, psk

    def _request(self, data: bytes, msg: MikeyMessage, now: float) -> bytes:
        t = require_t(msg)
        randri = _randr(msg, RandRole.INITIATOR)
        idi, psk = self._user_psk(msg, IdRole.INITIATOR)
        keys = message_keys(psk, msg.hdr.csb_id, response=False, randri=randri)
        _check_v(data, msg, keys.auth_key, idi + _idr_data(msg, IdRole.KMS))
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        tp = msg.find(TpPayload)
        if tp is None or tp.ticket_type != TicketType.MIKEY_BASE:
            raise MikeyError("no TP for a MIKEY base ticket", mikey_error=ErrorNo.UNSPECIFIED)
        desired = tp_data_view(tp.tp_data)
        end = _ntp_seconds(desired.valid_to)
        end = now + self.max_validity if end is None else min(end, now + self.max_validity)
        granted_tp = encode_chain(
            [
                _idr(IdRole.KMS, self.kms_id),
                _idr(IdRole.INITIATOR, idi),  # the authenticated requester, whatever was asked
                TrPayload(
                    role=TsRole.VALIDITY_START, ts_type=TsType.NTP_UTC, value=ntp_from_unix(now)
                ),
                TrPayload(
                    role=TsRole.VALIDITY_END, ts_type=TsType.NTP_UTC, value=ntp_from_unix(end)
                ),
                *(_idr(IdRole.RESPONDER, r) for r in desired.responders),
            ]
        )
        flags = GRANTED_FLAGS
        if granted_tp != tp.tp_data or tp.flags != GRANTED_FLAGS:
            flags |= TicketFlags.K  # §6.10 K: "the KMS changed the desired Ticket Policy"
        spi = random_bytes(4)
        mpk = _key(KeyDataType.MPK, random_bytes(KEY_LEN), spi)
        tgk = _key(KeyDataType.TGK, random_bytes(KEY_LEN), random_bytes(4))
        ticket_rand = random_bytes(16)
        issued = timestamp(now)
        ticket = seal_base_ticket(
            BaseTicketContents(mpk=mpk, keys=(tgk,), issued=issued, rand=ticket_rand),
            self._tpk,
            flags=flags,
            tp_data=granted_tp,
        )
        mpki = mpk_pair(mpk.key, ticket_rand)[0]
        resp_keys = message_keys(psk, msg.hdr.csb_id, response=True, randri=randri)
        t_resp = timestamp(now)  # §4.2.1.5 "the KMS SHALL generate a fresh timestamp value"
        kemac = _kemac(
            resp_keys, [_key(KeyDataType.MPK, mpki, spi), tgk], msg.hdr.csb_id, t_resp.value_bytes()
        )
        reply = _seal(
            _hdr(DataType.REQUEST_RESP, msg.hdr.csb_id, v=False),
            [t_resp, _idr(IdRole.KMS, self.kms_id), ticket, kemac],
            resp_keys.auth_key,
            data,
        )
        return reply

    def verify_resolve(self, data: bytes, msg: MikeyMessage, now: float) -> tuple[bytes, bytes]:
        """A RESOLVE_INIT_PSK's sender: (IDRr, PSK) once its V MAC checked out (§4.2.3.4 "If
        the KMS can verify the integrity of the received message"); replay not yet recorded."""
        require_t(msg)
        randrr = _randr(msg, RandRole.RESPONDER)
        idr, psk = self._user_psk(msg, IdRole.RESPONDER)
        keys = message_keys(psk, msg.hdr.csb_id, response=False, randri=None, randrr=randrr)
        _check_v(data, msg, keys.auth_key, idr + _idr_data(msg, IdRole.KMS))
        return idr, psk

    def _resolve(self, data: bytes, msg: MikeyMessage, now: float) -> bytes:
        idr, _psk = self.verify_resolve(data, msg, now)
        ticket = msg.find(TicketPayload)
        if ticket is None:
            raise MikeyError("TICKET missing", mikey_error=ErrorNo.UNSPECIFIED)
        contents = self.open_ticket(ticket)  # MAC under our TPK: the policy is ours, unaltered
        view = tp_data_view(ticket.tp_data)
        if view.responders and idr not in view.responders:
            raise MikeyError("not authorized for this ticket", mikey_error=ErrorNo.AUTH_FAILURE)
        start, end = _ntp_seconds(view.valid_from), _ntp_seconds(view.valid_to)
        if (start is not None and now < start) or (end is not None and now > end):
            raise MikeyError("ticket outside its validity period", mikey_error=ErrorNo.INVALID_TS)
        keys = TicketKeys(
            mpki=mpk_pair(contents.mpk.key, contents.rand)[0],
            keys=contents.keys,
            mpk_spi=contents.mpk.kv_data[1:],
        )
        return self.answer_resolve(data, msg, keys, now)

    def answer_resolve(self, data: bytes, msg: MikeyMessage, keys: TicketKeys, now: float) -> bytes:
        """RESOLVE_RESP carrying ``keys`` to the verified sender of RESOLVE_INIT_PSK ``data``:
        our own ticket's keys, or those another KMS resolved for us (§10)."""
        idr, psk = self.verify_resolve(data, msg, now)
        self.replay.check_and_store(replay_key(msg, data), require_t(msg), now, msg.hdr.csb_id)
        randrr = _randr(msg, RandRole.RESPONDER)
        resp_keys = message_keys(psk, msg.hdr.csb_id, response=True, randri=None, randrr=randrr)
        t_resp = timestamp(now)
        kemac = _kemac(
            resp_keys,
            [_key(KeyDataType.MPK, keys.mpki, keys.mpk_spi or random_bytes(4)), *keys.keys],
            msg.hdr.csb_id,
            t_resp.value_bytes(),
        )
        return _seal(
            _hdr(DataType.RESOLVE_RESP, msg.hdr.csb_id, v=False),
            [t_resp, _idr(IdRole.KMS, self.kms_id), kemac, _idr(IdRole.RESPONDER, idr)],
            resp_keys.auth_key,
            data,
        )


__all__ = [
    "GRANTED_FLAGS",
    "GrantedTicket",
    "KmsReply",
    "TicketKeys",
    "TicketKms",
    "TicketRequester",
    "TicketResolver",
]
