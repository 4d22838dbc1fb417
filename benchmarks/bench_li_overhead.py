"""What lawful interception costs the network: P-CSCF calls/s and anchor packets/s.

1. **Calls/s through the P-CSCF** (real calls, in-process lab on 127.0.81.0/24 or ``--subnet``):
   alice and carol
   both register at ``pcscf-a`` (carol as a roamer with the home P-CSCF) and call bob back to
   back, ``--calls`` calls in ``--concurrency`` parallel streams, no media beyond call set-up.
   Four modes: no POI, POIs attached with no task, POIs with a task on alice who makes 10 % of
   the calls (IRI-POIs on pcscf-a and scscf-a exporting X2 to a real LEMF over TCP, CC-POI on
   anchor-a), and the same with records not exported. Reported per CPU-second of the process:
   medians over ``--rounds`` rotated rounds and the ratio task/no-POI (target >= 0.9).
2. **IRI-POI hook alone**: SIP messages/s through ``IriPoi.hook`` on the messages of real calls
   (recorded from the P-CSCF), 10 % of calls targeted vs no task.
3. **Anchor packets/s**: one anchor session, ``--packets`` RTP packets (200 bytes) sent as fast
   as the relay forwards them, without and with an armed CC-POI exporting every packet as X3
   to a real LEMF (``--anchor-rounds`` rounds, medians).

Run: ``.venv/bin/python benchmarks/bench_li_overhead.py [--only hook|calls|anchor]`` (a few
minutes). Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from li.keys import OperatorKeyPolicy
from li.poi.cc import AnchorCcPoi, CcRecord
from li.poi.export import cc_sender, iri_pdus
from li.poi.iri import CcTrigger, IriPoi, IriRecord, PoiTask
from li.targets import Side, TargetKind
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter

SUBNET = "127.0.81"  # matrix/benchmark range: never collides with the test suite (127.0.8)


def _lemf_host() -> str:
    return f"{SUBNET}.250"


def lab_topology() -> topology.Topology:
    topo = topology.load(subnet=SUBNET)  # SUBNET may be changed by --subnet
    ues = dict(topo.ues)
    ues["carol"] = dataclasses.replace(ues["carol"], pcscf="pcscf-a")
    return dataclasses.replace(topo, ues=ues)


#: niceness of the LEMF process (--lemf-nice): the agency's machine, not ours
LEMF_NICE = 0

_LEMF_SCRIPT = """
import asyncio, os, sys
os.nice(int(sys.argv[3]))
from pathlib import Path
from li.lemf.receiver import LemfServer
async def main():
    async with LemfServer(Path(sys.argv[1]), host=sys.argv[2], plain_tcp=True) as lemf:
        print(lemf.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


class ExternalLemf:
    """The LEMF in its own process, as at an agency: its work must not be timed as ours."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ExternalLemf:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _LEMF_SCRIPT,
            str(self.out),
            _lemf_host(),
            str(LEMF_NICE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        self.port = int(line)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class LiSide:
    """POIs of operator A exporting to a real LEMF (like the matrix, without X1)."""

    def __init__(self, lab: Lab, work: Path, lemf: ExternalLemf, *, export: bool = True) -> None:
        self.lab, self.work, self.lemf = lab, work, lemf
        self.export = export  # False: records are only counted (the POIs' own cost)
        self.did = uuid.uuid4()
        self.exporters: list[X2X3Exporter] = []
        self.pois: list[IriPoi] = []
        self.removers: list[Any] = []
        self.records = 0

    async def attach(self) -> None:
        topo = self.lab.topology
        dest = DeliveryDestination(did=self.did, host=_lemf_host(), port=self.lemf.port)
        anchor_exp = X2X3Exporter(self.work / "spool-anchor", nf_id="anchor-a")
        anchor_exp.add_destination(dest)
        await anchor_exp.start()
        self.exporters.append(anchor_exp)

        send_cc = cc_sender(anchor_exp)

        def cc_emit(r: CcRecord) -> None:
            self.records += 1
            if self.export:
                send_cc(r)

        cc = AnchorCcPoi(element="anchor-a", emit=cc_emit)
        self.removers.append(self.lab.elements["anchor-a"].anchor.hooks.add(cc.hook(time.time)))
        for i, name in enumerate(("pcscf-a", "scscf-a")):
            exp = X2X3Exporter(self.work / f"spool-{name}", nf_id=name)
            exp.add_destination(dest)
            await exp.start()
            self.exporters.append(exp)

            def emit(r: IriRecord, exp: X2X3Exporter = exp) -> None:
                self.records += 1
                if self.export:
                    for pdu in iri_pdus(r):
                        exp.send_pdu(pdu)

            el = topo.elements[name]
            poi = IriPoi(
                element=name,
                address=(el.address, el.sip_port),
                emit=emit,
                trigger_cc=cc.trigger if i == 0 else None,
                extract_keys=OperatorKeyPolicy(),
            )
            self.removers.append(self.lab.elements[name].sip_hooks.add(poi.hook(time.time)))
            self.pois.append(poi)

    def task(self, aor: str) -> None:
        t = PoiTask(xid=uuid.uuid4(), targets=((TargetKind.SIP_URI, aor),))
        for exp in self.exporters:
            exp.bind_task(t.xid, [self.did])
        for poi in self.pois:
            poi.activate(t, time.time())

    async def detach(self) -> None:
        for r in self.removers:
            r()
        for exp in self.exporters:
            await exp.drain(timeout=30)
            await exp.close()


async def calls_per_second(mode: str, n_calls: int, concurrency: int, work: Path) -> dict[str, Any]:
    topo = lab_topology()
    async with Lab(topo) as lab, ExternalLemf(work / f"lemf-{mode}") as lemf:
        li = LiSide(lab, work / mode, lemf, export=mode != "task-10pct-no-export")
        if mode != "no-poi":
            await li.attach()
        if mode.startswith("task-10pct"):
            li.task("sip:alice@ims-a.test")
        ues = {n: user_agent(topo, n) for n in ("alice", "carol", "bob")}
        for ua in ues.values():
            ua.audio = "silence"
            await ua.start()
            await ua.register()
        bob_aor = "sip:bob@ims-b.test"
        done = 0
        failures = 0
        counter = iter(range(n_calls))

        async def worker() -> None:
            nonlocal done, failures
            for i in counter:
                caller = "alice" if i % 10 == 0 else "carol"  # 10 % of calls by the target
                try:
                    call = await ues[caller].call(bob_aor, audio="silence")
                    await call.hangup()
                    done += 1
                except Exception:  # a failed call is counted, never retried
                    failures += 1

        t0, c0 = time.perf_counter(), time.process_time()
        async with asyncio.timeout(300):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        for ua in ues.values():
            await ua.close()
        if mode != "no-poi":
            await li.detach()
        return {
            "mode": mode,
            "calls": done,
            "failed": failures,
            "seconds": round(elapsed, 2),
            "calls_per_s": round(done / elapsed, 1),
            # the whole lab runs in this process: CPU seconds per call is what the network
            # spends, and it does not move when other jobs share the machine
            "calls_per_cpu_s": round(done / cpu, 1),
            "iri_records": li.records,
        }


def hook_rate(n_calls: int) -> dict[str, Any]:
    """IriPoi.hook alone on real-shaped messages of n calls (in and out of the P-CSCF)."""
    from ims.sip import parse_message
    from tests.li.poi.sipmsgs import call as call_msgs

    events = []
    for i in range(n_calls):
        caller = "alice@ims-a.test" if i % 10 == 0 else "carol@ims-a.test"
        for raw, by_caller in call_msgs(f"bench-{i}", caller=caller):
            for direction in ("in", "out"):
                peer = ("127.0.8.1", 5060) if by_caller else ("127.0.8.3", 5060)
                events.append(_Event(direction, peer, raw, parse_message(raw)))
    out: dict[str, Any] = {"messages": len(events)}
    for mode in ("no-task", "task-10pct"):
        sink: list[IriRecord] = []
        cc: list[CcTrigger] = []
        poi = IriPoi(
            element="pcscf-a",
            address=("127.0.8.10", 5060),
            emit=sink.append,
            trigger_cc=cc.append,
            extract_keys=OperatorKeyPolicy(),
        )
        if mode == "task-10pct":
            poi.activate(
                PoiTask(xid=uuid.uuid4(), targets=((TargetKind.SIP_URI, "sip:alice@ims-a.test"),)),
                0.0,
            )
        hook = poi.hook(time.time)
        t0 = time.perf_counter()
        for ev in events:
            hook(ev)
        dt = time.perf_counter() - t0
        out[mode] = {"msgs_per_s": round(len(events) / dt), "records": len(sink)}
    out["ratio"] = round(out["task-10pct"]["msgs_per_s"] / out["no-task"]["msgs_per_s"], 3)
    return out


@dataclasses.dataclass
class _Event:
    """Shaped like proxies.hooks.SipMessageEvent (raw bytes only on incoming messages)."""

    direction: str
    peer: tuple[str, int]
    wire: bytes
    message: Any

    @property
    def raw(self) -> bytes | None:
        return self.wire if self.direction == "in" else None


async def anchor_pps(n_packets: int, work: Path) -> dict[str, Any]:
    from proxies.media_anchor import MediaAnchor

    results: dict[str, Any] = {}
    for mode in ("no-tap", "cc-tap-memory", "cc-tap"):
        anchor = MediaAnchor("anchor-a", f"{SUBNET}.12", ports=(31000, 31999))
        alloc = await anchor.allocate("bench-call", 0)
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((f"{SUBNET}.111", 0))
        rx.setblocking(False)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind((f"{SUBNET}.101", 0))
        await anchor.set_remote("bench-call", 0, "core", rx.getsockname())
        await anchor.set_remote("bench-call", 0, "access", tx.getsockname())
        exp = None
        lemf = None
        if mode == "cc-tap":
            lemf = ExternalLemf(work / "lemf-anchor")
            await lemf.__aenter__()
            did, xid = uuid.uuid4(), uuid.uuid4()
            exp = X2X3Exporter(work / "spool-anchor-bench", nf_id="anchor-a")
            exp.add_destination(DeliveryDestination(did=did, host=_lemf_host(), port=lemf.port))
            exp.bind_task(xid, [did])
            await exp.start()
            cc = AnchorCcPoi(element="anchor-a", emit=cc_sender(exp))
            cc.trigger(
                CcTrigger(
                    xid=xid,
                    correlation_id=1,
                    call_id="bench-call",
                    target_identities=frozenset(),
                    target_side=Side.ORIGINATING,
                )
            )
            anchor.hooks.add(cc.hook(time.time))
        if mode == "cc-tap-memory":  # the CC-POI alone: records kept in memory (bounded run)
            kept: list[CcRecord] = []
            mem = AnchorCcPoi(element="anchor-a", emit=kept.append)
            mem.trigger(
                CcTrigger(
                    xid=uuid.uuid4(),
                    correlation_id=1,
                    call_id="bench-call",
                    target_identities=frozenset(),
                    target_side=Side.ORIGINATING,
                )
            )
            anchor.hooks.add(mem.hook(time.time))
        pkt = bytes([0x80, 0]) + bytes(198)
        loop = asyncio.get_running_loop()
        received = 0
        t0, c0, os0 = time.perf_counter(), time.process_time(), os.times()
        sent = 0
        async with asyncio.timeout(120):
            while received < n_packets:
                # keep a bounded window in flight so the relay, not the socket buffer, is timed
                while sent - received < 64 and sent < n_packets + 1000:
                    tx.sendto(pkt, alloc.access)
                    sent += 1
                try:
                    await asyncio.wait_for(loop.sock_recv(rx, 2048), 0.5)
                    received += 1
                except TimeoutError:
                    if sent >= n_packets + 1000:
                        break
                    sent = received  # lost in flight: refill the window
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        os1 = os.times()
        results[mode] = {
            "packets": received,
            "seconds": round(dt, 2),
            "user_s": round(os1.user - os0.user, 3),
            "sys_s": round(os1.system - os0.system, 3),
            "pps": round(received / dt),
            "packets_per_cpu_s": round(received / cpu),
        }
        if exp is not None:
            await exp.drain(timeout=60)
            await exp.close()
        if lemf is not None:
            await lemf.__aexit__(None, None, None)
        tx.close()
        rx.close()
        await anchor.close()
    results["ratio"] = round(
        results["cc-tap"]["packets_per_cpu_s"] / results["no-tap"]["packets_per_cpu_s"], 3
    )
    results["ratio_poi_only"] = round(
        results["cc-tap-memory"]["packets_per_cpu_s"] / results["no-tap"]["packets_per_cpu_s"], 3
    )
    return results


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=4, help="call rounds (a multiple of 4)")
    ap.add_argument("--subnet", default=SUBNET, help="a free /24 of 127/8 (default %(default)s)")
    ap.add_argument(
        "--lemf-nice",
        type=int,
        default=0,
        help="run the LEMF process at this niceness: it stands in for the agency's machine, "
        "and on a small shared box its CPU use slows the lab's calls (default %(default)s)",
    )
    ap.add_argument("--only", choices=("hook", "calls", "anchor"), default=None)
    ap.add_argument("--anchor-rounds", type=int, default=1)
    args = ap.parse_args()
    globals()["SUBNET"] = args.subnet
    globals()["LEMF_NICE"] = args.lemf_nice
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("IMSLAB_PKI", str(work / "pki"))
        report: dict[str, Any] = {}
        if args.only in (None, "hook"):
            report["hook"] = hook_rate(2000)
            print(json.dumps(report["hook"]), flush=True)
        if args.only in (None, "calls"):
            report.update(await calls_rounds(args, work))
        if args.only in (None, "anchor"):
            # several anchor rounds: the median per mode (the machine is shared)
            rounds = []
            for n in range(args.anchor_rounds):
                r = await anchor_pps(args.packets, work / f"anchor{n}")
                print(json.dumps(r), flush=True)
                rounds.append(r)
            report["anchor"] = {
                m: statistics.median(r[m]["packets_per_cpu_s"] for r in rounds)
                for m in ("no-tap", "cc-tap-memory", "cc-tap")
            }
            report["anchor"]["ratio"] = round(
                report["anchor"]["cc-tap"] / report["anchor"]["no-tap"], 3
            )
            report["anchor"]["ratio_poi_only"] = round(
                report["anchor"]["cc-tap-memory"] / report["anchor"]["no-tap"], 3
            )
        summary = {k: v for k, v in report.items() if k not in ("calls", "hook")}
        if "hook" in report:
            summary["hook_ratio"] = report["hook"]["ratio"]
        print(json.dumps({"summary": summary}), flush=True)


async def calls_rounds(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Rounds of the four call modes, median calls per CPU-second per mode.

    The process slows down over a run (its first lab is the fastest; the machine is shared),
    so a fixed order would charge that drift to whichever mode comes last in every round.
    One discarded warm-up run comes first, and the order rotates each round: over
    ``--rounds`` (a multiple of 4) every mode runs equally often in every position. Each run
    starts after a full garbage collection.
    """
    modes = ("no-poi", "no-task", "task-10pct", "task-10pct-no-export")
    per_mode: dict[str, list[float]] = {m: [] for m in modes}
    gc.collect()
    warm = await calls_per_second("no-poi", args.calls, args.concurrency, work / "warm-up")
    print(json.dumps({**warm, "round": "warm-up (discarded)"}), flush=True)
    for round_no in range(args.rounds):
        order = modes[round_no % 4 :] + modes[: round_no % 4]
        for mode in order:
            await asyncio.sleep(0.5)  # let the closed lab's sockets go
            gc.collect()
            r = await calls_per_second(mode, args.calls, args.concurrency, work / f"r{round_no}")
            r["round"] = round_no
            print(json.dumps(r), flush=True)
            per_mode[mode].append(r["calls_per_cpu_s"])
    median = {m: statistics.median(v) for m, v in per_mode.items()}
    # per-round ratios too: a round's modes ran back to back
    round_ratios = [
        round(t / n, 3) for t, n in zip(per_mode["task-10pct"], per_mode["no-poi"], strict=True)
    ]
    return {
        "calls_per_cpu_s_median": median,
        "calls_ratio_task_vs_no_poi": round(median["task-10pct"] / median["no-poi"], 3),
        "calls_ratio_no_task_vs_no_poi": round(median["no-task"] / median["no-poi"], 3),
        "calls_ratio_task_no_export_vs_no_poi": round(
            median["task-10pct-no-export"] / median["no-poi"], 3
        ),
        "calls_round_ratios_task_vs_no_poi": round_ratios,
        "calls_median_round_ratio_task_vs_no_poi": statistics.median(round_ratios),
    }


if __name__ == "__main__":
    asyncio.run(main())
