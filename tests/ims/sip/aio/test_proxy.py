"""ProxyServer on real UDP sockets (127.0.3.x, port 0), transaction layer included: a call,
a CANCEL, a timeout (408 after Timer B with a short T1) and the hooks' peers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from ims.sip.aio.proxy import ProxyServer
from ims.sip.message import Request, Response, make_response
from ims.sip.parser import parse_message
from ims.sip.proxy.core import ProxyConfig, ProxyCore
from ims.sip.proxy.hooks import Direction, MessageEvent
from ims.sip.proxy.location import LocationRouter
from ims.sip.proxy.routing import Defer, Forward, RoutingContext, Target
from ims.sip.transaction import TimerConfig
from ims.sip.transport import Peer

PROXY_IP, UAC_IP, UAS_IP = "127.0.3.1", "127.0.3.2", "127.0.3.3"


class Endpoint:
    """A bare UDP socket speaking SIP by hand."""

    def __init__(self, ip: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()

    async def recv(self, timeout: float = 3.0) -> Request | Response:
        loop = asyncio.get_running_loop()
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 65535), timeout)
        return parse_message(data)

    async def recv_until(self, pred: object, timeout: float = 3.0) -> Request | Response:
        async with asyncio.timeout(timeout):
            while True:
                m = await self.recv(timeout)
                if pred(m):  # type: ignore[operator]
                    return m

    def send(self, msg: Request | Response | bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(msg if isinstance(msg, bytes) else msg.encode(), to)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ProxyServer]:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((PROXY_IP, 0))
    port = probe.getsockname()[1]
    probe.close()
    core = ProxyCore(
        ProxyConfig(local=(Peer(transport="udp", host=PROXY_IP, port=port),)), LocationRouter()
    )
    server = ProxyServer(core, timers=TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.2))
    await server.listen("udp", PROXY_IP, port)
    yield server
    server.close()


def invite(uac: Endpoint, uas: Endpoint, proxy: ProxyServer, call: str) -> Request:
    port = proxy.core.config.local[0].port
    text = (
        f"INVITE sip:bob@{uas.addr[0]}:{uas.addr[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {uac.addr[0]}:{uac.addr[1]};branch=z9hG4bK{call};rport\r\n"
        f"Route: <sip:{PROXY_IP}:{port};lr>\r\nMax-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag=a-{call}\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: {call}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{uac.addr[0]}:{uac.addr[1]}>\r\nContent-Length: 0\r\n\r\n"
    )
    req = parse_message(text.encode())
    assert isinstance(req, Request)
    return req


def answer(req: Request, status: int) -> Response:
    resp = make_response(req, status, to_tag="b1")
    for rr in req.headers.get_all("Record-Route"):
        resp.headers.add("Record-Route", rr)
    resp.headers.add("Contact", "<sip:bob@127.0.3.3>")
    return resp


def proxy_addr(proxy: ProxyServer) -> tuple[str, int]:
    return PROXY_IP, proxy.core.config.local[0].port


async def test_call_through_proxy_with_record_route_and_hooks(proxy: ProxyServer) -> None:
    seen: list[tuple[Direction, tuple[str, int], str]] = []

    def tap(ev: MessageEvent) -> None:
        m = ev.message
        seen.append((ev.direction, ev.peer, m.method if isinstance(m, Request) else str(m.status)))

    proxy.core.hooks.add(tap)
    uac, uas = Endpoint(UAC_IP), Endpoint(UAS_IP)
    try:
        uac.send(invite(uac, uas, proxy, "call1"), proxy_addr(proxy))
        got = await uas.recv()
        assert isinstance(got, Request) and got.method == "INVITE"
        assert got.headers.get("Record-Route") == f"<sip:{PROXY_IP}:{proxy_addr(proxy)[1]};lr>"
        assert "Route" not in got.headers and got.max_forwards == 69
        uas.send(answer(got, 180), proxy_addr(proxy))
        uas.send(answer(got, 200), proxy_addr(proxy))
        statuses = []
        while 200 not in statuses:
            r = await uac.recv()
            assert isinstance(r, Response)
            statuses.append(r.status)
        assert statuses[0] == 100 and 180 in statuses
        assert r.headers.get("Record-Route") is not None and len(r.vias) == 1
        # ACK for the 2xx, loose-routed through the proxy, forwarded statelessly
        ack = (
            f"ACK sip:bob@{uas.addr[0]}:{uas.addr[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {uac.addr[0]}:{uac.addr[1]};branch=z9hG4bKack1\r\n"
            f"Route: {r.headers.get('Record-Route')}\r\nMax-Forwards: 70\r\n"
            "From: <sip:alice@example.com>;tag=a-call1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
            "Call-ID: call1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        uac.send(ack, proxy_addr(proxy))
        got_ack = await uas.recv_until(lambda m: isinstance(m, Request) and m.method == "ACK")
        assert isinstance(got_ack, Request) and len(got_ack.vias) == 2
    finally:
        uac.close()
        uas.close()
    assert (Direction.IN, uac.addr, "INVITE") in seen
    assert (Direction.OUT, uas.addr, "INVITE") in seen
    assert (Direction.OUT, uac.addr, "200") in seen


async def test_cancel_reaches_the_callee_and_487_comes_back(proxy: ProxyServer) -> None:
    uac, uas = Endpoint(UAC_IP), Endpoint(UAS_IP)
    try:
        inv = invite(uac, uas, proxy, "call2")
        uac.send(inv, proxy_addr(proxy))
        got = await uas.recv()
        assert isinstance(got, Request)
        uas.send(answer(got, 180), proxy_addr(proxy))
        await uac.recv_until(lambda m: isinstance(m, Response) and m.status == 180)
        cancel = inv.copy()
        cancel.method = "CANCEL"
        cancel.headers.set("CSeq", "1 CANCEL")
        cancel.headers.remove("Contact")
        uac.send(cancel, proxy_addr(proxy))
        r = await uac.recv_until(lambda m: isinstance(m, Response) and m.cseq.method == "CANCEL")
        assert isinstance(r, Response) and r.status == 200
        c = await uas.recv_until(lambda m: isinstance(m, Request) and m.method == "CANCEL")
        assert isinstance(c, Request) and c.via is not None and c.via.branch == got.via.branch  # type: ignore[union-attr]
        uas.send(make_response(c, 200, to_tag="b1"), proxy_addr(proxy))
        uas.send(answer(got, 487), proxy_addr(proxy))
        final = await uac.recv_until(
            lambda m: isinstance(m, Response) and m.cseq.method == "INVITE" and m.status >= 200
        )
        assert isinstance(final, Response) and final.status == 487
    finally:
        uac.close()
        uas.close()


async def test_silent_callee_gives_408_after_timer_b(proxy: ProxyServer) -> None:
    uac, uas = Endpoint(UAC_IP), Endpoint(UAS_IP)
    try:
        uac.send(invite(uac, uas, proxy, "call3"), proxy_addr(proxy))
        first = await uas.recv()
        again = await uas.recv()  # Timer A retransmission, same bytes
        assert isinstance(first, Request) and first.encode() == again.encode()
        final = await uac.recv_until(
            lambda m: isinstance(m, Response) and m.status >= 200, timeout=5.0
        )  # B = 64 * T1 = 1.28 s
        assert isinstance(final, Response) and final.status == 408
    finally:
        uac.close()
        uas.close()


async def test_garbage_and_bad_requests_do_not_stop_it(proxy: ProxyServer) -> None:
    uac = Endpoint(UAC_IP)
    try:
        uac.send(b"\x00\xffnot sip at all\r\n\r\n", proxy_addr(proxy))
        bad = (
            f"OPTIONS  sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP {uac.addr[0]}:{uac.addr[1]};"
            "branch=z9hG4bKb1\r\nCall-ID: b1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        uac.send(bad, proxy_addr(proxy))
        r = await uac.recv()
        assert isinstance(r, Response) and r.status == 400
        opt = (
            f"OPTIONS sip:{PROXY_IP}:{proxy_addr(proxy)[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {uac.addr[0]}:{uac.addr[1]};branch=z9hG4bKo1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: o1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        uac.send(opt, proxy_addr(proxy))
        r = await uac.recv()
        assert isinstance(r, Response) and r.status == 200
    finally:
        uac.close()


async def test_async_policy_resumes_a_deferred_request(proxy: ProxyServer) -> None:
    uac, uas = Endpoint(UAC_IP), Endpoint(UAS_IP)
    loop = asyncio.get_running_loop()

    class SlowRouter:
        def route(self, request: Request, ctx: RoutingContext) -> Defer:
            target = Forward(targets=[Target(uri=request.uri)])
            loop.call_later(0.05, proxy.resume, ctx.key, target)  # e.g. a database answered
            return Defer()

    proxy.core.router = SlowRouter()
    try:
        uac.send(invite(uac, uas, proxy, "call5"), proxy_addr(proxy))
        r = await uac.recv()
        assert isinstance(r, Response) and r.status == 100
        got = await uas.recv()
        assert isinstance(got, Request) and got.method == "INVITE"
        uas.send(answer(got, 200), proxy_addr(proxy))
        ok = await uac.recv_until(lambda m: isinstance(m, Response) and m.status == 200)
        assert isinstance(ok, Response)
        assert proxy.core.deferred == 0
    finally:
        uac.close()
        uas.close()


async def test_refused_requests_answered_by_the_layer_within_the_lab() -> None:
    """The layer answers requests it cannot parse (a Via naming a host, a broken request
    line) at the source address (`received`/`rport`, no DNS needed); an answer routed by a
    Via ``maddr`` outside the allowed networks is not sent."""
    core = ProxyCore(
        ProxyConfig(local=(Peer(transport="udp", host=PROXY_IP, port=0),)), LocationRouter()
    )
    server = ProxyServer(core, allowed_networks=["127.0.0.0/8"])
    addr = await server.listen("udp", PROXY_IP, 0)
    uac = Endpoint(UAC_IP)
    try:
        bad = (
            b"OPTIONS  sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP uac.invalid:5999;rport;"
            b"branch=z9hG4bKn1\r\nCall-ID: n1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        uac.send(bad, addr)
        r = await uac.recv()
        assert isinstance(r, Response) and r.status == 400
        assert r.via is not None and r.via.received == UAC_IP and r.via.rport == uac.addr[1]
        errors = server.stats["send_errors"]
        uac.send(bad.replace(b";rport", b";maddr=192.0.2.1").replace(b"n1", b"n2"), addr)
        async with asyncio.timeout(3):
            while server.stats["send_errors"] == errors:  # processed: refused to send
                await asyncio.sleep(0.01)
        with pytest.raises(BlockingIOError):
            uac.sock.recvfrom(65535)  # and nothing came back
    finally:
        uac.close()
        server.close()
