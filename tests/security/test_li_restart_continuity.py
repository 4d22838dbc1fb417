"""Issue 11 finding 7: interception resumes after an element restart, before traffic.

Before the fix ``lab/roles/_li.py`` replayed the stored tasks (``ne.start()``) before the POIs
were wired, so a restarted P-CSCF/S-CSCF/anchor still listed the task but the next call gave
0 IRI. Now the POIs are wired first, the NE replays its tasks into them, and only then does
the element accept SIP/media. The test runs the lab as subprocesses, tasks alice over X1,
then kills (SIGKILL) and restarts each LI-bearing element of operator A in turn and places a
call after each restart: each call must be intercepted by the restarted element.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from lab import topology
from lab.orchestrator import Lab
from tests.lab.cli_process import imslab

OFFSET = 91
CONFIG = str(topology.default_path())
LAB = ["--config", CONFIG, "--net-offset", str(OFFSET)]

pytestmark = pytest.mark.timeout(150)


def call_dirs(lemf_out: Path) -> set[Path]:
    return {p.parent for p in lemf_out.glob("*/*/iri.jsonl")}


def pois_of(call_dir: Path) -> set[str]:
    pois = set()
    for line in (call_dir / "iri.jsonl").read_text().splitlines():
        pois.add(json.loads(line)["poi"])
    summary = call_dir / "summary.json"
    if summary.exists():
        pois |= set(json.loads(summary.read_text())["pois"])
    return pois


async def restart(lab: Lab, name: str) -> None:
    proc = lab.procs[name].proc
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)
    await lab._spawn(name, lab.topology.elements[name].role)


async def test_each_li_element_intercepts_the_next_call_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    topo = topology.load(CONFIG, net_offset=OFFSET)
    assert topo.li is not None
    lemf_out = topo.li.lemf_out()
    names = ["pcscf-a", "scscf-a", "anchor-a", "pcscf-b", "scscf-b", "anchor-m"]
    async with Lab(topo, mode="subprocess", names=names, li=True, ready_timeout=30) as lab:
        rc, out = await imslab(
            "li", "task", "add", *LAB, "--operator", "a", "--target", "sip:alice@ims-a.test"
        )
        assert rc == 0, out
        for element in ("pcscf-a", "scscf-a", "anchor-a"):
            before = call_dirs(lemf_out)
            await restart(lab, element)
            rc, out = await imslab("call", "alice", "bob", *LAB, "--duration", "1")
            assert rc == 0, out
            await asyncio.sleep(0.5)  # the exporters' checkpoint interval
            new = call_dirs(lemf_out) - before
            assert new, f"no intercepted call after restarting {element}"
            assert any(element in pois_of(d) for d in new), (element, [pois_of(d) for d in new])
