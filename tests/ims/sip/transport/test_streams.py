"""TCP/TLS details: §18.2.2 reconnect, idle close, size cap, keep-alives, uvloop."""

from __future__ import annotations

import asyncio

import pytest

from ims.sip.aio import ServerContext, SipEndpoint
from ims.sip.message import Request, new_call_id
from ims.sip.transaction import TimerConfig

HOST_A = "127.0.2.11"
HOST_B = "127.0.2.12"
FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5)


def req(target: tuple[str, int], method: str = "OPTIONS", body: bytes = b"") -> Request:
    return Request(
        method,
        f"sip:b@{target[0]}:{target[1]}",
        [
            ("From", "<sip:a@a.example>;tag=1"),
            ("To", "<sip:b@b.example>"),
            ("Call-ID", new_call_id()),
            ("CSeq", f"1 {method}"),
        ],
        body,
    )


async def test_response_reconnects_to_sent_by_when_connection_closed() -> None:
    """§18.2.2: the request's connection closed before the answer -> new connection to
    ``received`` and the sent-by port (A's TCP listener)."""
    a, b = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
    try:
        await a.listen("tcp", HOST_A, 0)
        target = await b.listen("tcp", HOST_B, 0)
        got: asyncio.Queue[ServerContext] = asyncio.Queue()
        b.on_request(got.put_nowait)
        fut = asyncio.ensure_future(a.request(req(target), target, "tcp"))
        ctx = await asyncio.wait_for(got.get(), 5)
        [conn] = a.streams["TCP"].connections.values()
        [b_conn] = b.streams["TCP"].connections.values()
        conn.close()
        await asyncio.wait_for(asyncio.gather(conn.closed, b_conn.closed), 5)
        ctx.respond(200)
        resp = await asyncio.wait_for(fut, 5)
        assert resp.status == 200
        # the response came on a connection B opened towards A's listener
        assert any(c.outbound for c in b.streams["TCP"].connections.values())
        assert a.streams["TCP"].opened == 2
    finally:
        await a.close()
        await b.close()


async def test_idle_connections_are_closed() -> None:
    a = SipEndpoint(timers=FAST, idle_timeout=0.2)
    b = SipEndpoint(timers=FAST, idle_timeout=0.2)
    try:
        await a.listen("tcp", HOST_A, 0)
        target = await b.listen("tcp", HOST_B, 0)
        b.on_request(lambda ctx: ctx.respond(200))
        assert (await asyncio.wait_for(a.request(req(target), target, "tcp"), 5)).status == 200
        [conn] = a.streams["TCP"].connections.values()
        await asyncio.wait_for(conn.closed, 5)  # closed by the idle sweep, no sleep-guessing
        assert not a.streams["TCP"].connections
        # a new request opens a new connection
        assert (await asyncio.wait_for(a.request(req(target), target, "tcp"), 5)).status == 200
        assert a.streams["TCP"].opened == 2
    finally:
        await a.close()
        await b.close()


async def test_oversize_stream_message_is_refused() -> None:
    b = SipEndpoint(timers=FAST, max_message_size=2000)
    try:
        host, port = await b.listen("tcp", HOST_B, 0)
        b.on_request(lambda ctx: ctx.respond(200))
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"MESSAGE sip:b@{HOST_B} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST_A}:5060;branch=z9hG4bKbig\r\n"
            "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\n"
            "Content-Length: 5000\r\n\r\n"
        ).encode()
        writer.write(head + b"x" * 5000)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65535), 5)
        assert data.startswith(b"SIP/2.0 413 ") or data.startswith(b"SIP/2.0 513 ")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await b.close()


async def test_crlf_keepalive_answered_and_stream_split_bytewise() -> None:
    b = SipEndpoint(timers=FAST)
    try:
        host, port = await b.listen("tcp", HOST_B, 0)
        b.on_request(lambda ctx: ctx.respond(200))
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # RFC 5626 pong
        msg = (
            f"OPTIONS sip:b@{HOST_B} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST_A}:5060;branch=z9hG4bKsplit\r\n"
            "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: split\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        for i in range(len(msg)):  # one byte per write
            writer.write(msg[i : i + 1])
            await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert data.startswith(b"SIP/2.0 200 OK") and b"Call-ID: split" in data
        writer.close()
    finally:
        await b.close()


def test_endpoint_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[int, int]:
        a, b = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
        try:
            await a.listen("udp", HOST_A, 0)
            await a.listen("tcp", HOST_A, 0)
            t_udp = await b.listen("udp", HOST_B, 0)
            t_tcp = await b.listen("tcp", HOST_B, 0)
            b.on_request(lambda ctx: ctx.respond(200))
            r1 = await asyncio.wait_for(a.request(req(t_udp), t_udp), 5)
            r2 = await asyncio.wait_for(a.request(req(t_tcp), t_tcp, "tcp"), 5)
            return r1.status, r2.status
        finally:
            await a.close()
            await b.close()

    assert uvloop.run(scenario()) == (200, 200)


async def test_many_concurrent_transactions_udp() -> None:
    a, b = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
    try:
        await a.listen("udp", HOST_A, 0)
        target = await b.listen("udp", HOST_B, 0)

        async def slow(ctx: ServerContext) -> None:
            await asyncio.sleep(0.01)
            ctx.respond(200)

        b.on_request(slow)
        results = await asyncio.wait_for(
            asyncio.gather(*(a.request(req(target), target) for _ in range(300))), 20
        )
        assert [r.status for r in results] == [200] * 300
        assert b.layer.stats["parse_errors"] == 0
    finally:
        await a.close()
        await b.close()


async def test_lossy_udp_through_filters_completes() -> None:
    """Real UDP sockets, 25 % of outgoing messages dropped by a filter at each end (seeded):
    every transaction still completes through the transaction layer's retransmissions."""
    import random

    rng = random.Random(7)
    a, b = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
    dropped = 0

    def lossy(direction: str, message: object, flow: object) -> object | None:
        nonlocal dropped
        if direction == "out" and rng.random() < 0.25:
            dropped += 1
            return None
        return message

    try:
        await a.listen("udp", HOST_A, 0)
        target = await b.listen("udp", HOST_B, 0)
        a.add_filter(lossy)  # type: ignore[arg-type]
        b.add_filter(lossy)  # type: ignore[arg-type]

        def answer(ctx: ServerContext) -> None:
            ctx.respond(486 if ctx.request.method == "INVITE" else 200)

        b.on_request(answer)
        methods = ["INVITE" if i % 2 else "OPTIONS" for i in range(40)]
        results = await asyncio.wait_for(
            asyncio.gather(*(a.request(req(target, m), target) for m in methods)), 30
        )
        assert [r.status for r in results] == [486 if m == "INVITE" else 200 for m in methods]
        assert dropped > 10
    finally:
        await a.close()
        await b.close()


async def test_inbound_connection_limit() -> None:
    b = SipEndpoint(timers=FAST)
    try:
        host, port = await b.listen("tcp", HOST_B, 0)
        b.streams["TCP"].max_connections = 2
        conns = [await asyncio.open_connection(host, port) for _ in range(3)]
        # the third is closed by the server
        assert await asyncio.wait_for(conns[2][0].read(), 5) == b""
        assert len(b.streams["TCP"].connections) == 2 and b.streams["TCP"].refused == 1
        for _, w in conns:
            w.close()
    finally:
        await b.close()


async def test_messages_before_a_framing_error_in_one_read_are_delivered() -> None:
    """One TCP read holding two good messages (more than 16 KiB) and then a malformed one:
    both good ones reach the endpoint, the failed one is handed over with its own bytes,
    and the connection is closed."""
    from ims.sip.errors import SipParseError
    from ims.sip.transaction import Flow
    from ims.sip.transport.stream import StreamConnection, StreamTransport

    got: list[Request] = []
    errors: list[tuple[SipParseError, bytes, Flow]] = []

    def on_message(message: object, flow: Flow, raw: bytes | None) -> None:
        assert isinstance(message, Request)
        got.append(message)

    transport = StreamTransport(
        "TCP", on_message, lambda exc, raw, flow: errors.append((exc, raw, flow))
    )
    conn = StreamConnection(transport, outbound=False)

    def message(n: int, body: bytes) -> bytes:
        return (
            f"MESSAGE sip:b@{HOST_B} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST_A}:5060;branch=z9hG4bKbig{n}\r\n"
            f"From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: big{n}\r\nCSeq: {n} MESSAGE\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    bad = message(3, b"").replace(b"Content-Length: 0\r\n", b"")
    conn.data_received(message(1, b"x" * 9000) + message(2, b"y" * 9000) + bad)
    assert [m.call_id for m in got] == ["big1", "big2"]
    [(exc, raw, _)] = errors
    assert exc.header == "Content-Length" and raw == bad
