"""A stateful proxy on SipEndpoint's public API (server transaction in, client transaction out).

Proves the endpoint carries a proxy core: Via push/pop, provisional relaying, final response
through the server transaction, CANCEL forwarding (§16.10), 2xx ACK forwarding, late 2xx.
"""

from __future__ import annotations

import asyncio

from ims.sip.aio import ServerContext, SipEndpoint
from ims.sip.message import Request, Response, new_call_id
from ims.sip.transaction import ClientTransaction, Flow, TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5)
A_IP, P_IP, B_IP = "127.0.2.101", "127.0.2.102", "127.0.2.103"


class MiniProxy:
    def __init__(self, ep: SipEndpoint, next_hop: tuple[str, int]) -> None:
        self.ep = ep
        self.next_hop = next_hop
        self.branches: dict[int, ClientTransaction] = {}
        ep.on_request(self.on_request)
        ep.on_ack(self.on_ack)
        ep.on_stray_response(self.on_stray)

    def _push_via(self, request: Request) -> Request:
        fwd = request.copy()
        fwd.headers.set("Max-Forwards", str((request.max_forwards or 70) - 1))
        fwd.headers.insert_first("Via", self.ep.make_via("udp"))
        return fwd

    def on_request(self, ctx: ServerContext) -> None:
        if ctx.request.method == "CANCEL":
            ctx.respond(200)  # §16.10: answer the CANCEL, then cancel the branches
            if ctx.cancelled is not None:
                branch = self.branches.get(id(ctx.cancelled.transaction))
                if branch is not None:
                    self.ep.cancel(branch)
            return

        def relay(resp: Response) -> None:
            up = resp.copy()
            up.headers.pop_first_element("Via")  # our Via (§16.7 step 3)
            if resp.status == 100:
                return  # a proxy does not forward 100 (§16.7)
            if not ctx.answered:
                ctx.respond(up)

        def failed(exc: Exception) -> None:
            if not ctx.answered:
                ctx.respond(408)

        tx = self.ep.start_request(
            self._push_via(ctx.request), self.next_hop, on_response=relay, on_failure=failed,
            add_via=False,
        )  # fmt: skip
        self.branches[id(ctx.transaction)] = tx

    def on_ack(self, request: Request, flow: Flow) -> None:
        self.ep.send_stateless(self._push_via(request), self.next_hop)

    def on_stray(self, response: Response, flow: Flow) -> None:
        up = response.copy()
        up.headers.pop_first_element("Via")
        via = up.via
        if via is not None:
            self.ep.send_stateless(up, (via.received or via.host, via.rport or via.port or 5060))


def invite(target: tuple[str, int]) -> Request:
    return Request(
        "INVITE",
        f"sip:bob@{B_IP}",
        [
            ("From", "<sip:alice@a.example>;tag=a1"),
            ("To", "<sip:bob@b.example>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:alice@{A_IP}>"),
        ],
    )


async def _setup() -> tuple[SipEndpoint, SipEndpoint, SipEndpoint, tuple[str, int]]:
    a = SipEndpoint(timers=FAST)
    p = SipEndpoint(timers=TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5, trying_delay=None),
                    auto_cancel=False)  # fmt: skip
    b = SipEndpoint(timers=FAST)
    await a.listen("udp", A_IP, 0)
    p_addr = await p.listen("udp", P_IP, 0)
    b_addr = await b.listen("udp", B_IP, 0)
    MiniProxy(p, b_addr)
    return a, p, b, p_addr


async def test_invite_200_ack_through_proxy() -> None:
    a, p, b, p_addr = await _setup()
    acks: asyncio.Queue[Request] = asyncio.Queue()
    b.on_ack(lambda r, f: acks.put_nowait(r))

    def answer(ctx: ServerContext) -> None:
        assert len(ctx.request.vias) == 2 and ctx.request.max_forwards == 69
        ctx.respond(180)
        ctx.respond(200)

    b.on_request(answer)
    try:
        provisional: list[int] = []
        req = invite(p_addr)
        resp = await asyncio.wait_for(
            a.request(req, p_addr, on_provisional=lambda r: provisional.append(r.status)), 5
        )
        assert resp.status == 200 and provisional == [100, 180]  # 100 is hop-by-hop (P)
        assert len(resp.vias) == 1  # the proxy's Via was removed
        ack = Request("ACK", req.uri, [("From", req.headers.get("From") or ""),
                      ("To", resp.headers.get("To") or ""), ("Call-ID", req.call_id or ""),
                      ("CSeq", "1 ACK")])  # fmt: skip
        a.send_stateless(a.prepare(ack), p_addr)
        got = await asyncio.wait_for(acks.get(), 5)
        assert got.call_id == req.call_id and len(got.vias) == 2
    finally:
        for ep in (a, p, b):
            await ep.close()


async def test_cancel_through_proxy_gets_487() -> None:
    a, p, b, p_addr = await _setup()
    ringing = asyncio.Event()

    def ring(ctx: ServerContext) -> None:
        ctx.respond(180)
        ringing.set()

    b.on_request(ring)
    try:
        loop = asyncio.get_running_loop()
        final: asyncio.Future[Response] = loop.create_future()

        def on_response(r: Response) -> None:
            if r.status >= 200 and not final.done():
                final.set_result(r)

        tx = a.start_request(invite(p_addr), p_addr, on_response=on_response)
        await asyncio.wait_for(ringing.wait(), 5)
        a.cancel(tx)
        resp = await asyncio.wait_for(final, 5)
        assert resp.status == 487  # from B, relayed by the proxy's server transaction
    finally:
        for ep in (a, p, b):
            await ep.close()
