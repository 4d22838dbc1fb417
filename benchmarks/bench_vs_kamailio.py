"""`imslab run sip-proxy` against Debian's Kamailio, one run, same SIPp scenario, same machine.

    .venv/bin/python benchmarks/bench_vs_kamailio.py                    # ramp both, print ratio
    .venv/bin/python benchmarks/bench_vs_kamailio.py --start 100 --step 100 --max-rate 3000
    .venv/bin/python benchmarks/bench_vs_kamailio.py --only imslab --overload

Installs nothing: needs ``sipp`` and ``kamailio`` (Debian packages, listed in dev.sh; without
Kamailio only imslab is measured and no ratio is printed). Run it inside a network namespace
of its own when other work shares the machine (its addresses are 127.0.4.0/24).

The scenario (issue 15): the callee (a SIPp UAS) registers at the proxy's registrar, then a
SIPp UAC places INVITE/100/180/200/ACK/BYE/200 calls to it through the proxy, which
Record-Routes; ``benchmarks/sipp/`` holds the UAC, UAS and REGISTER scenarios. Kamailio
runs ``benchmarks/kamailio-proxy.cfg`` (tm + registrar + rr, usrloc in memory) with
``--workers`` UDP workers.

Each proxy is stepped through rates (``--seconds`` of calls per step) until a step is not
loss-free: a step is loss-free when every call completed, none was shed with 503, and SIPp
kept its schedule (finished within 20 % + 2 s of the planned time). The max loss-free rate of
each and the ratio imslab / Kamailio are printed with the load average before and after.

``--shed`` runs imslab with its overload control (``run sip-proxy --overload``: 503 +
Retry-After for new requests while its queueing delay stays high, ``ims.sip.proxy.overload``).
``--overload``: afterwards imslab alone is driven at twice its max loss-free rate for
``--overload-seconds`` (goodput = calls completed per second; issue 15 wants >= 80 % of the
max loss-free rate) and then at its max loss-free rate again (0 failed calls wanted).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "benchmarks" / "sipp"
UAS_XML = SCENARIOS / "uas.xml"
KAMAILIO_CFG = ROOT / "benchmarks" / "kamailio-proxy.cfg"
DOMAIN = "bench.test"
CALLEE = "bob"
PROXY_IP, UAC_IP, UAS_IP = "127.0.4.1", "127.0.4.2", "127.0.4.3"
# SIPp's own sockets: its default -buff_size is 65,535 bytes, about 100 INVITEs; a scheduling
# hiccup of a few ms at 1,000+ calls/s overflows it (nstat UdpRcvbufErrors) and every lost
# datagram costs a 500 ms retransmission: that, not the proxies, capped the first runs of this
# benchmark at 400-600 calls/s. 4 MiB is net.core.rmem_max on the project's machines.
SIPP_BUFFER = ("-buff_size", str(4 * 1024 * 1024))
# the UAC opens one socket per call (-t un): imslab's workers share the proxy's address with
# SO_REUSEPORT, where the kernel picks a worker per source address and port; calls from one
# SIPp socket would all land on one worker (real UEs come from many addresses). Kamailio's
# workers read one shared socket, so this changes nothing for it.
SIPP_UAC_SOCKETS = ("-t", "un", "-max_socket", "16000")


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def load() -> float:
    return round(os.getloadavg()[0], 2)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (Kamailio's
    forked workers, imslab's worker processes): calls per CPU-second is the comparison that a
    loaded machine disturbs least."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        p = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(p)
        cpu[p] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += children.get(p, [])
    return total


# ------------------------------------------------------------------------------ proxies
@dataclass
class Proxy:
    name: str
    address: str  # ip:port
    proc: subprocess.Popen[bytes]
    log: Path
    uas_port: int = 0

    def __post_init__(self) -> None:
        self.uas_port = self.uas_port or free_port(UAS_IP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_imslab(work: Path, *, shed: bool = False, workers: int = 1) -> Proxy:
    """``imslab run sip-proxy``; ``shed``: with its overload control (``--overload``);
    ``workers`` processes sharing the address (``--workers``)."""
    port = free_port(PROXY_IP)
    log = work / "imslab.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lab.cli import main; sys.exit(main())",
         "run", "sip-proxy", "--listen", f"{PROXY_IP}:{port}", "--domain", DOMAIN,
         "--workers", str(workers), *(["--overload"] if shed else [])],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if b"sip-proxy ready" in log.read_bytes():
            return Proxy("imslab", f"{PROXY_IP}:{port}", proc, log)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"imslab sip-proxy did not start: {log.read_text(errors='replace')[-500:]}")


def kamailio_modules() -> Path:
    for p in (Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
              *Path("/usr/lib").glob("*/kamailio/modules")):  # fmt: skip
        if (p / "tm.so").exists():
            return p
    raise SystemExit("kamailio modules not found")


def start_kamailio(kamailio: str, work: Path, workers: int) -> Proxy:
    port = free_port(PROXY_IP)
    rundir = work / "kamailio"
    rundir.mkdir(exist_ok=True)
    cfg = rundir / "kamailio.cfg"
    text = KAMAILIO_CFG.read_text()
    for key, value in (
        ("KAMAILIO_CHILDREN", str(workers)),
        ("KAMAILIO_LISTEN", f"udp:{PROXY_IP}:{port}"),
        ("KAMAILIO_MPATH", str(kamailio_modules())),
    ):
        text = text.replace(key, value)
    cfg.write_text(text)
    check = subprocess.run([kamailio, "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"kamailio config check failed: {check.stderr[-800:]}")
    log = rundir / "kamailio.log"
    # -m: shared memory (MB) for transactions; with 64, Kamailio ran out at 1,000 calls/s
    # ("tm: build_cell(): could not allocate shared memory", every new transaction refused
    # while the wait timers held the old ones): the earlier runs measured that, not Kamailio
    proc = subprocess.Popen(
        [kamailio, "-f", str(cfg), "-DD", "-E", "-m", "1024", "-M", "8",
         "-Y", str(rundir), "-w", str(rundir), "-P", str(rundir / "kamailio.pid")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(1.0)
    if proc.poll() is not None:
        raise SystemExit(f"kamailio did not start: {log.read_text(errors='replace')[-800:]}")
    return Proxy("kamailio", f"{PROXY_IP}:{port}", proc, log)


# ------------------------------------------------------------------------------ SIPp
def _stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


def _int(d: dict[str, str], key: str) -> int:
    return int(d.get(key, "0") or 0)


def register(sipp: str, proxy: str, contact: str, work: Path) -> bool:
    """REGISTER the callee; a proxy still shedding load after the previous step answers 503
    + Retry-After (2 s for imslab), so try again after that, three times at most."""
    for attempt in range(3):
        if attempt:
            time.sleep(2.0)
        if _register_once(sipp, proxy, contact, work):
            return True
    return False


def _register_once(sipp: str, proxy: str, contact: str, work: Path) -> bool:
    r = subprocess.run(
        ["timeout", "15", sipp, "-sf", str(SCENARIOS / "register.xml"), proxy, "-i", UAC_IP,
         "-p", str(free_port(UAC_IP)), "-s", CALLEE, "-key", "domain", DOMAIN,
         "-key", "contact", contact, "-m", "1", "-timeout", "10", "-timeout_error",
         "-nostdin"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return r.returncode == 0


def direct_scenarios(work: Path) -> Path:
    """The UAC and UAS scenarios without their Record-Route checks, for SIPp against SIPp
    with no proxy between (the harness's own ceiling)."""
    out = work / "direct"
    out.mkdir(exist_ok=True)
    for name in ("uac.xml", "uas.xml"):
        text = (SCENARIOS / name).read_text().replace('check_it="true"', 'check_it="false"')
        (out / name).write_text(text)
    return out


def sipp_step(
    sipp: str,
    proxy: str,
    rate: int,
    seconds: float,
    work: Path,
    uas_port: int,
    scenarios: Path | None = None,
    grace: float | None = None,
) -> dict[str, object]:
    """``rate`` calls/s for ``seconds`` through ``proxy`` to the UAS on ``uas_port``, its
    registration refreshed first (one port per proxy: one binding, no fork to an old UAS).
    ``scenarios``: SIPp straight to the UAS (``proxy`` is then the UAS), no registration.
    ``grace``: seconds SIPp waits after the last call is placed before it stops and counts
    what did not complete as failed (default 2 * seconds + 20)."""
    calls = max(1, int(rate * seconds))
    uac_port = free_port(UAC_IP)
    counts_dir = work / f"counts-{rate}-{time.monotonic_ns()}"  # SIPp names its file by pid
    counts_dir.mkdir()
    limit = int(seconds + (2 * seconds + 20 if grace is None else grace))
    tag = f"{rate}-{time.monotonic_ns()}"
    uas_csv, uac_csv = work / f"uas-{tag}.csv", work / f"uac-{tag}.csv"
    uas_xml = scenarios / "uas.xml" if scenarios else UAS_XML
    uac_xml = (scenarios or SCENARIOS) / "uac.xml"
    uas = subprocess.Popen(
        ["timeout", str(limit + 10), sipp, "-sf", str(uas_xml), "-i", UAS_IP,
         "-p", str(uas_port), *SIPP_BUFFER, "-nostdin", "-trace_stat", "-stf", str(uas_csv),
         "-fd", "1"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        if scenarios is None and not register(sipp, proxy, f"{UAS_IP}:{uas_port}", work):
            return {"rate": rate, "calls": calls, "ok": 0, "shed": 0, "failed": calls,
                    "seconds": 0.0, "cps": 0.0, "error": "REGISTER failed"}  # fmt: skip
        t0 = time.monotonic()
        uac = subprocess.Popen(
            ["timeout", str(limit + 5), sipp, "-sf", str(uac_xml), proxy,
             "-i", UAC_IP, "-p", str(uac_port), "-s", CALLEE, "-key", "domain", DOMAIN,
             "-m", str(calls), "-r", str(rate), "-l", str(rate * 4), "-timeout", str(limit),
             "-timeout_error", *SIPP_BUFFER, *SIPP_UAC_SOCKETS, "-nostdin", "-trace_stat",
             "-stf", str(uac_csv), "-trace_counts", "-fd", "1"],
            cwd=counts_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            uac.wait(timeout=limit + 20)
        except subprocess.TimeoutExpired:
            uac.kill()
            uac.wait()
        elapsed = time.monotonic() - t0
    finally:
        uas.terminate()
        try:
            uas.wait(timeout=10)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()
    a = _stats(uac_csv)
    # a shed call ends with stop_call, which SIPp counts as *successful*: the 503s received
    # (-trace_counts, the "<n>_503_Recv" column) are taken out of the successful calls
    counts: dict[str, str] = {}
    for path in counts_dir.glob("*_counts.csv"):
        counts = _stats(path)
    shed = sum(int(v or 0) for k, v in counts.items() if k.endswith("_503_Recv"))
    ok = _int(a, "SuccessfulCall(C)") - shed
    failed = _int(a, "FailedCall(C)")
    failed += max(0, calls - ok - shed - failed)  # calls never completed
    return {
        "rate": rate,
        "calls": calls,
        "ok": ok,
        "shed": shed,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "cps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        # completed calls per second of the offered window (cps above also counts the time
        # SIPp waits for the timeout of a lost call)
        "goodput": round(ok / (calls / rate), 1),
    }


def loss_free(r: dict[str, object], seconds: float, slack: float | None = None) -> bool:
    """Every call completed, none shed, and SIPp finished within ``slack`` seconds of its
    schedule (default 20 % + 2 s): a proxy behind schedule is only living off its backlog."""
    behind = float(str(r["seconds"])) > seconds + (seconds * 0.2 + 2 if slack is None else slack)
    return r["failed"] == 0 and r["shed"] == 0 and r["ok"] == r["calls"] and not behind


def ramp(
    sipp: str,
    proxy: Proxy | None,
    rates: list[int],
    seconds: float,
    work: Path,
    grace: float | None = None,
    slack: float | None = None,
) -> tuple[int, list[dict[str, object]]]:
    """Step through ``rates`` until one is not loss-free; ``proxy`` None: SIPp to SIPp."""
    best, runs = 0, []
    direct = direct_scenarios(work) if proxy is None else None
    name = "sipp" if proxy is None else proxy.name
    uas_port = free_port(UAS_IP) if proxy is None else proxy.uas_port
    for rate in rates:
        address = f"{UAS_IP}:{uas_port}" if proxy is None else proxy.address
        cpu0 = 0.0 if proxy is None else tree_cpu(proxy.proc.pid)
        r = sipp_step(sipp, address, rate, seconds, work, uas_port, direct, grace)
        ok = int(str(r["ok"]))
        if proxy is not None and ok:
            r["cpu_ms_per_call"] = round((tree_cpu(proxy.proc.pid) - cpu0) * 1000 / ok, 3)
        r["proxy"], r["load"] = name, load()
        runs.append(r)
        print(f"{name:>9} {r['rate']:>6} {r['calls']:>7} {r['ok']:>7} {r['shed']:>6} "
              f"{r['failed']:>7} {r['seconds']:>8} {r['cps']:>8} {r['load']:>6} "
              f"{r.get('cpu_ms_per_call', '-'):>8} {r.get('error', '')}", flush=True)  # fmt: skip
        if not loss_free(r, seconds, slack):
            break
        best = rate
    return best, runs


@contextlib.contextmanager
def running(proxy: Proxy) -> Iterator[Proxy]:
    try:
        yield proxy
    finally:
        proxy.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="", help="comma list of calls/s (default: a ramp)")
    ap.add_argument("--start", type=int, default=250)
    ap.add_argument("--step", type=int, default=250)
    ap.add_argument("--max-rate", type=int, default=6000)
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of calls per step")
    ap.add_argument("--workers", type=int, default=2, help="UDP workers of each proxy")
    ap.add_argument("--only", choices=("imslab", "kamailio"), help="measure one proxy only")
    ap.add_argument(
        "--uac-transport",
        choices=("un", "u1"),
        default="un",
        help="SIPp UAC sockets: one per call (un, default) or one (u1)",
    )
    ap.add_argument(
        "--harness",
        action="store_true",
        help="first ramp SIPp against SIPp with no proxy: the harness's own ceiling",
    )
    ap.add_argument("--overload", action="store_true", help="imslab at 2x its max, then 1x")
    ap.add_argument("--overload-seconds", type=float, default=10.0)
    ap.add_argument("--shed", action="store_true", help="imslab with its overload control on")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    global SIPP_UAC_SOCKETS
    if args.uac_transport == "u1":
        SIPP_UAC_SOCKETS = ("-t", "u1")
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp is not installed (apt-get install sip-tester)")
        return 1
    kamailio = shutil.which("kamailio")
    if kamailio is None and Path("/usr/sbin/kamailio").exists():
        kamailio = "/usr/sbin/kamailio"  # sbin is not on every user's PATH
    rates = (
        [int(r) for r in args.rates.split(",") if r]
        if args.rates
        else list(range(args.start, args.max_rate + 1, args.step))
    )
    results: dict[str, object] = {"cores": os.cpu_count(), "load_before": load()}
    print(f"machine: {os.cpu_count()} cores, load average {results['load_before']}")
    print(f"{'proxy':>9} {'rate':>6} {'calls':>7} {'ok':>7} {'shed':>6} {'failed':>7} "
          f"{'seconds':>8} {'cps':>8} {'load':>6} {'cpu ms/call':>8}")  # fmt: skip
    best: dict[str, int] = {}
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-vs-kamailio-") as tmp:
        work = Path(tmp)
        if args.harness:
            best["sipp"], r = ramp(sipp, None, rates, args.seconds, work)
            runs += r
        if args.only != "imslab":
            if kamailio is None:
                print("kamailio is not installed (apt-get install kamailio): imslab only")
            else:
                with running(start_kamailio(kamailio, work, args.workers)) as k:
                    best["kamailio"], r = ramp(sipp, k, rates, args.seconds, work)
                    runs += r
        if args.only != "kamailio":
            with running(start_imslab(work, shed=args.shed, workers=args.workers)) as p:
                best["imslab"], r = ramp(sipp, p, rates, args.seconds, work)
                runs += r
                top = best["imslab"]
                if args.overload and top > 0:
                    over = sipp_step(
                        sipp, p.address, 2 * top, args.overload_seconds, work, p.uas_port
                    )
                    over["load"] = load()
                    after = sipp_step(sipp, p.address, top, args.seconds, work, p.uas_port)
                    after["load"] = load()
                    results["overload"] = {
                        "max_loss_free": top,
                        "at_2x": over,
                        "goodput_ratio": round(float(str(over["goodput"])) / top, 2),
                        "after": after,
                    }
                    print(f"overload: 2x = {2 * top}/s for {args.overload_seconds:.0f} s -> "
                          f"{over['ok']} completed (goodput {over['goodput']}/s = "
                          f"{float(str(over['goodput'])) / top:.0%} of {top}; {over['cps']}/s "
                          f"over {over['seconds']} s), {over['shed']} shed "
                          f"503, {over['failed']} failed; then {top}/s: {after['ok']}/"
                          f"{after['calls']} completed, {after['failed']} failed, "
                          f"{after['shed']} shed")  # fmt: skip
    results["runs"] = runs
    results["max_loss_free"] = best
    results["load_after"] = load()
    for name, rate in best.items():
        print(f"max loss-free rate {name}: {rate} calls/s")
    if best.get("kamailio"):
        results["ratio"] = round(best.get("imslab", 0) / best["kamailio"], 2)
        print(f"ratio imslab / kamailio: {results['ratio']}")
    # CPU per completed call over the loss-free steps of each (all steps when none was)
    per_call: dict[str, float] = {}
    for name in ("kamailio", "imslab"):
        mine = [r for r in runs if r.get("proxy") == name and "cpu_ms_per_call" in r]
        clean = [r for r in mine if loss_free(r, args.seconds)] or mine
        if clean:
            per_call[name] = min(float(str(r["cpu_ms_per_call"])) for r in clean)
            print(f"CPU per call {name}: {per_call[name]} ms")
    if len(per_call) == 2 and per_call["imslab"] > 0:
        results["cpu_ratio"] = round(per_call["kamailio"] / per_call["imslab"], 2)
        print(f"calls per CPU-second, imslab / kamailio: {results['cpu_ratio']}")
    results["cpu_ms_per_call"] = per_call
    print(f"load average: before {results['load_before']}, after {results['load_after']}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
