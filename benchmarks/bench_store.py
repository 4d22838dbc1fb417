"""The cost of the element store (ims.store) per operation a call or a registration makes.

Operations, each as the elements make them:

* ``register``: one REGISTER's binding update (``BindingStore.apply``: an atomic
  read-check-write of the AOR's record) -- the S-CSCF, once per registration refresh;
* ``lookup``: a terminating request's binding look-up (``BindingStore.lookup``) -- the S-CSCF,
  once per terminating INVITE;
* ``nonce``: one nonce-count use (``DigestServer`` replay memory, an atomic update) -- once
  per authenticated REGISTER;
* ``access``: a P-CSCF access-binding read (``StoredMap.get``) -- once per request from a UE.

Backends: the private in-memory SQLite (what an element uses with no store), an SQLite file in
WAL mode (the lab's default), and Redis over a unix socket (a redis-server this script starts
in a temporary directory and stops). The anchor, measured in the same run and process: parsing
a 777-byte INVITE with SDP (``ims.sip.parse_message``), the one thing every SIP message costs.
Each figure: wall time per operation (what the element waits) and this process's CPU time per
operation; for Redis also the server's CPU per operation (``INFO cpu``). Rounds are
interleaved so load from other jobs hits every case alike; the best and median round are
given, with the load average.

Run: ``.venv/bin/python benchmarks/bench_store.py [--n 2000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from benchmarks.bench_sip_parser import invite
from ims.sip import parse_message
from ims.sip.auth import DigestServer
from ims.sip.registrar import BindingStore, ContactRequest
from ims.store import Store, open_store
from ims.store.mapping import StoredMap
from lab.redisd import RedisServer


def _cases(store: Store, n: int) -> dict[str, Callable[[int], object]]:
    now = time.time()
    bindings = BindingStore(store, namespace="location.bench")
    for i in range(n):
        bindings.apply(
            f"sip:user{i}@ims-a.test",
            [ContactRequest(key=f"sip:u{i}@10.0.0.1", uri=f"sip:u{i}@10.0.0.1")],
            call_id=f"c{i}",
            cseq=1,
            now=now,
        )
    cseq = [1]

    def register(i: int) -> object:
        cseq[0] += 1
        return bindings.apply(
            f"sip:user{i}@ims-a.test",
            [ContactRequest(key=f"sip:u{i}@10.0.0.1", uri=f"sip:u{i}@10.0.0.1")],
            call_id=f"c{i}",
            cseq=cseq[0],
            now=now,
        )

    digest = DigestServer("ims-a.test", b"k" * 32, nonce_store=store)
    nonces = [digest.make_nonce(now) for _ in range(n)]
    counts = [0] * n

    def nonce(i: int) -> object:
        counts[i] += 1
        return digest._use_nonce(nonces[i], f"user{i % 50}", counts[i], now)

    access: StoredMap[str, bytes] = StoredMap(
        store,
        "access-flow.bench",
        key=str,
        encode=lambda v: v,
        decode=lambda v: v,
        expires_at=lambda v: now + 600,
        clock=time.time,
    )
    for i in range(n):
        access[f"10.0.{i // 250}.{i % 250}:5060"] = b'{"flow": ["10.0.0.1", 5060, "udp"]}' * 4
    return {
        "register": register,
        "lookup": lambda i: bindings.lookup(f"sip:user{i}@ims-a.test", now),
        "nonce": nonce,
        "access": lambda i: access.get(f"10.0.{i // 250}.{i % 250}:5060"),
    }


def _server_cpu(client: redis.Redis | None) -> float:
    if client is None:
        return 0.0
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="operations per case and round")
    ap.add_argument("--repeat", type=int, default=5, help="rounds")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="imslab-bench-store-"))
    server = RedisServer(tmp / "redis")
    server.start()
    try:
        stores = {
            "sqlite-memory": open_store("sqlite://:memory:"),
            "sqlite-file": open_store(f"sqlite://{tmp / 'store.db'}"),
            "redis-unix": open_store(server.url),
        }
        probe = redis.Redis(unix_socket_path=str(server.socket))
        cases = {b: _cases(s, args.n) for b, s in stores.items()}
        msgs = [invite(i) for i in range(args.n)]
        results: dict[str, list[tuple[float, float, float]]] = {}
        for _ in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            for m in msgs:
                parse_message(m)
            anchor = "anchor: parse INVITE+SDP"
            results.setdefault(anchor, []).append(
                ((time.perf_counter() - start) / args.n, (time.process_time() - cpu) / args.n, 0)
            )
            for backend, ops in cases.items():
                for op, fn in ops.items():
                    srv = _server_cpu(probe if backend == "redis-unix" else None)
                    start, cpu = time.perf_counter(), time.process_time()
                    for i in range(args.n):
                        fn(i)
                    wall = (time.perf_counter() - start) / args.n
                    own = (time.process_time() - cpu) / args.n
                    other = (_server_cpu(probe if backend == "redis-unix" else None) - srv) / args.n
                    results.setdefault(f"{backend} {op}", []).append((wall, own, other))
        base = min(w for w, _, _ in results["anchor: parse INVITE+SDP"])
        print(f"load average {os.getloadavg()}, n={args.n}, rounds={args.repeat}")
        print(
            f"{'case':34s} {'wall best':>10s} {'median':>8s} {'x parse':>8s} {'cpu':>8s} "
            f"{'server cpu':>10s}"
        )
        for name, rounds in results.items():
            walls = [w for w, _, _ in rounds]
            best = min(rounds)
            print(
                f"{name:34s} {best[0] * 1e6:8.1f}us {statistics.median(walls) * 1e6:6.1f}us "
                f"{best[0] / base:7.2f}x {best[1] * 1e6:6.1f}us {best[2] * 1e6:8.1f}us"
            )
        for s in stores.values():
            s.close()
        probe.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
