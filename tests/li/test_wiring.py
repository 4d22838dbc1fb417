"""li.wiring: one element's LI (NE + POIs on its hook points), as the lab and the matrix use it."""

from __future__ import annotations

import uuid
from pathlib import Path

from ims.sip import parse_message
from ims.sip.proxy.hooks import Direction, MessageEvent, MessageHooks
from li.poi.iri import CcTrigger
from li.wiring import ElementLi
from li.x1.handler import TaskActivated, TaskDeactivated
from li.x1.model import DeliveryType, TargetIdentifier, TaskDetails
from li.x1.ne import NetworkElementLI
from tests.li.poi.sipmsgs import call

ALICE = "sip:alice@ims-a.test"


def _task(xid: uuid.UUID) -> TaskDetails:
    return TaskDetails(
        xid=xid,
        targets=(TargetIdentifier(kind="sipUri", value=ALICE),),
        delivery_type=DeliveryType.X2_AND_X3,
        dids=(uuid.uuid4(),),
    )


async def test_pois_on_hook_points_armed_by_the_nes_tasks_and_detached_on_close(
    tmp_path: Path,
) -> None:
    """The IRI-POI sees the element's messages through its hook, is armed and disarmed by the
    NE's X1 changes (TS 103 221-1 ActivateTask/DeactivateTask), arms the CC-POI in process
    (LI_T3), and every observer is gone after close()."""
    ne = NetworkElementLI(ne_id="pcscf-a", state_dir=tmp_path / "ne")
    sip_hooks, media_hooks = MessageHooks(), MessageHooks()
    li = ElementLi(ne, clock=lambda: 100.0)
    cc = li.attach_cc(media_hooks)
    triggers: list[CcTrigger] = []

    def trigger(t: CcTrigger) -> None:
        triggers.append(t)
        cc.trigger(t)

    poi = li.attach_iri(sip_hooks, address=("127.0.8.10", 5060), trigger_cc=trigger)
    tap = li.attach_tap(media_hooks)
    assert "ipv4Address" in ne.handler.supported_targets
    assert (len(sip_hooks), len(media_hooks)) == (1, 2)
    await li.start()
    try:
        xid = uuid.uuid4()
        for listener in ne.on_change:
            listener(TaskActivated(task=_task(xid)))
        assert set(poi.tasks) == {xid}
        for raw, by_caller in call("wired-1"):
            sip_hooks.run(
                MessageEvent(
                    element="pcscf-a",
                    role="pcscf",
                    direction=Direction.IN,
                    peer=("127.0.8.1", 5060) if by_caller else ("127.0.8.3", 5060),
                    transport="udp",
                    message=parse_message(raw),
                    raw=raw,
                )
            )
        assert poi.stats["reported"] > 0 and triggers and triggers[0].call_id == "wired-1"
        for listener in ne.on_change:
            listener(TaskDeactivated(xid=xid))
        assert not poi.tasks and tap is li.taps[0]
    finally:
        await li.close()
    assert (len(sip_hooks), len(media_hooks)) == (0, 0)
