"""Transaction-layer and SipEndpoint throughput (docs/benchmarks/sip-transactions.md).

1. sans-I/O: OPTIONS and INVITE/486/ACK transactions between two TransactionLayers in memory,
   parse + match + encode included (no sockets): transactions per second on one core.
2. sockets: SipEndpoint UAC -> SipEndpoint UAS over loopback UDP, OPTIONS/200 with a window of
   concurrent requests, on the default asyncio loop and on uvloop.

Run: .venv/bin/python benchmarks/bench_transactions.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from ims.sip.aio import ServerContext, SipEndpoint
from ims.sip.message import Request, make_response, new_branch, new_call_id
from ims.sip.transaction import (
    Flow,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    TransactionLayer,
)

A = ("127.0.2.1", 5060)
B = ("127.0.2.2", 5060)


def _request(method: str, target: tuple[str, int]) -> Request:
    return Request(
        method,
        f"sip:bob@{target[0]}:{target[1]}",
        [
            ("Via", f"SIP/2.0/UDP {A[0]}:{A[1]};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@a.example>;tag=a1"),
            ("To", "<sip:bob@b.example>"),
            ("Call-ID", new_call_id("a.example")),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:alice@{A[0]}>"),
        ],
    )


def bench_parse_share(n: int) -> float:
    """Seconds per transaction spent in parse_message alone (request + final response)."""
    from ims.sip.parser import parse_message

    req = _request("OPTIONS", B)
    resp = make_response(req, 200, to_tag="t")
    data_req, data_resp = req.encode(), resp.encode()
    t0 = time.perf_counter()
    for _ in range(n):
        parse_message(data_req)
        parse_message(data_resp)
    return (time.perf_counter() - t0) / n


def bench_sans_io(n: int) -> float:
    a, b = TransactionLayer(), TransactionLayer()
    to_b, to_a = Flow("UDP", B, A), Flow("UDP", A, B)
    t0 = time.perf_counter()
    done = 0
    for i in range(n):
        method = "INVITE" if i % 2 else "OPTIONS"
        _tx, out = a.send_request(_request(method, B), to_b, 0.0)
        for ev in out:
            if not isinstance(ev, SendMessage):
                continue
            for rev in b.receive_bytes(ev.data, to_a, 0.0):
                if isinstance(rev, RequestReceived):
                    status = 486 if method == "INVITE" else 200
                    resp = make_response(rev.request, status, to_tag="t")
                    for sev in b.respond(rev.transaction, resp, 0.0):
                        if isinstance(sev, SendMessage):
                            for aev in a.receive_bytes(sev.data, to_b, 0.0):
                                if isinstance(aev, ResponseReceived):
                                    done += 1
                                elif isinstance(aev, SendMessage):  # the ACK
                                    b.receive_bytes(aev.data, to_a, 0.0)
    dt = time.perf_counter() - t0
    assert done == n
    a.handle_timer(1e9)
    b.handle_timer(1e9)
    assert a.pending == 0 and b.pending == 0
    return n / dt


async def bench_udp(n: int, window: int) -> float:
    uac, uas = SipEndpoint(), SipEndpoint()
    await uac.listen("udp", "127.0.2.1", 0)
    target = await uas.listen("udp", "127.0.2.2", 0)

    def answer(ctx: ServerContext) -> None:
        ctx.respond(200)

    uas.on_request(answer)
    sem = asyncio.Semaphore(window)
    ok = 0

    async def one() -> None:
        nonlocal ok
        async with sem:
            req = _request("OPTIONS", target)
            req.headers.remove("Via")
            resp = await uac.request(req, target)
            ok += resp.status == 200

    t0 = time.perf_counter()
    async with asyncio.timeout(120):
        await asyncio.gather(*(one() for _ in range(n)))
    dt = time.perf_counter() - t0
    await uac.close()
    await uas.close()
    assert ok == n, f"{n - ok} failed"
    return n / dt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()
    rate = bench_sans_io(args.n)
    parse = bench_parse_share(args.n)
    print(f"sans-I/O transactions (parse+match+encode, both sides): {rate:,.0f}/s")
    print(
        f"  per transaction: {1e6 / rate:,.0f} us, of which parsing the request and the final "
        f"response ~{parse * 1e6:,.0f} us (INVITEs also parse their ACK)"
    )
    rate = asyncio.run(bench_udp(args.n // 4, args.window))
    print(f"UDP OPTIONS/200 via SipEndpoint, default loop: {rate:,.0f}/s")
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return
    rate = uvloop.run(bench_udp(args.n // 4, args.window))
    print(f"UDP OPTIONS/200 via SipEndpoint, uvloop:       {rate:,.0f}/s")


if __name__ == "__main__":
    main()
