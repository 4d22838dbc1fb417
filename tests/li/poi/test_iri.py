"""IRI-POI: tasks, events, direction, retransmissions, mid-call start, keys, no task no IRI."""

from __future__ import annotations

import uuid

from li.keys import KeySource, OperatorKeyPolicy, Sender
from li.poi.iri import (
    CcTrigger,
    IriEvent,
    IriPoi,
    IriRecord,
    PoiTask,
    TargetDirection,
    correlation_id,
)
from li.targets import TargetKind
from tests.li.poi.sipmsgs import KEY_A, KEY_B, call

PCSCF = ("127.0.8.2", 5060)
UE = ("127.0.8.1", 5060)
CORE = ("127.0.8.3", 5060)
XID = uuid.UUID("29f28e1c-1111-4222-8333-444455556666")


def make_poi() -> tuple[IriPoi, list[IriRecord], list[CcTrigger]]:
    out: list[IriRecord] = []
    cc: list[CcTrigger] = []
    poi = IriPoi(
        element="pcscf-a",
        address=PCSCF,
        emit=out.append,
        trigger_cc=cc.append,
        extract_keys=OperatorKeyPolicy(),
    )
    return poi, out, cc


def run_call(poi: IriPoi, call_id: str, now: float = 0.0, **kw: object) -> None:
    for i, (raw, by_caller) in enumerate(call(call_id, **kw)):  # type: ignore[arg-type]
        # as a proxy sees it: in from one side, out to the other (same message twice)
        src, dst = (UE, CORE) if by_caller else (CORE, UE)
        poi.observe_bytes(raw, incoming=True, peer=src, now=now + i)
        poi.observe_bytes(raw, incoming=False, peer=dst, now=now + i + 0.1)


def task(value: str = "sip:alice@ims-a.test", kind: TargetKind = TargetKind.SIP_URI) -> PoiTask:
    return PoiTask(xid=XID, targets=((kind, value),))


def test_no_task_no_iri() -> None:
    poi, out, cc = make_poi()
    for n in range(20):
        run_call(poi, f"call-{n}")
    assert out == [] and cc == []
    assert poi.stats["messages"] == 20 * 7 * 2


def test_target_call_events_direction_and_keys() -> None:
    poi, out, cc = make_poi()
    poi.activate(task("tel:+493011", TargetKind.TEL_URI), 0.0)  # no match: other identity
    poi.activate(task(), 0.0)
    run_call(poi, "other-call", caller="carol@ims-a.test")
    run_call(poi, "target-call")
    assert {r.call_id for r in out} == {"target-call"}
    sip = [r for r in out if r.sip]
    assert len(sip) == 7  # one per SIP message although each was seen in and out
    assert [r.event for r in sip] == [IriEvent.BEGIN] + [IriEvent.CONTINUE] * 5 + [IriEvent.END]
    assert [r.direction for r in sip] == [
        TargetDirection.FROM_TARGET,
        TargetDirection.TO_TARGET,
        TargetDirection.TO_TARGET,
        TargetDirection.TO_TARGET,
        TargetDirection.FROM_TARGET,
        TargetDirection.TO_TARGET,
        TargetDirection.FROM_TARGET,
    ]
    assert all(r.correlation_id == correlation_id("target-call") != 0 for r in out)
    assert sip[0].src == UE and sip[0].dst == PCSCF
    keys = [r for r in out if r.event is IriEvent.KEYS]
    assert len(keys) == 1
    by_sender = {k.sender: k for k in keys[0].keys}
    assert by_sender[Sender.OFFERER].keys is not None
    assert by_sender[Sender.OFFERER].keys.key_salt == KEY_A
    assert by_sender[Sender.ANSWERER].keys is not None
    assert by_sender[Sender.ANSWERER].keys.key_salt == KEY_B
    assert all(k.source is KeySource.SDES for k in keys[0].keys)
    assert "AES" not in repr(keys[0]) and KEY_A.hex() not in repr(keys[0].keys)
    assert [t.stop for t in cc] == [False, False, True]
    assert cc[1].keys == keys[0].keys


def test_retransmissions_reported_once() -> None:
    poi, out, _ = make_poi()
    poi.activate(task(), 0.0)
    msgs = call("c1")
    for _ in range(3):
        poi.observe_bytes(msgs[0][0], incoming=True, peer=UE, now=0.0)
    poi.observe_bytes(msgs[3][0], incoming=True, peer=CORE, now=1.0)
    poi.observe_bytes(msgs[3][0], incoming=True, peer=CORE, now=1.5)
    assert [r.event for r in out if r.sip] == [IriEvent.BEGIN, IriEvent.CONTINUE]
    assert poi.stats["duplicates"] == 3


def test_terminating_target_and_cc_unavailable() -> None:
    poi, out, _ = make_poi()
    poi.activate(task("sip:bob@ims-b.test"), 0.0)
    run_call(poi, "c2", keys=False)
    assert out[0].direction is TargetDirection.TO_TARGET
    unavailable = [r for r in out if r.event is IriEvent.CC_UNAVAILABLE]
    assert len(unavailable) == 1 and "not encrypted" in unavailable[0].reason


def test_start_of_interception_mid_call() -> None:
    poi, out, cc = make_poi()
    msgs = call("c3")
    for i, (raw, _) in enumerate(msgs[:5]):  # up to ACK: the call is active
        poi.observe_bytes(raw, incoming=True, peer=UE, now=float(i))
    assert out == []
    poi.activate(task(), 10.0)
    assert [r.event for r in out] == [IriEvent.START_OF_INTERCEPTION, IriEvent.KEYS]
    assert b"a=crypto" in out[0].sdp_state
    assert cc and cc[0].correlation_id == correlation_id("c3")
    for raw, _ in msgs[5:]:
        poi.observe_bytes(raw, incoming=True, peer=UE, now=11.0)
    assert out[-1].event is IriEvent.END


def test_deactivate_stops_reporting() -> None:
    poi, out, cc = make_poi()
    poi.activate(task(), 0.0)
    msgs = call("c4")
    poi.observe_bytes(msgs[0][0], incoming=True, peer=UE, now=0.0)
    poi.deactivate(XID)
    assert cc[-1].stop
    n = len(out)
    for raw, _ in msgs[1:]:
        poi.observe_bytes(raw, incoming=True, peer=UE, now=1.0)
    assert len(out) == n


def test_register_is_a_report_and_garbage_is_counted() -> None:
    from tests.li.poi.sipmsgs import msg

    poi, out, _ = make_poi()
    poi.activate(task(), 0.0)
    reg = msg(
        "REGISTER sip:ims-a.test SIP/2.0",
        call_id="r1",
        cseq="1 REGISTER",
        to="<sip:alice@ims-a.test>",
    )
    poi.observe_bytes(reg, incoming=True, peer=UE, now=0.0)
    poi.observe_bytes(b"\x00\x01garbage", incoming=True, peer=UE, now=0.0)
    assert [r.event for r in out] == [IriEvent.REPORT]
    assert poi.stats["unreadable"] == 1


def test_register_retransmission_once() -> None:
    from tests.li.poi.sipmsgs import msg

    poi, out, _ = make_poi()
    poi.activate(task(), 0.0)
    reg = msg(
        "REGISTER sip:ims-a.test SIP/2.0",
        call_id="r2",
        cseq="1 REGISTER",
        to="<sip:alice@ims-a.test>",
    )
    poi.observe_bytes(reg, incoming=True, peer=UE, now=0.0)
    poi.observe_bytes(reg, incoming=False, peer=CORE, now=0.1)
    assert len(out) == 1 and out[0].direction is TargetDirection.FROM_TARGET


def test_hook_adapter_on_parsed_messages_with_mid_call_task() -> None:
    """Through the hook (as attached to SipHooks): untargeted traffic is mostly skipped unread,
    yet a task arriving mid-call still finds the session and reports its end."""
    from types import SimpleNamespace

    from ims.sip import parse_message

    poi, out, cc = make_poi()
    hook = poi.hook(lambda: 5.0)
    msgs = call("c9")

    def feed(raw: bytes, direction: str) -> None:
        hook(
            SimpleNamespace(
                direction=direction,
                peer=UE,
                message=parse_message(raw),
                raw=raw if direction == "in" else None,
            )
        )

    for raw, _ in msgs[:5]:
        feed(raw, "in")
        feed(raw, "out")
    assert out == []
    assert poi.stats["unreadable"] == 0
    poi.activate(task(), 6.0)
    assert [r.event for r in out] == [IriEvent.START_OF_INTERCEPTION, IriEvent.KEYS]
    for raw, _ in msgs[5:]:
        feed(raw, "in")
        feed(raw, "out")
    assert [r.event for r in out[2:]] == [IriEvent.CONTINUE, IriEvent.END]


def test_x2_only_task_arms_no_cc() -> None:
    poi, out, cc = make_poi()
    poi.activate(
        PoiTask(xid=XID, targets=((TargetKind.SIP_URI, "sip:alice@ims-a.test"),), deliver_cc=False),
        0.0,
    )
    run_call(poi, "c10")
    assert out and all(not t.stop for t in cc) and cc == []
