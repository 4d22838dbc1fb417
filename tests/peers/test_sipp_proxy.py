"""SIPp UAC -> `imslab run sip-proxy` (Record-Route) -> SIPp UAS: real calls, real sockets.

* 1,000 calls at 200 calls/s through the proxy, none failed; both SIPp ends check with
  ``check_it`` that the proxy Record-Routed (INVITE at the UAS, 200 at the UAC), so ACK and BYE
  are loose-routed through it ([routes]/[next_url]).
* a lossy run (SIPp ``-lost 10`` on both ends): every call completes through
  retransmissions (SIPp's and the proxy's transaction layer), in bounded time.

Addresses: 127.0.3.0/24 (this area's range). Every SIPp run is wrapped in ``timeout``
(../shared/reference/peers.md: an overloaded SIPp once ignored -timeout).
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool

pytestmark = [pytest.mark.peer]

SCENARIOS = Path(__file__).parent / "sipp"
PROXY_IP = "127.0.3.1"
UAC_IP = "127.0.3.2"
UAS_IP = "127.0.3.3"


class RunningProxy:
    def __init__(self, proc: subprocess.Popen[str], host: str, port: int) -> None:
        self.proc = proc
        self.host = host
        self.port = port

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


def wait_bound(ip: str, port: int, proto: str = "udp", timeout: float = 10.0) -> None:
    """Wait until some process listens on ``proto`` ``ip:port`` (SIPp started), from
    /proc/net/udp or /proc/net/tcp: no fixed sleep that a loaded machine may outrun."""
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            table = Path(f"/proc/net/{proto}").read_text()
        except OSError:  # not Linux: fall back to a pause
            time.sleep(0.5)
            return
        for line in table.splitlines()[1:]:
            f = line.split()
            # TCP: the listening socket (state 0A); UDP: any bound socket
            if len(f) > 3 and f[1] == want and (proto == "udp" or f[3] == "0A"):
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {proto} {ip}:{port} after {timeout} s")


def wait_udp_bound(ip: str, port: int, timeout: float = 10.0) -> None:
    wait_bound(ip, port, "udp", timeout)


def free_port(ip: str) -> int:
    """A UDP port free on ``ip`` right now (tests may run concurrently: no fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def start_proxy(port: int, *extra: str) -> RunningProxy:
    """Start `imslab run sip-proxy` on PROXY_IP (``port`` 0: any free port)."""
    if port == 0:
        port = free_port(PROXY_IP)
    cmd = [
        sys.executable,
        "-c",
        "import sys; from lab.cli import main; sys.exit(main())",
        "run",
        "sip-proxy",
        "--listen",
        f"{PROXY_IP}:{port}",
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path.cwd()
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("sip-proxy ready"):
            return RunningProxy(proc, PROXY_IP, port)
        seen.append(line)
    proc.kill()
    raise AssertionError("proxy did not start: " + "".join(seen[-5:]))


def stop_proxy(proxy: RunningProxy) -> None:
    proxy.proc.terminate()
    try:
        proxy.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proxy.proc.kill()
        proxy.proc.wait(timeout=5)


@pytest.fixture
def sipp() -> str:
    return require_tool("sipp")


def errors(workdir: Path) -> str:
    """The first SIPp error lines of both ends (for assertion messages)."""
    out = []
    for name in ("uac_errors.log", "uas_errors.log"):
        f = workdir / name
        if f.exists():
            lines = [
                ln for ln in f.read_text(errors="replace").splitlines() if "occurred" not in ln
            ]
            out.append(f"{name}: " + " | ".join(lines[:6])[:1500])
    return "\n".join(out)


def read_stats(path: Path) -> dict[str, str]:
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
    assert len(rows) >= 2, f"no statistics in {path}"
    return dict(zip(rows[0], rows[-1], strict=False))


def run_call_batch(
    sipp: str,
    workdir: Path,
    proxy: RunningProxy,
    *,
    calls: int,
    rate: int,
    uac_port: int,
    uas_port: int,
    lost: int = 0,
    hold_ms: int = 0,
    linger_ms: int = 0,
    limit_s: int = 60,
    uas_scenario: str = "uas.xml",
    uas_tcp: bool = False,
    trace: bool = False,
) -> tuple[dict[str, str], dict[str, str], float]:
    """Run SIPp UAS (-m calls) and UAC (-m calls -r rate) through ``proxy``; their final stats."""
    loss = ["-lost", str(lost)] if lost else []
    uas_extra = (["-t", "t1"] if uas_tcp else []) + (
        ["-trace_msg", "-message_file", str(workdir / "uas_msg.log")] if trace else []
    )
    uas_target = f"{UAS_IP}:{uas_port}" + (";transport=tcp" if uas_tcp else "")
    uas_stats = workdir / "uas.csv"
    uac_stats = workdir / "uac.csv"
    uas = subprocess.Popen(
        ["timeout", str(limit_s + 10), sipp, "-sf", str(SCENARIOS / uas_scenario),
         "-i", UAS_IP, "-p", str(uas_port), "-m", str(calls), "-d", str(linger_ms),
         "-nostdin", "-trace_stat", "-stf", str(uas_stats), "-fd", "1",
         "-trace_err", "-error_file", str(workdir / "uas_errors.log"), *loss, *uas_extra],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_bound(UAS_IP, uas_port, "tcp" if uas_tcp else "udp")
        t0 = time.monotonic()
        uac = subprocess.run(
            ["timeout", str(limit_s + 5), sipp, "-sf", str(SCENARIOS / "uac.xml"), proxy.addr,
             "-i", UAC_IP, "-p", str(uac_port), "-s", "bob",
             "-key", "uas_host", uas_target,
             "-m", str(calls), "-r", str(rate), "-d", str(hold_ms),
             "-timeout", str(limit_s), "-timeout_error", "-nostdin",
             "-trace_stat", "-stf", str(uac_stats), "-fd", "1",
             "-trace_err", "-error_file", str(workdir / "uac_errors.log"), *loss],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=limit_s + 15,
        )  # fmt: skip
        elapsed = time.monotonic() - t0
        uas.wait(timeout=limit_s)
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(timeout=5)
    assert uac.returncode == 0, f"SIPp UAC exit {uac.returncode}: {read_stats(uac_stats)}"
    return read_stats(uac_stats), read_stats(uas_stats), elapsed


@pytest.fixture
def proxy() -> Iterator[RunningProxy]:
    p = start_proxy(0)
    yield p
    stop_proxy(p)


def test_1000_calls_at_200_cps_through_record_routing_proxy(
    sipp: str, tmp_path: Path, proxy: RunningProxy
) -> None:
    uac, uas, elapsed = run_call_batch(
        sipp, tmp_path, proxy, calls=1000, rate=200,
        uac_port=free_port(UAC_IP), uas_port=free_port(UAS_IP),
    )  # fmt: skip
    assert uac["SuccessfulCall(C)"] == "1000", errors(tmp_path)
    assert uac["FailedCall(C)"] == "0", errors(tmp_path)
    assert uas["SuccessfulCall(C)"] == "1000", errors(tmp_path)
    assert uas["FailedCall(C)"] == "0", errors(tmp_path)
    # >= 100 calls/s end to end: 1000 calls created at 200/s finish well within 10 s
    assert elapsed < 10.0, f"1000 calls took {elapsed:.1f} s"
    assert proxy.proc.poll() is None  # the proxy is still up


def test_lossy_run_completes_every_call_through_retransmissions(sipp: str, tmp_path: Path) -> None:
    proxy = start_proxy(0)
    try:
        # -lost 10 on both SIPp ends: 10 % of what each sends and receives is dropped.
        # The UAS lingers 4 s after its 200 to BYE so a retransmitted BYE still matches.
        uac, uas, elapsed = run_call_batch(
            sipp, tmp_path, proxy, calls=40, rate=20,
            uac_port=free_port(UAC_IP), uas_port=free_port(UAS_IP),
            lost=10, linger_ms=4000, limit_s=60, uas_scenario="uas_lossy.xml",
        )  # fmt: skip
    finally:
        stop_proxy(proxy)
    assert uac["SuccessfulCall(C)"] == "40", errors(tmp_path)
    assert uac["FailedCall(C)"] == "0", errors(tmp_path)
    assert uas["FailedCall(C)"] == "0", errors(tmp_path)
    assert int(uac["Retransmissions(C)"]) > 0, "no loss happened: the test proved nothing"
    assert elapsed < 60


def test_udp_caller_tcp_callee_record_route_rewritten(sipp: str, tmp_path: Path) -> None:
    """UAC over UDP, UAS over TCP: the proxy Record-Routes with the value facing each side
    (transport=tcp towards the UAS, plain towards the UAC; §16.7 step 9) and ACK/BYE follow."""
    proxy = start_proxy(0, "--transport", "udp,tcp")
    try:
        uac, uas, _ = run_call_batch(
            sipp, tmp_path, proxy, calls=50, rate=50,
            uac_port=free_port(UAC_IP), uas_port=free_port(UAS_IP), uas_tcp=True, trace=True,
        )  # fmt: skip
    finally:
        stop_proxy(proxy)
    assert uac["SuccessfulCall(C)"] == "50", errors(tmp_path)
    assert uas["SuccessfulCall(C)"] == "50", errors(tmp_path)
    seen = (tmp_path / "uas_msg.log").read_text(errors="replace")
    assert f"Record-Route: <sip:{proxy.addr};transport=tcp;lr>" in seen
    assert "BYE sip:" in seen and "TCP message received" in seen
