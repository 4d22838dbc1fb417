"""Hook chains: order, rewrites seen by later hooks, drop, failing hooks ignored, removal."""

from __future__ import annotations

from proxies.hooks import (
    DROP,
    Direction,
    MediaDirection,
    MediaHooks,
    MediaPacketEvent,
    SessionObservers,
    SipHooks,
    SipMessageEvent,
)


def _sip(message: object) -> SipMessageEvent:
    return SipMessageEvent(
        element="pcscf-a",
        role="pcscf",
        direction=Direction.IN,
        peer=("127.0.7.101", 5060),
        transport="udp",
        message=message,
        raw=b"raw",
    )


def _pkt(data: bytes) -> MediaPacketEvent:
    return MediaPacketEvent(
        element="anchor-a",
        call_id="c",
        icid=None,
        stream=0,
        label="orig",
        leg="access",
        direction=MediaDirection.FROM_ACCESS,
        rtcp=False,
        src=("127.0.7.101", 4000),
        dst=("127.0.7.111", 4002),
        data=data,
    )


def test_sip_chain_order_rewrite_and_removal() -> None:
    hooks = SipHooks("t")
    seen: list[object] = []

    def broken(ev: SipMessageEvent) -> None:
        raise RuntimeError("observer bug")

    hooks.add(broken)  # ignored: an observer never breaks the element
    remove = hooks.add(lambda ev: ev.message + "+1")
    hooks.add(lambda ev: seen.append((ev.message, ev.raw)))
    assert hooks.process(_sip("m")) == "m+1"
    # the later hook saw the rewrite, and raw bytes no longer match the message: dropped
    assert seen == [("m+1", None)]
    remove()
    remove()  # idempotent
    assert hooks.process(_sip("m")) == "m" and len(hooks) == 2


def test_drop_stops_the_chain() -> None:
    hooks = MediaHooks("t")
    after: list[bytes] = []
    hooks.add(lambda ev: DROP if ev.data == b"x" else None)
    hooks.add(lambda ev: after.append(ev.data))
    assert hooks.process(_pkt(b"x")) is DROP
    assert hooks.process(_pkt(b"y")) == b"y"
    assert after == [b"y"]
    assert MediaHooks("empty").process(_pkt(b"z")) == b"z"


def test_session_observers() -> None:
    obs = SessionObservers()
    got: list[object] = []
    obs.add(lambda ev: (_ for _ in ()).throw(ValueError("bad")))
    remove = obs.add(lambda ev: got.append(ev))
    obs.notify("event")  # type: ignore[arg-type]
    remove()
    obs.notify("again")  # type: ignore[arg-type]
    assert got == ["event"]
