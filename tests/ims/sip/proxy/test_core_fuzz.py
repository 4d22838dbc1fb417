"""Hypothesis over the proxy core's inputs: whatever header values arrive (Route,
Record-Route, Max-Forwards, Proxy-Require, Via, To/From tags, Request-URI), the core returns
actions and never raises; every response it sends still carries the request's Vias."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ims.sip.errors import SipParseError
from ims.sip.message import Request, make_response
from ims.sip.parser import parse_message
from ims.sip.proxy.core import (
    ForwardRequest,
    ProxyConfig,
    ProxyCore,
    SendResponse,
    SendStateless,
)
from ims.sip.proxy.location import LocationRouter
from ims.sip.transport import Peer

ME = Peer(transport="udp", host="127.0.3.1", port=5070)
UAC = Peer(transport="udp", host="127.0.3.2", port=5061)

values = st.sampled_from(
    [
        "<sip:127.0.3.1:5070;lr>",
        "<sip:127.0.3.1:5070>",
        "<sip:127.0.3.9;lr>, <sip:127.0.3.1:5070;lr>",
        "<sip:a@127.0.3.8:5090>",
        "<tel:+123>",
        "<sips:x@127.0.3.7;lr;transport=tcp>",
        "<sip:[::1]:5060;lr>",
        "garbage <<",
        "",
    ]
)
uris = st.sampled_from(
    [
        "sip:bob@127.0.3.3:5062",
        "sip:127.0.3.1:5070;lr",
        "sip:127.0.3.1:5070",
        "sip:bob@example.com",
        "sip:example.com",
        "tel:+4930123",
        "sips:bob@127.0.3.3;maddr=127.0.3.4",
        "sip:bob@host.invalid;transport=tcp",
    ]
)
methods = st.sampled_from(["INVITE", "OPTIONS", "BYE", "ACK", "CANCEL", "REGISTER", "FOO"])


def build(method: str, uri: str, route: str, mf: str, preq: str, to_tag: bool) -> Request | None:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.3.2:5061;branch=z9hG4bKfz",
        f"Max-Forwards: {mf}",
        "From: <sip:a@example.com>;tag=1",
        "To: <sip:bob@example.com>" + (";tag=2" if to_tag else ""),
        "Call-ID: fuzz",
        f"CSeq: 1 {method}",
        "Contact: <sip:a@127.0.3.2:5061>",
    ]
    if route:
        lines.append(f"Route: {route}")
    if preq:
        lines.append(f"Proxy-Require: {preq}")
    try:
        msg = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    except SipParseError:
        return None
    return msg if isinstance(msg, Request) else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=methods,
    uri=uris,
    route=values,
    mf=st.sampled_from(["0", "1", "70", "255"]),
    preq=st.sampled_from(["", "foo", "sec-agree, bar"]),
    to_tag=st.booleans(),
    answer=st.sampled_from([100, 180, 200, 302, 401, 486, 503, 603]),
)
def test_core_never_raises(
    method: str, uri: str, route: str, mf: str, preq: str, to_tag: bool, answer: int
) -> None:
    req = build(method, uri, route, mf, preq, to_tag)
    if req is None:
        return
    core = ProxyCore(ProxyConfig(local=(ME,), domains=frozenset({"example.com"})), LocationRouter())
    cancelled = "inv" if method == "CANCEL" else None
    actions = core.receive_request(req, UAC, 0.0, transaction="t", cancelled=cancelled)
    for a in actions:
        if isinstance(a, SendResponse):
            assert a.response.vias, "a response without Via cannot be routed"
        elif isinstance(a, ForwardRequest):
            assert a.request.via is not None and a.request.via.sent_by == "127.0.3.1:5070"
            resp = make_response(a.request, answer, to_tag="z")
            for b in core.receive_response(resp, a.branch, 1.0):
                assert isinstance(b, SendResponse | SendStateless)
        else:
            assert isinstance(a, SendStateless)
    core.handle_timer(1000.0)
