"""RFC 3261 §16 proxy core, sans-I/O: every decision checked on real messages with explicit now."""

from __future__ import annotations

from collections.abc import Sequence

from ims.sip.message import Request, Response
from ims.sip.parser import parse_message
from ims.sip.proxy.core import (
    CancelBranch,
    ForwardRequest,
    ProxyConfig,
    ProxyCore,
    SendResponse,
    SendStateless,
)
from ims.sip.proxy.hooks import DROP, Direction, MessageEvent
from ims.sip.proxy.routing import (
    Defer,
    Forward,
    Respond,
    ResponseContext,
    RoutingContext,
    Target,
)
from ims.sip.transport import Peer
from ims.sip.uri import parse_uri

ME = Peer(transport="udp", host="127.0.3.1", port=5070)
ME_TCP = Peer(transport="tcp", host="127.0.3.1", port=5070)
UAC = Peer(transport="udp", host="127.0.3.2", port=5061)
RR = "<sip:127.0.3.1:5070;lr>"


def invite(
    uri: str = "sip:bob@127.0.3.3:5062",
    *,
    extra: str = "",
    method: str = "INVITE",
    mf: int | None = 70,
    branch: str = "z9hG4bKuac1",
) -> Request:
    mfl = "" if mf is None else f"Max-Forwards: {mf}\r\n"
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.3.2:5061;branch={branch}\r\n"
        f"{mfl}"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: c1@127.0.3.2\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:alice@127.0.3.2:5061>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def answer(
    req: Request, status: int, *, extra: Sequence[tuple[str, str]] = (), tag: str = "b1"
) -> Response:
    from ims.sip.message import make_response

    resp = make_response(req, status, to_tag=tag, headers=list(extra))
    # a UAS copies Record-Route into its responses (§12.1.1)
    for rr in req.headers.get_all("Record-Route"):
        resp.headers.add("Record-Route", rr)
    return resp


class StaticRouter:
    def __init__(self, *targets: str, parallel: bool = True, q: list[float] | None = None) -> None:
        self.targets = [
            Target(uri=parse_uri(t), q=(q[i] if q else None)) for i, t in enumerate(targets)
        ]
        self.parallel = parallel
        self.seen: list[RoutingContext] = []

    def route(self, request: Request, ctx: RoutingContext) -> Forward | Respond:
        self.seen.append(ctx)
        if not self.targets:
            return Forward(targets=[Target(uri=request.uri)])
        return Forward(targets=self.targets, parallel=self.parallel)


def core(router: object = None, **kw: object) -> ProxyCore:
    cfg = ProxyConfig(local=(ME, ME_TCP), domains=frozenset({"example.com"}), **kw)  # type: ignore[arg-type]
    return ProxyCore(cfg, router or StaticRouter())  # type: ignore[arg-type]


def only(actions: list, kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def test_invite_forwarded_with_100_rr_via_and_decremented_max_forwards() -> None:
    p = core()
    acts = p.receive_request(invite(), UAC, 0.0, transaction="stx")
    (trying,) = only(acts, SendResponse)
    assert trying.response.status == 100 and trying.transaction == "stx"
    (fwd,) = only(acts, ForwardRequest)
    req = fwd.request
    assert fwd.peer == Peer(transport="udp", host="127.0.3.3", port=5062)
    assert req.uri.encode() == "sip:bob@127.0.3.3:5062"
    assert req.max_forwards == 69
    assert req.headers.get("Record-Route") == RR
    assert req.via is not None and req.via.sent_by == "127.0.3.1:5070"
    assert req.via.branch == fwd.branch and fwd.branch.startswith("z9hG4bK")
    assert len(req.vias) == 2
    # 180 and 200 go straight up with our Via removed
    up = p.receive_response(answer(req, 180), fwd.branch, 0.1)
    (r180,) = only(up, SendResponse)
    assert r180.response.status == 180 and len(r180.response.vias) == 1
    assert r180.response.vias[0].branch == "z9hG4bKuac1"
    up = p.receive_response(answer(req, 200), fwd.branch, 0.2)
    (r200,) = only(up, SendResponse)
    assert r200.response.status == 200
    assert r200.response.headers.get("Record-Route") == RR
    assert p.open_contexts == 0 and p.open_branches == 0


def test_100_absorbed_and_missing_max_forwards_gets_70() -> None:
    p = core()
    acts = p.receive_request(invite(mf=None), UAC, 0.0, transaction="stx")
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.request.max_forwards == 70
    assert p.receive_response(answer(fwd.request, 100), fwd.branch, 0.1) == []


def test_max_forwards_zero_483_but_options_to_me_200() -> None:
    p = core()
    (a,) = p.receive_request(invite(mf=0), UAC, 0.0, transaction="t")
    assert isinstance(a, SendResponse) and a.response.status == 483
    assert a.response.to is not None and a.response.to.tag  # a final carries a To tag
    (a,) = p.receive_request(invite("sip:127.0.3.1:5070", method="OPTIONS", mf=0), UAC, 0.0)
    assert a.response.status == 200
    assert "INVITE" in (a.response.headers.get("Allow") or "")
    # OPTIONS to a user is forwarded (Max-Forwards > 0)
    acts = p.receive_request(invite("sip:bob@127.0.3.3:5062", method="OPTIONS"), UAC, 0.0)
    assert only(acts, ForwardRequest) and not only(acts, SendResponse)


def test_loop_detected_482_but_spiral_with_new_request_uri_allowed() -> None:
    p = core()
    acts = p.receive_request(invite(), UAC, 0.0, transaction="t1")
    (fwd,) = only(acts, ForwardRequest)
    # the request comes back to us unchanged (a loop): 482
    back = fwd.request.copy()
    back.headers.insert_first("Via", "SIP/2.0/UDP 127.0.3.9:5060;branch=z9hG4bKother")
    back.headers.pop_first("Record-Route")
    acts = p.receive_request(back, Peer(transport="udp", host="127.0.3.9", port=5060), 0.1)
    (a,) = acts
    assert isinstance(a, SendResponse) and a.response.status == 482
    # the same but with another Request-URI: a legitimate spiral, forwarded
    spiral = back.copy()
    spiral.uri = parse_uri("sip:bob@127.0.3.4:5062")
    acts = p.receive_request(spiral, Peer(transport="udp", host="127.0.3.9", port=5060), 0.1)
    assert only(acts, ForwardRequest)


def test_proxy_require_420_with_unsupported_and_supported_tag_passes() -> None:
    p = core()
    (a,) = p.receive_request(
        invite(extra="Proxy-Require: foo, sec-agree\r\nRequire: bar\r\n"), UAC, 0.0
    )
    assert a.response.status == 420
    assert a.response.headers.get("Unsupported") == "foo, sec-agree"
    p2 = core(supported=frozenset({"foo", "sec-agree"}))
    acts = p2.receive_request(invite(extra="Proxy-Require: foo, sec-agree\r\n"), UAC, 0.0)
    assert only(acts, ForwardRequest)


def test_bad_scheme_416_and_missing_headers_400() -> None:
    p = core()
    req = invite()
    req.uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    (a,) = p.receive_request(req, UAC, 0.0)
    assert a.response.status == 416
    req = invite()
    req.headers.remove("Call-ID")
    (a,) = p.receive_request(req, UAC, 0.0)
    assert a.response.status == 400


def test_own_route_removed_and_preloaded_route_is_next_hop() -> None:
    p = core()
    extra = "Route: <sip:127.0.3.1:5070;lr>, <sip:127.0.3.7:5080;lr>\r\n"
    acts = p.receive_request(invite(extra=extra), UAC, 0.0)
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.peer == Peer(transport="udp", host="127.0.3.7", port=5080)
    assert fwd.request.headers.get_list("Route") == ["<sip:127.0.3.7:5080;lr>"]
    assert fwd.request.uri.encode() == "sip:bob@127.0.3.3:5062"


def test_strict_router_downstream_step_6() -> None:
    p = core()
    extra = "Route: <sip:127.0.3.1:5070;lr>, <sip:127.0.3.8:5090>, <sip:127.0.3.9:5091;lr>\r\n"
    acts = p.receive_request(invite(extra=extra), UAC, 0.0)
    (fwd,) = only(acts, ForwardRequest)
    # the strict router's URI becomes the Request-URI, the old Request-URI goes last
    assert fwd.request.uri.encode() == "sip:127.0.3.8:5090"
    assert fwd.request.headers.get_list("Route") == [
        "<sip:127.0.3.9:5091;lr>",
        "<sip:bob@127.0.3.3:5062>",
    ]
    assert fwd.peer == Peer(transport="udp", host="127.0.3.8", port=5090)


def test_strict_router_upstream_16_4_restores_request_uri() -> None:
    # an upstream strict router put our Record-Route value in the Request-URI and the real
    # target last in Route
    p = core()
    req = invite(
        "sip:127.0.3.1:5070;lr",
        extra="Route: <sip:127.0.3.3:5062;lr>, <sip:bob@127.0.3.4:5064>\r\n",
    )
    acts = p.receive_request(req, UAC, 0.0)
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.request.uri.encode() == "sip:bob@127.0.3.4:5064"
    assert fwd.request.headers.get_list("Route") == ["<sip:127.0.3.3:5062;lr>"]
    assert fwd.peer == Peer(transport="udp", host="127.0.3.3", port=5062)


def test_record_route_rewritten_when_transports_differ() -> None:
    router = StaticRouter("sip:bob@127.0.3.3:5062;transport=tcp")
    p = core(router)
    acts = p.receive_request(invite(), UAC, 0.0, transaction="t")
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.peer.transport == "tcp"
    assert fwd.request.headers.get("Record-Route") == "<sip:127.0.3.1:5070;transport=tcp;lr>"
    assert fwd.request.via is not None and fwd.request.via.transport == "TCP"
    resp = answer(fwd.request, 200)
    resp.headers.add("Record-Route", "<sip:127.0.3.99;lr>")
    (up,) = only(p.receive_response(resp, fwd.branch, 0.1), SendResponse)
    # §16.7 step 9: the UAC sees the value facing it (UDP)
    assert up.response.headers.get_list("Record-Route") == [RR, "<sip:127.0.3.99;lr>"]


def test_no_record_route_for_in_dialog_requests() -> None:
    p = core()
    req = invite(method="BYE")
    req.headers.set("To", "<sip:bob@example.com>;tag=b1")
    (fwd,) = only(p.receive_request(req, UAC, 0.0), ForwardRequest)
    assert "Record-Route" not in fwd.request.headers


def test_forking_best_response_lowest_class_and_503_as_500() -> None:
    router = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062", "sip:b@127.0.3.5:5062")
    p = core(router)
    acts = p.receive_request(invite(), UAC, 0.0, transaction="t")
    f1, f2, f3 = only(acts, ForwardRequest)
    assert len({f1.branch, f2.branch, f3.branch}) == 3
    assert p.receive_response(answer(f1.request, 486), f1.branch, 0.1) == []
    assert p.receive_response(answer(f2.request, 503), f2.branch, 0.2) == []
    (a,) = p.receive_response(answer(f3.request, 404), f3.branch, 0.3)
    assert isinstance(a, SendResponse) and a.response.status in (404, 486)
    # only 5xx: 503 becomes 500
    router2 = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062")
    p2 = core(router2)
    f1, f2 = only(p2.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    p2.receive_response(answer(f1.request, 503), f1.branch, 0.1)
    (a,) = p2.receive_response(answer(f2.request, 504), f2.branch, 0.1)
    assert a.response.status == 500 or a.response.status == 504
    p3 = core(StaticRouter("sip:b@127.0.3.3:5062"))
    (f1,) = only(p3.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    (a,) = p3.receive_response(answer(f1.request, 503), f1.branch, 0.1)
    assert a.response.status == 500


def test_forking_6xx_cancels_others_and_wins() -> None:
    router = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062")
    p = core(router)
    f1, f2 = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    p.receive_response(answer(f2.request, 180), f2.branch, 0.1)
    acts = p.receive_response(answer(f1.request, 603), f1.branch, 0.2)
    assert acts == [CancelBranch(f2.branch)]
    (a,) = p.receive_response(answer(f2.request, 487), f2.branch, 0.3)
    assert a.response.status == 603


def test_forking_2xx_forwarded_at_once_others_cancelled_and_every_2xx_goes_up() -> None:
    router = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062")
    p = core(router)
    f1, f2 = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    p.receive_response(answer(f1.request, 180, tag="x1"), f1.branch, 0.1)
    p.receive_response(answer(f2.request, 180, tag="x2"), f2.branch, 0.1)
    acts = p.receive_response(answer(f1.request, 200, tag="x1"), f1.branch, 0.2)
    assert [type(a) for a in acts] == [SendResponse, CancelBranch]
    assert acts[1] == CancelBranch(f2.branch)
    # the other fork answered 200 too before the CANCEL arrived: forwarded as well (§16.7)
    acts = p.receive_response(answer(f2.request, 200, tag="x2"), f2.branch, 0.3)
    (s,) = acts
    assert isinstance(s, SendStateless) and s.message.status == 200  # type: ignore[union-attr]
    assert s.peer == Peer(transport="udp", host="127.0.3.2", port=5061)
    assert p.open_contexts == 0


def test_auth_challenges_of_all_branches_are_merged() -> None:
    router = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062")
    p = core(router)
    f1, f2 = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    c1 = ("WWW-Authenticate", 'Digest realm="a", nonce="1"')
    c2 = ("Proxy-Authenticate", 'Digest realm="b", nonce="2"')
    p.receive_response(answer(f1.request, 401, extra=[c1]), f1.branch, 0.1)
    (a,) = p.receive_response(answer(f2.request, 407, extra=[c2]), f2.branch, 0.2)
    r = a.response
    assert r.status in (401, 407)
    assert r.headers.get_all("WWW-Authenticate") == [c1[1]]
    assert r.headers.get_all("Proxy-Authenticate") == [c2[1]]


def test_sequential_search_in_q_order() -> None:
    router = StaticRouter(
        "sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062", parallel=False, q=[0.5, 1.0]
    )
    p = core(router)
    (f1,) = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    assert f1.peer.host == "127.0.3.4"  # highest q first
    (f2,) = only(p.receive_response(answer(f1.request, 480), f1.branch, 0.1), ForwardRequest)
    assert f2.peer.host == "127.0.3.3"
    (a,) = p.receive_response(answer(f2.request, 486), f2.branch, 0.2)
    assert a.response.status in (480, 486)


def test_cancel_matched_200_and_branches_cancelled_then_487_forwarded() -> None:
    router = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062")
    p = core(router)
    inv = invite()
    f1, f2 = only(p.receive_request(inv, UAC, 0.0, transaction="inv-tx"), ForwardRequest)
    p.receive_response(answer(f1.request, 180), f1.branch, 0.1)
    cancel = invite(method="CANCEL")
    acts = p.receive_request(cancel, UAC, 0.5, transaction="can-tx", cancelled="inv-tx")
    assert isinstance(acts[0], SendResponse) and acts[0].response.status == 200
    assert acts[0].transaction == "can-tx"
    assert set(acts[1:]) == {CancelBranch(f1.branch), CancelBranch(f2.branch)}
    assert p.receive_response(answer(f1.request, 487), f1.branch, 0.6) == []
    (a,) = p.receive_response(answer(f2.request, 487), f2.branch, 0.6)
    assert a.response.status == 487 and a.transaction == "inv-tx"


def test_unmatched_cancel_forwarded_statelessly() -> None:
    p = core()
    (a,) = p.receive_request(invite(method="CANCEL"), UAC, 0.0, transaction="c", cancelled=None)
    assert isinstance(a, SendStateless)
    assert a.peer.host == "127.0.3.3" and a.message.via.sent_by == "127.0.3.1:5070"  # type: ignore[union-attr]


def test_ack_for_2xx_forwarded_statelessly_with_stable_branch() -> None:
    p = core()
    ack = invite("sip:bob@127.0.3.3:5062", method="ACK", extra=f"Route: {RR}\r\n")
    ack.headers.set("To", "<sip:bob@example.com>;tag=b1")
    (a,) = p.receive_request(ack.copy(), UAC, 0.0)
    (b,) = p.receive_request(ack.copy(), UAC, 0.1)
    assert isinstance(a, SendStateless) and isinstance(b, SendStateless)
    assert a.message.via.branch == b.message.via.branch  # type: ignore[union-attr]
    assert "Route" not in a.message.headers
    assert a.peer == Peer(transport="udp", host="127.0.3.3", port=5062)
    # ACK with Max-Forwards 0 is silently dropped
    ack0 = invite(method="ACK", mf=0)
    assert p.receive_request(ack0, UAC, 0.0) == []


def test_timer_c_cancels_proceeding_branch_and_408_for_silent_one() -> None:
    router = StaticRouter("sip:b@127.0.3.3:5062", "sip:b@127.0.3.4:5062")
    p = core(router, timer_c=10.0)
    f1, f2 = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    assert p.get_timer() == 10.0
    p.receive_response(answer(f1.request, 180), f1.branch, 5.0)  # resets C for f1 to 15
    acts = p.handle_timer(10.0)
    assert acts == []  # f2 got 408 internally, f1 still running
    assert p.get_timer() == 15.0
    assert p.handle_timer(15.0) == [CancelBranch(f1.branch)]
    (a,) = p.receive_response(answer(f1.request, 487), f1.branch, 15.1)
    assert a.response.status in (408, 487)  # both 4xx: the RFC lets the proxy pick either
    assert p.open_contexts == 0


def test_transaction_timeout_gives_408_upstream() -> None:
    p = core(StaticRouter("sip:b@127.0.3.3:5062"))
    (f,) = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    (a,) = p.branch_failed(f.branch, 408, 32.0)
    assert a.response.status == 408 and len(a.response.vias) == 1


def test_stray_response_forwarded_only_when_top_via_is_ours() -> None:
    p = core()
    (f,) = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    resp = answer(f.request, 200)
    (a,) = p.receive_stray_response(resp, 1.0)
    assert isinstance(a, SendStateless) and a.peer.host == "127.0.3.2"
    bcast = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.3.1:5070;branch=z9hG4bKx\r\n"
        b"Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\r\n"
        b"Call-ID: b\r\nCSeq: 35 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(bcast, Response)
    assert p.receive_stray_response(bcast, 1.0) == []
    foreign = answer(invite(), 200)
    assert p.receive_stray_response(foreign, 1.0) == []


def test_router_respond_and_context() -> None:
    class R:
        def route(self, request: Request, ctx: RoutingContext) -> Respond:
            assert ctx.source == UAC and not ctx.has_route
            assert ctx.is_our_domain(parse_uri("sip:x@example.com"))
            assert ctx.is_local(parse_uri("sip:127.0.3.1:5070"))
            return Respond(status=404, headers=[("X-Why", "nobody")])

    p = core(R())
    (a,) = p.receive_request(invite(), UAC, 0.0)
    assert a.response.status == 404 and a.response.headers.get("X-Why") == "nobody"


def test_hooks_observe_rewrite_and_drop() -> None:
    p = core()
    seen: list[tuple[Direction, str, tuple[str, int]]] = []

    def observe(ev: MessageEvent) -> None:
        seen.append((ev.direction, ev.element, ev.peer))

    def rewrite(ev: MessageEvent) -> object:
        if ev.direction is Direction.OUT and isinstance(ev.message, Request):
            m = ev.message.copy()
            m.headers.add("X-Tapped", "yes")
            return m
        return None

    p.hooks.add(observe)
    p.hooks.add(rewrite)
    acts = p.receive_request(invite(), UAC, 0.0, transaction="t")
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.request.headers.get("X-Tapped") == "yes"
    assert seen[0] == (Direction.IN, "proxy", ("127.0.3.2", 5061))
    assert (Direction.OUT, "proxy", ("127.0.3.3", 5062)) in seen
    remove = p.hooks.add(lambda ev: DROP if isinstance(ev.message, Response) else None)
    assert p.receive_response(answer(fwd.request, 180), fwd.branch, 0.1) == []
    remove()
    (a,) = p.receive_response(answer(fwd.request, 180), fwd.branch, 0.1)
    assert a.response.status == 180


class DeferringRouter:
    def __init__(self) -> None:
        self.keys: list[int] = []

    def route(self, request: Request, ctx: RoutingContext) -> Defer:
        self.keys.append(ctx.key)
        return Defer()


def test_deferred_decision_forward_later() -> None:
    router = DeferringRouter()
    p = core(router)
    acts = p.receive_request(invite(), UAC, 0.0, transaction="t")
    (trying,) = acts  # only the 100 Trying while the policy thinks
    assert isinstance(trying, SendResponse) and trying.response.status == 100
    assert p.deferred == 1 and p.open_contexts == 1
    (key,) = router.keys
    acts = p.resume(key, Forward(targets=[Target(uri=parse_uri("sip:b@127.0.3.3:5062"))]), 1.0)
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.request.headers.get("Record-Route") == RR and p.deferred == 0
    (a,) = p.receive_response(answer(fwd.request, 486), fwd.branch, 1.1)
    assert a.response.status == 486 and a.transaction == "t"
    assert p.resume(key, Respond(status=500), 2.0) == []  # unknown/used key: nothing


def test_deferred_decision_respond_later_and_cancel_meanwhile() -> None:
    router = DeferringRouter()
    p = core(router)
    p.receive_request(invite(), UAC, 0.0, transaction="t1")
    (a,) = p.resume(router.keys[0], Respond(status=404), 0.5)
    assert a.response.status == 404 and a.transaction == "t1" and p.open_contexts == 0
    # CANCEL while the decision is pending: 200 to the CANCEL, 487 to the INVITE, resume ignored
    p.receive_request(invite(branch="z9hG4bKuac2"), UAC, 1.0, transaction="t2")
    acts = p.receive_request(
        invite(method="CANCEL", branch="z9hG4bKuac2"), UAC, 1.2, transaction="c2", cancelled="t2"
    )
    assert [(x.transaction, x.response.status) for x in acts] == [("c2", 200), ("t2", 487)]  # type: ignore[union-attr]
    target = Forward(targets=[Target(uri=parse_uri("sip:b@127.0.3.3:5062"))])
    assert p.resume(router.keys[1], target, 1.5) == []
    assert p.deferred == 0 and p.open_contexts == 0


def test_own_maddr_is_stripped_16_4() -> None:
    # maddr names us, on our port and the transport the request came in on: removed, and the
    # request is routed by the rest of the Request-URI (here: forwarded by our router)
    router = StaticRouter()
    p = core(router)
    acts = p.receive_request(
        invite("sip:bob@elsewhere.test:5070;maddr=127.0.3.1;transport=udp"), UAC, 0.0
    )
    (fwd,) = only(acts, ForwardRequest)
    assert fwd.request.uri.encode() == "sip:bob@elsewhere.test"
    # another maddr stays
    acts = p.receive_request(invite("sip:bob@elsewhere.test;maddr=127.0.3.7"), UAC, 0.0)
    (fwd,) = only(acts, ForwardRequest)
    assert "maddr=127.0.3.7" in fwd.request.uri.encode()
    assert fwd.peer.host == "127.0.3.7"


def test_response_processor_holds_and_releases_in_order() -> None:
    p = core()
    held: list[ResponseContext] = []

    def process(rc: ResponseContext) -> Response | Defer | None:
        if rc.response.status in (183, 200) and rc.response.headers.get("X-Done") is None:
            held.append(rc)
            return Defer()  # e.g. anchor the SDP answer first
        return None

    p.response_processor = process
    (fwd,) = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    assert p.receive_response(answer(fwd.request, 183), fwd.branch, 0.1) == []
    # a 180 and the 200 arriving meanwhile wait behind the held 183 (order is kept)
    assert p.receive_response(answer(fwd.request, 180), fwd.branch, 0.2) == []
    assert p.receive_response(answer(fwd.request, 200), fwd.branch, 0.3) == []
    assert p.holding == 1 and len(held) == 1
    rewritten = held[0].response.copy()
    rewritten.headers.add("X-Done", "anchored")
    acts = p.release(held[0].key, rewritten, 0.4)
    # 183 (rewritten) and 180 go; the 200 is held again by the processor
    assert [(a.response.status, a.response.headers.get("X-Done")) for a in acts] == [  # type: ignore[union-attr]
        (183, "anchored"),
        (180, None),
    ]
    assert len(held) == 2 and held[1].response.status == 200 and p.holding == 1
    (a,) = p.release(held[1].key, None, 0.5)  # sent as held
    assert isinstance(a, SendResponse) and a.response.status == 200 and a.transaction == "t"
    assert p.holding == 0 and p.release(held[1].key, None, 0.6) == []


def test_register_to_our_registrar_with_max_forwards_zero_is_processed() -> None:
    from ims.sip.proxy.location import LocationRouter

    p = ProxyCore(ProxyConfig(local=(ME,), domains=frozenset({"example.com"})), LocationRouter())
    reg = invite("sip:example.com", method="REGISTER", mf=0)
    reg.headers.set("To", "<sip:alice@example.com>")
    (a,) = p.receive_request(reg, UAC, 0.0, transaction="t")
    assert a.response.status == 200  # the registrar answered; not 483
    # a REGISTER for another domain with Max-Forwards 0 would have to be forwarded: 483
    other = invite("sip:elsewhere.test", method="REGISTER", mf=0)
    (a,) = p.receive_request(other, UAC, 0.0, transaction="t2")
    assert a.response.status == 483


# -- header/body rewriting in Forward, rewriting responses, stateless routing --------------
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.3.2\r\ns=-\r\nc=IN IP4 127.0.3.2\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ANCHORED = SDP.replace(b"127.0.3.2", b"127.0.3.9").replace(b"4000", b"40000")


class RewritingRouter:
    def __init__(self, decision: Forward) -> None:
        self.decision = decision

    def route(self, request: Request, ctx: RoutingContext) -> Forward:
        return self.decision


def test_forward_removes_replaces_headers_and_body_on_the_copy_only() -> None:
    service_route = ("<sip:orig@scscf.home-a.lab;lr>",)
    dec = Forward(
        targets=[Target(uri=parse_uri("sip:bob@127.0.3.3:5062"), route=service_route)],
        remove_headers=("P-Asserted-Identity", "Route", "Via", "Max-Forwards"),
        set_headers=[("P-Charging-Vector", "icid-value=abc"), ("Subject", "anchored")],
        body=ANCHORED,
        content_type="application/sdp",
        headers=[("P-Visited-Network-ID", "visited.lab")],
    )
    p = core(RewritingRouter(dec))
    req = invite(
        extra=(
            "Route: <sip:127.0.3.1:5070;lr>, <sip:old@127.0.3.7;lr>\r\n"
            "P-Asserted-Identity: <sip:alice@example.com>\r\n"
            "P-Asserted-Identity: <tel:+15551234>\r\n"
            "P-Charging-Vector: icid-value=old\r\nP-Charging-Vector: icid-value=old2\r\n"
            "Content-Type: text/plain\r\n"
        )
    )
    req.body = SDP
    (fwd,) = only(p.receive_request(req, UAC, 0.0, transaction="t"), ForwardRequest)
    out = fwd.request
    h = out.headers
    assert "P-Asserted-Identity" not in h
    assert h.get_all("P-Charging-Vector") == ["icid-value=abc"]
    assert h.get("Subject") == "anchored"
    assert h.get_list("Route") == list(service_route)  # the Route set replaced
    assert h.get("P-Visited-Network-ID") == "visited.lab"
    assert len(out.vias) == 2 and out.max_forwards == 69  # the core's headers untouched
    assert out.body == ANCHORED and h.get("Content-Type") == "application/sdp"
    wire = parse_message(out.encode())
    assert wire.body == ANCHORED
    assert wire.headers.get("Content-Length") == str(len(ANCHORED))
    # the next hop follows the new Route set (scscf.home-a.lab, resolved by the adapter)
    assert fwd.peer.host == "scscf.home-a.lab"
    # the request as received (ResponseContext.request) is unchanged
    assert req.body == SDP and len(req.headers.get_all("P-Asserted-Identity")) == 2


def test_forward_empty_body_removes_content_type() -> None:
    dec = Forward(targets=[Target(uri=parse_uri("sip:bob@127.0.3.3:5062"))], body=b"")
    p = core(RewritingRouter(dec))
    req = invite(extra="Content-Type: application/sdp\r\n")
    req.body = SDP
    (fwd,) = only(p.receive_request(req, UAC, 0.0, transaction="t"), ForwardRequest)
    assert fwd.request.body == b"" and "Content-Type" not in fwd.request.headers
    assert parse_message(fwd.request.encode()).headers.get("Content-Length") == "0"


def test_response_rewritten_by_processor_and_held_response_rewritten_on_release() -> None:
    p = core()
    held: list[ResponseContext] = []

    def process(rc: ResponseContext) -> Response | Defer | None:
        if rc.response.status == 180:  # synchronous rewrite: strip a header
            return rc.rewrite(remove_headers=("P-Asserted-Identity",))
        held.append(rc)
        return Defer()

    p.response_processor = process
    (fwd,) = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
    r180 = answer(fwd.request, 180, extra=[("P-Asserted-Identity", "<sip:bob@example.com>")])
    (a,) = p.receive_response(r180, fwd.branch, 0.1)
    assert isinstance(a, SendResponse) and "P-Asserted-Identity" not in a.response.headers
    r200 = answer(fwd.request, 200, extra=[("Content-Type", "application/sdp")])
    r200.body = SDP
    assert p.receive_response(r200, fwd.branch, 0.2) == []
    (rc,) = held
    new = rc.rewrite(body=ANCHORED, content_type="application/sdp", add_headers=[("X-A", "1")])
    assert rc.response.body == SDP  # rewrite gives a copy
    (b,) = p.release(rc.key, new, 0.3)
    assert isinstance(b, SendResponse) and b.response.body == ANCHORED
    assert b.response.headers.get("X-A") == "1"
    wire = parse_message(b.response.encode())
    assert wire.headers.get("Content-Length") == str(len(ANCHORED))
    assert len(wire.vias) == 1  # our Via stays removed


def test_rewrite_message_helper() -> None:
    from ims.sip.proxy import rewrite_message

    req = invite(extra="P-Preferred-Identity: <sip:alice@example.com>\r\n")
    out = rewrite_message(
        req,
        remove_headers=("P-Preferred-Identity",),
        add_headers=[("P-Asserted-Identity", "<sip:alice@example.com>")],
        set_headers=[("Via", "SIP/2.0/UDP 1.2.3.4")],  # ignored: the core's header
    )
    assert "P-Preferred-Identity" in req.headers  # the original is unchanged
    assert "P-Preferred-Identity" not in out.headers
    assert out.headers.get("P-Asserted-Identity") == "<sip:alice@example.com>"
    assert out.vias == req.vias


def test_stateless_router_chooses_the_ack_next_hop_and_rewrites() -> None:
    p = core()
    ue_flow = Peer(transport="tcp", host="127.0.3.4", port=40001)
    seen: list[tuple[str, RoutingContext]] = []

    def stateless(request: Request, ctx: RoutingContext) -> Target | Forward | None:
        seen.append((request.method, ctx))
        if request.method != "ACK":
            return None  # default: Route / Request-URI
        return Forward(
            targets=[Target(uri=request.uri, next_hop=ue_flow)],
            remove_headers=("P-Asserted-Identity",),
        )

    p.stateless_router = stateless
    ack = invite(
        "sip:bob@127.0.3.4:5062",
        method="ACK",
        extra=f"Route: {RR}\r\nP-Asserted-Identity: <sip:a@example.com>\r\n",
    )
    ack.headers.set("To", "<sip:bob@example.com>;tag=b1")
    (a,) = p.receive_request(ack, UAC, 0.0)
    assert isinstance(a, SendStateless) and a.peer == ue_flow
    assert a.message.via.transport == "TCP"  # type: ignore[union-attr]
    assert "P-Asserted-Identity" not in a.message.headers and "Route" not in a.message.headers
    assert seen[0][0] == "ACK" and seen[0][1].source == UAC and not seen[0][1].has_route
    # a Target alone works too; None keeps the default (unmatched CANCEL to the Request-URI)
    (c,) = p.receive_request(invite(method="CANCEL"), UAC, 0.1, transaction="c", cancelled=None)
    assert isinstance(c, SendStateless) and c.peer.host == "127.0.3.3"
    p.stateless_router = lambda r, ctx: Target(uri=parse_uri("sip:x@127.0.3.5:5099"))
    (d,) = p.receive_request(invite(method="CANCEL"), UAC, 0.2, transaction="c", cancelled=None)
    assert isinstance(d, SendStateless) and d.peer.addr == ("127.0.3.5", 5099)
    assert d.message.uri.encode() == "sip:x@127.0.3.5:5099"  # type: ignore[union-attr]


def test_own_routes_reach_the_router_and_response_context_has_the_source() -> None:
    seen: list[RoutingContext] = []

    class Recording:
        def route(self, request: Request, ctx: RoutingContext) -> Forward:
            seen.append(ctx)
            return Forward(targets=[Target(uri=request.uri)])

    p = core(Recording())
    sources: list[Peer | None] = []
    p.response_processor = lambda rc: sources.append(rc.source)  # type: ignore[func-returns-value]
    req = invite(extra="Route: <sip:orig@127.0.3.1:5070;lr>, <sip:127.0.3.8;lr>\r\n")
    (fwd,) = only(p.receive_request(req, UAC, 0.0, transaction="t"), ForwardRequest)
    (ctx,) = seen
    assert ctx.own_routes == ("<sip:orig@127.0.3.1:5070;lr>",) and ctx.has_route
    (uri,) = ctx.own_route_uris
    assert uri.user == "orig"  # type: ignore[union-attr]
    assert fwd.peer.host == "127.0.3.8"
    p.receive_response(answer(fwd.request, 180), fwd.branch, 0.1)
    assert sources == [UAC]
    # the verbatim Record-Route fast path reports the value too
    p.receive_request(invite(extra=f"Route: {RR}\r\n", branch="z9hG4bKb2"), UAC, 0.2)
    assert seen[1].own_routes == (RR,) and not seen[1].has_route


def test_a_raising_router_answers_500_or_the_status_it_carries() -> None:
    class Failing:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def route(self, request: Request, ctx: RoutingContext) -> Forward:
            raise self.exc

    class Forbidden(Exception):
        status = 403

    for exc, status in ((RuntimeError("db down"), 500), (Forbidden(), 403)):
        p = core(Failing(exc))
        (a,) = p.receive_request(invite(method="MESSAGE"), UAC, 0.0, transaction="t")
        assert isinstance(a, SendResponse) and a.response.status == status
        assert p.open_contexts == 0


def test_stateless_response_over_tcp_goes_back_on_the_source_connection() -> None:
    # §18.2.2: a forked INVITE's second 2xx is sent statelessly; over TCP/TLS it must use the
    # UAC's connection (its source address), not the Via sent-by where nobody listens
    p = core(StaticRouter("sip:b1@127.0.3.3:5062", "sip:b2@127.0.3.5:5062"))
    src = Peer(transport="tcp", host="127.0.3.2", port=40123)
    req = invite()
    req.headers.set("Via", "SIP/2.0/TCP 127.0.3.2:5061;branch=z9hG4bKtcp1")
    f1, f2 = only(p.receive_request(req, src, 0.0, transaction="t"), ForwardRequest)
    (a,) = only(p.receive_response(answer(f1.request, 200), f1.branch, 0.1), SendResponse)
    acts = p.receive_response(answer(f2.request, 200, tag="b2"), f2.branch, 0.2)
    (b,) = only(acts, SendStateless)
    assert b.peer == src and b.message.status == 200  # type: ignore[union-attr]


# --- what the IMS elements need of the core (issue 15) -------------------------------------
def test_waiting_says_whether_a_deferred_request_can_still_be_resumed() -> None:
    """An element whose asynchronous work (a media-anchor round trip) ends after a CANCEL must
    learn that its request is gone (to free what it allocated): ``waiting(key)``."""
    router = DeferringRouter()
    p = core(router)
    p.receive_request(invite(), UAC, 0.0, transaction="t1")
    (key,) = router.keys
    assert p.waiting(key)
    p.receive_request(invite(method="CANCEL"), UAC, 0.5, transaction="c1", cancelled="t1")
    assert not p.waiting(key) and not p.waiting(key + 1000)


def test_processor_sees_now_and_may_drop_a_2xx_copy() -> None:
    """A response processor gets the core's clock (``rc.now``) and may hold a copy back
    (``DROP``): the P-CSCF drops a 2xx whose answer it cannot anchor (fail closed) rather than
    letting an unanchored SDP pass. Here: a forked INVITE, the second fork's 2xx (RFC 3261
    §16.7 step 10 forwards every 2xx) is dropped by the processor."""
    p = core(StaticRouter("sip:bob@127.0.3.3:5062", "sip:bob@127.0.3.4:5062"))
    seen: list[tuple[int, float]] = []

    def process(rc: ResponseContext) -> Response | Defer | object | None:
        seen.append((rc.response.status, rc.now))
        return DROP if len(seen) > 1 else None

    p.response_processor = process  # type: ignore[assignment]
    acts = p.receive_request(invite(), UAC, 0.0, transaction="t")
    one, two = only(acts, ForwardRequest)
    (ok,) = only(p.receive_response(answer(one.request, 200), one.branch, 2.0), SendResponse)
    assert ok.response.status == 200
    late = p.receive_response(answer(two.request, 200, tag="b2"), two.branch, 2.5)
    assert only(late, SendResponse) == [] and only(late, SendStateless) == []
    assert seen == [(200, 2.0), (200, 2.5)]


def test_stray_processor_replaces_or_drops_a_stray_2xx_and_hooks_see_it() -> None:
    p = core()
    observed: list[Direction] = []
    p.hooks.add(lambda ev: observed.append(ev.direction))
    req = invite()
    req.headers.insert_first("Via", "SIP/2.0/UDP 127.0.3.1:5070;branch=z9hG4bKgone.1")
    stray = answer(req, 200)
    calls: list[float] = []

    def stray_processor(resp: Response, now: float) -> Response | object | None:
        calls.append(now)
        if len(calls) == 1:
            out = resp.copy()
            out.headers.set("X-Rewritten", "yes")
            return out
        return DROP

    p.stray_processor = stray_processor  # type: ignore[assignment]
    (sent,) = p.receive_stray_response(stray, 3.0, source=UAC)
    assert isinstance(sent, SendStateless)
    assert sent.message.headers.get("X-Rewritten") == "yes" and len(sent.message.vias) == 1
    assert p.receive_stray_response(stray, 3.5, source=UAC) == []
    assert calls == [3.0, 3.5]
    assert observed[:2] == [Direction.IN, Direction.OUT] and observed[2] == Direction.IN


def test_asserted_identity_removed_from_responses_of_an_untrusted_next_hop() -> None:
    """RFC 3325 §5: "If the proxy received the message from an element that it does not
    trust and there is a P-Asserted-Identity header present ... the proxy MUST replace that
    SIP or SIPS URI with a single SIP or SIPS URI or remove this header field" -- a response
    is a message too."""
    from ims.sip.trust import TrustPolicy

    trusted = Peer(transport="udp", host="127.0.3.3", port=5062)
    for next_hop, kept in (
        (trusted, True),
        (Peer(transport="udp", host="127.0.3.4", port=5062), False),
    ):
        p = core(StaticRouter(f"sip:bob@{next_hop.host}:{next_hop.port}"),
                 trust=TrustPolicy.of(trusted=[trusted.addr]))  # fmt: skip
        (fwd,) = only(p.receive_request(invite(), UAC, 0.0, transaction="t"), ForwardRequest)
        ok = answer(fwd.request, 200, extra=[("P-Asserted-Identity", "<sip:bob@example.com>")])
        (up,) = p.receive_response(ok, fwd.branch, 0.1, source=next_hop)
        assert ("P-Asserted-Identity" in up.response.headers) is kept


def test_stateless_router_may_refuse_to_relay_an_ack() -> None:
    """An element not entitled to relay an ACK drops it (an ACK is never answered): the
    stateless router returns a Forward with no targets."""
    p = core()
    p.stateless_router = lambda request, ctx: Forward(targets=())
    ack = invite(method="ACK")
    ack.headers.set("To", "<sip:bob@example.com>;tag=b1")
    assert p.receive_request(ack, UAC, 0.0) == []
    p.stateless_router = None
    (sent,) = p.receive_request(invite(method="ACK"), UAC, 0.0)
    assert isinstance(sent, SendStateless)


def test_worker_sent_by_names_its_own_port_record_route_the_shared_address() -> None:
    """A worker sharing the listen address (``ProxyConfig.sent_by``): its Via names its own
    port, so the responses (RFC 3261 §18.2.2: "the response MUST be sent to the address
    indicated by the 'sent-by' value") reach it; Record-Route names the shared address
    (in-dialog requests may go to any worker); a stray response with that Via is ours."""
    own = Peer(transport="udp", host="127.0.3.1", port=40001)
    p = core(sent_by=(own,))
    (fwd,) = only(p.receive_request(invite(), UAC, 0.0, transaction="stx"), ForwardRequest)
    assert fwd.request.via is not None and fwd.request.via.sent_by == "127.0.3.1:40001"
    assert fwd.request.headers.get("Record-Route") == RR
    (r180,) = only(p.receive_response(answer(fwd.request, 180), fwd.branch, 0.1), SendResponse)
    assert r180.response.vias[0].branch == "z9hG4bKuac1"
    # a 2xx retransmission after the transaction: forwarded statelessly, our Via removed
    (stray,) = only(p.receive_stray_response(answer(fwd.request, 200), 40.0), SendStateless)
    assert [v.branch for v in stray.message.vias] == ["z9hG4bKuac1"]
