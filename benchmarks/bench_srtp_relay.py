"""SRTP relay throughput through one Python process (ims.media.aio_relay.RtpRelay).

Three processes on loopback (127.0.4.x): a generator sends 172-byte G.711 RTP packets (or their
SRTP form) at a fixed rate to the relay's leg A; the relay (uvloop, or the default loop with the
max_size fix) forwards from leg B to a sink that counts what arrives. Modes:

  passthrough  SRTP in, same bytes out (relaying anchor, end-to-end keys)
  protect      RTP in, SRTP out (pylibsrtp protect per packet)
  unprotect    SRTP in, RTP out (pylibsrtp unprotect per packet, e.g. an SRTP-terminating AGW)
  reencrypt    SRTP in, SRTP out with another key (unprotect + protect)

For each mode and offered rate it prints packets sent/forwarded/received, the loss, and the relay's
CPU time per packet. Also a socket-free crypto micro-benchmark (pylibsrtp and our explicit-ROC
cryptography path). Bounded: every run lasts ``--seconds`` (default 2 s).

    .venv/bin/python benchmarks/bench_srtp_relay.py --rates 50000 100000 --modes protect unprotect
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ims.media.keys import SrtpKeys
from ims.media.srtp import LateJoinDecryptor, SrtpReceiver, SrtpSender

HOST = "127.0.4.50"
SUITE = "AES_CM_128_HMAC_SHA1_80"
K1 = SrtpKeys(suite=SUITE, master_key=bytes(range(16)), master_salt=bytes(range(16, 30)))
K2 = SrtpKeys(suite=SUITE, master_key=bytes(range(30, 46)), master_salt=bytes(range(46, 60)))


def rtp(seq: int, ssrc: int = 0x1234) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc) + b"\xd5" * 160
    )


def relay_proc(mode: str, loop_kind: str, ports: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    from ims.media.aio_relay import RtpRelay

    _pin(1)

    async def main() -> None:
        kw: dict[str, SrtpKeys] = {}
        if mode in ("unprotect", "reencrypt"):
            kw["a_rx_keys"] = K1
        if mode in ("protect", "reencrypt"):
            kw["b_tx_keys"] = K2
        relay = await RtpRelay.create(HOST, rcvbuf=4 << 20, **kw)  # type: ignore[arg-type]
        ports.put((relay.a.port, relay.b.port))
        sink_port = ports_in.get()
        relay.set_remote("b", HOST, sink_port)
        cpu0 = time.process_time()
        while True:
            await asyncio.sleep(0.2)
            if not ports_in.empty():
                ports_in.get()
                break
        cpu = time.process_time() - cpu0
        st = relay.a.stats
        results.put(
            {"received": st.received, "forwarded": st.forwarded, "dropped": st.dropped, "cpu": cpu}
        )
        relay.close()

    ports_in = ports
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def _pin(cpu: int) -> None:
    """Relay alone on CPU 1, generator and sink on CPU 0 (when the machine has 2+ CPUs)."""
    if PIN and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


PIN = False


def sink_proc(port_q: mp.Queue, count_q: mp.Queue) -> None:  # type: ignore[type-arg]
    _pin(0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((HOST, 0))
    port_q.put(s.getsockname()[1])
    s.settimeout(3.0)
    n = 0
    try:
        while True:
            s.recv(2048)
            n += 1
            s.settimeout(0.5)
    except TimeoutError:
        pass
    count_q.put(n)


def run_one(mode: str, rate: int, seconds: float, loop_kind: str) -> dict[str, float]:
    ctx = mp.get_context("fork")
    relay_ports: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    relay = ctx.Process(target=relay_proc, args=(mode, loop_kind, relay_ports, results))
    relay.start()
    port_a, _port_b = relay_ports.get(timeout=10)
    sink_port_q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    count_q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    sink = ctx.Process(target=sink_proc, args=(sink_port_q, count_q))
    sink.start()
    sink_port = sink_port_q.get(timeout=10)
    relay_ports.put(sink_port)
    total = int(rate * seconds)
    sender = SrtpSender(K1)
    if mode == "protect":
        packets = [rtp(i) for i in range(total)]
    else:
        packets = [sender.protect(rtp(i)) or b"" for i in range(total)]
    _pin(0)
    gen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gen.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    dest = (HOST, port_a)
    time.sleep(0.3)
    batch = max(1, rate // 1000)  # one batch per millisecond
    t0 = time.perf_counter()
    sent = 0
    for i in range(0, total, batch):
        for p in packets[i : i + batch]:
            gen.sendto(p, dest)
        sent += len(packets[i : i + batch])
        due = t0 + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - t0
    received = count_q.get(timeout=30)
    relay_ports.put("stop")
    stats = results.get(timeout=30)
    relay.join(10)
    sink.join(10)
    gen.close()
    return {
        "mode": mode,
        "loop": loop_kind,
        "offered_pps": rate,
        "achieved_send_pps": sent / elapsed,
        "sent": sent,
        "relay_in": stats["received"],
        "forwarded": stats["forwarded"],
        "received": received,
        "relay_drop_in": sent - stats["received"],
        "loss_pct": 100.0 * (sent - received) / sent,
        "cpu_us_per_pkt": 1e6 * stats["cpu"] / max(stats["received"], 1),
    }


def crypto_micro(n: int = 100_000) -> None:
    plain = [rtp(i) for i in range(n)]
    s = SrtpSender(K1)
    t = time.perf_counter()
    wire = [s.protect(p) or b"" for p in plain]
    prot = n / (time.perf_counter() - t)
    r = SrtpReceiver(K1)
    t = time.perf_counter()
    for w in wire:
        r.unprotect(w)
    unprot = n / (time.perf_counter() - t)
    ld = LateJoinDecryptor(K1)
    m = n // 5
    t = time.perf_counter()
    for w in wire[:m]:
        ld.unprotect(w)
    slow = m / (time.perf_counter() - t)
    print(
        f"crypto only, {SUITE}, 172-byte RTP, {n} packets: protect {prot / 1e3:.0f}k pps, "
        f"unprotect {unprot / 1e3:.0f}k pps (SrtpReceiver incl. index tracking), "
        f"explicit-ROC cryptography path {slow / 1e3:.0f}k pps"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--modes", nargs="+", default=["passthrough", "protect", "unprotect", "reencrypt"]
    )
    ap.add_argument("--rates", nargs="+", type=int, default=[50_000, 100_000, 120_000])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--loops", nargs="+", default=["uvloop"], choices=["uvloop", "default"])
    ap.add_argument("--no-micro", action="store_true")
    ap.add_argument("--pin", action="store_true", help="relay on CPU 1, generator+sink on CPU 0")
    ap.add_argument("--repeat", type=int, default=3, help="runs per point; the best is shown")
    args = ap.parse_args()
    global PIN
    PIN = args.pin
    if not args.no_micro:
        crypto_micro()
    cols = ("loop", "mode", "offered", "sent/s", "fwd", "recv", "loss%", "cpu us/pkt")
    print("{:8} {:12} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10}".format(*cols))
    for loop_kind in args.loops:
        for mode in args.modes:
            for rate in args.rates:
                runs = [run_one(mode, rate, args.seconds, loop_kind) for _ in range(args.repeat)]
                r = min(runs, key=lambda x: x["loss_pct"])
                row = (
                    r["loop"],
                    r["mode"],
                    r["offered_pps"],
                    round(r["achieved_send_pps"]),
                    r["forwarded"],
                    r["received"],
                    r["loss_pct"],
                    r["cpu_us_per_pkt"],
                )
                print(
                    "{:8} {:12} {:>8} {:>8} {:>8} {:>8} {:>6.2f} {:>10.2f}".format(*row), flush=True
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
