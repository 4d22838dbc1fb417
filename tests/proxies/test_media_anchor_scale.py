"""1,000 concurrent anchor sessions: allocated, relayed both ways, released, with nothing leaked.

Issue 19: "1,000 concurrent sessions allocated, relayed and released with no leak of ports,
sockets or memory (measured)". Measured here with the process's own counters: open file
descriptors (``/proc/self/fd``), Python's allocated blocks after a second identical cycle, and
every port the sessions used bound again after the anchor closed. Real sockets on 127.0.7.0/24.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
from typing import Any

from proxies.media_anchor import POOL_MAX, MediaAnchor

ANCHOR_IP = "127.0.7.13"
UE_IP = "127.0.7.102"
FAR_IP = "127.0.7.112"
CALLS = 1000
PORTS = (42000, 46999)  # 2,500 pairs for the 2,000 legs


class Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _bound_on(ip: str) -> int:
    """UDP sockets bound on ``ip`` (``/proc/net/udp``; the anchor is the only user of its
    address): the anchor's sockets, counted apart from whatever else the process has open."""
    want = socket.inet_aton(ip)[::-1].hex().upper() + ":"
    with open("/proc/self/net/udp") as f:
        return sum(1 for line in f if line.split()[1].startswith(want))


async def _endpoint(ip: str) -> tuple[asyncio.DatagramTransport, Counter, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    t, p = await loop.create_datagram_endpoint(Counter, local_addr=(ip, 0))
    sock = t.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return t, p, t.get_extra_info("sockname")[:2]


async def _wait(pred: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not pred():
            await asyncio.sleep(0.01)


async def _cycle(
    anchor: MediaAnchor, tag: str, ue: Any, far: Any, used: bytearray
) -> dict[str, int]:
    """Allocate CALLS sessions, relay one packet each way through each, release them all."""
    ue_t, ue_c, ue_addr = ue
    far_t, far_c, far_addr = far
    ue_c.count = far_c.count = 0
    allocs = []
    for i in range(CALLS):
        a = await anchor.attach(f"{tag}-{i}", 0, "access", ue_addr)
        await anchor.set_remote(f"{tag}-{i}", 0, "core", far_addr)
        allocs.append(a)
        for port in (a.access[1], a.core[1]):  # a bitmap: marking allocates nothing
            used[port] = used[port + 1] = 1
    assert len(anchor.sessions) == CALLS
    assert len({a.access for a in allocs} | {a.core for a in allocs}) == 2 * CALLS
    up_fds = _bound_on(ANCHOR_IP)
    payload = bytes(172)
    for start in range(0, CALLS, 100):  # in steps, so no socket buffer overflows
        for a in allocs[start : start + 100]:
            ue_t.sendto(payload, a.access)
            far_t.sendto(payload, a.core)
        await _wait(lambda s=start: ue_c.count >= s + 100 and far_c.count >= s + 100)
    assert ue_c.count == CALLS and far_c.count == CALLS
    relayed = 0
    for i in range(CALLS):
        st = await anchor.release(f"{tag}-{i}")
        assert st["from_access_packets"] == 1 and st["from_core_packets"] == 1, st
        relayed += st["from_access_packets"] + st["from_core_packets"]
    assert not anchor.sessions
    await asyncio.sleep(0.05)  # closed transports release their sockets on a later iteration
    return {"up_fds": up_fds, "relayed": relayed}


async def test_thousand_sessions_allocated_relayed_released_without_leaks() -> None:
    ue = await _endpoint(UE_IP)
    far = await _endpoint(FAR_IP)
    await asyncio.sleep(0.05)  # sockets of earlier tests finish closing
    fds0 = _fds()
    assert _bound_on(ANCHOR_IP) == 0
    anchor = MediaAnchor("anchor-scale", ANCHOR_IP, PORTS)
    used = bytearray(65536)
    first = await _cycle(anchor, "one", ue, far, used)
    assert first["relayed"] == 2 * CALLS
    # 4 sockets per session while up
    assert first["up_fds"] == 4 * CALLS
    # released: only the bounded pool of rested socket pairs stays open
    pooled = len(anchor._pool)
    assert 0 < pooled <= POOL_MAX
    assert _bound_on(ANCHOR_IP) == 2 * pooled
    gc.collect()
    blocks1 = sys.getallocatedblocks()

    second = await _cycle(anchor, "two", ue, far, used)
    assert second["relayed"] == 2 * CALLS
    # the pairs still resting from the first cycle (POOL_QUARANTINE) stay open beside the
    # new ones; the rested ones were reused
    assert 4 * CALLS <= second["up_fds"] <= 4 * CALLS + 2 * pooled
    assert len(anchor._pool) == pooled and _bound_on(ANCHOR_IP) == 2 * pooled
    gc.collect()
    blocks2 = sys.getallocatedblocks()
    # A leak of anything per session (a socket object, a session, a closure) would be
    # >= CALLS blocks; the second cycle leaves the heap where the first did.
    assert blocks2 - blocks1 < CALLS // 4, (blocks1, blocks2)

    await anchor.close()
    await asyncio.sleep(0.05)
    assert _bound_on(ANCHOR_IP) == 0
    assert _fds() <= fds0  # no descriptor left behind (others may have closed meanwhile)
    # every port the sessions used can be bound again: none is held by a leaked socket
    ports = [p for p in range(len(used)) if used[p]]
    assert len(ports) >= 4 * CALLS
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((ANCHOR_IP, port))
        finally:
            s.close()
    for t, _, _ in (ue, far):
        t.close()
