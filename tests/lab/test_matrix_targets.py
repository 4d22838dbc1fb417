"""Over N real calls with and without targets, no IRI or CC is produced for non-targets.

The built-in lab runs in-process on 127.0.8.0/24 with IRI-POIs on every CSCF and CC-POIs on
every anchor (each triggered by its P-CSCF's IRI-POI). First a task names a user who never
calls: N calls produce nothing. Then alice is tasked: only her calls produce IRI and CC, while
carol's calls through the same S-CSCF and bob's P-CSCF produce none.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from li.keys import OperatorKeyPolicy
from li.poi.cc import AnchorCcPoi, CcRecord
from li.poi.iri import IriPoi, IriRecord, PoiTask
from li.targets import TargetKind
from ue.agent import UserAgent

N = 3


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    async with Lab(topology.load(subnet="127.0.8")) as running:
        yield running


async def place(
    ues: dict[str, UserAgent], topo: topology.Topology, caller: str, callee: str
) -> str:
    aor = topo.subscribers[topo.ues[callee].subscriber].sip_impu
    call = await ues[caller].call(aor)
    incoming = await ues[callee].next_call()
    await asyncio.sleep(0.3)
    await call.hangup()
    await asyncio.wait_for(incoming.ended.wait(), 5)
    return str(call.call_id)


@pytest.mark.slow
async def test_no_iri_or_cc_for_non_targets(lab: Lab) -> None:
    iri: list[IriRecord] = []
    cc: list[CcRecord] = []
    topo = lab.topology
    ccpois = {
        name: AnchorCcPoi(element=name, emit=cc.append)
        for name, el in topo.elements.items()
        if el.role == "anchor"
    }
    for poi in ccpois.values():
        lab.elements[poi.element].anchor.hooks.add(poi.hook(time.time))
    pois = []
    for name, el in topo.elements.items():
        if el.role not in ("pcscf", "scscf"):
            continue
        anchor = ccpois.get(el.anchor or "")
        poi = IriPoi(
            element=name,
            address=(el.address, el.sip_port),
            emit=iri.append,
            trigger_cc=anchor.trigger if anchor is not None else None,
            extract_keys=OperatorKeyPolicy(),
        )
        lab.elements[name].sip_hooks.add(poi.hook(time.time))
        pois.append(poi)

    def task(aor: str) -> None:
        t = PoiTask(xid=uuid.uuid4(), targets=((TargetKind.SIP_URI, aor),))
        for poi in pois:
            poi.activate(t, time.time())

    ues = {name: user_agent(topo, name) for name in ("alice", "bob", "carol")}
    for ua in ues.values():
        await ua.start()
        await ua.register()

    task("sip:erin@ims-b.test")  # a target who never calls
    for _ in range(N):
        await place(ues, topo, "alice", "bob")
    await place(ues, topo, "carol", "bob")
    assert iri == [] and cc == []
    assert sum(p.stats["messages"] for p in pois) > 20 * N  # they did see the traffic

    task("sip:alice@ims-a.test")
    target_calls = {await place(ues, topo, "alice", "bob") for _ in range(N)}
    others = {await place(ues, topo, "carol", "bob") for _ in range(N)}
    for ua in ues.values():
        await ua.close()
    await asyncio.sleep(0.2)
    iri_calls = {r.call_id for r in iri if r.sip and "INVITE" in r.sip[:80].decode()}
    cc_calls = {r.call_id for r in cc}
    assert target_calls <= iri_calls and target_calls <= cc_calls
    assert not (iri_calls | cc_calls) & others
    assert {r.matched for r in iri} == {"sip:alice@ims-a.test"}
    # REGISTER of the target is reported too, but nothing of carol/bob/erin's own traffic
    assert all("carol" not in r.sip.decode(errors="replace").split("\r\n", 1)[0] for r in iri)
