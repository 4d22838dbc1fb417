"""`imslab run sip-proxy --workers 2`: two processes on one address, one location service.

SIPp registers the callee through the shared address (the REGISTER reaches one worker), then a
SIPp UAC opening one socket per call (``-t un``, so the kernel's SO_REUSEPORT hash spreads the
calls over both workers) places INVITE/180/200/ACK/BYE calls to ``bob@bench.test``:

* every call completes: the worker that did not take the REGISTER finds the binding too (the
  shared store), and the 180/200 come back to the worker holding the client transaction
  (RFC 3261 §18.2.2: a response goes to the top Via's sent-by, which names that worker's own
  port);
* the UAS sees requests from two different proxy Via ports (both workers forwarded calls) and
  one Record-Route value, the shared address (§16.6 step 4: in-dialog requests return to it).

Addresses: 127.0.3.0/24 (this area's range); SIPp runs are wrapped in ``timeout``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.peers.test_sipp_proxy import (
    UAC_IP,
    UAS_IP,
    errors,
    free_port,
    read_stats,
    start_proxy,
    stop_proxy,
    wait_bound,
)

pytestmark = [pytest.mark.peer]

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "sipp"


@pytest.fixture
def sipp() -> str:
    return require_tool("sipp")


def test_two_workers_share_address_and_bindings(sipp: str, tmp_path: Path) -> None:
    proxy = start_proxy(0, "--workers", "2", "--domain", "bench.test")
    uas_port = free_port(UAS_IP)
    calls = 200
    uas = subprocess.Popen(
        ["timeout", "70", sipp, "-sf", str(BENCH / "uas.xml"), "-i", UAS_IP,
         "-p", str(uas_port), "-m", str(calls), "-nostdin", "-trace_stat",
         "-stf", str(tmp_path / "uas.csv"), "-fd", "1", "-trace_msg",
         "-message_file", str(tmp_path / "uas_msg.log"),
         "-trace_err", "-error_file", str(tmp_path / "uas_errors.log")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_bound(UAS_IP, uas_port)
        reg = subprocess.run(
            ["timeout", "20", sipp, "-sf", str(BENCH / "register.xml"), proxy.addr,
             "-i", UAC_IP, "-p", str(free_port(UAC_IP)), "-s", "bob",
             "-key", "domain", "bench.test", "-key", "contact", f"{UAS_IP}:{uas_port}",
             "-m", "1", "-timeout", "15", "-timeout_error", "-nostdin"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        assert reg.returncode == 0, "REGISTER through the workers failed"
        uac = subprocess.run(
            ["timeout", "60", sipp, "-sf", str(BENCH / "uac.xml"), proxy.addr,
             "-i", UAC_IP, "-p", str(free_port(UAC_IP)), "-t", "un", "-max_socket", "1000",
             "-s", "bob", "-key", "domain", "bench.test",
             "-m", str(calls), "-r", "100", "-timeout", "50", "-timeout_error", "-nostdin",
             "-trace_stat", "-stf", str(tmp_path / "uac.csv"), "-fd", "1",
             "-trace_err", "-error_file", str(tmp_path / "uac_errors.log")],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=70,
        )  # fmt: skip
        uas.wait(timeout=30)
        assert proxy.proc.poll() is None  # the supervisor and both workers still up
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(timeout=5)
        stop_proxy(proxy)
    stats = read_stats(tmp_path / "uac.csv")
    assert uac.returncode == 0, errors(tmp_path)
    assert stats["SuccessfulCall(C)"] == str(calls), errors(tmp_path)
    assert stats["FailedCall(C)"] == "0", errors(tmp_path)
    seen = (tmp_path / "uas_msg.log").read_text(errors="replace")
    via_ports = set(re.findall(rf"Via: SIP/2\.0/UDP {re.escape(proxy.host)}:(\d+);", seen))
    assert len(via_ports) == 2, f"proxy Via ports seen at the UAS: {via_ports}"
    assert str(proxy.port) not in via_ports  # each worker's own port, not the shared one
    record_routes = set(re.findall(r"Record-Route: (<[^>]*>)", seen))
    assert record_routes == {f"<sip:{proxy.addr};lr>"}, record_routes
