"""ACK/CANCEL construction (§17.1.1.3, §9.1), misuse by the TU, and the remaining layer paths."""

from __future__ import annotations

import pytest

from ims.sip.errors import SipBuildError
from ims.sip.message import Request, make_response
from ims.sip.transaction import (
    Flow,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransportFailed,
    build_ack,
    build_cancel,
)
from ims.sip.transaction.client_tables import NonInviteClientState
from ims.sip.transaction.server_tables import NonInviteServerState
from tests.ims.sip.transaction.sipmsg import A, B, request

ROUTES = "Route: <sip:p1.example;lr>\r\nRoute: <sip:p2.example;lr>\r\n"


def test_build_ack_copies_routes_single_via_and_response_to() -> None:
    inv = request(
        "INVITE", extra=ROUTES + "Via: SIP/2.0/UDP second.example;branch=z9hG4bK2\r\n", cseq=7
    )
    resp = make_response(inv, 404, to_tag="x9")
    ack = build_ack(inv, resp)
    assert ack.method == "ACK" and ack.uri == inv.uri
    assert len(ack.vias) == 1 and ack.vias[0] == inv.vias[0]
    assert ack.headers.get_all("Route") == inv.headers.get_all("Route")
    assert ack.to is not None and ack.to.tag == "x9"
    assert ack.cseq is not None and (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
    assert ack.headers.get("Call-ID") == inv.headers.get("Call-ID")
    assert ack.headers.get("From") == inv.headers.get("From")


def test_build_cancel_per_9_1() -> None:
    inv = request("INVITE", extra=ROUTES, cseq=3)
    cancel = build_cancel(inv)
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri
    assert [str(v) for v in cancel.vias] == [str(inv.vias[0])]
    assert cancel.headers.get_all("Route") == inv.headers.get_all("Route")
    assert cancel.headers.get("To") == inv.headers.get("To")  # no tag added
    assert cancel.cseq is not None and (cancel.cseq.seq, cancel.cseq.method) == (3, "CANCEL")


@pytest.mark.parametrize("missing", ["Via", "From", "Call-ID", "CSeq", "To"])
def test_builders_refuse_incomplete_requests(missing: str) -> None:
    inv = request("INVITE")
    resp = make_response(inv, 486, to_tag="t")
    inv.headers.remove(missing)
    if missing == "To":
        resp.headers.remove("To")
    with pytest.raises(SipBuildError):
        build_ack(inv, resp)
    if missing != "To":
        with pytest.raises(SipBuildError):
            build_cancel(inv)


def test_tu_misuse_is_refused() -> None:
    layer = TransactionLayer()
    with pytest.raises(SipBuildError):
        layer.send_request(request("ACK"), Flow("UDP", B), 0.0)
    with pytest.raises(SipBuildError):
        layer.send_request(request("OPTIONS", branch=""), Flow("UDP", B), 0.0)
    r = request("OPTIONS", branch="z9hG4bKdup")
    layer.send_request(r, Flow("UDP", B), 0.0)
    with pytest.raises(SipBuildError):
        layer.send_request(request("OPTIONS", branch="z9hG4bKdup"), Flow("UDP", B), 0.0)


def test_non_invite_provisionals_both_sides() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    tx, out = a.send_request(request("SUBSCRIBE"), Flow("UDP", B, A), 0.0)
    [rr] = [
        e
        for e in b.receive_bytes(out[0].data, Flow("UDP", A, B), 0.0)
        if isinstance(e, RequestReceived)
    ]  # type: ignore[union-attr]
    sent = b.respond(rr.transaction, make_response(rr.request, 183, to_tag="s"), 0.1)
    assert rr.transaction.state is NonInviteServerState.PROCEEDING
    # a retransmission in Proceeding gets the provisional again
    again = [
        e
        for e in b.receive_bytes(out[0].data, Flow("UDP", A, B), 0.2)
        if isinstance(e, SendMessage)
    ]  # type: ignore[union-attr]
    assert again[0].data == sent[0].data  # type: ignore[union-attr]
    got = a.receive_bytes(sent[0].data, Flow("UDP", B, A), 0.3)  # type: ignore[union-attr]
    assert isinstance(got[0], ResponseReceived) and tx.state is NonInviteClientState.PROCEEDING
    # transport error on the server in Proceeding: TU informed, transaction ends
    evs = b.transport_error(rr.transaction, "reset", 0.4)
    assert [type(e) for e in evs] == [TransportFailed, TransactionTerminated]
    assert "SUBSCRIBE" in repr(tx) and "SUBSCRIBE" in repr(rr.transaction)
    assert rr.transaction.branch == rr.request.via.branch  # type: ignore[union-attr]


def test_oversize_datagram_gets_513_and_find_invite_server() -> None:
    layer = TransactionLayer(TimerConfig(), max_message_size=600)
    big = request("MESSAGE", extra="X-Pad: " + "y" * 700 + "\r\n").encode()
    [s] = [e for e in layer.receive_bytes(big, Flow("UDP", A), 0.0) if isinstance(e, SendMessage)]
    assert s.message.status == 513  # type: ignore[union-attr]
    inv = request("INVITE", branch="z9hG4bKfind")
    layer.receive(inv, Flow("UDP", A), 0.0)
    cancel = request("CANCEL", branch="z9hG4bKfind")
    found = layer.find_invite_server(cancel)
    assert found is not None and found.request is inv
    assert layer.find_invite_server(request("CANCEL")) is None


def test_unparsable_header_needed_for_matching_is_answered() -> None:
    """A header the parser keeps raw but matching needs (the To of a 2543 request) fails
    late: the request is still answered with 400, an ACK is dropped."""
    layer = TransactionLayer()
    r = request("OPTIONS", branch="")
    r.headers.set("To", "<sip:bob@b.example>;tag=ok")
    r.headers.set("Via", "SIP/2.0/UDP 127.0.2.1:5060")
    evs = layer.receive(r, Flow("UDP", A), 0.0)
    assert any(isinstance(e, RequestReceived) for e in evs)
    bad = Request(
        "OPTIONS",
        "sip:b@b",
        [
            ("Via", "SIP/2.0/UDP 127.0.2.1:5060"),
            ("To", "<<<"),
            ("From", "<sip:a@a>;tag=1"),
            ("Call-ID", "x"),
            ("CSeq", "1 OPTIONS"),
        ],
    )
    out = [e for e in layer.receive(bad, Flow("UDP", A), 0.0) if isinstance(e, SendMessage)]
    assert out and out[0].message.status == 400  # type: ignore[union-attr]
