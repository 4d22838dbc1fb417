"""SipEndpoint over real loopback sockets: UDP, TCP, TLS, reuse, rport, bad input, CANCEL."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ims.sip.aio import ServerContext, SipEndpoint, SipTimeoutError, SipTransportError
from ims.sip.message import Request, Response, new_call_id
from ims.sip.parser import parse_message
from ims.sip.transaction import Flow, TimerConfig

HOST_A = "127.0.2.1"
HOST_B = "127.0.2.2"
FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5)


def options(target: tuple[str, int], method: str = "OPTIONS", body: bytes = b"") -> Request:
    host, port = target
    return Request(
        method,
        f"sip:bob@{host}:{port}",
        [
            ("From", "<sip:alice@a.example>;tag=a1"),
            ("To", "<sip:bob@b.example>"),
            ("Call-ID", new_call_id("a.example")),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:alice@{HOST_A}>"),
        ],
        body,
    )


def make_tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.2.2 made with `cryptography`, server + client ctx."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imslab test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST_B))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def _echo_handler(ctx: ServerContext) -> None:
    ctx.respond(
        200,
        headers=[("X-Seen-Via", ctx.request.headers.get("Via") or "")],
        body=ctx.request.body,
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipEndpoint, SipEndpoint]]:
    a = SipEndpoint(timers=FAST, name="a")
    b = SipEndpoint(timers=FAST, name="b")
    await a.listen("udp", HOST_A, 0)
    await b.listen("udp", HOST_B, 0)
    await a.listen("tcp", HOST_A, 0)
    await b.listen("tcp", HOST_B, 0)
    b.on_request(_echo_handler)
    yield a, b
    await a.close()
    await b.close()


async def test_udp_request_response_with_rport(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    target = b.local_address("udp")
    resp = await asyncio.wait_for(a.request(options(target), target), 5)
    assert resp.status == 200
    seen = parse_message(
        f"OPTIONS sip:x SIP/2.0\r\nVia: {resp.headers.get('X-Seen-Via')}\r\n\r\n".encode(),
        validate=False,
    ).via
    assert seen is not None
    # the server filled rport and received (RFC 3581) with our real source address
    assert seen.rport == a.local_address("udp")[1]
    assert seen.received is None or seen.received == HOST_A


async def test_tcp_request_response_and_connection_reuse(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    a, b = pair
    target = b.local_address("tcp")
    for i in range(3):
        body = f"hello {i}".encode()
        resp = await asyncio.wait_for(a.request(options(target, body=body), target, "tcp"), 5)
        assert resp.status == 200 and resp.body == body
    # one connection carried all three transactions
    assert a.streams["TCP"].opened == 1 and b.streams["TCP"].opened == 1
    assert a.stats()["tcp_opened"] == 1 and b.stats()["received"] == 3
    # B reuses the inbound connection to reach A's connection address
    [conn] = b.streams["TCP"].connections.values()
    a.on_request(_echo_handler)
    resp = await asyncio.wait_for(b.request(options(conn.remote), conn.remote, "tcp"), 5)
    assert resp.status == 200 and b.streams["TCP"].opened == 1


async def test_tls_request_response(tmp_path: Path) -> None:
    server_ctx, client_ctx = make_tls_contexts(tmp_path)
    a = SipEndpoint(timers=FAST, client_ssl=client_ctx)
    b = SipEndpoint(timers=FAST)
    try:
        await a.listen("udp", HOST_A, 0)
        target = await b.listen("tls", HOST_B, 0, ssl_context=server_ctx)
        b.on_request(_echo_handler)
        resp = await asyncio.wait_for(a.request(options(target, body=b"secret"), target, "tls"), 5)
        assert resp.status == 200 and resp.body == b"secret"
        [conn] = b.streams["TLS"].connections.values()
        assert conn.flow.transport == "TLS"
        for _ in range(2):  # reused: still one TLS connection
            resp = await asyncio.wait_for(a.request(options(target), target, "tls"), 5)
            assert resp.status == 200
        assert a.streams["TLS"].opened == 1 and b.streams["TLS"].opened == 1
        # a client that does not trust the certificate: the handshake fails -> transport error
        untrusting = SipEndpoint(timers=FAST, client_ssl=ssl.create_default_context())
        await untrusting.listen("udp", HOST_A, 0)
        try:
            with pytest.raises(SipTransportError):
                await asyncio.wait_for(untrusting.request(options(target), target, "tls"), 5)
        finally:
            await untrusting.close()
    finally:
        await a.close()
        await b.close()


async def test_invite_final_and_provisional_callbacks(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    a, b = pair

    async def slow_answer(ctx: ServerContext) -> None:
        ctx.respond(180)
        await asyncio.sleep(0.05)
        ctx.respond(486)

    b.on_request(slow_answer)
    target = b.local_address("udp")
    provisional: list[int] = []
    sent: list[tuple[str, str]] = []
    a.add_observer(
        lambda d, m, f: sent.append((d, m.method if isinstance(m, Request) else str(m.status)))
    )
    resp = await asyncio.wait_for(
        a.request(
            options(target, "INVITE"), target, on_provisional=lambda r: provisional.append(r.status)
        ),
        5,
    )
    assert resp.status == 486 and 180 in provisional
    assert ("out", "INVITE") in sent and ("out", "ACK") in sent and ("in", "486") in sent


async def test_cancel_gets_487(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    cancelled = asyncio.Event()

    contexts: list[ServerContext] = []

    def ring(ctx: ServerContext) -> None:
        ctx.respond(180)
        ctx.on_cancel(cancelled.set)
        contexts.append(ctx)

    b.on_request(ring)
    target = b.local_address("udp")
    got: list[Response] = []
    loop = asyncio.get_running_loop()
    final: asyncio.Future[Response] = loop.create_future()

    def on_response(r: Response) -> None:
        got.append(r)
        if r.status >= 200:
            final.set_result(r)

    tx = a.start_request(options(target, "INVITE"), target, on_response=on_response)
    a.cancel(tx)  # before the 180: held until it arrives (§9.1)
    resp = await asyncio.wait_for(final, 5)
    assert resp.status == 487 and cancelled.is_set()
    assert tx.cancel_transaction is not None
    # the application answering late (the §9.2 race) is dropped, not an error
    invite_ctx = next(c for c in contexts if c.request.method == "INVITE")
    assert invite_ctx.is_cancelled
    late = invite_ctx.respond(200)
    assert late.status == 200 and invite_ctx.transaction.last_response.status == 487  # type: ignore[union-attr]


async def test_malformed_datagram_answered_400_and_endpoint_keeps_serving(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    a, b = pair
    target = b.local_address("udp")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST_A, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        port = sock.getsockname()[1]
        bad = (
            f"INVITE sip:bob@{HOST_B} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST_A}:{port};branch=z9hG4bKmalformed\r\n"
            "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: bad1\r\n"
            "CSeq: notanumber INVITE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        await loop.sock_sendto(sock, bad, target)
        await loop.sock_sendto(sock, b"\x00\xff garbage \r\n\r\n", target)  # dropped
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
        assert data.startswith(b"SIP/2.0 400 ")
        assert b"Call-ID: bad1" in data
        # and the endpoint still answers
        resp = await asyncio.wait_for(a.request(options(target), target), 5)
        assert resp.status == 200
        assert b.layer.stats["parse_errors"] == 2
    finally:
        sock.close()


async def test_tcp_framing_error_answered_and_closed(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    _a, b = pair
    host, port = b.local_address("tcp")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        # no Content-Length on a stream: 400 (§18.3), then the connection is closed
        writer.write(
            f"OPTIONS sip:b@{HOST_B} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST_A}:5060;branch=z9hG4bKnocl\r\n"
            "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: nocl\r\n"
            "CSeq: 1 OPTIONS\r\n\r\n".encode()
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65535), 5)
        assert data.startswith(b"SIP/2.0 400 ")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    finally:
        writer.close()


async def test_timeout_and_connection_refused() -> None:
    a = SipEndpoint(timers=TimerConfig(t1=0.01, t2=0.04, t4=0.05, timer_d=0.05))
    await a.listen("udp", HOST_A, 0)
    try:
        # a UDP port nobody answers on: timer F fires after 64*T1 = 0.64 s
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind((HOST_B, 0))
        target = silent.getsockname()
        with pytest.raises(SipTimeoutError):
            await asyncio.wait_for(a.request(options(target), target), 5)
        received = 0
        silent.setblocking(False)
        while True:
            try:
                silent.recv(65535)
                received += 1
            except BlockingIOError:
                break
        silent.close()
        assert received >= 5  # timer E retransmissions
        # TCP to a closed port: the transaction gets a transport error
        probe = socket.socket()
        probe.bind((HOST_B, 0))
        closed_port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(SipTransportError):
            await asyncio.wait_for(
                a.request(options((HOST_B, closed_port)), (HOST_B, closed_port), "tcp"), 5
            )
    finally:
        await a.close()


async def test_filters_can_drop_and_rewrite(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    seen: list[tuple[str, Flow]] = []
    b.add_observer(lambda d, m, f: seen.append((d, f)))

    def tag_out(
        direction: str, message: Request | Response, flow: Flow
    ) -> Request | Response | None:
        if direction == "out" and isinstance(message, Response):
            message = message.copy()
            message.headers.add("X-Filtered", "yes")
        return message

    b.add_filter(tag_out)
    target = b.local_address("udp")
    resp = await asyncio.wait_for(a.request(options(target), target), 5)
    assert resp.headers.get("X-Filtered") == "yes"
    assert [d for d, _ in seen] == ["in", "out"]
    assert seen[0][1].remote == a.local_address("udp")


async def test_unhandled_request_gets_501_and_handler_crash_500() -> None:
    a, b = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
    await a.listen("udp", HOST_A, 0)
    target = await b.listen("udp", HOST_B, 0)
    try:
        resp = await asyncio.wait_for(a.request(options(target), target), 5)
        assert resp.status == 501

        def boom(ctx: ServerContext) -> None:
            raise RuntimeError("bug")

        b.on_request(boom)
        resp = await asyncio.wait_for(a.request(options(target), target), 5)
        assert resp.status == 500
    finally:
        await a.close()
        await b.close()


async def test_2xx_retransmission_reaches_stray_handler(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    """RFC 6026 keeps the INVITE transactions in Accepted; request() users still see later 2xx
    (a UAS core's retransmissions, §13.3.1.4) through on_stray_response, to re-ACK them."""
    a, b = pair
    contexts: list[ServerContext] = []

    def answer(ctx: ServerContext) -> None:
        contexts.append(ctx)
        ctx.respond(200)

    b.on_request(answer)
    strays: asyncio.Queue[Response] = asyncio.Queue()
    a.on_stray_response(lambda r, f: strays.put_nowait(r))
    acks: asyncio.Queue[Request] = asyncio.Queue()
    b.on_ack(lambda r, f: acks.put_nowait(r))
    target = b.local_address("udp")
    invite = options(target, "INVITE")
    resp = await asyncio.wait_for(a.request(invite, target), 5)
    assert resp.status == 200
    [ctx] = contexts
    ctx.respond(resp)  # the UAS core retransmits its 2xx through the Accepted transaction
    again = await asyncio.wait_for(strays.get(), 5)
    assert again.status == 200 and again.call_id == invite.call_id
    # the UAC core's ACK to the 2xx (new branch) reaches B's on_ack
    ack = Request(
        "ACK",
        invite.uri,
        [
            ("From", invite.headers.get("From") or ""),
            ("To", resp.headers.get("To") or ""),
            ("Call-ID", invite.call_id or ""),
            ("CSeq", "1 ACK"),
        ],
    )
    a.send_stateless(a.prepare(ack), target)
    got = await asyncio.wait_for(acks.get(), 5)
    assert got.method == "ACK" and len(contexts) == 1  # INVITE retransmissions were absorbed


async def test_large_udp_request_switches_to_tcp(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    """§18.1.1: a request larger than MTU-200 bytes goes over TCP when TCP is available."""
    a, b = pair
    a.udp_to_tcp = True
    flows: list[Flow] = []
    b.add_observer(lambda d, m, f: flows.append(f) if d == "in" else None)
    # B's TCP and UDP listen on different ports here; send to B's TCP address
    target = b.local_address("tcp")
    big = options(target, body=b"x" * 1400)
    resp = await asyncio.wait_for(a.request(big, target, "udp"), 5)
    assert resp.status == 200 and resp.body == big.body
    assert flows[0].transport == "TCP" and big.via is not None and big.via.transport == "TCP"
    small = options(target)
    resp = await asyncio.wait_for(a.request(small, b.local_address("udp"), "udp"), 5)
    assert flows[-1].transport == "UDP"


async def test_icmp_port_unreachable_fails_the_transaction_fast() -> None:
    """§18.4/§17.1.4: with IP_RECVERR the ICMP error for a closed UDP port becomes a transport
    error of the transaction (well before timer F)."""
    a = SipEndpoint(timers=TimerConfig(t1=0.5))  # timer F would take 32 s
    await a.listen("udp", "127.0.2.4", 0)
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.2.3", 0))
        closed = probe.getsockname()
        probe.close()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(SipTransportError, match="ICMP"):
            await asyncio.wait_for(a.request(options(closed), closed), 10)
        assert loop.time() - t0 < 5
        assert a.layer.pending == 0
    finally:
        await a.close()


async def test_advertised_host_in_via() -> None:
    ep = SipEndpoint(advertised_host="pcscf.ims.lab")
    await ep.listen("udp", HOST_A, 0)
    try:
        via = ep.make_via("udp", branch="z9hG4bKfixed")
        assert via == f"SIP/2.0/UDP pcscf.ims.lab:{ep.local_address()[1]};branch=z9hG4bKfixed;rport"
    finally:
        await ep.close()


async def test_tcp_good_message_before_a_bad_one_in_the_same_segment(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    """A valid request followed by a broken one in one TCP write: the first is still served."""
    _a, b = pair
    host, port = b.local_address("tcp")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        good = (
            f"OPTIONS sip:b@{HOST_B} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST_A}:5060;branch=z9hG4bKgood\r\n"
            "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: good\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        bad = good.replace(b"z9hG4bKgood", b"z9hG4bKbad").replace(b"Content-Length: 0\r\n", b"")
        writer.write(good + bad.replace(b"Call-ID: good", b"Call-ID: bad"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)  # both answers, then closed
        assert b"SIP/2.0 200 OK" in data and b"Call-ID: good" in data
        assert b"SIP/2.0 400 " in data and b"Call-ID: bad" in data
    finally:
        writer.close()


async def test_multi_homed_endpoint_sends_from_the_chosen_address() -> None:
    """A P-CSCF-like endpoint on two addresses: ``local=`` picks the socket and the Via."""
    p = SipEndpoint(timers=FAST)
    peer = SipEndpoint(timers=FAST)
    gm = await p.listen("udp", "127.0.2.21", 0)
    mw = await p.listen("udp", "127.0.2.22", 0)
    target = await peer.listen("udp", "127.0.2.23", 0)
    seen: list[Flow] = []

    def answer(ctx: ServerContext) -> None:
        seen.append(ctx.flow)
        ctx.respond(200)

    peer.on_request(answer)
    try:
        for local in (gm, mw):
            req = options(target)
            resp = await asyncio.wait_for(p.request(req, target, local=local), 5)
            assert resp.status == 200
            assert req.via is not None and (req.via.host, req.via.port) == local
        assert [f.remote for f in seen] == [gm, mw]
    finally:
        await p.close()
        await peer.close()
