"""``imslab demo sipp-proxy``: SIPp UAC -> imslab proxy (Record-Route) -> SIPp UAS.

Starts the RFC 3261 proxy in this process on 127.0.3.1, a SIPp UAS on 127.0.3.3 and a SIPp
UAC on 127.0.3.2 (scenarios from tests/peers/sipp/, which copy Record-Route and loose-route
ACK and BYE through the proxy), places a short batch of calls and prints a summary: calls
completed and failed at both ends, what the proxy forwarded, and the call rate.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shutil
import socket
import tempfile
import time
from pathlib import Path

from ims.sip.aio.proxy import ProxyServer
from ims.sip.proxy.core import ProxyConfig, ProxyCore
from ims.sip.proxy.location import LocationRouter
from ims.sip.transport import Peer

NAME = "sipp-proxy"
HELP = "SIPp calls through the imslab RFC 3261 proxy (Record-Route), with a summary"
PRIORITY = 10

SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "peers" / "sipp"
PROXY_IP, UAC_IP, UAS_IP = "127.0.3.1", "127.0.3.2", "127.0.3.3"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sipp-calls", type=int, default=200, help="calls to place (sipp-proxy)")
    parser.add_argument("--sipp-rate", type=int, default=100, help="calls/s (sipp-proxy)")


def _free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


async def _wait_udp_bound(ip: str, port: int, timeout: float = 10.0) -> None:
    """Wait until SIPp listens on udp ip:port (/proc/net/udp), not a fixed pause."""
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            table = Path("/proc/net/udp").read_text()
        except OSError:
            await asyncio.sleep(0.5)
            return
        if any(ln.split()[1] == want for ln in table.splitlines()[1:] if ln.strip()):
            return
        await asyncio.sleep(0.02)


def _stats(path: Path) -> dict[str, str]:
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


async def run(args: argparse.Namespace) -> bool:
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp-proxy demo: SIPp is not installed (apt-get install sip-tester)")
        return False
    calls = int(getattr(args, "sipp_calls", 200))
    rate = int(getattr(args, "sipp_rate", 100))
    limit = 30 + calls // max(rate, 1)

    port = _free_port(PROXY_IP)
    core = ProxyCore(
        ProxyConfig(name="demo-proxy", local=(Peer(transport="udp", host=PROXY_IP, port=port),)),
        LocationRouter(),
    )
    server = ProxyServer(core, allowed_networks=["127.0.3.0/24"])
    await server.listen("udp", PROXY_IP, port)
    print(f"proxy listening on udp:{PROXY_IP}:{port} (Record-Route ;lr)")
    uas_port, uac_port = _free_port(UAS_IP), _free_port(UAC_IP)
    with tempfile.TemporaryDirectory(prefix="imslab-sipp-") as tmp:
        work = Path(tmp)
        uas = await asyncio.create_subprocess_exec(
            "timeout", str(limit + 10), sipp, "-sf", str(SCENARIOS / "uas.xml"),
            "-i", UAS_IP, "-p", str(uas_port), "-m", str(calls), "-nostdin",
            "-trace_stat", "-stf", str(work / "uas.csv"), "-fd", "1",
            cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await _wait_udp_bound(UAS_IP, uas_port)
        print(f"SIPp UAS on {UAS_IP}:{uas_port}; SIPp UAC on {UAC_IP}:{uac_port}: "
              f"{calls} calls at {rate}/s")  # fmt: skip
        t0 = time.monotonic()
        uac = await asyncio.create_subprocess_exec(
            "timeout", str(limit + 5), sipp, "-sf", str(SCENARIOS / "uac.xml"),
            f"{PROXY_IP}:{port}", "-i", UAC_IP, "-p", str(uac_port), "-s", "bob",
            "-key", "uas_host", f"{UAS_IP}:{uas_port}", "-m", str(calls), "-r", str(rate),
            "-timeout", str(limit), "-timeout_error", "-nostdin",
            "-trace_stat", "-stf", str(work / "uac.csv"), "-fd", "1",
            cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.wait_for(uac.wait(), limit + 15)
            elapsed = time.monotonic() - t0
            await asyncio.wait_for(uas.wait(), 15)
        finally:
            for proc in (uac, uas):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            server.close()
        a, b = _stats(work / "uac.csv"), _stats(work / "uas.csv")
    ok_uac, failed_uac = a.get("SuccessfulCall(C)", "?"), a.get("FailedCall(C)", "?")
    ok_uas, failed_uas = b.get("SuccessfulCall(C)", "?"), b.get("FailedCall(C)", "?")
    st = core.stats
    print(f"UAC: {ok_uac} calls completed, {failed_uac} failed")
    print(f"UAS: {ok_uas} calls completed, {failed_uas} failed")
    print(
        f"proxy: {st['requests']} requests in, {st['forwarded']} forwarded statefully, "
        f"{st['stateless']} stateless (ACK for 2xx), {st['responses']} responses in, "
        f"{st['local_responses']} answered by the proxy itself"
    )
    print(f"{calls} calls in {elapsed:.1f} s = {calls / elapsed:.0f} calls/s end to end")
    passed = ok_uac == str(calls) and failed_uac == "0" and failed_uas == "0"
    print("PASS" if passed else "FAIL")
    return passed
