"""A task activated in the middle of a real SDES call: start-of-interception, keys from the
call state, and CC decrypted by the LEMF from the first packet intercepted (late join)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import wave
from pathlib import Path

import pytest

from ims.media.tone import detect_tone
from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from li.keys import OperatorKeyPolicy
from li.lemf.receiver import LemfServer
from li.poi.cc import AnchorCcPoi, CcRecord
from li.poi.export import iri_pdus
from li.poi.iri import IriEvent, IriPoi, IriRecord, PoiTask
from li.targets import TargetKind
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import address_attributes

LEMF = "127.0.8.250"


@pytest.mark.slow
async def test_task_arrives_mid_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet="127.0.8")
    xid, did = uuid.uuid4(), uuid.uuid4()
    iri: list[IriRecord] = []
    async with Lab(topo) as lab, LemfServer(tmp_path / "lemf", host=LEMF, plain_tcp=True) as lemf:
        dest = DeliveryDestination(did=did, host=LEMF, port=lemf.port)
        x2 = X2X3Exporter(tmp_path / "spool-p", nf_id="pcscf-a")
        x3 = X2X3Exporter(tmp_path / "spool-a", nf_id="anchor-a")
        for e in (x2, x3):
            e.add_destination(dest)

        def cc_emit(r: CcRecord) -> None:
            x3.send_x3(
                xid=r.xid,
                correlation_id=r.correlation_id,
                payload=r.data,
                direction=int(r.direction),
                attributes=address_attributes(r.src, r.dst),
            )

        def iri_emit(r: IriRecord) -> None:
            iri.append(r)
            for pdu in iri_pdus(r):  # SIP, the start-of-interception event, key records
                x2.send_pdu(pdu)

        cc = AnchorCcPoi(element="anchor-a", emit=cc_emit)
        lab.elements["anchor-a"].anchor.hooks.add(cc.hook(time.time))
        el = topo.elements["pcscf-a"]
        poi = IriPoi(
            element="pcscf-a",
            address=(el.address, el.sip_port),
            emit=iri_emit,
            trigger_cc=cc.trigger,
            extract_keys=OperatorKeyPolicy(),
        )
        lab.elements["pcscf-a"].sip_hooks.add(poi.hook(time.time))
        async with x2, x3, user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
            await alice.register()
            await bob.register()
            call = await alice.call("sip:bob@ims-b.test", audio="tone:440")
            incoming = await bob.next_call()
            await asyncio.sleep(0.6)  # media flows; nobody is intercepted yet
            assert iri == [] and cc.stats["reported"] == 0
            for e in (x2, x3):
                e.bind_task(xid, [did])
            poi.activate(
                PoiTask(xid=xid, targets=((TargetKind.SIP_URI, "sip:alice@ims-a.test"),)),
                time.time(),
            )
            await asyncio.sleep(1.2)
            await call.hangup()
            await asyncio.wait_for(incoming.ended.wait(), 5)
            for e in (x2, x3):
                assert await e.drain(timeout=15)
    events = [r.event for r in iri]
    assert events[:2] == [IriEvent.START_OF_INTERCEPTION, IriEvent.KEYS]
    assert events[-1] is IriEvent.END
    assert b"a=crypto" in iri[0].sdp_state
    call_dir = next((tmp_path / "lemf" / str(xid)).iterdir())
    summary = json.loads((call_dir / "summary.json").read_text())
    assert summary["keys_available"] and summary["x3_pdus"] > 50
    # the LEMF's own record of it: an IRI event and the summary flags
    assert summary["interception_started_mid_call"] is True and summary["complete"] is True
    records = [json.loads(line) for line in (call_dir / "iri.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records if r["type"] == "iri-event"] == ["start-of-interception"]
    for s in summary["streams"]:
        assert s["decrypted"] > 0 and s["decrypt_failures"] == 0, s  # from the first packet
    # each direction holds its own sender's tone (alice's UE 440 Hz, bob's default 1000 Hz)
    for direction, hz, other in (("from-target", 440, 1000), ("to-target", 1000, 440)):
        with wave.open(str(call_dir / f"audio-{direction}.wav")) as w:
            pcm = w.readframes(w.getnframes())
        assert detect_tone(pcm, hz) and not detect_tone(pcm, other), direction
