"""TransactionLayer: matching, retransmission absorption, CANCEL, §18.2 routing, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ims.sip.message import Request, Response, make_response
from ims.sip.parser import parse_message
from ims.sip.transaction import (
    AckReceived,
    Flow,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionProtocolError,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
    error_response_for,
    response_flow,
    stamp_via,
)
from ims.sip.transaction.client_tables import InviteClientState, NonInviteClientState
from ims.sip.transaction.server_tables import InviteServerState, NonInviteServerState
from tests.ims.sip.transaction.sipmsg import A, B, request

UDP_AB = Flow("UDP", B, A)  # as seen by A: to B
UDP_FROM_A = Flow("UDP", A, B)  # as seen by B: from A


def sends(events: list[object]) -> list[SendMessage]:
    return [e for e in events if isinstance(e, SendMessage)]


def of(events: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def deliver(layer: TransactionLayer, ev: SendMessage, src: tuple[str, int], now: float) -> list:  # type: ignore[type-arg]
    return layer.receive_bytes(ev.data, Flow("UDP", src, ev.flow.remote), now)


def test_invite_180_200_over_udp() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    inv = request("INVITE")
    tx, out = a.send_request(inv, UDP_AB, 0.0)
    assert [s.data for s in sends(out)] == [inv.encode()]
    assert tx.state is InviteClientState.CALLING
    got = deliver(b, sends(out)[0], A, 0.01)
    [rr] = of(got, RequestReceived)
    assert rr.request.method == "INVITE" and rr.transaction.state is InviteServerState.PROCEEDING
    # 100 Trying after 200 ms of TU silence
    assert b.get_timer() == pytest.approx(0.21)
    trying = sends(b.handle_timer(b.get_timer() or 0.0))
    assert [s.message.status for s in trying] == [100]  # type: ignore[union-attr]
    ringing = make_response(rr.request, 180, to_tag="b1")
    out_b = b.respond(rr.transaction, ringing, 0.3)
    r = of(deliver(a, sends(out_b)[0], B, 0.31), ResponseReceived)
    assert r[0].response.status == 180 and tx.state is InviteClientState.PROCEEDING
    ok = make_response(rr.request, 200, to_tag="b1")
    out_b = b.respond(rr.transaction, ok, 0.5)
    # RFC 6026: the 2xx moves the INVITE server transaction to Accepted (Timer L = 64*T1)
    assert rr.transaction.state is InviteServerState.ACCEPTED
    assert not of(out_b, TransactionTerminated)
    # an INVITE retransmission is absorbed, not a new request
    assert deliver(b, sends(out)[0], A, 0.52) == []
    # the TU retransmits its 2xx through the transaction (§13.3.1.4)
    out_b2 = b.respond(rr.transaction, ok, 0.6)
    assert sends(out_b2)[0].data == ok.encode()
    got = deliver(a, sends(out_b)[0], B, 0.51)
    assert of(got, ResponseReceived)[0].response.status == 200
    assert tx.state is InviteClientState.ACCEPTED and not sends(got)  # no ACK from the transaction
    # a 2xx retransmission still reaches the TU (it re-ACKs), as a StrayResponse naming the
    # transaction; Timer M ends the client at 64*T1
    again = deliver(a, sends(out_b2)[0], B, 0.61)
    [stray] = of(again, StrayResponse)
    assert stray.response.status == 200 and stray.transaction is tx
    assert of(a.handle_timer(0.51 + 32), TransactionTerminated) and not a.clients
    assert of(a.receive_bytes(ok.encode(), Flow("UDP", B, A), 40.0), StrayResponse)
    # the ACK to the 2xx has a new branch and matches no transaction at B
    ack = request("ACK", to_tag="b1")
    assert of(b.receive(ack, UDP_FROM_A, 0.7), AckReceived)
    # an ACK reusing the INVITE's branch (RFC 2543-style peers) is passed up from Accepted
    same = request("ACK", to_tag="b1", branch=inv.via.branch)  # type: ignore[union-attr]
    assert of(b.receive(same, UDP_FROM_A, 0.8), AckReceived)
    assert of(b.handle_timer(0.5 + 32), TransactionTerminated) and not b.servers


def test_invite_486_ack_by_transaction_and_absorption() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    inv = request("INVITE")
    tx, out = a.send_request(inv, UDP_AB, 0.0)
    [rr] = of(deliver(b, sends(out)[0], A, 0.0), RequestReceived)
    # INVITE retransmission (timer A at 0.5) before the TU answered: nothing sent yet
    retrans = sends(a.handle_timer(0.5))
    assert [s.data for s in retrans] == [inv.encode()]
    assert deliver(b, retrans[0], A, 0.5) == []
    busy = make_response(rr.request, 486, to_tag="b2")
    out_b = b.respond(rr.transaction, busy, 0.6)
    assert rr.transaction.state is InviteServerState.COMPLETED
    got = deliver(a, sends(out_b)[0], B, 0.6)
    assert of(got, ResponseReceived)[0].response.status == 486
    [ack] = sends(got)
    assert isinstance(ack.message, Request) and ack.message.method == "ACK"
    assert ack.message.headers.get("To") == busy.headers.get("To")
    assert ack.message.via is not None and ack.message.via.branch == inv.via.branch  # type: ignore[union-attr]
    assert ack.message.cseq is not None and ack.message.cseq.seq == 1
    assert tx.state is InviteClientState.COMPLETED
    # response retransmission (timer G) -> the client resends the ACK, passes nothing up
    g = sends(b.handle_timer(1.1))
    assert [s.data for s in g] == [busy.encode()]
    again = deliver(a, g[0], B, 1.1)
    assert [type(e) for e in again] == [SendMessage] and again[0].data == ack.data
    # ACK reaches B: Confirmed, not passed up; a second ACK absorbed
    assert deliver(b, ack, A, 1.2) == []
    assert rr.transaction.state is InviteServerState.CONFIRMED
    assert deliver(b, ack, A, 1.3) == []
    # I = T4 = 5 s; D = 32 s
    assert of(b.handle_timer(6.2), TransactionTerminated)
    assert a.get_timer() == pytest.approx(32.6)
    assert of(a.handle_timer(32.6), TransactionTerminated)


def test_non_invite_retransmissions_absorbed_and_final_resent() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    opt = request("OPTIONS")
    tx, out = a.send_request(opt, UDP_AB, 0.0)
    [rr] = of(deliver(b, sends(out)[0], A, 0.0), RequestReceived)
    assert rr.transaction.state is NonInviteServerState.TRYING
    # Trying discards retransmissions
    assert deliver(b, sends(a.handle_timer(0.5))[0], A, 0.5) == []
    ok = make_response(rr.request, 200, to_tag="x")
    out_b = b.respond(rr.transaction, ok, 0.6)
    assert rr.transaction.state is NonInviteServerState.COMPLETED
    # a later retransmission gets the same final response again
    re = sends(deliver(b, sends(a.handle_timer(1.5))[0], A, 1.5))
    assert [s.data for s in re] == [ok.encode()]
    got = deliver(a, sends(out_b)[0], B, 1.6)
    assert of(got, ResponseReceived)[0].response.status == 200
    assert tx.state is NonInviteClientState.COMPLETED
    assert deliver(a, re[0], B, 1.7) == []  # absorbed in Completed
    assert b.stats["retransmissions_absorbed"] == 2
    # a second final from the TU is discarded (§17.2.2), then J ends it at 64*T1
    assert sends(b.respond(rr.transaction, make_response(rr.request, 500), 2.0)) == []
    assert of(b.handle_timer(0.6 + 32), TransactionTerminated)
    assert of(a.handle_timer(1.6 + 5), TransactionTerminated)


def test_tu_protocol_error_raises() -> None:
    b = TransactionLayer()
    [rr] = of(b.receive(request("INVITE"), UDP_FROM_A, 0.0), RequestReceived)
    b.respond(rr.transaction, make_response(rr.request, 404, to_tag="t"), 0.0)
    with pytest.raises(TransactionProtocolError):
        b.respond(rr.transaction, make_response(rr.request, 200, to_tag="t"), 0.1)


def test_cancel_after_provisional() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    inv = request("INVITE")
    tx, out = a.send_request(inv, UDP_AB, 0.0)
    [rr] = of(deliver(b, sends(out)[0], A, 0.0), RequestReceived)
    assert a.cancel(tx, 0.05) == []  # no provisional yet: held (§9.1)
    assert tx.cancel_pending
    out_b = b.respond(rr.transaction, make_response(rr.request, 180, to_tag="c"), 0.1)
    got = deliver(a, sends(out_b)[0], B, 0.1)
    [cancel_send] = sends(got)
    cancel = cancel_send.message
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.via.branch == inv.via.branch  # type: ignore[union-attr]
    assert cancel.cseq.seq == 1 and cancel.cseq.method == "CANCEL"  # type: ignore[union-attr]
    assert cancel.headers.get("To") == inv.headers.get("To")
    assert tx.cancel_transaction is not None
    [crr] = of(deliver(b, cancel_send, A, 0.2), RequestReceived)
    assert crr.cancelled is rr.transaction  # §9.2 matching
    b.respond(crr.transaction, make_response(crr.request, 200, to_tag="c"), 0.2)
    out_b = b.respond(rr.transaction, make_response(rr.request, 487, to_tag="c"), 0.2)
    got = deliver(a, sends(out_b)[0], B, 0.3)
    assert of(got, ResponseReceived)[0].response.status == 487
    assert [s.message.method for s in sends(got)] == ["ACK"]  # type: ignore[union-attr]


def test_cancel_without_match_and_too_late() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    [rr] = of(b.receive(request("CANCEL"), UDP_FROM_A, 0.0), RequestReceived)
    assert rr.cancelled is None  # the TU answers 481
    tx, out = a.send_request(request("INVITE"), UDP_AB, 0.0)
    a.cancel(tx, 0.1)
    inv_b = of(deliver(b, sends(out)[0], A, 0.0), RequestReceived)[0]
    final = b.respond(inv_b.transaction, make_response(inv_b.request, 603, to_tag="z"), 0.2)
    got = deliver(a, sends(final)[0], B, 0.2)
    assert [s.message.method for s in sends(got)] == ["ACK"]  # type: ignore[union-attr]
    assert not tx.cancel_pending and tx.cancel_transaction is None
    assert a.cancel(tx, 0.3) == []  # after the final response: nothing to cancel
    opt, _ = a.send_request(request("OPTIONS"), UDP_AB, 0.0)
    assert a.cancel(opt, 0.1) == []  # only INVITEs are cancelled


def test_timeouts_b_f_h() -> None:
    a = TransactionLayer()
    tx, _ = a.send_request(request("INVITE"), UDP_AB, 0.0)
    ntx, _ = a.send_request(request("REGISTER"), UDP_AB, 0.0)
    evs = a.handle_timer(32.0)
    assert {e.transaction for e in of(evs, TransactionTimedOut)} == {tx, ntx}
    assert len(sends(a.handle_timer(31.9))) == 0 and a.pending == 0
    b = TransactionLayer()
    [rr] = of(b.receive(request("INVITE"), UDP_FROM_A, 0.0), RequestReceived)
    b.respond(rr.transaction, make_response(rr.request, 500, to_tag="h"), 1.0)
    assert of(b.handle_timer(33.0), TransactionTimedOut)[0].transaction is rr.transaction


def test_transport_error_reported() -> None:
    a = TransactionLayer()
    tx, _ = a.send_request(request("INVITE", transport="TCP"), Flow("TCP", B), 0.0)
    evs = a.transport_error(tx, "connection refused", 0.1)
    assert of(evs, TransportFailed)[0].reason == "connection refused"
    assert of(evs, TransactionTerminated) and a.transport_error(tx, "again", 0.2) == []


def test_reliable_no_retransmissions() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    flow = Flow("TCP", B, A, connection=7)
    tx, _ = a.send_request(request("INVITE", transport="TCP"), flow, 0.0)
    assert tx.machine.armed() == {"B": 32.0}
    assert sends(a.handle_timer(31.0)) == []
    [rr] = of(
        b.receive(request("OPTIONS", transport="TCP"), Flow("TCP", A, B, 9), 0.0), RequestReceived
    )
    out = b.respond(rr.transaction, make_response(rr.request, 200), 0.0)
    assert sends(out)[0].flow.connection == 9  # same connection (§18.2.2)
    assert of(out, TransactionTerminated)  # J = 0


def test_stamp_via_received_and_rport() -> None:
    r = request("OPTIONS", via_host="pc.example", via_params=";rport")
    stamp_via(r, Flow("UDP", ("127.0.2.9", 40000)))
    assert r.via.received == "127.0.2.9" and r.via.rport == 40000  # type: ignore[union-attr]
    assert response_flow(r, Flow("UDP", ("127.0.2.9", 40000))).remote == ("127.0.2.9", 40000)
    r2 = request("OPTIONS", via_host="127.0.2.9", via_port=5099)
    stamp_via(r2, Flow("UDP", ("127.0.2.9", 40000)))
    assert r2.via.received is None  # same host: nothing added  # type: ignore[union-attr]
    assert response_flow(r2, Flow("UDP", ("127.0.2.9", 40000))).remote == ("127.0.2.9", 5099)
    r3 = request("OPTIONS", via_host="10.0.0.1", via_port=5070)
    stamp_via(r3, Flow("UDP", ("127.0.2.9", 40000)))
    assert r3.via.received == "127.0.2.9"  # type: ignore[union-attr]
    assert response_flow(r3, Flow("UDP", ("127.0.2.9", 1))).remote == ("127.0.2.9", 5070)
    r4 = request("OPTIONS", via_host="10.0.0.1", via_params=";maddr=127.0.2.77")
    assert response_flow(r4, Flow("UDP", ("127.0.2.9", 1))).remote == ("127.0.2.77", 5060)
    r5 = request("OPTIONS", via_host="h.example", transport="TLS", via_port=0)
    r5.headers.set("Via", "SIP/2.0/TLS h.example;branch=z9hG4bKx")
    stamp_via(r5, Flow("TLS", ("127.0.2.9", 4444), connection=3))
    f = response_flow(r5, Flow("TLS", ("127.0.2.9", 4444), connection=3))
    assert f.connection == 3 and f.remote == ("127.0.2.9", 5061)
    # the top Via only, the others untouched
    r6 = request(
        "OPTIONS", via_host="x.example", extra="Via: SIP/2.0/UDP y.example;branch=z9hG4bKy\r\n"
    )
    stamp_via(r6, Flow("UDP", ("127.0.2.9", 1)))
    assert [v.received for v in r6.vias] == ["127.0.2.9", None]


def test_rfc2543_fallback_matching() -> None:
    b = TransactionLayer()
    inv = request("INVITE", branch="")  # no branch at all: RFC 2543 peer
    [rr] = of(b.receive(inv, UDP_FROM_A, 0.0), RequestReceived)
    again = request("INVITE", branch="")
    assert b.receive(again, UDP_FROM_A, 0.1) == []  # matched: a retransmission
    other = request("INVITE", branch="", call_id="other@a")
    assert of(b.receive(other, UDP_FROM_A, 0.1), RequestReceived)
    busy = make_response(rr.request, 486, to_tag="t9")
    b.respond(rr.transaction, busy, 0.2)
    ack = request("ACK", branch="", to_tag="t9")
    assert b.receive(ack, UDP_FROM_A, 0.3) == []
    assert rr.transaction.state is InviteServerState.CONFIRMED
    cancel = request("CANCEL", branch="", call_id="other@a")
    [crr] = of(b.receive(cancel, UDP_FROM_A, 0.4), RequestReceived)
    assert crr.cancelled is not None and crr.cancelled.request.call_id == "other@a"
    old = request("OPTIONS", branch="1234")  # a branch without the magic cookie
    [orr] = of(b.receive(old, UDP_FROM_A, 0.5), RequestReceived)
    assert orr.transaction.key[0] == "2543"


def test_server_matching_uses_sent_by_and_method() -> None:
    b = TransactionLayer()
    [r1] = of(b.receive(request("INVITE", branch="z9hG4bKsame"), UDP_FROM_A, 0.0), RequestReceived)
    # same branch, other sent-by: another transaction
    r2 = of(
        b.receive(request("INVITE", branch="z9hG4bKsame", via_port=5099), UDP_FROM_A, 0.0),
        RequestReceived,
    )
    assert r2 and r2[0].transaction is not r1.transaction
    # same branch, method CANCEL: its own transaction that targets the INVITE
    [c] = of(b.receive(request("CANCEL", branch="z9hG4bKsame"), UDP_FROM_A, 0.0), RequestReceived)
    assert c.transaction is not r1.transaction and c.cancelled is r1.transaction


def test_malformed_datagrams_answered_or_dropped() -> None:
    b = TransactionLayer()
    bad = (
        b"INVITE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.2.1:5070;branch=z9hG4bKbad\r\n"
        b"From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: c1\r\nCSeq: x INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    [s] = sends(b.receive_bytes(bad, Flow("UDP", ("127.0.2.1", 5070)), 0.0))
    assert isinstance(s.message, Response) and s.message.status == 400
    assert s.flow.remote == ("127.0.2.1", 5070)
    assert parse_message(s.data, validate=False).headers.get("Call-ID") == "c1"
    v = bad.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    [s] = sends(b.receive_bytes(v, Flow("UDP", ("127.0.2.1", 5070)), 0.0))
    assert s.message.status == 505  # type: ignore[union-attr]
    assert b.receive_bytes(b"garbage\r\n\r\n", Flow("UDP", A), 0.0) == []
    no_via = bad.replace(b"Via: SIP/2.0/UDP 127.0.2.1:5070;branch=z9hG4bKbad\r\n", b"")
    assert b.receive_bytes(no_via, Flow("UDP", A), 0.0) == []  # nowhere to send it
    assert b.receive_bytes(b"\r\n\r\n", Flow("UDP", A), 0.0) == []  # keep-alive
    missing_to = bad.replace(b"To: <sip:b@b>\r\n", b"").replace(b"CSeq: x", b"CSeq: 1")
    [s] = sends(b.receive_bytes(missing_to, Flow("UDP", A), 0.0))
    assert s.message.status == 400  # type: ignore[union-attr]
    bad_resp = b"SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n"
    assert b.receive_bytes(bad_resp, Flow("UDP", A), 0.0) == []
    assert b.stats["parse_errors"] >= 4 and b.pending == 0
    assert error_response_for(b"SIP/2.0 200 OK\r\n\r\n", 400) is None


def test_ack_never_answered() -> None:
    b = TransactionLayer()
    ack = request("ACK")
    ack.headers.remove("Call-ID")
    assert b.receive(ack, UDP_FROM_A, 0.0) == []


def test_trying_delay_none_sends_100_at_once() -> None:
    b = TransactionLayer(TimerConfig(trying_delay=None))
    evs = b.receive(request("INVITE"), UDP_FROM_A, 0.0)
    assert [s.message.status for s in sends(evs)] == [100]  # type: ignore[union-attr]
    # a retransmission of the INVITE resends the 100 (the last provisional)
    evs = b.receive(request("INVITE", branch=evs[0].request.via.branch), UDP_FROM_A, 0.3)  # type: ignore[union-attr]
    assert [s.message.status for s in sends(evs)] == [100]  # type: ignore[union-attr]


RFC4475 = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "rfc4475"
if not RFC4475.is_dir():
    RFC4475 = Path("/work/shared/conformance/rfc4475")


@pytest.mark.parametrize(
    ("name", "via_in_answer"),
    [
        ("badinv01.dat", "SIP/2.0/UDP 192.0.2.15;;,;,,"),  # Via does not parse: copied raw
        ("lwsruri.dat", "received=127.0.2.9"),  # request line broken, Via fine: stamped
        ("lwsstart.dat", "received=127.0.2.9"),  # two spaces in the request line
    ],
)
def test_broken_request_line_or_via_is_answered_400(name: str, via_in_answer: str) -> None:
    """RFC 4475 §3.1.2.1, §3.1.2.8, §3.1.2.9: the layer answers 400 itself whenever the top
    Via's sent-by gives somewhere to send it; the answer goes to the source address as
    ``received`` with the sent-by port (§18.2.2)."""
    layer = TransactionLayer()
    data = (RFC4475 / name).read_bytes()
    [s] = sends(layer.receive_bytes(data, Flow("UDP", ("127.0.2.9", 40000)), 0.0))
    assert isinstance(s.message, Response) and s.message.status == 400
    assert s.flow.remote == ("127.0.2.9", 5060)
    answer = parse_message(s.data, validate=False)
    assert via_in_answer in (answer.headers.get("Via") or "")
    assert answer.call_id is not None and answer.call_id.startswith(name.split(".")[0])
    assert layer.stats["error_responses"] == 1 and layer.pending == 0


def test_refused_request_is_answered_by_received_and_rport() -> None:
    """RFC 3581 §4 / §18.2.2 for stateless error responses: the source IP and port, not the
    address the raw Via names."""
    layer = TransactionLayer()
    bad = (
        b"OPTIONS sip:b@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5070;rport;branch=z9hG4bKrp\r\n"
        b"From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: rp\r\nCSeq: 1 OPTIONS\r\n"
        b"Max-Forwards: many\r\n\r\n"
    )
    [s] = sends(layer.receive_bytes(bad, Flow("UDP", ("127.0.2.9", 40000)), 0.0))
    assert isinstance(s.message, Response) and s.message.status == 400
    assert s.flow.remote == ("127.0.2.9", 40000)
    via = parse_message(s.data, validate=False).via
    assert via is not None and via.received == "127.0.2.9" and via.rport == 40000
    # without rport: received + the sent-by port
    [s] = sends(
        layer.receive_bytes(bad.replace(b";rport", b""), Flow("UDP", ("127.0.2.9", 40000)), 0.0)
    )
    assert s.flow.remote == ("127.0.2.9", 5070)
    # on a connection: back on it
    [s] = sends(layer.receive_bytes(bad, Flow("TCP", ("127.0.2.9", 40000), connection=7), 0.0))
    assert s.flow.connection == 7
    # an unparsable ACK or response is never answered (§17.2.1, §18.1.2)
    ack = bad.replace(b"OPTIONS", b"ACK")
    assert layer.receive_bytes(ack, Flow("UDP", ("127.0.2.9", 40000)), 0.0) == []
    assert (
        layer.receive_bytes(
            b"SIP/2.0  200 OK\r\nVia: SIP/2.0/UDP 10.9.9.9\r\n\r\n", Flow("UDP", A), 0.0
        )
        == []
    )


def test_response_with_foreign_top_via_is_discarded() -> None:
    """§18.1.2: a response whose top Via sent-by is not the one we sent is discarded (even
    with our branch); ours (an absent port meaning 5060) is accepted."""
    a = TransactionLayer()
    req = request("OPTIONS")  # Via: SIP/2.0/UDP 127.0.2.1:5060;branch=...
    tx, _ = a.send_request(req, UDP_AB, 0.0)
    top = req.headers.get("Via") or ""
    forged = make_response(req, 200, to_tag="x")
    forged.headers.set("Via", top.replace("127.0.2.1:5060", "127.0.2.66:5060"))
    assert a.receive_bytes(forged.encode(), Flow("UDP", B, A), 0.1) == []
    other_port = make_response(req, 200, to_tag="x")
    other_port.headers.set("Via", top.replace("127.0.2.1:5060", "127.0.2.1:5070"))
    assert a.receive_bytes(other_port.encode(), Flow("UDP", B, A), 0.1) == []
    assert a.stats["via_mismatch"] == 2 and not tx.terminated
    ok = make_response(req, 200, to_tag="x")
    ok.headers.set("Via", top.replace("127.0.2.1:5060", "127.0.2.1") + ";received=127.0.2.1")
    [r] = of(a.receive_bytes(ok.encode(), Flow("UDP", B, A), 0.2), ResponseReceived)
    assert r.transaction is tx and r.response.status == 200
