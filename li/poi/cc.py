"""CC-POIs: the media anchor's (triggered by the IRI-POI) and a media provider's passive tap.

* :class:`AnchorCcPoi` attaches to an anchor's :class:`proxies.hooks.MediaHooks` as an observer
  and copies the packets of the calls the IRI-POI triggered (:class:`li.poi.iri.CcTrigger`,
  LI_T3 in TS 33.127) into X3 with the call's correlation ID. Direction is relative to the
  target: a packet whose source is the target's media address (from its SDP) is
  ``FROM_TARGET``; without that address the access leg is taken to be the target's.
* :class:`PassiveTapPoi` is the separate media-path provider's tap (study 2.1 Q2): it never sees
  signalling, so it is tasked with the target's IP address (X1 ``ipv4Address``) and reports
  every packet to or from it; its correlation ID is its own (per flow), and the LEMF joins it to
  the IMS provider's IRI by media address.

Packets are copied as they are on the wire (SRTP stays encrypted): decryption is the LEMF's, with
the keys that travel in X2 -- except where the element itself terminates the SRTP (an e2ae anchor,
:mod:`proxies.e2ae`): there the CC-POI taps the decrypted content (the event's ``clear``) and
reports it as such, en clair (study Q4). Nothing is reported for a call without a trigger, and
nothing is logged per packet.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from li.poi.iri import CcTrigger, TargetDirection

_FROM_ACCESS = "from_access"


@dataclass(frozen=True, slots=True, kw_only=True)
class CcRecord:
    xid: uuid.UUID
    correlation_id: int
    call_id: str
    direction: TargetDirection
    element: str
    time: float
    data: bytes
    src: tuple[str, int]
    dst: tuple[str, int]
    rtcp: bool = False
    clear: bool = False  # decrypted by the element itself (e2ae): delivered en clair


@dataclass(slots=True)
class _Armed:
    xids: dict[uuid.UUID, int] = field(default_factory=dict)  # xid -> correlation id
    target_media: tuple[str, int] | None = None


class AnchorCcPoi:
    """CC-POI on a media anchor; armed per call by CC triggers."""

    def __init__(self, *, element: str, emit: Callable[[CcRecord], None]) -> None:
        self.element = element
        self.emit = emit
        self._armed: dict[str, _Armed] = {}
        self.stats = {"packets": 0, "reported": 0}

    def trigger(self, t: CcTrigger, *, target_media: tuple[str, int] | None = None) -> None:
        """Start (or, with ``t.stop``, stop) copying the packets of ``t.call_id``."""
        if t.stop:
            armed = self._armed.get(t.call_id)
            if armed is not None:
                armed.xids.pop(t.xid, None)
                if not armed.xids:
                    del self._armed[t.call_id]
            return
        armed = self._armed.setdefault(t.call_id, _Armed())
        armed.xids[t.xid] = t.correlation_id
        if target_media is not None:
            armed.target_media = target_media

    @property
    def active_calls(self) -> int:
        return len(self._armed)

    def observe(
        self,
        *,
        call_id: str,
        direction: str,
        src: tuple[str, int],
        dst: tuple[str, int],
        data: bytes,
        rtcp: bool,
        now: float,
        clear: bool = False,
    ) -> None:
        """One packet relayed by the anchor (the hook's event fields)."""
        self.stats["packets"] += 1
        armed = self._armed.get(call_id)
        if armed is not None:
            self._report(armed, call_id, str(direction), src, dst, data, rtcp, now, clear)

    def _report(
        self,
        armed: _Armed,
        call_id: str,
        direction: str,
        src: tuple[str, int],
        dst: tuple[str, int],
        data: bytes,
        rtcp: bool,
        now: float,
        clear: bool = False,
    ) -> None:
        tm = armed.target_media
        if tm is not None:
            from_target = src == tm or (rtcp and src == (tm[0], tm[1] + 1))
        else:
            from_target = direction == _FROM_ACCESS
        d = TargetDirection.FROM_TARGET if from_target else TargetDirection.TO_TARGET
        for xid, cid in armed.xids.items():
            self.stats["reported"] += 1
            self.emit(
                CcRecord(
                    xid=xid,
                    correlation_id=cid,
                    call_id=call_id,
                    direction=d,
                    element=self.element,
                    time=now,
                    data=data,
                    src=src,
                    dst=dst,
                    rtcp=rtcp,
                    clear=clear,
                )
            )

    def hook(self, clock: Callable[[], float]) -> Callable[[object], None]:
        """An observer for :class:`proxies.hooks.MediaHooks` (``clock`` stamps the records).

        When ``emit`` has an ``x3`` attribute (:func:`li.poi.export.cc_sender`'s does), each
        packet goes straight to it as ``(xid, correlation_id, direction, data, src, dst)``:
        no :class:`CcRecord` per packet (a frozen dataclass costs as much to build as the rest
        of the tap, issue 19)."""
        armed_calls = self._armed
        stats = self.stats
        report = self._report
        x3: Callable[..., None] | None = getattr(self.emit, "x3", None)
        if x3 is not None:
            return self._fast_hook(x3)

        def observe(event: object) -> None:
            e: Any = event  # proxies.hooks.MediaPacketEvent; li does not import proxies
            stats["packets"] += 1
            armed = armed_calls.get(e.call_id)
            if armed is None:
                return  # the common case: one dict look-up per packet
            report(
                armed,
                e.call_id,
                str(e.direction),
                e.src,
                e.dst,
                e.data,
                e.rtcp,
                clock(),
                getattr(e, "clear", False),
            )

        return observe

    def _fast_hook(self, x3: Callable[..., None]) -> Callable[[object], None]:
        armed_calls = self._armed
        stats = self.stats

        def observe(event: object) -> None:
            e: Any = event  # proxies.hooks.MediaPacketEvent; li does not import proxies
            stats["packets"] += 1
            armed = armed_calls.get(e.call_id)
            if armed is None:
                return
            d = _direction(armed, e.direction, e.src, e.rtcp)
            for xid, cid in armed.xids.items():
                stats["reported"] += 1
                if getattr(
                    e, "clear", False
                ):  # decrypted by the element (e2ae): marked en clair on X3
                    x3(xid, cid, d, e.data, e.src, e.dst, True)
                else:
                    x3(xid, cid, d, e.data, e.src, e.dst)

        return observe


def _direction(armed: _Armed, direction: str, src: tuple[str, int], rtcp: bool) -> int:
    tm = armed.target_media
    if tm is not None:
        from_target = src == tm or (rtcp and src == (tm[0], tm[1] + 1))
    else:
        from_target = direction == _FROM_ACCESS
    return _FROM_TARGET if from_target else _TO_TARGET


_FROM_TARGET = int(TargetDirection.FROM_TARGET)
_TO_TARGET = int(TargetDirection.TO_TARGET)


def flow_correlation_id(element: str, target: str, port: int) -> int:
    """The tap's own correlation ID for one target media flow (never 0)."""
    h = hashlib.sha256(f"{element}|{target}|{port}".encode()).digest()[:8]
    return int.from_bytes(h, "big") or 1


class PassiveTapPoi:
    """A media provider's tap: tasked with target IP addresses, no signalling."""

    def __init__(self, *, element: str, emit: Callable[[CcRecord], None]) -> None:
        self.element = element
        self.emit = emit
        self._targets: dict[str, set[uuid.UUID]] = {}
        self.stats = {"packets": 0, "reported": 0}

    def activate(self, xid: uuid.UUID, address: str) -> None:
        self._targets.setdefault(address, set()).add(xid)

    def deactivate(self, xid: uuid.UUID) -> None:
        for addr in list(self._targets):
            self._targets[addr].discard(xid)
            if not self._targets[addr]:
                del self._targets[addr]

    def observe(
        self,
        *,
        src: tuple[str, int],
        dst: tuple[str, int],
        data: bytes,
        rtcp: bool,
        now: float,
        call_id: str = "",
    ) -> None:
        self.stats["packets"] += 1
        if not self._targets:
            return
        if src[0] in self._targets:
            target, d = src, TargetDirection.FROM_TARGET
        elif dst[0] in self._targets:
            target, d = dst, TargetDirection.TO_TARGET
        else:
            return
        port = target[1] - 1 if rtcp else target[1]
        cid = flow_correlation_id(self.element, target[0], port)
        for xid in self._targets[target[0]]:
            self.stats["reported"] += 1
            self.emit(
                CcRecord(
                    xid=xid,
                    correlation_id=cid,
                    call_id=call_id,
                    direction=d,
                    element=self.element,
                    time=now,
                    data=data,
                    src=src,
                    dst=dst,
                    rtcp=rtcp,
                )
            )

    def hook(self, clock: Callable[[], float]) -> Callable[[object], None]:
        def observe(event: object) -> None:
            e = event
            self.observe(
                src=e.src,  # type: ignore[attr-defined]
                dst=e.dst,  # type: ignore[attr-defined]
                data=e.data,  # type: ignore[attr-defined]
                rtcp=e.rtcp,  # type: ignore[attr-defined]
                now=clock(),
            )

        return observe
