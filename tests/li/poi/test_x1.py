"""X1 tasks -> POI tasks, and an NE's X1 changes arming/disarming the POIs."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from li.poi.cc import CcRecord, PassiveTapPoi
from li.poi.iri import IriPoi, IriRecord
from li.poi.x1 import poi_task, wire
from li.targets import TargetKind
from li.x1.handler import TaskActivated, TaskDeactivated
from li.x1.model import (
    DeliveryType,
    ImslabTaskExtension,
    MitmAuthorisation,
    TargetIdentifier,
    TaskDetails,
)

XID = uuid.UUID(int=42)


def task(*targets: TargetIdentifier, mitm: MitmAuthorisation | None = None) -> TaskDetails:
    return TaskDetails(
        xid=XID,
        targets=targets,
        delivery_type=DeliveryType.X2_AND_X3,
        dids=(uuid.UUID(int=1),),
        extension=ImslabTaskExtension(mitm=mitm) if mitm else None,
    )


def test_poi_task_targets_and_mitm() -> None:
    t = task(
        TargetIdentifier(kind="sipUri", value="sip:alice@ims-a.test"),
        TargetIdentifier(kind="e164Number", value="493011"),
        TargetIdentifier(kind="imsi", value="001010000000001"),
        mitm=MitmAuthorisation(reference="w-1", signalling=True),
    )
    pt = poi_task(t)
    assert pt.targets == (
        (TargetKind.SIP_URI, "sip:alice@ims-a.test"),
        (TargetKind.E164, "493011"),
    )
    assert pt.mitm == {"pke", "rsa-r"} and pt.deliver_cc
    media = poi_task(task(mitm=MitmAuthorisation(reference="w", signalling=True, media=True)))
    assert {"dh", "dhhmac"} <= media.mitm
    assert poi_task(task()).mitm == frozenset()


def test_wire_arms_and_disarms() -> None:
    ne = SimpleNamespace(on_change=[])
    iri_out: list[IriRecord] = []
    tap_out: list[CcRecord] = []
    poi = IriPoi(element="pcscf-a", address=("127.0.8.2", 5060), emit=iri_out.append)
    tap = PassiveTapPoi(element="anchor-m", emit=tap_out.append)
    wire(ne, iri=[poi], taps=[tap], clock=lambda: 1.0)
    t = task(
        TargetIdentifier(kind="sipUri", value="sip:alice@ims-a.test"),
        TargetIdentifier(kind="ipv4Address", value="127.0.8.101"),
    )
    for cb in ne.on_change:
        cb(TaskActivated(task=t))
    assert XID in poi.tasks
    tap.observe(src=("127.0.8.101", 4000), dst=("127.0.8.9", 1), data=b"x", rtcp=False, now=0.0)
    assert len(tap_out) == 1
    for cb in ne.on_change:
        cb(TaskDeactivated(xid=XID))
    assert XID not in poi.tasks and len(poi.targets) == 0
    tap.observe(src=("127.0.8.101", 4000), dst=("127.0.8.9", 1), data=b"x", rtcp=False, now=0.0)
    assert len(tap_out) == 1
