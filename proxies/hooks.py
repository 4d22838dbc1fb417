"""Hook points on the network elements: where observers (and the LI POIs) attach.

One mechanism (:mod:`ims.hooks`: :class:`~ims.hooks.HookChain`, one ``Direction``, one ``DROP``)
for every point. Every proxy runs each SIP message it receives or sends through its proxy
core's chain (:class:`SipHooks` is :class:`ims.sip.proxy.hooks.MessageHooks`) with a
:class:`SipMessageEvent` (= ``MessageEvent``: element name, direction, peer address, transport,
the message); every
media anchor runs each relayed packet through its :class:`MediaHooks` with a
:class:`MediaPacketEvent` (call, leg, direction). A hook *observes* (returns ``None``),
*rewrites* (returns a replacement) or *drops* (returns :data:`DROP`). Hooks run in the order they
were added; a rewrite is what the next hook sees. A hook that raises is logged and ignored, so an
observer can never break the element it is attached to.

Session-level hooks (:class:`AnchorSessionEvent`) tell observers when the anchor creates,
updates or releases a relay session (with the SIP Call-ID and the ICID) so packet streams can be
correlated with signalling.

Nothing here knows about lawful interception: ``li/`` attaches to these points and ``lab/``
wires them (STYLE.md §2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ims.hooks import DROP, Direction, Drop, HookChain
from ims.log import get_logger
from ims.sip.proxy.hooks import MessageEvent, MessageHooks

_log = get_logger("proxies.hooks")

_Drop = Drop  # older name

#: the SIP event of every element: the proxy core's own (one type, one chain)
SipMessageEvent = MessageEvent
#: an element's SIP hook point is its proxy core's chain (``core.hooks``)
SipHooks = MessageHooks


class MediaDirection(StrEnum):
    """Which way a packet flows through an anchor session."""

    FROM_ACCESS = "from_access"  # UE side -> core side (uplink)
    FROM_CORE = "from_core"  # core side -> UE side (downlink)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaPacketEvent:
    """One RTP or RTCP packet relayed by an anchor (before it is sent on)."""

    element: str
    call_id: str
    icid: str | None
    stream: int
    label: str  # "orig"/"term" side of the call at this anchor ("" when unlabelled)
    leg: str  # "access" or "core": the leg the packet arrived on
    direction: MediaDirection
    rtcp: bool
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    #: ``data`` is the decrypted content of an SRTP session this element terminates
    #: (proxies.e2ae), not the packet as it arrived
    clear: bool = False


class SessionChange(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    RELEASED = "released"


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorSessionEvent:
    element: str
    change: SessionChange
    call_id: str
    icid: str | None
    stream: int
    label: str
    access: tuple[str, int]  # anchor's own address on the UE side
    core: tuple[str, int]  # anchor's own address on the core side
    access_remote: tuple[str, int] | None
    core_remote: tuple[str, int] | None
    stats: dict[str, int]


class MediaHooks(HookChain[MediaPacketEvent, bytes]):
    """Hooks over every packet an anchor relays."""

    __slots__ = ()

    def process(self, event: MediaPacketEvent) -> bytes | Drop:
        return self.apply(event, event.data, _rebuild_media)


def _rebuild_media(event: MediaPacketEvent, data: bytes) -> MediaPacketEvent:
    return MediaPacketEvent(
        element=event.element,
        call_id=event.call_id,
        icid=event.icid,
        stream=event.stream,
        label=event.label,
        leg=event.leg,
        direction=event.direction,
        rtcp=event.rtcp,
        src=event.src,
        dst=event.dst,
        data=data,
        clear=event.clear,
    )


class SessionObservers:
    """Observers of anchor session changes (created/updated/released); observe only."""

    def __init__(self) -> None:
        self._observers: list[Callable[[AnchorSessionEvent], None]] = []

    def add(self, observer: Callable[[AnchorSessionEvent], None]) -> Callable[[], None]:
        self._observers.append(observer)

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return remove

    def __bool__(self) -> bool:
        return bool(self._observers)

    def __len__(self) -> int:
        return len(self._observers)

    def notify(self, event: AnchorSessionEvent) -> None:
        for obs in list(self._observers):
            try:
                obs(event)
            except Exception as exc:
                _log.warning("session observer failed", error=repr(exc))


__all__ = [
    "DROP",
    "AnchorSessionEvent",
    "Direction",
    "Drop",
    "HookChain",
    "MediaDirection",
    "MediaHooks",
    "MediaPacketEvent",
    "SessionChange",
    "SessionObservers",
    "SipHooks",
    "SipMessageEvent",
]
