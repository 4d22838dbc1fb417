"""SIPp (an independent SIP implementation) through our P-CSCF -> S-CSCF to a SIPp UAS.

The same path as ``benchmarks/bench_ims_load.py`` at a low, fixed rate: both SIPp ends register
with digest (the UAS straight at the S-CSCF, the UAC through the P-CSCF), then 40 calls
(INVITE with SDP, 180, 200, ACK, BYE) must all succeed, and every INVITE must have been
anchored and released at anchor-a.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab import topology
from lab.orchestrator import Lab
from proxies.hooks import AnchorSessionEvent, SessionChange
from tests.conftest import require_tool

pytestmark = [pytest.mark.peer]

SIPP_DIR = Path(__file__).resolve().parent / "sipp"
SUBNET = "127.0.7"
UAC = (f"{SUBNET}.201", 5071)
UAS = (f"{SUBNET}.202", 5072)


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    require_tool("sipp")
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo, names=["anchor-a", "scscf-a", "pcscf-a"]) as running:
        yield running


async def sipp(*args: str, timeout: int = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "timeout", str(timeout), "sipp", "-nostdin", *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def test_sipp_calls_through_pcscf_and_scscf(lab: Lab) -> None:
    topo = lab.topology
    pcscf, scscf = topo.element("pcscf-a"), topo.element("scscf-a")
    changes: list[AnchorSessionEvent] = []
    lab.element("anchor-a").anchor.session_observers.add(changes.append)
    for user, password, (ip, port), registrar in (
        ("carol", "carol-pw", UAS, scscf),
        ("alice", "alice-pw", UAC, pcscf),
    ):
        rc, out = await sipp(
            "-sf", str(SIPP_DIR / "register_auth.xml"), "-s", user,
            "-key", "domain", "ims-a.test", "-au", f"{user}@ims-a.test", "-ap", password,
            "-i", ip, "-p", str(port), "-m", "1", f"{registrar.address}:{registrar.sip_port}",
        )  # fmt: skip
        assert rc == 0, out
    uas = asyncio.ensure_future(
        sipp("-sf", str(SIPP_DIR / "uas.xml"), "-i", UAS[0], "-p", str(UAS[1]), "-m", "40")
    )
    await asyncio.sleep(0.3)
    rc, out = await sipp(
        "-sf", str(SIPP_DIR / "uac.xml"), "-s", "carol", "-key", "uas_host", "ims-a.test",
        "-i", UAC[0], "-p", str(UAC[1]), "-r", "20", "-m", "40", "-d", "0",
        "-timeout", "25", "-timeout_error", f"{pcscf.address}:{pcscf.sip_port}",
    )  # fmt: skip
    assert rc == 0, out
    rc_uas, out_uas = await uas
    assert rc_uas == 0, out_uas
    created = {e.call_id for e in changes if e.change == SessionChange.CREATED}
    released = {e.call_id for e in changes if e.change == SessionChange.RELEASED}
    assert len(created) == 40 and created == released
