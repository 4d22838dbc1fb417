"""Calls per second through one `imslab run sip-proxy` process, SIPp at both ends.

    .venv/bin/python benchmarks/bench_sip_proxy.py            # ramp 200, 400... to a failure
    .venv/bin/python benchmarks/bench_sip_proxy.py --rates 500,1000 --seconds 10
    .venv/bin/python benchmarks/bench_sip_proxy.py --cpu-only # in-process cost per call

Two measurements:

1. ``cpu``: the proxy's own CPU time per call (INVITE/100/180/200/ACK/BYE/200, 12 datagrams
   through parser, transaction layer, proxy core and encoder; sockets replaced by a list), with
   ``time.process_time`` so other load on the machine does not count. 1 / that = the calls/s
   one core could carry if the proxy were alone.
2. ``sipp``: SIPp UAC -> proxy (Record-Route, uvloop) -> SIPp UAS, ``--seconds`` of calls at each
   rate; the rate is raised until the first failed call (or a run that falls behind its
   schedule by more than 20 %). Every SIPp run is wrapped in ``timeout``.

Addresses: 127.0.3.0/24. Results go to stdout as a table (and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENARIOS = ROOT / "tests" / "peers" / "sipp"
PROXY_IP, UAC_IP, UAS_IP = "127.0.3.1", "127.0.3.2", "127.0.3.3"


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ cpu
def cpu_per_call(calls: int = 3000) -> float:
    """Seconds of CPU per call through ProxyServer with the socket replaced by a list."""
    from ims.sip.aio.proxy import ProxyServer
    from ims.sip.parser import parse_message
    from ims.sip.proxy.core import ProxyConfig, ProxyCore
    from ims.sip.proxy.location import LocationRouter
    from ims.sip.transaction import Flow
    from ims.sip.transport import Peer

    me = Peer(transport="udp", host=PROXY_IP, port=5070)
    srv = ProxyServer(ProxyCore(ProxyConfig(local=(me,)), LocationRouter()))
    sent: list[tuple[bytes, tuple[str, int]]] = []

    class ListUdp:
        local = (PROXY_IP, 5070)

        def send(self, data: bytes, remote: tuple[str, int]) -> None:
            sent.append((data, remote))

        def close(self) -> None:
            pass

    class Handle:
        def cancel(self) -> None:
            pass

    class Clock:  # the loop as ProxyServer uses it: time() and call_at() (timers run below)
        def time(self) -> float:
            return time.monotonic()

        def call_at(self, when: float, callback: object) -> Handle:
            return Handle()

    srv._udp = [ListUdp()]  # type: ignore[list-item]
    srv._loop = Clock()  # type: ignore[assignment]
    uac, uas = Flow("UDP", (UAC_IP, 5061)), Flow("UDP", (UAS_IP, 5062))
    sdp = (
        "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.3.2\r\ns=-\r\nc=IN IP4 127.0.3.2\r\n"
        "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )

    def invite(i: int) -> bytes:
        return (
            f"INVITE sip:bob@127.0.3.3:5062 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.3.2:5061;branch=z9hG4bK-{i}-0\r\nMax-Forwards: 70\r\n"
            f"Route: <sip:{PROXY_IP}:5070;lr>\r\n"
            f"From: sipp <sip:sipp@127.0.3.2:5061>;tag={i}SIPpTag00\r\n"
            f"To: <sip:bob@127.0.3.3:5062>\r\nCall-ID: {i}-bench@127.0.3.2\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:sipp@127.0.3.2:5061>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        ).encode()

    def answer(req: bytes, status: str, tag: bool = True) -> bytes:
        m = parse_message(req)
        lines = [f"SIP/2.0 {status}"]
        for name in ("Via", "Record-Route", "From"):
            lines += [f"{name}: {v}" for v in m.headers.get_all(name)]
        to = (m.headers.get("To") or "") + (";tag=uas1" if tag else "")
        lines += [f"To: {to}", f"Call-ID: {m.call_id}", f"CSeq: {m.headers.get('CSeq')}",
                  "Contact: <sip:127.0.3.3:5062>", "Content-Length: 0", "", ""]  # fmt: skip
        return "\r\n".join(lines).encode()

    def in_dialog(i: int, method: str, cseq: int, n: int) -> bytes:
        return (
            f"{method} sip:127.0.3.3:5062 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.3.2:5061;branch=z9hG4bK-{i}-{n}\r\n"
            f"Route: <sip:{PROXY_IP}:5070;lr>\r\nMax-Forwards: 70\r\n"
            f"From: sipp <sip:sipp@127.0.3.2:5061>;tag={i}SIPpTag00\r\n"
            f"To: <sip:bob@127.0.3.3:5062>;tag=uas1\r\nCall-ID: {i}-bench@127.0.3.2\r\n"
            f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    # the SIPp side of each message is built outside the timed regions
    total = 0.0
    for i in range(calls):
        sent.clear()
        t = time.process_time()
        srv._on_datagram(invite(i), uac)
        total += time.process_time() - t
        fwd = next(d for d, r in sent if r[0] == UAS_IP)
        r180, r200 = answer(fwd, "180 Ringing"), answer(fwd, "200 OK")
        ack, bye = in_dialog(i, "ACK", 1, 5), in_dialog(i, "BYE", 2, 6)
        t = time.process_time()
        srv._on_datagram(r180, uas)
        srv._on_datagram(r200, uas)
        srv._on_datagram(ack, uac)
        sent.clear()
        srv._on_datagram(bye, uac)
        total += time.process_time() - t
        fwd_bye = next(d for d, r in sent if r[0] == UAS_IP)
        bye200 = answer(fwd_bye, "200 OK", tag=False)
        t = time.process_time()
        srv._on_datagram(bye200, uas)
        total += time.process_time() - t
        if i % 500 == 499:  # the transaction timers fire as they would (K, J, L, D...)
            t = time.process_time()
            later = time.monotonic() + 40.0
            srv._events(srv.layer.handle_timer(later), later)
            total += time.process_time() - t
    return total / calls


# ------------------------------------------------------------------------------ sipp
def _stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


def sipp_run(sipp: str, proxy: str, rate: int, seconds: float, work: Path) -> dict[str, object]:
    calls = int(rate * seconds)
    uas_port, uac_port = free_port(UAS_IP), free_port(UAC_IP)
    limit = int(seconds * 3 + 20)
    uas_csv, uac_csv = work / f"uas-{rate}.csv", work / f"uac-{rate}.csv"
    uas = subprocess.Popen(
        ["timeout", str(limit + 10), sipp, "-sf", str(SCENARIOS / "uas.xml"), "-i", UAS_IP,
         "-p", str(uas_port), "-m", str(calls), "-nostdin", "-trace_stat", "-stf", str(uas_csv),
         "-fd", "1"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    t0 = time.monotonic()
    subprocess.run(
        ["timeout", str(limit + 5), sipp, "-sf", str(SCENARIOS / "uac.xml"), proxy,
         "-i", UAC_IP, "-p", str(uac_port), "-s", "bob", "-key", "uas_host",
         f"{UAS_IP}:{uas_port}", "-m", str(calls), "-r", str(rate), "-l", str(rate * 4),
         "-timeout", str(limit), "-timeout_error", "-nostdin", "-trace_stat", "-stf",
         str(uac_csv), "-fd", "1"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=limit + 20,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    try:
        uas.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        uas.kill()
        uas.wait()
    a, b = _stats(uac_csv), _stats(uas_csv)
    ok = int(a.get("SuccessfulCall(C)", "0") or 0)
    failed = int(a.get("FailedCall(C)", "0") or 0) + int(b.get("FailedCall(C)", "0") or 0)
    failed += calls - ok - int(a.get("FailedCall(C)", "0") or 0)  # calls never completed
    return {
        "rate": rate,
        "calls": calls,
        "ok": ok,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "achieved_cps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
    }


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_proxy(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The proxy subprocess, its output to ``log`` (a pipe nobody reads would stall it)."""
    port = free_port(PROXY_IP)
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lab.cli import main; sys.exit(main())",
         "run", "sip-proxy", "--listen", f"{PROXY_IP}:{port}"],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if b"sip-proxy ready" in log.read_bytes():
            return proc, f"{PROXY_IP}:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"proxy did not start: {log.read_text(errors='replace')[-500:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="", help="comma list of calls/s (default: ramp)")
    ap.add_argument("--start", type=int, default=200)
    ap.add_argument("--step", type=int, default=200)
    ap.add_argument("--max-rate", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of calls per rate")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    results: dict[str, object] = {}
    per_call = cpu_per_call()
    results["cpu_us_per_call"] = round(per_call * 1e6, 1)
    results["cpu_calls_per_core"] = round(1 / per_call)
    print(f"cpu: {per_call * 1e6:.0f} us of proxy CPU per call "
          f"(~{1 / per_call:.0f} calls/s per core if alone)")  # fmt: skip
    if args.cpu_only:
        if args.json:
            print(json.dumps(results))
        return 0
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp not installed: only the cpu figure")
        return 1
    rates = (
        [int(r) for r in args.rates.split(",") if r]
        if args.rates
        else list(range(args.start, args.max_rate + 1, args.step))
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'rate':>6} {'calls':>7} {'ok':>7} {'failed':>7} {'seconds':>8} {'cps':>8} "
          f"{'cpu_s':>8} {'us/call':>7} {'sipp_s':>7} {'load':>5}")  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-sip-proxy-") as tmp:
        proc, proxy = start_proxy(Path(tmp) / "proxy.log")
        try:
            for rate in rates:
                cpu0 = proc_cpu(proc.pid)
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                r = sipp_run(sipp, proxy, rate, args.seconds, Path(tmp))
                used = proc_cpu(proc.pid) - cpu0
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                sipp_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                r["sipp_cpu_s"] = round(sipp_cpu, 2)  # both SIPp processes (waited children)
                r["proxy_cpu_s"] = round(used, 2)
                r["proxy_us_per_call"] = round(used / max(int(str(r["ok"])), 1) * 1e6)
                r["load"] = round(os.getloadavg()[0], 1)
                runs.append(r)
                print(f"{r['rate']:>6} {r['calls']:>7} {r['ok']:>7} {r['failed']:>7} "
                      f"{r['seconds']:>8} {r['achieved_cps']:>8} {r['proxy_cpu_s']:>8} "
                      f"{r['proxy_us_per_call']:>7} {r['sipp_cpu_s']:>7} {r['load']:>5}",
                      flush=True)  # fmt: skip
                behind = float(str(r["seconds"])) > args.seconds * 1.2 + 2
                if int(str(r["failed"])) > 0 or behind:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            tail = (Path(tmp) / "proxy.log").read_text(errors="replace").splitlines()[1:]
            if tail:
                print(f"proxy log ({len(tail)} lines), last: {tail[-1][:200]}")
    clean = [r for r in runs if r["failed"] == 0]
    results["runs"] = runs
    results["max_clean_rate"] = max((int(str(r["rate"])) for r in clean), default=0)
    print(f"highest rate with 0 failed calls: {results['max_clean_rate']} calls/s")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
