"""MIKEY-TICKET Ticket Transfer exchange (RFC 6043 §4.2.2), sans-I/O, no key forking.

::

    Initiator -> Responder  TRANSFER_INIT = HDR, T, RANDRi, [IDRi], [IDRr], {SP}, TICKET,
                                            [KEMAC], V
    Responder -> Initiator  TRANSFER_RESP = HDR, T, [RANDRr], [IDRr], [RANDRkms], {SP},
                                            [KEMAC], V

* HDR: the CS ID map is GENERIC-ID (§6.1 "The map type SRTP-ID SHALL NOT be used"); "The value
  of the V flag SHALL agree with the F flag in the Ticket Policy"; the response keeps version,
  PRF func and CSB ID and gives "each crypto session ... exactly one security policy" with its
  Session Data and SPI (§4.2.2.3).
* Message keys (§5.1.2): from MPKi (delivered by the KMS in REQUEST_RESP to the Initiator and in
  RESOLVE_RESP to the Responder), label 0x01/0x02 with RANDRi (G is never granted, so no RANDRr).
* V (§5.5 Table 5.2): ``TRANSFER_INIT || Identity_i || Identity_r`` -- and "the MAC SHALL NOT
  cover the Initiator Data length and Initiator Data fields in the TICKET payload";
  ``TRANSFER_RESP || TRANSFER_INIT``.
* SRTP keys (§5.1.3): TEK and salt per CS from the TGK in the ticket, label
  ``constant || CS ID || 0xFFFFFFFF || 0x03 || len RANDRi || RANDRi || 0`` (RANDRi under the H
  flag, which our KMS grants).
* The Responder cannot authenticate TRANSFER_INIT before the ticket is resolved (§4.2.2.2):
  :meth:`TicketTransferResponder.early_check` does the "early reject" on what it can see (ticket
  policy, security policies, timestamp) and returns the TICKET to resolve;
  :meth:`TicketTransferResponder.complete` takes the KMS's :class:`TicketKeys` and verifies.

Our streams: CS 1 is the Initiator's, CS 2 the Responder's (:func:`~ims.mikey.policy.sender_of`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ims.mikey import kdf
from ims.mikey.constants import (
    DataType,
    ErrorNo,
    IdType,
    KeyDataType,
    MacAlg,
    MapType,
    ProtType,
)
from ims.mikey.crypto import MAC_LEN, hmac_sha1_160, mac_equal, random_bytes
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import MikeyMessage
from ims.mikey.modes.base import (
    DEFAULT_SESSIONS,
    CryptoSession,
    Input,
    KeyExchangeResult,
    Machine,
    ResponderReply,
    State,
    build_sps,
    check_sdp_ids,
    decode_checked,
    fail_reply,
    replay_key,
    require_t,
    sdp_ids_payload,
    timestamp,
)
from ims.mikey.modes.ticket import GrantedTicket, TicketKeys
from ims.mikey.payloads import (
    GenericCsEntry,
    HdrPayload,
    KeyDataPayload,
    Payload,
    SpPayload,
    VPayload,
    srtp_session_data,
)
from ims.mikey.payloads_kms import (
    IdRole,
    IdrPayload,
    RandRole,
    RandrPayload,
    TicketFlags,
    TicketPayload,
    TicketType,
)
from ims.mikey.policy import SUITE_PARAMS, SrtpKeyMaterial, sender_of, suite_from_sp
from ims.mikey.replay import ReplayCache
from ims.mikey.ticket import tp_data_view
from ims.mikey.ticket_kdf import message_keys, session_key

MODE = "ticket"


def _idr(role: IdRole, value: str) -> IdrPayload:
    return IdrPayload(role=role, id_type=IdType.URI, data=value.encode())


def _ticket_index(msg: MikeyMessage) -> int:
    for i, p in enumerate(msg.payloads):
        if isinstance(p, TicketPayload):
            return i
    raise MikeyError("TICKET missing", mikey_error=ErrorNo.UNSPECIFIED)


def transfer_init_mac_input(data: bytes, msg: MikeyMessage) -> bytes:
    """TRANSFER_INIT without its MAC and without the TICKET's Initiator Data length and
    Initiator Data fields (§5.5), which end the TICKET payload. The codec is canonical, so the
    message re-encoded up to the TICKET ends exactly where the received TICKET ends."""
    k = _ticket_index(msg)
    ticket = msg.payloads[k]
    assert isinstance(ticket, TicketPayload)
    end = len(MikeyMessage(hdr=msg.hdr, payloads=msg.payloads[: k + 1]).encode())
    start = end - 2 - len(ticket.initiator_data)
    return data[:start] + data[end:-MAC_LEN]


def _idr_data(msg: MikeyMessage, role: IdRole) -> bytes:
    return next((p.data for p in msg.find_all(IdrPayload) if p.role is role), b"")


def _randri(msg: MikeyMessage) -> bytes:
    for p in msg.find_all(RandrPayload):
        if p.role is RandRole.INITIATOR and p.data:
            return p.data
    raise MikeyError("RANDRi missing", mikey_error=ErrorNo.UNSPECIFIED)


def _check_v(mac_input: bytes, msg: MikeyMessage, auth_key: bytes) -> None:
    v = msg.payloads[-1] if msg.payloads else None
    if not isinstance(v, VPayload) or v.auth_alg is not MacAlg.HMAC_SHA1_160:
        raise MikeyError("V payload must end the message", mikey_error=ErrorNo.INVALID_MAC)
    if not mac_equal(hmac_sha1_160(auth_key, mac_input), v.data):
        raise MikeyError("V MAC is wrong (wrong MPKi?)", mikey_error=ErrorNo.INVALID_MAC)


def _v_placeholder() -> VPayload:
    return VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=bytes(MAC_LEN))


def derive_transfer_keys(
    *,
    tgk: KeyDataPayload,
    cs_map: Sequence[GenericCsEntry],
    policies: Sequence[SpPayload],
    randri: bytes | None,
) -> tuple[SrtpKeyMaterial, ...]:
    """SRTP master key and salt per crypto session from the ticket's TGK (§5.1.3). "If a
    salting key is present in the key data sub-payload, a security protocol in need of a
    salting key SHALL use this salting key and a new salting key SHALL NOT be derived."""
    by_no = {sp.policy_no: sp for sp in policies}
    out = []
    for cs in cs_map:
        if len(cs.policies) != 1 or cs.policies[0] not in by_no:
            raise MikeyError(
                f"CS {cs.cs_id} has no single known policy", mikey_error=ErrorNo.INVALID_SP
            )
        suite = suite_from_sp(by_no[cs.policies[0]])
        key_len, salt_len, _ = SUITE_PARAMS[suite]
        key = session_key(tgk.key, cs.cs_id, kdf.CONST_TEK, key_len, randri=randri)
        if tgk.salt is not None:
            if len(tgk.salt) != salt_len:
                raise MikeyError(
                    "carried salt has the wrong length", mikey_error=ErrorNo.INVALID_SPPAR
                )
            salt = tgk.salt
        else:
            salt = session_key(tgk.key, cs.cs_id, kdf.CONST_SALT, salt_len, randri=randri)
        out.append(
            SrtpKeyMaterial(
                cs_id=cs.cs_id,
                policy_no=cs.policies[0],
                ssrc=cs.ssrc,
                roc=cs.roc,
                sender=sender_of(cs.cs_id),
                suite=suite,
                master_key=key,
                master_salt=salt,
            )
        )
    return tuple(out)


def _tgk_of(keys: TicketKeys) -> KeyDataPayload:
    for k in keys.keys:
        if k.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT):
            return k
    raise MikeyError("the ticket carries no TGK", mikey_error=ErrorNo.UNSPECIFIED)


def _randri_if_h(ticket: TicketPayload, randri: bytes) -> bytes | None:
    """§5.1.3: "RANDRi SHALL be included if the Ticket Policy determines that it shall be
    used (H flag)"."""
    return randri if ticket.flags & TicketFlags.H else None


class TicketTransferInitiator:
    """The Initiator: TRANSFER_INIT from a granted ticket, then TRANSFER_RESP (F flag)."""

    mode = MODE

    def __init__(
        self,
        *,
        granted: GrantedTicket,
        identity: str,
        responder: str,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        csb_id: int | None = None,
        rand: bytes | None = None,
        sdp_ids: str | None = None,
    ) -> None:
        self.granted = granted
        self.identity, self.responder = identity, responder
        self.sessions = tuple(sessions)
        self.csb_id = csb_id if csb_id is not None else int.from_bytes(random_bytes(4), "big")
        self.rand = rand if rand is not None else random_bytes(16)
        self.sdp_ids = sdp_ids
        self.machine = Machine()
        self._sent: bytes | None = None
        self.result: KeyExchangeResult | None = None

    @property
    def response_expected(self) -> bool:
        return bool(self.granted.ticket.flags & TicketFlags.F)

    def initiate(self, now: float) -> bytes:
        cs_map = tuple(
            GenericCsEntry(
                cs_id=i,
                prot_type=ProtType.SRTP,
                policies=(i - 1,),
                # §6.1.1: "Session Data MAY be omitted in the initial message (length = 0)"
                session_data=srtp_session_data(s.ssrc) if s.ssrc else b"",
            )
            for i, s in enumerate(self.sessions, start=1)
        )
        hdr = HdrPayload(
            data_type=DataType.TRANSFER_INIT,
            csb_id=self.csb_id,
            v_flag=self.response_expected,  # §4.2.2.1 "SHALL agree with the F flag"
            map_type=MapType.GENERIC_ID,
            cs_map=cs_map,
        )
        payloads: list[Payload] = [
            timestamp(now),
            RandrPayload(role=RandRole.INITIATOR, data=self.rand),
            _idr(IdRole.INITIATOR, self.identity),
            _idr(IdRole.RESPONDER, self.responder),
            *build_sps(self.sessions),
            self.granted.ticket,
        ]
        ext = sdp_ids_payload(self.sdp_ids)
        if ext is not None:
            payloads.append(ext)
        data = MikeyMessage(hdr=hdr, payloads=(*payloads, _v_placeholder())).encode()
        keys = message_keys(self.granted.keys.mpki, self.csb_id, response=False, randri=self.rand)
        msg = MikeyMessage(hdr=hdr, payloads=(*payloads, _v_placeholder()))
        mac_input = transfer_init_mac_input(data, msg) + self.identity.encode()
        mac_input += self.responder.encode()
        data = data[:-MAC_LEN] + hmac_sha1_160(keys.auth_key, mac_input)
        self._sent = data
        self.machine.fire(Input.INITIATE)
        if not self.response_expected:
            self.result = self._result(cs_map, build_sps(self.sessions))
        return data

    def _result(
        self, cs_map: Sequence[GenericCsEntry], policies: Sequence[SpPayload]
    ) -> KeyExchangeResult:
        tgk = _tgk_of(self.granted.keys)
        return KeyExchangeResult(
            mode=MODE,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=tgk.key,
            keys=derive_transfer_keys(
                tgk=tgk,
                cs_map=cs_map,
                policies=policies,
                randri=_randri_if_h(self.granted.ticket, self.rand),
            ),
        )

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        """Verify TRANSFER_RESP (V over it || TRANSFER_INIT) and derive the SRTP keys."""
        self.machine.expect(State.WAIT_RESPONSE)
        assert self._sent is not None
        try:
            msg = decode_checked(data, DataType.TRANSFER_RESP)
            if msg.hdr.csb_id != self.csb_id:
                raise MikeyError("CSB ID mismatch", mikey_error=ErrorNo.UNSPECIFIED)
            keys = message_keys(
                self.granted.keys.mpki, self.csb_id, response=True, randri=self.rand
            )
            _check_v(data[:-MAC_LEN] + self._sent, msg, keys.auth_key)
            require_t(msg)
            cs_map = _generic_map(msg)
            # "The Responder SHOULD NOT resend SP payloads, which the Initiator supplied":
            # a Policy_no "may refer to a SP payload in the initial message"
            policies = {sp.policy_no: sp for sp in build_sps(self.sessions)}
            policies.update({sp.policy_no: sp for sp in msg.find_all(SpPayload)})
            result = self._result(cs_map, tuple(policies.values()))
        except (MikeyError, MikeyDecodeError):
            self.machine.fire(Input.BAD)
            raise
        self.machine.fire(Input.RESPONSE_OK)
        self.result = result
        return result


def _generic_map(msg: MikeyMessage) -> tuple[GenericCsEntry, ...]:
    if msg.hdr.map_type is not MapType.GENERIC_ID:
        # §6.1: "The map type SRTP-ID SHALL NOT be used"
        raise MikeyError(
            "Ticket Transfer needs the GENERIC-ID map", mikey_error=ErrorNo.UNSPECIFIED
        )
    out = tuple(cs for cs in msg.hdr.cs_map if isinstance(cs, GenericCsEntry))
    if not out:
        raise MikeyError("no crypto session in the CS ID map", mikey_error=ErrorNo.UNSPECIFIED)
    return out


class TicketTransferResponder:
    """The Responder: early checks on TRANSFER_INIT, then -- with the KMS's answer to the
    Ticket Resolve exchange -- verification and TRANSFER_RESP."""

    mode = MODE

    def __init__(
        self,
        *,
        identity: str,
        replay: ReplayCache | None = None,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        sdp_ids: str | None = None,
    ) -> None:
        self.identity = identity
        self.replay = replay if replay is not None else ReplayCache()
        self.sessions = tuple(sessions)
        self.sdp_ids = sdp_ids
        self.machine = Machine()

    def early_check(self, data: bytes, now: float) -> TicketPayload:
        """§4.2.2.2 "The Responder SHALL however check that both the Ticket Policy and the
        security policies are acceptable. If they are not, the Responder SHALL reject without
        contacting the KMS." Returns the TICKET to resolve; raises MikeyError."""
        msg = decode_checked(data, DataType.TRANSFER_INIT)
        self.replay.check_time(require_t(msg), now, msg.hdr.csb_id)
        _randri(msg)
        ticket = msg.payloads[_ticket_index(msg)]
        assert isinstance(ticket, TicketPayload)
        if ticket.ticket_type != TicketType.MIKEY_BASE:
            raise MikeyError("ticket type not supported", mikey_error=ErrorNo.UNSPECIFIED)
        if ticket.flags & TicketFlags.I:
            raise MikeyError("key forking is not supported", mikey_error=ErrorNo.UNSPECIFIED)
        view = tp_data_view(ticket.tp_data)
        if view.responders and self.identity.encode() not in view.responders:
            raise MikeyError("the ticket does not name us", mikey_error=ErrorNo.INVALID_ID)
        idr = _idr_data(msg, IdRole.RESPONDER)
        if idr and idr != self.identity.encode():
            raise MikeyError("TRANSFER_INIT is for someone else", mikey_error=ErrorNo.INVALID_ID)
        policies = {sp.policy_no: sp for sp in msg.find_all(SpPayload)}
        for cs in _generic_map(msg):
            if cs.prot_type != ProtType.SRTP or not any(p in policies for p in cs.policies):
                raise MikeyError(f"CS {cs.cs_id}: no SRTP policy", mikey_error=ErrorNo.INVALID_SP)
            for p in cs.policies:
                if p in policies:
                    suite_from_sp(policies[p])  # raises Invalid SPpar for what we cannot do
        check_sdp_ids(msg, self.sdp_ids)
        return ticket

    def complete(self, data: bytes, resolved: TicketKeys, now: float) -> ResponderReply:
        """Verify TRANSFER_INIT with the MPKi the KMS returned (§4.2.3.6) and answer; never
        raises for peer input."""
        self.machine = Machine()
        try:
            reply = self._complete(data, resolved, now)
        except (MikeyError, MikeyDecodeError) as exc:
            self.machine.fire(Input.BAD)
            return fail_reply(exc, data, now)
        self.machine.fire(Input.OFFER_OK)
        return reply

    def _complete(self, data: bytes, resolved: TicketKeys, now: float) -> ResponderReply:
        ticket = self.early_check(data, now)
        msg = decode_checked(data, DataType.TRANSFER_INIT)
        result = transfer_result(data, msg, ticket, resolved)
        view = tp_data_view(ticket.tp_data)
        idi = _idr_data(msg, IdRole.INITIATOR)
        if view.initiator is not None and idi and idi != view.initiator:
            # the Ticket Policy (integrity assured by the KMS) names who requested the ticket
            raise MikeyError("IDRi is not the ticket's requester", mikey_error=ErrorNo.INVALID_ID)
        self.replay.check_and_store(replay_key(msg, data), require_t(msg), now, msg.hdr.csb_id)
        randri = result.rand
        chosen = chosen_sessions(msg, resolved)
        if not ticket.flags & TicketFlags.F:
            return ResponderReply(message=None, result=result)
        hdr = HdrPayload(
            data_type=DataType.TRANSFER_RESP,
            csb_id=msg.hdr.csb_id,
            prf=msg.hdr.prf,
            version=msg.hdr.version,
            v_flag=False,  # §4.2.2.3 "It SHALL be set to '0' by the Responder"
            map_type=MapType.GENERIC_ID,
            cs_map=chosen,
        )
        payloads: list[Payload] = [timestamp(now), _idr(IdRole.RESPONDER, self.identity)]
        out = MikeyMessage(hdr=hdr, payloads=(*payloads, _v_placeholder())).encode()
        resp_keys = message_keys(resolved.mpki, msg.hdr.csb_id, response=True, randri=randri)
        out = out[:-MAC_LEN] + hmac_sha1_160(resp_keys.auth_key, out[:-MAC_LEN] + data)
        return ResponderReply(message=out, result=result)


def chosen_sessions(msg: MikeyMessage, keys: TicketKeys) -> tuple[GenericCsEntry, ...]:
    """The Responder's CS ID map for TRANSFER_RESP (§4.2.2.3: "each crypto session has exactly
    one security policy indicated"; Session Data and SPI "MUST" be provided): the first offered
    policy we have an SP payload for, the Initiator's Session Data or SSRC 0 (our UEs key each
    direction whatever its SSRC; "an SSRC field set to '0' has no special meaning"), the
    Initiator's SPI or the TGK's."""
    policies = {sp.policy_no for sp in msg.find_all(SpPayload)}
    out = []
    for cs in _generic_map(msg):
        usable = [p for p in cs.policies if p in policies]
        if not usable:
            raise MikeyError(f"CS {cs.cs_id}: no SRTP policy", mikey_error=ErrorNo.INVALID_SP)
        out.append(
            GenericCsEntry(
                cs_id=cs.cs_id,
                prot_type=cs.prot_type,
                policies=(usable[0],),
                session_data=cs.session_data or srtp_session_data(0),
                spi=cs.spi or _spi_of(_tgk_of(keys)),
            )
        )
    return tuple(out)


def transfer_result(
    data: bytes, msg: MikeyMessage, ticket: TicketPayload, keys: TicketKeys
) -> KeyExchangeResult:
    """What the ticket's keys give for a TRANSFER_INIT -- the Responder's computation, and the
    KMS LI function's: §4.2.3.6 "the Responder MUST verify the TRANSFER_INIT message with the
    MPKi received from the KMS" (so a forged one yields nothing), then the SRTP keys (§5.1.3)."""
    randri = _randri(msg)
    mk = message_keys(keys.mpki, msg.hdr.csb_id, response=False, randri=randri)
    ident = _idr_data(msg, IdRole.INITIATOR) + _idr_data(msg, IdRole.RESPONDER)
    _check_v(transfer_init_mac_input(data, msg) + ident, msg, mk.auth_key)
    tgk = _tgk_of(keys)
    view = tp_data_view(ticket.tp_data)
    return KeyExchangeResult(
        mode=MODE,
        csb_id=msg.hdr.csb_id,
        rand=randri,
        tgk=tgk.key,
        keys=derive_transfer_keys(
            tgk=tgk,
            cs_map=chosen_sessions(msg, keys),
            policies=tuple(msg.find_all(SpPayload)),
            randri=_randri_if_h(ticket, randri),
        ),
        peer_id=_idr_data(msg, IdRole.INITIATOR) or view.initiator,
    )


def _spi_of(key: KeyDataPayload) -> bytes:
    """The SPI of a key data sub-payload (KV type SPI: length byte + SPI)."""
    return key.kv_data[1:] if key.kv_data else b""


__all__ = [
    "MODE",
    "chosen_sessions",
    "transfer_result",
    "TicketTransferInitiator",
    "TicketTransferResponder",
    "derive_transfer_keys",
    "transfer_init_mac_input",
]
