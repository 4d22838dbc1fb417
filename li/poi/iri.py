"""IRI-POI for the P-CSCF and S-CSCF (TS 33.127 §7.4, events in the spirit of TS 33.128 §7.12).

Attached to an element's :class:`proxies.hooks.SipHooks` as an observer. Sans-I/O: every input
carries ``now``; output is :class:`IriRecord` values handed to ``emit`` (the X2 exporter or a
test list) and :class:`CcTrigger` values handed to ``trigger_cc`` (LI_T3 toward the CC-POI).

Rules it keeps:

* Nobody is intercepted without an active task: a message is reported only if a task's target
  identity (:mod:`li.targets`) is one party of its call.
* One record per SIP message per element: the hook sees a relayed message twice (in, then out
  with the element's Via); both, and any retransmission, have the same dedup key (status, CSeq
  method and number, Call-ID, To-tag), so only the first is reported.
* Events: ``begin`` (first message of an intercepted call), ``continue``, ``end`` (final response
  to BYE/CANCEL, or a final failure of the initial INVITE), ``report`` (out-of-dialog requests
  such as REGISTER/MESSAGE), ``start-of-interception`` (a task activated while the target's
  session is already active: one record with the current SDP state), ``keys`` (key records of
  :mod:`li.keys`) and ``cc-unavailable`` (with the reason).
* Direction is relative to the target (TS 103 221-2: 2 = to the target, 3 = from the target).
* The correlation ID is derived from the Call-ID, so the CC-POI on the anchor (which learns the
  Call-ID from its session events) reaches the same value without a shared table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import lru_cache
from typing import Any, Protocol

from ims.sip.message import Request, Response
from li.keys import KeyRecord, Unavailable
from li.poi.sipview import NotSipError, SipView, parse
from li.targets import (
    Side,
    TargetKind,
    TargetTable,
    identities_of,
    normalize_target,
    normalize_uri,
    split_values,
    uri_of,
)
from li.x2x3.pdu import correlation_id_for

#: Calls tracked per POI (targets or not, for mid-call activation); oldest ended ones go first.
MAX_CALLS = 20000


class IriEvent(StrEnum):
    BEGIN = "begin"
    CONTINUE = "continue"
    END = "end"
    REPORT = "report"
    START_OF_INTERCEPTION = "start-of-interception"
    KEYS = "keys"
    CC_UNAVAILABLE = "cc-unavailable"


class TargetDirection(IntEnum):
    """TS 103 221-2 payload direction, relative to the target."""

    UNKNOWN = 1
    TO_TARGET = 2
    FROM_TARGET = 3
    MULTIPLE = 4
    NOT_APPLICABLE = 5


@lru_cache(maxsize=4096)
def correlation_id(call_id: str) -> int:
    """Non-zero 64-bit correlation ID of a call, shared by X2 and X3 (li.x2x3's rule); cached
    (every record and trigger of a call needs it)."""
    return correlation_id_for(call_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoiTask:
    """What the POI needs of an X1 task."""

    xid: uuid.UUID
    targets: tuple[tuple[TargetKind, str], ...]
    deliver_cc: bool = True
    mitm: frozenset[str] = frozenset()  # MITM functions the task explicitly authorises

    def identities(self) -> frozenset[str]:
        out: set[str] = set()
        for kind, value in self.targets:
            out |= normalize_target(kind, value)
        return frozenset(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class IriRecord:
    xid: uuid.UUID
    correlation_id: int
    call_id: str
    event: IriEvent
    direction: TargetDirection
    element: str
    time: float
    matched: str
    sip: bytes = b""
    src: tuple[str, int] | None = None
    dst: tuple[str, int] | None = None
    keys: tuple[KeyRecord, ...] = ()
    reason: str = ""
    sdp_state: bytes = b""

    def __repr__(self) -> str:
        return (
            f"IriRecord({self.event.value}, xid={self.xid}, call={self.call_id!r}, "
            f"dir={self.direction.name}, keys={len(self.keys)})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CcTrigger:
    """LI_T3: start (or stop) CC interception of a call at the media functions."""

    xid: uuid.UUID
    correlation_id: int
    call_id: str
    target_identities: frozenset[str]
    target_side: Side
    keys: tuple[KeyRecord, ...] = ()
    stop: bool = False


KeyExtractor = Callable[[str, bytes, bytes | None], "Sequence[KeyRecord] | DeferredKeys"]


class DeferredKeys(Protocol):
    """Key records still being computed (a ``concurrent.futures.Future``): the MIKEY-SAKKE
    recovery at the KMS costs a pairing, too long to hold the element's event loop."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def result(self, timeout: float | None = None) -> Sequence[KeyRecord]: ...


@dataclass(slots=True)
class _Call:
    call_id: str
    parties: dict[Side, frozenset[str]]
    offer: bytes | None = None
    answer: bytes | None = None
    offer_from: Side | None = None
    answered: bool = False
    ended: bool = False
    xids: dict[uuid.UUID, tuple[Side, str]] = field(default_factory=dict)
    seen: set[tuple[object, ...]] = field(default_factory=set)
    keys_reported: bool = False


class IriPoi:
    """The IRI-POI of one element (P-CSCF or S-CSCF)."""

    def __init__(
        self,
        *,
        element: str,
        address: tuple[str, int],
        emit: Callable[[IriRecord], None],
        trigger_cc: Callable[[CcTrigger], None] | None = None,
        extract_keys: KeyExtractor | None = None,
    ) -> None:
        self.element = element
        self.address = address
        self.emit = emit
        self.trigger_cc = trigger_cc
        self.extract_keys = extract_keys
        # how a deferred extraction's completion re-enters this POI's thread (the adapter's
        # loop.call_soon_threadsafe); None: wait for it in place
        self.defer: Callable[[Callable[[], None]], object] | None = None
        self.targets = TargetTable()
        self.tasks: dict[uuid.UUID, PoiTask] = {}
        self._calls: dict[str, _Call] = {}
        self._seen_out_of_call: dict[tuple[object, ...], None] = {}
        self.stats = {"messages": 0, "reported": 0, "duplicates": 0, "unreadable": 0}

    # --- X1 ------------------------------------------------------------------------------

    def activate(self, task: PoiTask, now: float) -> None:
        """Start a task; calls already active with the target get start-of-interception."""
        self.tasks[task.xid] = task
        self.targets.add(str(task.xid), task.identities())
        for call in list(self._calls.values()):
            if call.ended or task.xid in call.xids:
                continue
            for m in self.targets.match(call.parties):
                if m.xid != str(task.xid):
                    continue
                call.xids[task.xid] = (m.side, m.identity)
                state = (call.offer or b"") + (b"\r\n" + call.answer if call.answer else b"")
                self._record(call, task.xid, IriEvent.START_OF_INTERCEPTION, now, sdp=state)
                if call.offer is not None and call.answered:
                    self._keys(call, now, only=task.xid)
                break

    def deactivate(self, xid: uuid.UUID) -> None:
        self.tasks.pop(xid, None)
        self.targets.remove(str(xid))
        for call in self._calls.values():
            if call.xids.pop(xid, None) is not None and self.trigger_cc is not None:
                self._cc(
                    CcTrigger(
                        xid=xid,
                        correlation_id=correlation_id(call.call_id),
                        call_id=call.call_id,
                        target_identities=frozenset(),
                        target_side=Side.ORIGINATING,
                        stop=True,
                    )
                )

    def tasks_for_call(self, call_id: str) -> list[PoiTask]:
        """The active tasks intercepting a call (what a MITM function must be authorised by)."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        return [self.tasks[x] for x in call.xids if x in self.tasks]

    def hook(self, clock: Callable[[], float]) -> Callable[[Any], None]:
        """An observer for :class:`proxies.hooks.SipHooks` (li never imports proxies).

        Incoming messages are always read (a task may arrive mid-call); outgoing ones only when
        their Call-ID is being intercepted, so the cost for untargeted traffic is one parse.
        """

        def observe(event: Any) -> None:
            incoming = str(event.direction) == "in"
            if incoming and not _worth_reading(event.message):
                self.stats["messages"] += 1
                return
            if not incoming:
                if not self.targets:
                    return
                msg = event.message
                call = self._calls.get(msg.call_id)
                if call is None or not call.xids:
                    return
                # a relayed message was reported when it came in: skip it before any parsing
                status = getattr(msg, "status", None)
                cseq = msg.cseq
                to = msg.to
                if cseq is not None and to is not None:
                    key = (status, cseq.method, cseq.seq, to.tag if status else None)
                    if key in call.seen:
                        self.stats["duplicates"] += 1
                        return
            raw = event.raw if event.raw is not None else event.message.encode()
            self.observe_message(
                event.message, raw, incoming=incoming, peer=tuple(event.peer), now=clock()
            )

        def _worth_reading(msg: Any) -> bool:
            """Whether an incoming message can matter (the proxy parsed it already; its typed
            accessors are cached): every message of an intercepted call, and of the others only
            what builds the state a mid-call task needs -- INVITE, bodies, final answers to
            INVITE and BYE; out-of-call requests only while a task is active."""
            call = self._calls.get(msg.call_id)
            status = getattr(msg, "status", None)
            if call is None:
                return bool(self.targets) or (status is None and msg.method == "INVITE")
            if call.xids or msg.body:
                return True
            if status is None:
                return bool(msg.method == "INVITE")
            cseq = msg.cseq
            return status >= 200 and cseq is not None and cseq.method in ("INVITE", "BYE")

        return observe

    # --- hook ----------------------------------------------------------------------------

    def observe_bytes(
        self, raw: bytes, *, incoming: bool, peer: tuple[str, int], now: float
    ) -> None:
        """One SIP message in or out of the element, as bytes (read through ims.sip)."""
        self.stats["messages"] += 1
        try:
            msg = parse(raw)
        except NotSipError:
            self.stats["unreadable"] += 1
            return
        self._observe_view(msg, incoming=incoming, peer=peer, now=now)

    def observe_message(
        self,
        message: Request | Response,
        raw: bytes,
        *,
        incoming: bool,
        peer: tuple[str, int],
        now: float,
    ) -> None:
        """One SIP message in or out of the element, as the element parsed it (an
        :class:`ims.sip.Request`/``Response``) with its bytes: nothing is parsed again."""
        self.stats["messages"] += 1
        try:
            msg = SipView.of(message, raw)
        except NotSipError:
            self.stats["unreadable"] += 1
            return
        self._observe_view(msg, incoming=incoming, peer=peer, now=now)

    def _observe_view(
        self, msg: SipView, *, incoming: bool, peer: tuple[str, int], now: float
    ) -> None:
        src, dst = (peer, self.address) if incoming else (self.address, peer)
        self.observe(msg, src=src, dst=dst, now=now)

    def observe(
        self, msg: SipView, *, src: tuple[str, int], dst: tuple[str, int], now: float
    ) -> None:
        call = self._calls.get(msg.call_id)
        if call is None:
            if not (msg.is_request and msg.method == "INVITE"):
                self._out_of_call(msg, src, dst, now)
                return
            call = self._new_call(msg)
        key = (msg.status, msg.method, msg.cseq, msg.to_tag if msg.status else None)
        if key in call.seen:
            self.stats["duplicates"] += 1
            return
        call.seen.add(key)
        self._update_sdp(call, msg)
        if not call.xids:
            self._update_state(call, msg)
            return
        event = IriEvent.CONTINUE
        if len(call.seen) == 1:
            event = IriEvent.BEGIN
        ended = self._update_state(call, msg)
        if ended:
            event = IriEvent.END
        for xid in list(call.xids):
            self._record(call, xid, event, now, msg=msg, src=src, dst=dst)
        if call.answered and call.offer is not None and not call.keys_reported:
            self._keys(call, now)
        if ended and self.trigger_cc is not None:
            for xid, (side, _) in call.xids.items():
                self._cc(
                    CcTrigger(
                        xid=xid,
                        correlation_id=correlation_id(call.call_id),
                        call_id=call.call_id,
                        target_identities=self.targets.identities(str(xid)),
                        target_side=side,
                        stop=True,
                    )
                )

    # --- internals -----------------------------------------------------------------------

    def _cc(self, trigger: CcTrigger) -> None:
        """LI_T3 toward the CC-POI, for tasks that deliver content (not X2Only)."""
        task = self.tasks.get(trigger.xid)
        if self.trigger_cc is None or (task is not None and not task.deliver_cc):
            return
        self.trigger_cc(trigger)

    def _new_call(self, msg: SipView) -> _Call:
        if len(self._calls) >= MAX_CALLS:
            for cid in [c for c, v in self._calls.items() if v.ended][: MAX_CALLS // 10] or [
                next(iter(self._calls))
            ]:
                del self._calls[cid]
        parties = identities_of(
            request_uri=msg.request_uri, from_=msg.from_, to=msg.to, p_asserted_identity=msg.pai
        )
        call = _Call(call_id=msg.call_id, parties=parties)
        self._calls[msg.call_id] = call
        for m in self.targets.match(parties):
            xid = uuid.UUID(m.xid)
            call.xids.setdefault(xid, (m.side, m.identity))
        if call.xids and self.trigger_cc is not None:
            for xid, (side, _) in call.xids.items():
                self._cc(
                    CcTrigger(
                        xid=xid,
                        correlation_id=correlation_id(call.call_id),
                        call_id=call.call_id,
                        target_identities=self.targets.identities(str(xid)),
                        target_side=side,
                    )
                )
        return call

    def _out_of_call(
        self, msg: SipView, src: tuple[str, int], dst: tuple[str, int], now: float
    ) -> None:
        if not self.targets:
            return
        parties = identities_of(
            request_uri=msg.request_uri, from_=msg.from_, to=msg.to, p_asserted_identity=msg.pai
        )
        matches = {m.xid: m for m in reversed(self.targets.match(parties))}
        if not matches:
            return
        key = (msg.call_id, msg.status, msg.method, msg.cseq)
        if key in self._seen_out_of_call:
            self.stats["duplicates"] += 1
            return
        self._seen_out_of_call[key] = None
        if len(self._seen_out_of_call) > MAX_CALLS:
            del self._seen_out_of_call[next(iter(self._seen_out_of_call))]
        for m in matches.values():
            xid = uuid.UUID(m.xid)
            self.stats["reported"] += 1
            self.emit(
                IriRecord(
                    xid=xid,
                    correlation_id=correlation_id(msg.call_id),
                    call_id=msg.call_id,
                    event=IriEvent.REPORT,
                    direction=self._direction(msg, m.side, self.targets.identities(m.xid)),
                    element=self.element,
                    time=now,
                    matched=m.identity,
                    sip=msg.raw,
                    src=src,
                    dst=dst,
                )
            )

    @staticmethod
    def _update_sdp(call: _Call, msg: SipView) -> None:
        sdp = msg.sdp
        if sdp is None:
            return
        # the side that sent this body: requests come from the From party, responses from To
        sender = Side.ORIGINATING if msg.is_request else Side.TERMINATING
        if msg.is_request and msg.method != "ACK" and msg.method != "INVITE":
            return
        if call.offer is None or (msg.is_request and msg.method == "INVITE" and call.answered):
            call.offer, call.offer_from, call.answer = sdp, sender, None
            call.keys_reported = False
        elif sender != call.offer_from:
            call.answer = sdp

    @staticmethod
    def _update_state(call: _Call, msg: SipView) -> bool:
        """Update the dialog state; True when this message ends the call."""
        if msg.status is None:
            return False
        if msg.method == "INVITE":
            if 200 <= msg.status < 300:
                call.answered = True
            elif msg.status >= 300 and not call.answered:
                call.ended = True
                return True
        elif msg.method == "BYE" and msg.status >= 200:
            call.ended = True
            return True
        return False

    def _direction(self, msg: SipView, side: Side, target: frozenset[str]) -> TargetDirection:
        # a request is sent by its From party (asserted or not); a response goes back to it
        from_party = normalize_uri(uri_of(msg.from_)).union(
            *(normalize_uri(uri_of(v)) for h in msg.pai for v in split_values(h))
        )
        if msg.is_request:
            sender = from_party
        elif from_party & target:
            return TargetDirection.TO_TARGET
        else:
            return TargetDirection.FROM_TARGET
        if sender & target:
            return TargetDirection.FROM_TARGET
        return TargetDirection.TO_TARGET

    def _record(
        self,
        call: _Call,
        xid: uuid.UUID,
        event: IriEvent,
        now: float,
        *,
        msg: SipView | None = None,
        src: tuple[str, int] | None = None,
        dst: tuple[str, int] | None = None,
        sdp: bytes = b"",
        keys: tuple[KeyRecord, ...] = (),
        reason: str = "",
    ) -> None:
        side, matched = call.xids[xid]
        if msg is not None:
            direction = self._direction(msg, side, self.targets.identities(str(xid)))
        else:
            direction = TargetDirection.NOT_APPLICABLE
        self.stats["reported"] += 1
        self.emit(
            IriRecord(
                xid=xid,
                correlation_id=correlation_id(call.call_id),
                call_id=call.call_id,
                event=event,
                direction=direction,
                element=self.element,
                time=now,
                matched=matched,
                sip=msg.raw if msg is not None else b"",
                src=src,
                dst=dst,
                keys=keys,
                reason=reason,
                sdp_state=sdp,
            )
        )
        if event is IriEvent.START_OF_INTERCEPTION and self.trigger_cc is not None:
            self._cc(
                CcTrigger(
                    xid=xid,
                    correlation_id=correlation_id(call.call_id),
                    call_id=call.call_id,
                    target_identities=self.targets.identities(str(xid)),
                    target_side=side,
                )
            )

    def _keys(self, call: _Call, now: float, only: uuid.UUID | None = None) -> None:
        """Key records (or why there are none) once offer and answer are known."""
        call.keys_reported = True
        if self.extract_keys is None or call.offer is None:
            return
        got = self.extract_keys(call.call_id, call.offer, call.answer)
        if not isinstance(got, Sequence):
            if self.defer is None:
                self._deliver_keys(call, tuple(got.result()), now, only)
            else:
                defer = self.defer
                got.add_done_callback(
                    lambda f: defer(lambda: self._deliver_keys(call, tuple(f.result()), now, only))
                )
            return
        self._deliver_keys(call, tuple(got), now, only)

    def _deliver_keys(
        self, call: _Call, records: tuple[KeyRecord, ...], now: float, only: uuid.UUID | None
    ) -> None:
        if not records:
            return
        xids = [only] if only is not None else list(call.xids)
        for xid in [x for x in xids if x in call.xids]:  # a task may have ended meanwhile
            available = tuple(r for r in records if r.available)
            if available:
                self._record(call, xid, IriEvent.KEYS, now, keys=available)
                if self.trigger_cc is not None:
                    side, _ = call.xids[xid]
                    self._cc(
                        CcTrigger(
                            xid=xid,
                            correlation_id=correlation_id(call.call_id),
                            call_id=call.call_id,
                            target_identities=self.targets.identities(str(xid)),
                            target_side=side,
                            keys=available,
                        )
                    )
            missing = [r.reason for r in records if not r.available]
            if missing:
                reason = "; ".join(dict.fromkeys(missing)) or str(Unavailable.UNSUPPORTED)
                self._record(call, xid, IriEvent.CC_UNAVAILABLE, now, reason=reason)
