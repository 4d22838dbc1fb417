"""CC-POIs: anchor CC-POI armed by triggers only; passive tap by target address."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from li.poi.cc import AnchorCcPoi, CcRecord, PassiveTapPoi, flow_correlation_id
from li.poi.iri import CcTrigger, TargetDirection, correlation_id
from li.targets import Side

XID = uuid.UUID(int=7)
UE = ("127.0.8.10", 4000)
REMOTE = ("127.0.8.20", 5000)


def trig(call_id: str, stop: bool = False) -> CcTrigger:
    return CcTrigger(
        xid=XID,
        correlation_id=correlation_id(call_id),
        call_id=call_id,
        target_identities=frozenset({"sip:alice@ims-a.test"}),
        target_side=Side.ORIGINATING,
        stop=stop,
    )


def test_anchor_poi_reports_only_triggered_calls() -> None:
    out: list[CcRecord] = []
    poi = AnchorCcPoi(element="anchor-a", emit=out.append)
    pkt = {"src": UE, "dst": REMOTE, "data": b"\x80" * 20, "rtcp": False, "now": 0.0}
    poi.observe(call_id="c1", direction="from_access", **pkt)  # type: ignore[arg-type]
    assert out == []
    poi.trigger(trig("c1"), target_media=UE)
    poi.observe(call_id="c1", direction="from_access", **pkt)  # type: ignore[arg-type]
    poi.observe(
        call_id="c1", direction="from_core", src=REMOTE, dst=UE, data=b"x", rtcp=False, now=1.0
    )
    poi.observe(
        call_id="c1",
        direction="from_access",
        src=(UE[0], UE[1] + 1),
        dst=REMOTE,
        data=b"r",
        rtcp=True,
        now=1.0,
    )
    poi.observe(call_id="other", direction="from_access", **pkt)  # type: ignore[arg-type]
    assert [r.direction for r in out] == [
        TargetDirection.FROM_TARGET,
        TargetDirection.TO_TARGET,
        TargetDirection.FROM_TARGET,
    ]
    assert {r.correlation_id for r in out} == {correlation_id("c1")}
    poi.trigger(trig("c1", stop=True))
    poi.observe(call_id="c1", direction="from_access", **pkt)  # type: ignore[arg-type]
    assert len(out) == 3 and poi.active_calls == 0


def test_anchor_poi_hook_adapter_and_access_fallback() -> None:
    out: list[CcRecord] = []
    poi = AnchorCcPoi(element="anchor-a", emit=out.append)
    poi.trigger(trig("c2"))
    hook = poi.hook(lambda: 5.0)
    hook(
        SimpleNamespace(
            call_id="c2", direction="from_core", src=REMOTE, dst=UE, data=b"d", rtcp=False
        )
    )
    assert out[0].direction is TargetDirection.TO_TARGET and out[0].time == 5.0


def test_passive_tap_by_address() -> None:
    out: list[CcRecord] = []
    tap = PassiveTapPoi(element="anchor-m", emit=out.append)
    tap.observe(src=UE, dst=REMOTE, data=b"a", rtcp=False, now=0.0)
    assert out == []
    tap.activate(XID, UE[0])
    tap.observe(src=UE, dst=REMOTE, data=b"a", rtcp=False, now=0.0)
    tap.observe(src=REMOTE, dst=UE, data=b"b", rtcp=False, now=0.0)
    tap.observe(src=REMOTE, dst=("127.0.8.99", 1), data=b"c", rtcp=False, now=0.0)
    assert [r.direction for r in out] == [TargetDirection.FROM_TARGET, TargetDirection.TO_TARGET]
    assert out[0].correlation_id == flow_correlation_id("anchor-m", UE[0], UE[1]) != 0
    tap.deactivate(XID)
    tap.observe(src=UE, dst=REMOTE, data=b"a", rtcp=False, now=0.0)
    assert len(out) == 2
