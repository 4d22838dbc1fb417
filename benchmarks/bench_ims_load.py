"""SIPp load through our P-CSCF -> S-CSCF -> SIPp UAS (calls/s at 0 failed calls).

Set-up (the built-in lab moved to 127.0.17.0/24 by default, ``--subnet``; SIPp on
127.0.17.201/.202): the anchor, the
S-CSCF and the P-CSCF of operator A run as ``imslab run`` subprocesses (uvloop; the P-CSCF
without TLS so it stays on uvloop). The SIPp UAS registers *directly* at the S-CSCF as carol
(digest, no Path: terminating requests go straight to it), the SIPp UAC registers through the
P-CSCF as alice (digest), then places INVITE/200/ACK/BYE/200 calls to ``sip:carol@ims-a.test``
at increasing rates. Each INVITE carries SDP, so every call also allocates and releases a
media-anchor session over the control protocol (no RTP is sent).

Run: ``.venv/bin/python benchmarks/bench_ims_load.py [--rates 50,100,200] [--seconds 10]``.
Each step also prints the CPU time the three elements spent per call (user + system, read from
``/proc``). ``--inprocess`` runs the three elements on this process's event loop instead (SIPp is
waited for in a thread) and ``--profile FILE`` (implies ``--inprocess``) writes a cProfile of the
steps to FILE and prints the top functions.
Every SIPp run is wrapped in ``timeout`` (peers.md: an overloaded SIPp once ignored -timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import topology  # noqa: E402
from lab.orchestrator import Lab  # noqa: E402

SIPP_DIR = ROOT / "tests" / "peers" / "sipp"
UAC_IP, UAC_PORT = "127.0.17.201", 5071
UAS_IP, UAS_PORT = "127.0.17.202", 5072


def sipp(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = ["timeout", str(int(timeout)), "sipp", "-nostdin", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def register(sub: str, password: str, ip: str, port: int, registrar: str) -> None:
    res = sipp(
        [
            "-sf", str(SIPP_DIR / "register_auth.xml"),
            "-s", sub, "-key", "domain", "ims-a.test",
            "-au", f"{sub}@ims-a.test", "-ap", password,
            "-i", ip, "-p", str(port), "-m", "1", registrar,
        ],
        20,
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"REGISTER of {sub} failed: {res.stdout[-2000:]} {res.stderr[-2000:]}")


def counts(output: str) -> tuple[int, int]:
    """(successful, failed) calls from SIPp's final statistics screen."""
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return (int(ok[-1]) if ok else 0, int(bad[-1]) if bad else -1)


def proc_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` (from /proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def bench(
    rates: list[int],
    seconds: float,
    *,
    inprocess: bool = False,
    profile: str | None = None,
    subnet: str | None = None,
) -> list[dict[str, Any]]:
    text = topology.default_path().read_text()
    # operator A's P-CSCF without TLS for this run (the UE hop here is UDP anyway)
    text = text.replace(
        'address = "127.0.10.10"\ntls = true', 'address = "127.0.10.10"\ntls = false'
    )
    tmp = Path(tempfile.mkdtemp(prefix="imslab-bench-"))
    cfg = tmp / "lab.toml"
    cfg.write_text(text)
    os.environ.setdefault("IMSLAB_PKI", str(tmp / "pki"))
    topo = topology.load(cfg, subnet=subnet)
    pcscf = topo.element("pcscf-a")
    scscf = topo.element("scscf-a")
    results = []
    mode = "inprocess" if inprocess else "subprocess"
    prof = cProfile.Profile() if profile else None
    async with Lab(topo, mode=mode, names=["anchor-a", "scscf-a", "pcscf-a"]) as lab:
        pids = [p.proc.pid for p in lab.procs.values()]
        names = list(lab.procs)

        def per_element() -> list[float]:
            return [proc_cpu([pid]) for pid in pids]

        def cpu() -> float:
            return time.process_time() if inprocess else proc_cpu(pids)

        # SIPp runs in a thread so that in-process elements keep their event loop
        await asyncio.to_thread(
            register, "carol", "carol-pw", UAS_IP, UAS_PORT, f"{scscf.address}:{scscf.sip_port}"
        )
        await asyncio.to_thread(
            register, "alice", "alice-pw", UAC_IP, UAC_PORT, f"{pcscf.address}:{pcscf.sip_port}"
        )
        for rate in rates:
            calls = int(rate * seconds)
            uas = subprocess.Popen(
                ["timeout", str(int(seconds * 4 + 30)), "sipp", "-nostdin",
                 "-sf", str(SIPP_DIR / "uas.xml"), "-i", UAS_IP, "-p", str(UAS_PORT),
                 "-m", str(calls)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            c0 = cpu()
            e0 = per_element()
            if prof is not None:
                prof.enable()
            res = await asyncio.to_thread(
                sipp,
                [
                    "-sf", str(SIPP_DIR / "uac.xml"),
                    "-s", "carol", "-key", "uas_host", "ims-a.test",
                    "-i", UAC_IP, "-p", str(UAC_PORT),
                    "-r", str(rate), "-m", str(calls), "-l", str(max(100, rate * 4)),
                    "-d", "0", "-timeout", str(int(seconds * 3 + 20)), "-timeout_error",
                    *(["-trace_err", "-error_file", str(tmp / f"uac-{rate}.err")]
                      if os.environ.get("IMSLAB_BENCH_TRACE") else []),
                    f"{pcscf.address}:{pcscf.sip_port}",
                ],
                seconds * 4 + 30,
            )  # fmt: skip
            if prof is not None:
                prof.disable()
            cpu_s = cpu() - c0
            by_element = [e - e0[i] for i, e in enumerate(per_element())]
            elapsed = time.monotonic() - t0
            ok, failed = counts(res.stdout)
            uas.terminate()
            try:
                uas.wait(5)
            except subprocess.TimeoutExpired:
                uas.kill()
                uas.wait()
            row: dict[str, Any] = {
                "rate": rate,
                "calls": calls,
                "successful": ok,
                "failed": failed,
                "elapsed_s": round(elapsed, 1),
                "achieved_cps": round(ok / elapsed, 1) if elapsed else 0.0,
                "cpu_ms_per_call": round(cpu_s * 1000 / ok, 2) if ok else 0.0,
            }
            if ok and by_element:
                row["cpu_ms_per_call_by_element"] = {
                    n: round(c * 1000 / ok, 2) for n, c in zip(names, by_element, strict=True)
                }
            print(json.dumps(row), flush=True)
            results.append(row)
            if failed != 0 or ok < calls:
                errs = tmp / f"uac-{rate}.err"
                if errs.exists():
                    print(errs.read_text()[-3000:])
                break
    shutil.rmtree(tmp, ignore_errors=True)
    if prof is not None and profile:
        prof.dump_stats(profile)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="50,100,200,300,400", help="calls/s steps")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per step")
    parser.add_argument(
        "--inprocess", action="store_true", help="run the elements on this event loop"
    )
    parser.add_argument("--profile", help="write a cProfile of the steps here (in-process)")
    parser.add_argument(
        "--subnet",
        default="127.0.17",
        help="move every element to this /24 (SIPp is on 127.0.17.201/.202); 'none' keeps the "
        "built-in 127.0.10-19 addresses",
    )
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (./dev.sh setup)")
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    inprocess = bool(args.inprocess or args.profile)
    subnet = None if args.subnet == "none" else args.subnet
    results = asyncio.run(
        bench(rates, args.seconds, inprocess=inprocess, profile=args.profile, subnet=subnet)
    )
    clean = [r for r in results if r["failed"] == 0 and r["successful"] == r["calls"]]
    best = max((r["rate"] for r in clean), default=0)
    print(f"highest rate with 0 failed calls: {best} calls/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
