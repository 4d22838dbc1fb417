"""MIKEY-TICKET Ticket Request and Ticket Resolve exchanges, PSK variants (RFC 6043 §4.2.1,
§4.2.3), against the sans-I/O KMS core: message shapes, keys, MAC coverage, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.mikey.constants import DataType, ErrorNo, KeyDataType, MacAlg, MapType
from ims.mikey.crypto import hmac_sha1_160
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.ticket import (
    GRANTED_FLAGS,
    TicketKms,
    TicketRequester,
    TicketResolver,
)
from ims.mikey.payloads import ErrPayload, HdrPayload, KemacPayload, TPayload, VPayload
from ims.mikey.payloads_kms import (
    IdRole,
    IdrPayload,
    RandRole,
    RandrPayload,
    TicketFlags,
    TicketPayload,
    TpPayload,
)
from ims.mikey.ticket import tp_data_view
from ims.mikey.ticket_kdf import message_keys, mpk_pair

NOW = 1_750_000_000.0
KMS_ID = "kms.ims.lab"
ALICE, BOB, CAROL = "sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"
PSKS = {ALICE.encode(): b"A" * 16, BOB.encode(): b"B" * 16, CAROL.encode(): b"C" * 16}


def kms(**kw: object) -> TicketKms:
    return TicketKms(kms_id=KMS_ID, psk=lambda ident, _psk_id: PSKS.get(ident), **kw)  # type: ignore[arg-type]


def requester(**kw: object) -> TicketRequester:
    args: dict[str, object] = {
        "identity": ALICE,
        "kms_id": KMS_ID,
        "psk": PSKS[ALICE.encode()],
        "responders": [BOB],
    }
    args.update(kw)
    return TicketRequester(**args)  # type: ignore[arg-type]


def error_no(message: bytes | None) -> ErrorNo:
    assert message is not None
    msg = decode_message(message)
    assert msg.data_type is DataType.ERROR
    err = msg.find(ErrPayload)
    assert err is not None
    return err.error_no


def test_request_init_shape() -> None:
    """§4.2.1 "REQUEST_INIT_PSK = HDR, T, RANDRi, [IDRi], [IDRkms], TP, [IDRpsk], V";
    §4.2.1.1 "The V flag MUST be set to '1'", "#CS MUST be set to '0' and the CS ID map type
    SHALL be the 'Empty map'"; §5.5 Table 5.2 "REQUEST_INIT || Identity_i || Identity_kms"."""
    r = requester(psk_id=b"\x00\x01")
    data = r.initiate(NOW)
    msg = decode_message(data)
    assert msg.data_type is DataType.REQUEST_INIT_PSK and msg.hdr.v_flag
    assert msg.hdr.cs_map == () and msg.hdr.map_type is MapType.EMPTY
    assert [type(p) for p in msg.payloads] == [
        TPayload,
        RandrPayload,
        IdrPayload,
        IdrPayload,
        TpPayload,
        IdrPayload,
        VPayload,
    ]
    randr = msg.find(RandrPayload)
    assert randr is not None and randr.role is RandRole.INITIATOR
    keys = message_keys(PSKS[ALICE.encode()], msg.hdr.csb_id, response=False, randri=randr.data)
    v = msg.payloads[-1]
    assert isinstance(v, VPayload)
    assert v.data == hmac_sha1_160(keys.auth_key, data[:-20] + ALICE.encode() + KMS_ID.encode())
    tp = msg.find(TpPayload)
    assert tp is not None and tp_data_view(tp.tp_data).responders == (BOB.encode(),)


def test_request_exchange_grants_a_ticket() -> None:
    """§4.2.1.5 REQUEST_RESP = "HDR, T, [IDRkms], TICKET, KEMAC, V", same CSB ID, V flag '0';
    "KEMAC = E(encr_key, MPKi || [MPKr] || {TEK|TGK|GTGK})" with the NULL MAC; V over
    "REQUEST_RESP || REQUEST_INIT" (Table 5.2). The Initiator gets MPKi and the TGK, the ticket
    carries the same TGK under the KMS's TPK, and MPKi is A.2.2's derivation of its MPK."""
    k = kms()
    r = requester()
    request = r.initiate(NOW)
    reply = k.receive(request, NOW + 1)
    assert reply.ok and reply.message is not None, reply.error
    resp = decode_message(reply.message)
    assert resp.data_type is DataType.REQUEST_RESP and not resp.hdr.v_flag
    assert resp.hdr.csb_id == r.csb_id and resp.hdr.map_type is MapType.EMPTY
    kemac = resp.find(KemacPayload)
    assert kemac is not None and kemac.mac_alg is MacAlg.NULL
    randri = decode_message(request).find(RandrPayload)
    assert randri is not None
    resp_keys = message_keys(PSKS[ALICE.encode()], r.csb_id, response=True, randri=randri.data)
    v = resp.payloads[-1]
    assert isinstance(v, VPayload)
    assert v.data == hmac_sha1_160(resp_keys.auth_key, reply.message[:-20] + request)

    granted = r.receive(reply.message, NOW + 1)
    contents = k.open_ticket(granted.ticket)
    assert granted.keys.tgk == contents.keys[0].key
    assert granted.keys.mpki == mpk_pair(contents.mpk.key, contents.rand)[0]
    view = tp_data_view(granted.ticket.tp_data)
    assert view.kms == KMS_ID.encode() and view.initiator == ALICE.encode()
    assert view.responders == (BOB.encode(),)
    assert granted.ticket.flags & TicketFlags.D and granted.ticket.flag_violations() == []


def test_resolve_exchange_gives_the_responder_the_same_keys() -> None:
    """§4.2.3 "RESOLVE_INIT_PSK = HDR, T, RANDRr, [IDRr], [IDRkms], TICKET, [IDRpsk], V" /
    "RESOLVE_RESP = HDR, T, [IDRkms], KEMAC, [IDRr], [RANDRkms], V"; §5.1.2 "RANDRr SHALL be
    included in the derivation of keys used to protect the Ticket Resolve exchange". Bob, named
    in the ticket, gets the MPKi and TGK the Initiator got."""
    k = kms()
    r = requester()
    granted = r.receive(k.receive(r.initiate(NOW), NOW).message or b"", NOW)
    res = TicketResolver(identity=BOB, kms_id=KMS_ID, psk=PSKS[BOB.encode()], ticket=granted.ticket)
    resolve_init = res.initiate(NOW + 5)
    msg = decode_message(resolve_init)
    assert msg.data_type is DataType.RESOLVE_INIT_PSK and msg.hdr.v_flag
    randr = msg.find(RandrPayload)
    assert randr is not None and randr.role is RandRole.RESPONDER
    reply = k.receive(resolve_init, NOW + 5)
    assert reply.ok and reply.message is not None, reply.error
    resp = decode_message(reply.message)
    assert resp.data_type is DataType.RESOLVE_RESP
    idr = [p.data for p in resp.find_all(IdrPayload) if p.role is IdRole.RESPONDER]
    assert idr == [BOB.encode()]
    got = res.receive(reply.message, NOW + 5)
    assert got.mpki == granted.keys.mpki and got.tgk == granted.keys.tgk
    assert [kd.key_type for kd in got.keys] == [KeyDataType.TGK]


def test_unlisted_responder_is_refused() -> None:
    """§4.2.3 "the KMS verifies that the Responder is authorized to resolve the ticket based on
    ticket and KMS policies"; §6.10 IDRr "the identity of a responder ... authorized to
    resolve the ticket"."""
    k = kms()
    r = requester()
    granted = r.receive(k.receive(r.initiate(NOW), NOW).message or b"", NOW)
    res = TicketResolver(
        identity=CAROL, kms_id=KMS_ID, psk=PSKS[CAROL.encode()], ticket=granted.ticket
    )
    reply = k.receive(res.initiate(NOW), NOW)
    assert not reply.ok and error_no(reply.message) is ErrorNo.AUTH_FAILURE


def test_expired_ticket_and_validity_capped_by_the_kms() -> None:
    """§6.10 TRe "is the end of the validity period"; the KMS grants at most its maximum and
    says so with K ("the KMS changed the desired Ticket Policy")."""
    k = kms(max_validity=600.0)
    r = requester(validity=7200.0)
    granted = r.receive(k.receive(r.initiate(NOW), NOW).message or b"", NOW)
    assert granted.ticket.flags & TicketFlags.K
    late = TicketResolver(
        identity=BOB, kms_id=KMS_ID, psk=PSKS[BOB.encode()], ticket=granted.ticket
    )
    reply = k.receive(late.initiate(NOW + 601), NOW + 601)
    assert error_no(reply.message) is ErrorNo.INVALID_TS
    r2 = requester(validity=300.0)
    granted2 = r2.receive(k.receive(r2.initiate(NOW), NOW).message or b"", NOW)
    assert not granted2.ticket.flags & TicketFlags.K
    assert granted2.ticket.flags == GRANTED_FLAGS


def test_wrong_psk_unknown_user_replay() -> None:
    """§4.2.1.4 "If the KMS can verify the integrity of the received message": a wrong PSK is
    an Invalid MAC, an unknown subscriber Invalid ID, a replayed request Invalid TS (RFC 3830
    §5.4 via §5.4 here)."""
    k = kms()
    reply = k.receive(requester(psk=b"x" * 16).initiate(NOW), NOW)
    assert error_no(reply.message) is ErrorNo.INVALID_MAC
    reply = k.receive(requester(identity="sip:eve@ims.lab").initiate(NOW), NOW)
    assert error_no(reply.message) is ErrorNo.INVALID_ID
    data = requester().initiate(NOW)
    assert k.receive(data, NOW).ok
    assert error_no(k.receive(data, NOW + 1).message) is ErrorNo.INVALID_TS


def test_tampered_ticket_or_response_is_refused() -> None:
    """The ticket's policy is covered by the TPK MAC (App. A.1), so a Responder cannot widen it;
    the Initiator refuses a REQUEST_RESP whose V does not cover its own REQUEST_INIT."""
    k = kms()
    r = requester()
    reply = k.receive(r.initiate(NOW), NOW).message
    assert reply is not None
    granted = requester().receive  # a fresh requester never sent anything: state error
    with pytest.raises(MikeyError):
        granted(reply, NOW)
    ticket = r.receive(reply, NOW).ticket
    widened = TicketPayload(
        ticket_type=ticket.ticket_type,
        subtype=ticket.subtype,
        version=ticket.version,
        prf=ticket.prf,
        flags=ticket.flags | TicketFlags.J,
        tp_data=ticket.tp_data,
        ticket_data=ticket.ticket_data,
        initiator_data=ticket.initiator_data,
    )
    res = TicketResolver(identity=BOB, kms_id=KMS_ID, psk=PSKS[BOB.encode()], ticket=widened)
    assert error_no(k.receive(res.initiate(NOW), NOW).message) is ErrorNo.INVALID_MAC
    r2 = requester()
    r2.initiate(NOW)
    with pytest.raises(MikeyError):  # V covers REQUEST_RESP || *its* REQUEST_INIT
        r2.receive(reply, NOW)


def test_kms_answers_errors_with_nothing_and_other_types_with_invalid_dt() -> None:
    """§5.4 "Error messages may be used to report errors in both initial and response messages,
    but not in Error messages"."""
    k = kms()
    bad = k.receive(requester(psk=b"x" * 16).initiate(NOW), NOW)
    assert bad.message is not None
    assert k.receive(bad.message, NOW).message is None
    psk_init = MikeyMessage(hdr=HdrPayload(data_type=DataType.PSK_INIT, csb_id=1)).encode()
    assert error_no(k.receive(psk_init, NOW).message) is ErrorNo.INVALID_DT


def test_hostile_ticket_fields_are_errors() -> None:
    """A RESOLVE_INIT carrying a TICKET with an unknown PRF func (RFC 3830 Table 6.1.c + RFC 6043
    Table 6.3 define 0 and 1) is answered with Invalid PRF, not an exception."""
    k = kms()
    r = requester()
    ticket = r.receive(k.receive(r.initiate(NOW), NOW).message or b"", NOW).ticket
    odd = TicketPayload(
        ticket_type=ticket.ticket_type,
        subtype=ticket.subtype,
        version=ticket.version,
        prf=5,
        flags=ticket.flags,
        tp_data=ticket.tp_data,
        ticket_data=ticket.ticket_data,
    )
    res = TicketResolver(identity=BOB, kms_id=KMS_ID, psk=PSKS[BOB.encode()], ticket=odd)
    assert error_no(k.receive(res.initiate(NOW), NOW).message) is ErrorNo.INVALID_PRF


def test_kms_opens_any_ticket_it_issued() -> None:
    """The LI point: the TPK holder gets the TGK of a ticket seen in a TRANSFER_INIT without
    any exchange with the users (and a second KMS with another TPK cannot)."""
    k = kms()
    r = requester()
    granted = r.receive(k.receive(r.initiate(NOW), NOW).message or b"", NOW)
    assert k.open_ticket(granted.ticket).keys[0].key == granted.keys.tgk
    with pytest.raises(MikeyError):
        kms().open_ticket(granted.ticket)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_kms_never_raises(data: st.DataObject) -> None:
    """Hostile input to the KMS: mutations of a real request, random bytes."""
    base = requester(csb_id=7, rand=b"\x01" * 16).initiate(NOW)
    pos = data.draw(st.integers(0, len(base) - 1))
    mutated = base[:pos] + bytes([base[pos] ^ data.draw(st.integers(1, 255))]) + base[pos + 1 :]
    for blob in (mutated, base[:pos], data.draw(st.binary(max_size=200))):
        reply = kms().receive(blob, NOW)
        assert reply.ok or reply.error is not None
        assert isinstance(reply.error, MikeyError | MikeyDecodeError | type(None))
