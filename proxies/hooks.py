"""Hook points on the network elements: where observers (and the LI POIs) attach.

Every proxy runs each SIP message it receives or sends through its :class:`SipHooks` with a
:class:`SipMessageEvent` (element name, direction, peer address, transport, the message); every
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
from typing import Any, Final, Generic, TypeVar

from ims.log import get_logger

_log = get_logger("proxies.hooks")


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()
"""Returned by a hook to discard the message or packet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SipMessageEvent:
    """One SIP message crossing an element's boundary.

    ``message`` is the stack's message object (``ims.sip.message`` request or response).
    ``peer`` is the remote (host, port); ``transport`` is ``udp``, ``tcp`` or ``tls``.
    ``raw`` carries the bytes when the element has them (incoming messages).
    """

    element: str
    role: str
    direction: Direction
    peer: tuple[str, int]
    transport: str
    message: Any
    raw: bytes | None = None


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


E = TypeVar("E")
R = TypeVar("R")

Hook = Callable[[E], "R | _Drop | None"]


class HookChain(Generic[E, R]):
    """An ordered list of hooks over events ``E`` whose payload type is ``R``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._hooks: list[Callable[[E], R | _Drop | None]] = []

    def add(self, hook: Callable[[E], R | _Drop | None]) -> Callable[[], None]:
        """Attach ``hook``; returns a function that detaches it."""
        self._hooks.append(hook)

        def remove() -> None:
            if hook in self._hooks:
                self._hooks.remove(hook)

        return remove

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)

    def run(self, event: E, payload: R, rebuild: Callable[[E, R], E]) -> R | _Drop:
        """Pass ``event`` through every hook; return the (possibly rewritten) payload or DROP."""
        for hook in list(self._hooks):
            try:
                out = hook(event)
            except Exception as exc:  # an observer must never break the element
                _log.warning("hook failed", chain=self.name, hook=repr(hook), error=repr(exc))
                continue
            if out is None:
                continue
            if isinstance(out, _Drop):
                return DROP
            payload = out
            event = rebuild(event, payload)
        return payload


class SipHooks(HookChain[SipMessageEvent, Any]):
    """Hooks over SIP messages in and out of one element."""

    def process(self, event: SipMessageEvent) -> Any:
        """The message to use (maybe rewritten), or :data:`DROP`."""
        if not self._hooks:
            return event.message
        return self.run(event, event.message, _rebuild_sip)


def _rebuild_sip(event: SipMessageEvent, message: Any) -> SipMessageEvent:
    return SipMessageEvent(
        element=event.element,
        role=event.role,
        direction=event.direction,
        peer=event.peer,
        transport=event.transport,
        message=message,
        raw=None,
    )


class MediaHooks(HookChain[MediaPacketEvent, bytes]):
    """Hooks over every packet an anchor relays."""

    def process(self, event: MediaPacketEvent) -> bytes | _Drop:
        if not self._hooks:
            return event.data
        return self.run(event, event.data, _rebuild_media)


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
