"""Issue 11, finding 9 (SIP side): connection floods, slow senders and REGISTER floods are
bounded, and overload is answered, never a hang.

Each bound is set low for the test (so a few hundred connections or requests cross it) and the
counts are bounded. RFC 3261 §21.5.4 (503 Service Unavailable): "The server is temporarily
unable to process the request due to a temporary overloading or maintenance of the server. The
server MAY indicate when the client should retry the request in a Retry-After header field."
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ims.sip.aio.endpoint import SipEndpoint
from ims.sip.message import Response
from ims.sip.transport import stream as stream_mod
from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from proxies.admission import UnauthenticatedRegisters
from tests.security.conftest import SUBNET, RawSip, sip_addr, sip_request

ATTACKERS = [f"{SUBNET}.{i}" for i in range(160, 170)]


@pytest.fixture
async def lab_a(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo, names=["anchor-a", "scscf-a", "pcscf-a"]) as running:
        yield running


def _rearm(tcp: stream_mod.StreamTransport) -> None:
    """Restart the sweeper so a lowered read timeout takes effect now."""
    if tcp._sweeper is not None:
        tcp._sweeper.cancel()
    tcp._sweeper = None
    tcp._arm_sweeper()


async def _connect(
    host: str, port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0)), 5
        )
    except (OSError, TimeoutError):
        return None


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except (TimeoutError, ConnectionError):
        return False


async def _options_answered(host: str, port: int, source: str) -> int | None:
    conn = await _connect(host, port, source)
    if conn is None:
        return None
    reader, writer = conn
    cid, data = sip_request("OPTIONS", f"sip:{host}:{port}", via=writer.get_extra_info("sockname"))
    data = data.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    writer.write(data)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        return int(head.split()[1])
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None
    finally:
        writer.close()


async def test_idle_connection_flood_does_not_lock_clients_out(lab_a: Lab) -> None:
    """400 idle TCP connections from 10 addresses against pcscf-a (per-source cap 20, listener
    cap 150, read timeout 1 s): the caps hold, the silent connections are closed, and a new
    client is answered."""
    pcscf = lab_a.element("pcscf-a").proxy
    tcp = pcscf.server.streams["TCP"]
    tcp.max_per_source, tcp.max_connections = 20, 150
    host, port = sip_addr(lab_a, "pcscf-a")
    conns = []
    for _ in range(8):  # 8 x 50: within the listen backlog, so no SYN is dropped
        conns += await asyncio.gather(
            *(_connect(host, port, ATTACKERS[i % len(ATTACKERS)]) for i in range(50))
        )
        await asyncio.sleep(0.05)
    opened = [c for c in conns if c is not None]
    await asyncio.sleep(0.2)
    assert tcp.inbound == 150  # 10 sources x 20 would be 200: the listener cap holds
    assert all(n <= 20 for n in tcp.per_source.values())
    assert tcp.refused == 400 - 150
    tcp.read_timeout = 1.0  # now let the silent ones time out
    _rearm(tcp)
    # the silent ones are closed within ~read_timeout (+ one sweep period)
    closed = await asyncio.gather(*(_closed_by_server(r, 4.0) for r, _ in opened))
    assert all(closed)
    assert tcp.timed_out >= 1
    status = await _options_answered(host, port, f"{SUBNET}.170")
    assert status is not None and status < 500
    for _, w in opened:
        w.close()


async def test_unfinished_message_is_timed_out(lab_a: Lab) -> None:
    """A slow-loris: half a request, then nothing. The connection is closed after the read
    timeout although it sent bytes."""
    pcscf = lab_a.element("pcscf-a").proxy
    tcp = pcscf.server.streams["TCP"]
    tcp.read_timeout = 1.0
    _rearm(tcp)
    host, port = sip_addr(lab_a, "pcscf-a")
    conn = await _connect(host, port, ATTACKERS[0])
    assert conn is not None
    reader, writer = conn
    writer.write(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.7.160:5;branch=z9hG4bKs\r\n")
    assert await _closed_by_server(reader, 5.0)
    writer.close()


def test_connection_budgets_scale_with_the_descriptor_limit() -> None:
    """Under ``ulimit -n 1024`` (the finding's setting) one listener may hold 64 inbound
    connections and all of a process's listeners together 768: the nine stream listeners of
    ``imslab up`` (TCP + TLS of three P-CSCFs, TCP of two S-CSCFs and the Internet proxy)
    cannot take every descriptor."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
        "from ims.sip.transport import stream as s; "
        "print(s.DEFAULT_MAX_CONNECTIONS, s.PROCESS_BUDGET)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    per_listener, budget = int(out[0]), int(out[1])
    assert (per_listener, budget) == (64, 768)
    assert 9 * per_listener < budget < 1024


async def test_process_budget_is_shared_by_every_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two endpoints in one process, budget 30: the first takes 30 connections (its own cap
    is higher), the second then refuses — and accepts again once the first lets go."""
    monkeypatch.setattr(stream_mod, "PROCESS_BUDGET", 30)
    a, b = SipEndpoint(name="a"), SipEndpoint(name="b")
    try:
        ha, pa = await a.listen("tcp", f"{SUBNET}.180", 0)
        hb, pb = await b.listen("tcp", f"{SUBNET}.181", 0)
        a.streams["TCP"].max_per_source = 100
        first = [await _connect(ha, pa, ATTACKERS[i % 3]) for i in range(40)]
        await asyncio.sleep(0.1)
        assert a.streams["TCP"].inbound == 30
        extra = await _connect(hb, pb, ATTACKERS[5])
        assert extra is not None and await _closed_by_server(extra[0], 2.0)
        assert b.streams["TCP"].refused == 1
        for c in first:
            if c is not None:
                c[1].close()
        await asyncio.sleep(0.3)
        again = await _connect(hb, pb, ATTACKERS[5])
        assert again is not None
        await asyncio.sleep(0.1)
        assert b.streams["TCP"].inbound == 1
        again[1].close()
    finally:
        await a.close()
        await b.close()


def _register(s: RawSip, n: int) -> tuple[str, bytes]:
    user = f"u{n}"
    return sip_request(
        "REGISTER",
        "sip:ims-a.test",
        via=s.addr,
        from_=f"<sip:{user}@ims-a.test>",
        to=f"<sip:{user}@ims-a.test>",
        headers=[("Contact", f"<sip:{user}@{s.addr[0]}:{s.addr[1]}>"), ("Expires", "600")],
    )


async def _flood(
    sockets: list[RawSip], count: int, dest: tuple[str, int], admission: UnauthenticatedRegisters
) -> tuple[list[tuple[RawSip, Response | None]], int]:
    """Send ``count`` REGISTERs round-robin from ``sockets``; retransmit the unanswered ones
    as a UDP client does (RFC 3261 §17.1.2.2 Timer E: the kernel drops datagrams a busy
    element cannot read fast enough); the finals and the peak of live unauthenticated
    REGISTER transactions seen."""
    sent: list[tuple[RawSip, str, bytes]] = []
    peak = 0
    for n in range(count):
        s = sockets[n % len(sockets)]
        cid, data = _register(s, n)
        s.send(data, dest)
        sent.append((s, cid, data))
        if n % 50 == 49:
            await asyncio.sleep(0.05)
            peak = max(peak, len(admission))
    finals: dict[str, Response] = {}
    for _ in range(20):  # bounded: at most 20 retransmission rounds, 0.5 s apart (10 s)
        await asyncio.sleep(0.5)
        peak = max(peak, len(admission))
        for sock in sockets:
            for m in sock.received:
                if isinstance(m, Response) and m.status >= 200 and m.call_id:
                    finals.setdefault(m.call_id, m)
        missing = [(s, data) for s, cid, data in sent if cid not in finals]
        if not missing:
            break
        for s, data in missing:
            s.send(data, dest)
    return [(s, finals.get(cid)) for s, cid, _ in sent], peak


async def test_unauthenticated_register_flood_is_answered_503_and_bounded(lab_a: Lab) -> None:
    """REGISTERs without credentials at pcscf-a (global bound lowered to 200, 16 per source):
    600 from 10 addresses, then 400 from 5 more. Every one is answered (401, or 503 with
    Retry-After: none left hanging); no address holds more than 16; the live state never
    passes 200; and alice, from her own address, still registers after the first wave."""
    ep = lab_a.element("pcscf-a").proxy.admission
    ep.total = 200
    dest = sip_addr(lab_a, "pcscf-a")
    first = [await RawSip.open(ip) for ip in ATTACKERS]
    second = [await RawSip.open(f"{SUBNET}.{i}") for i in range(171, 176)]
    try:
        wave1, peak1 = await _flood(first, 600, dest, ep)
        async with user_agent(lab_a.topology, "alice") as alice:
            ok = await alice.register()  # the per-source bound kept room for her
        wave2, peak2 = await _flood(second, 400, dest, ep)
    finally:
        for s in first + second:
            s.close()
    assert ok.status == 200
    results = wave1 + wave2
    assert all(isinstance(f, Response) for _, f in results), sum(f is None for _, f in results)
    assert {f.status for _, f in results if f is not None} <= {401, 503}
    busy = [f for _, f in results if f is not None and f.status == 503]
    assert busy and all(f.headers.get("Retry-After") for f in busy)
    per_ip: dict[str, int] = {}
    for s, f in results:
        if f is not None and f.status == 401:
            per_ip[s.addr[0]] = per_ip.get(s.addr[0], 0) + 1
    assert max(per_ip.values()) <= 16
    assert max(peak1, peak2) <= 200
    # the second wave's 5 addresses could each take 16, but only what the global bound left
    # (alice's challenge, answered, no longer counts)
    assert sum(per_ip.get(s.addr[0], 0) for s in second) <= 200 - 160


async def test_a_ue_that_answers_its_challenges_is_never_counted_as_a_flood(lab_a: Lab) -> None:
    """The per-source bound is for REGISTERs nobody follows up: alice registering 40 times in
    a row from her one address -- each time challenged, each challenge answered, all within
    Timer J (32 s, RFC 3261 §17.2.2) while the 401 transactions still live -- gets 200 every
    time (a UE re-registering, or a SIPp loop from one address, is not a flood). Before the
    fix, her 17th REGISTER got 503."""
    ep = lab_a.element("pcscf-a").proxy.admission
    per_source = ep.per_source
    assert per_source is not None and per_source < 40
    statuses = []
    for _ in range(40):
        async with user_agent(lab_a.topology, "alice") as alice:
            statuses.append((await alice.register()).status)
    assert statuses == [200] * 40
    assert ep.refused == 0


async def test_server_transaction_bound_answers_503_and_absorbs_retransmissions() -> None:
    """An endpoint whose application is slow (it never answers): beyond 50 live server
    transactions every new request gets 503 + Retry-After at once; a retransmission of a live
    transaction is still absorbed by it (no 503, no second request to the application)."""
    ep = SipEndpoint(name="busy", max_server_transactions=50)
    delivered: list[str] = []

    def hold(ctx: object) -> None:  # the application never answers
        delivered.append(ctx.request.call_id)

    ep.on_request(hold)
    client = await RawSip.open(f"{SUBNET}.182")
    try:
        addr = await ep.listen("udp", f"{SUBNET}.183", 0)
        first: list[tuple[str, bytes]] = []
        for n in range(200):
            cid, data = sip_request("OPTIONS", f"sip:x@{addr[0]}", via=client.addr)
            client.send(data, addr)
            if n < 50:
                first.append((cid, data))
            if n % 25 == 24:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        client.send(first[0][1], addr)  # a retransmission of a held request
        await asyncio.sleep(0.3)
    finally:
        client.close()
        await ep.close()
    busy = [m for m in client.received if isinstance(m, Response) and m.status == 503]
    assert len(busy) == 150 and all(m.headers.get("Retry-After") for m in busy)
    assert {cid for cid, _ in first}.isdisjoint({m.call_id for m in busy})
    assert len(delivered) == 50 and ep.overloaded == 150
