"""Media anchor relay throughput: packets/s through one anchor session, loss-free.

A sender blasts 172-byte packets (an SRTP G.711 packet's size) at the anchor's access leg in
bursts paced to a target rate; a receiver behind the core leg counts what arrives. Runs the
anchor in this process on uvloop (as ``imslab run anchor`` does) with and without a hook
attached (the cost an LI CC-POI adds). Addresses: 127.0.10.12 (anchor-a's), 127.0.15.x peers.

Run: ``.venv/bin/python benchmarks/bench_anchor_relay.py [--rates 20000,50000] [--seconds 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxies.media_anchor import MediaAnchor

ANCHOR = "127.0.10.12"
SENDER = "127.0.15.201"
RECEIVER = "127.0.15.202"


class Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.count += 1


async def run(rate: int, seconds: float, hook: bool) -> dict[str, float]:
    anchor = MediaAnchor("anchor-bench", ANCHOR, (36000, 36099))
    seen = [0]
    if hook:
        anchor.hooks.add(lambda ev: seen.__setitem__(0, seen[0] + 1))
    loop = asyncio.get_running_loop()
    rx_t, rx = await loop.create_datagram_endpoint(Counter, local_addr=(RECEIVER, 0))
    alloc = await anchor.allocate("bench", 0)
    await anchor.set_remote("bench", 0, "core", rx_t.get_extra_info("sockname")[:2])
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind((SENDER, 0))
    tx.setblocking(False)
    payload = bytes(172)
    total = int(rate * seconds)
    burst = max(1, rate // 1000)  # 1 ms bursts
    sent = 0
    t0 = time.perf_counter()
    while sent < total:
        for _ in range(min(burst, total - sent)):
            try:
                tx.sendto(payload, alloc.access)
                sent += 1
            except BlockingIOError:
                break
        target = t0 + sent / rate
        delay = target - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    await asyncio.sleep(0.3)
    elapsed = time.perf_counter() - t0
    received = rx.count
    tx.close()
    rx_t.close()
    await anchor.close()
    return {
        "rate": rate,
        "hook": hook,
        "sent": sent,
        "received": received,
        "loss_pct": round(100 * (sent - received) / sent, 2),
        "pps": round(received / elapsed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="10000,25000,50000,75000")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    import uvloop

    for hook in (False, True):
        for rate in (int(r) for r in args.rates.split(",")):
            print(uvloop.run(run(rate, args.seconds, hook)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
