"""The X2/X3 exporter (POI side, TS 103 221-2): delivery to one or more destinations.

One :class:`X2X3Exporter` serves every task of a network element. ``send_x2``/``send_x3`` are
plain synchronous calls (POIs call them from hook callbacks): they stamp the PDU with the
task's next sequence number (u32 per XID, so the LEMF sees gaps), a timestamp and the NF/IP
identifiers, encode it once (a per-stream header template, attribute TLVs cached per tuple)
and append it to the on-disk spool of each destination of the task. A :class:`_Link` per
destination (an asyncio task) connects over TCP or TLS with mutual certificates, reconnects
with exponential backoff and sends the spool in order, in batches: new PDUs wake it at most
once per ``flush_delay`` (2 ms), and everything spooled by then leaves in one write (after
a quiet spell, at once: in the same loop iteration).

Delivery checkpoints: a Keepalive goes after every ``checkpoint_bytes`` sent and, when the
data stops, within ``checkpoint_interval`` of the last byte (at once on :meth:`drain`); its
Keepalive-Ack lets the spool drop what was sent before it (see :mod:`li.x2x3.spool`) and
nothing earlier. Idle links send Keepalives every ``keepalive_interval`` and give up on a peer
that owes an Ack and has sent none for ``keepalive_timeout`` (a LEMF far behind but working
acknowledges as it catches up, so it is waited for: the lag grows in the spool, not in a
reconnect loop that re-sends the tail).

Back-pressure and lag: at most ``window_bytes`` are sent and not yet acknowledged; the rest
stays in the spool. :meth:`X2X3Exporter.status` reports, per destination, the bytes waiting
and ``lag_s``, the age of the oldest PDU not yet acknowledged (``max_lag_s`` its maximum).
:meth:`X2X3Exporter.send_x3_many` spools many X3 PDUs in one append per destination.

Keepalives from the peer are answered. A full spool raises :class:`SpoolFullError` to the
caller and an :class:`ExporterAlarm` to ``on_alarm`` (and the log): never silent loss.

Plain TCP mode (``tls=None``) exists because tshark cannot decode X2/X3 inside TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ims.log import get_logger
from li.x2x3.framing import PduFramer
from li.x2x3.keyrecord import KeyRecord, key_record_pdu
from li.x2x3.pdu import (
    HEADER_LENGTH,
    VERSION,
    Attribute,
    AttributeType,
    OpaqueAttribute,
    PayloadDirection,
    PayloadFormat,
    Pdu,
    PduType,
    SequenceNumber,
    Timestamp,
    X2X3DecodeError,
    encode_attributes,
    encode_pdu,
    header_template,
    interception_point_id,
    keepalive,
    keepalive_ack,
    network_function_id,
    sequence_tlv,
    timestamp_tlv,
)
from li.x2x3.spool import Spool, SpoolFullError

__all__ = [
    "DeliveryDestination",
    "DestinationStatus",
    "ExporterAlarm",
    "SpoolFullError",
    "X2X3Exporter",
]

log = get_logger("li.x2x3.exporter")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryDestination:
    """Where X2/X3 for a DID goes. ``tls`` is a client context (with our certificate for
    mutual TLS); ``None`` means plain TCP."""

    did: uuid.UUID
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None
    delivery: str = "X2andX3"  # X1 deliveryType: X2Only | X3Only | X2andX3

    def carries(self, pdu_type: PduType) -> bool:
        return _carries(self.delivery, pdu_type)


def _carries(delivery: str, pdu_type: PduType) -> bool:
    if pdu_type is PduType.X2:
        return delivery in ("X2Only", "X2andX3")
    if pdu_type is PduType.X3:
        return delivery in ("X3Only", "X2andX3")
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class ExporterAlarm:
    """Something an operator must see: ``kind`` is ``spool-full`` or ``spool-ok``."""

    kind: str
    did: uuid.UUID
    detail: str


@dataclass(slots=True, kw_only=True)
class DestinationStatus:
    did: uuid.UUID
    connected: bool = False
    connects: int = 0
    connect_failures: int = 0
    pending_bytes: int = 0
    delivered_bytes: int = 0
    pdus_spooled: int = 0
    refused_pdus: int = 0
    filtered_pdus: int = 0  # not sent: the destination's or task's delivery type excludes it
    keepalives_sent: int = 0
    keepalive_acks: int = 0
    last_error: str = ""
    spool_full: bool = False
    # how far behind the destination is: the age of the oldest PDU not yet acknowledged
    # (0 when everything is), and its maximum; a LEMF that cannot keep up shows here as
    # well as in its own status (li.lemf.receiver)
    lag_s: float = 0.0
    max_lag_s: float = 0.0


class _LinkDown(Exception):
    pass


_CACHE_MAX = 4096
LAG_RESOLUTION = 0.01  # seconds: how finely the exporter remembers when data was spooled
_SEQ_TS_TLVS = struct.Struct("!HHIHHII")  # Sequence Number TLV + Timestamp TLV, in one pack
_LENGTH_FIELDS = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class _EncodedAttributes:
    attrs: tuple[Attribute, ...]  # kept alive: the cache is keyed by its id
    data: bytes
    stamp_prefix: bytes  # NFID/IPID TLVs the exporter adds (absent from ``attrs``)
    sequence: int | None  # a sequence number the caller set itself
    has_timestamp: bool


@dataclass(frozen=True, slots=True)
class _Stream:
    """One (task, correlation, type, format, direction) stream: where it goes, its header."""

    links: tuple[_Link, ...]
    filtered: tuple[_Link, ...]  # destinations whose delivery type excludes the stream
    prefix: bytes
    tail: bytes
    xid: uuid.UUID  # kept alive: the cache is keyed by its id
    counter: list[int]  # the task's sequence counter (shared by its streams)


def keepalive_bytes(seq: int) -> bytes:
    return encode_pdu(keepalive(seq))


class _Link:
    """Delivery to one destination: connect, send the spool in batches, checkpoint.

    The link's task sleeps on a future; :meth:`kick` (from ``send_pdu``) wakes it at most once
    per ``flush_delay``, so the PDUs of that interval leave in one write instead of one
    wake-up and one ``send`` each. A Keepalive checkpoint follows every ``checkpoint_bytes``
    sent, and, once the link is idle, the last data within ``checkpoint_interval``: the
    spool drops bytes only after the Ack of a Keepalive sent after them.
    """

    def __init__(self, exporter: X2X3Exporter, dest: DeliveryDestination, spool: Spool) -> None:
        self.x = exporter
        self.dest = dest
        self.spool = spool
        self.status = DestinationStatus(did=dest.did)
        self.status.pending_bytes = spool.pending_bytes
        self.acked_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.checkpoint_now = False  # drain(): checkpoint what was sent without waiting
        self._ka_seq = 0
        self._waiter: asyncio.Future[None] | None = None
        self._kick_handle: asyncio.Handle | None = None
        self.last_flush = 0.0  # loop time of the last data write
        # (spool offset, exporter clock) where a run of appends began, a new run at most
        # every LAG_RESOLUTION: every PDU of a run was spooled within LAG_RESOLUTION of its
        # mark; the runs wholly acknowledged are dropped from the front
        self._marks: deque[tuple[int, float]] = deque()

    def spooled(self, n: int) -> None:
        """``n`` bytes were just appended to the spool (for :meth:`lag`)."""
        marks = self._marks
        now = self.x.clock()
        if not marks or now - marks[-1][1] >= LAG_RESOLUTION:
            marks.append((self.spool.end - n, now))

    def lag(self) -> float:
        """Age of the oldest PDU spooled and not acknowledged (at most ``LAG_RESOLUTION``
        too old: the start of its run); 0 when everything is acknowledged."""
        marks = self._marks
        acked = self.spool.acked
        while len(marks) > 1 and marks[1][0] <= acked:
            marks.popleft()
        if not marks or not self.spool.pending_bytes:
            marks.clear()
            lag = 0.0
        else:
            lag = max(0.0, self.x.clock() - marks[0][1])
        self.status.lag_s = round(lag, 3)
        self.status.max_lag_s = max(self.status.max_lag_s, self.status.lag_s)
        return lag

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"x2x3-link-{self.dest.did}"
        )

    async def stop(self) -> None:
        self.closing = True
        self.wake()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self._kick_handle is not None:
            self._kick_handle.cancel()
            self._kick_handle = None
        self.spool.close()

    # -- waking ----------------------------------------------------------------------------
    def wake(self) -> None:
        """Wake the link's task now (if it sleeps)."""
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def kick(self) -> None:
        """New data in the spool. Sends are spaced at least ``flush_delay`` apart: after a
        quiet spell the link is woken in this loop iteration (``call_soon``: the PDUs of the
        iteration still leave together, and an idle loop needs no extra timer wake-up);
        within ``flush_delay`` of the last send, one timer gathers the PDUs until then.
        While the link is busy nothing is needed: it looks at the spool before it sleeps."""
        if self._kick_handle is not None:
            return
        w = self._waiter
        if w is None or w.done():
            return
        loop = w.get_loop()
        wait = self.last_flush + self.x.flush_delay - loop.time()
        if wait <= 0:
            self._kick_handle = loop.call_soon(self._kicked)
        else:
            self._kick_handle = loop.call_later(wait, self._kicked)

    def _kicked(self) -> None:
        self._kick_handle = None
        self.wake()

    async def _sleep(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        w: asyncio.Future[None] = loop.create_future()
        self._waiter = w
        timer = loop.call_later(timeout, self.wake)
        try:
            await w
        finally:
            timer.cancel()
            self._waiter = None

    async def _run(self) -> None:
        backoff = self.x.backoff_initial
        while not self.closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self.dest.host,
                        self.dest.port,
                        ssl=self.dest.tls,
                        server_hostname=(
                            (self.dest.server_hostname or self.dest.host) if self.dest.tls else None
                        ),
                    ),
                    self.x.connect_timeout,
                )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                self.status.connect_failures += 1
                self.status.last_error = f"connect: {exc!r}"
                if (
                    self.status.connect_failures in (1, 10, 100)
                    or self.status.connect_failures % 1000 == 0
                ):
                    log.warning(
                        "x2x3 destination unreachable",
                        did=str(self.dest.did),
                        error=repr(exc),
                        failures=self.status.connect_failures,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.x.backoff_max)
                continue
            backoff = self.x.backoff_initial
            self.status.connects += 1
            self.status.connected = True
            log.info("x2x3 destination connected", did=str(self.dest.did), host=self.dest.host)
            try:
                await self._session(reader, writer)
            except (_LinkDown, OSError, ConnectionError, X2X3DecodeError, ssl.SSLError) as exc:
                self.status.last_error = repr(exc)
                log.warning("x2x3 link down", did=str(self.dest.did), error=repr(exc))
            finally:
                self.status.connected = False
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _next_ka(self) -> int:
        self._ka_seq = (self._ka_seq + 1) & 0xFFFFFFFF
        return self._ka_seq

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending: deque[tuple[int, int, float]] = deque()  # (keepalive seq, offset, sent at)
        # loop time of the last Keepalive-Ack: a LEMF that acknowledges is alive, however far
        # behind it is (its Acks follow its progress through the data sent before them)
        last_ack = [0.0]
        send_pos = self.spool.acked
        checkpointed = send_pos  # offset the last Keepalive sent covers
        loop = asyncio.get_running_loop()
        x = self.x

        def send_keepalive(now: float) -> None:
            nonlocal checkpointed
            seq = self._next_ka()
            writer.write(keepalive_bytes(seq))
            pending.append((seq, send_pos, now))
            checkpointed = send_pos
            self.status.keepalives_sent += 1

        async def read_acks() -> None:
            framer = PduFramer()
            while True:
                data = await reader.read(65536)
                if not data:
                    raise _LinkDown("peer closed the connection")
                acked = False
                for pdu in framer.feed(data):
                    if pdu.pdu_type is PduType.KEEPALIVE_ACK:
                        seq = pdu.sequence_number
                        while pending and seq is not None:
                            kseq, pos, _ = pending.popleft()
                            self.spool.ack(pos)
                            if kseq == seq:
                                break
                        self.status.keepalive_acks += 1
                        acked = True
                    elif pdu.pdu_type is PduType.KEEPALIVE:
                        writer.write(encode_pdu(keepalive_ack(pdu.sequence_number or 0)))
                if acked:
                    last_ack[0] = loop.time()
                    self.status.pending_bytes = self.spool.pending_bytes
                    self.status.delivered_bytes = self.spool.acked
                    self.lag()
                    self.acked_event.set()
                    self.wake()  # the window may have room again

        async def drain() -> None:
            # A peer that stops reading fills the TCP window: give up when our buffer has not
            # shrunk for the keepalive timeout instead of blocking forever (the data stays in
            # the spool); a peer that reads slowly is waited for.
            size = writer.transport.get_write_buffer_size()
            while size > 0:
                try:
                    await asyncio.wait_for(writer.drain(), x.keepalive_timeout)
                    return
                except TimeoutError as exc:
                    left = writer.transport.get_write_buffer_size()
                    if left >= size:
                        raise _LinkDown("peer stopped reading (send timed out)") from exc
                    size = left

        reader_task = loop.create_task(read_acks())
        reader_task.add_done_callback(lambda _: self.wake())
        try:
            last_send = last_checkpoint = loop.time()
            while not self.closing:
                if reader_task.done():
                    reader_task.result()
                    raise _LinkDown("reader stopped")
                now = loop.time()
                if pending and now - max(pending[0][2], last_ack[0]) > x.keepalive_timeout:
                    # no Ack at all for keepalive_timeout while one is owed: a LEMF that is
                    # behind but working sends Acks as it catches up (li.lemf.receiver)
                    raise _LinkDown("keepalive acknowledgement timed out")
                # everything spooled, up to the window, in chunk-sized writes
                wrote = False
                while send_pos < self.spool.end and send_pos - self.spool.acked < x.window_bytes:
                    data = self.spool.read(send_pos, x.chunk_bytes)
                    writer.write(data)
                    send_pos += len(data)
                    wrote = True
                    if send_pos - checkpointed >= x.checkpoint_bytes:
                        send_keepalive(now)
                        last_checkpoint = now
                if wrote:
                    last_send = self.last_flush = now
                if send_pos > checkpointed and (
                    self.checkpoint_now
                    or now - last_checkpoint >= x.checkpoint_interval
                    or send_pos - self.spool.acked >= x.window_bytes  # window full: confirm
                ):
                    send_keepalive(now)
                    last_checkpoint = last_send = now
                    self.checkpoint_now = False
                    wrote = True
                elif send_pos == checkpointed:
                    self.checkpoint_now = False
                if not wrote and now - last_send >= x.keepalive_interval:
                    send_keepalive(now)  # idle: liveness check of the peer
                    last_send = now
                    wrote = True
                if wrote:
                    await drain()
                    continue
                timeout = max(0.0, x.keepalive_interval - (now - last_send))
                if send_pos > checkpointed:
                    timeout = min(
                        timeout, max(0.0, x.checkpoint_interval - (now - last_checkpoint))
                    )
                if pending:
                    owed = max(pending[0][2], last_ack[0])
                    timeout = min(timeout, max(0.0, owed + x.keepalive_timeout - now))
                if send_pos < self.spool.end:  # waiting for window room: re-check soon anyway
                    timeout = min(timeout, x.checkpoint_interval)
                await self._sleep(timeout + 0.0001)
        finally:
            if not reader_task.done():
                reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader_task  # also retrieves its exception when it ended on its own


class X2X3Exporter:
    """Export X2/X3 PDUs of many tasks to their destinations (see module docstring).

    ``spool_dir`` holds one sub-directory per DID plus ``sequence.json`` (the per-task
    sequence counters, so a restarted exporter continues the numbering).
    """

    def __init__(
        self,
        spool_dir: str | Path,
        *,
        nf_id: str | None = None,
        ipid: str | None = None,
        keepalive_interval: float = 5.0,
        keepalive_timeout: float = 15.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        spool_max_bytes: int = 256 << 20,
        chunk_bytes: int = 64 << 10,
        window_bytes: int = 4 << 20,
        checkpoint_bytes: int = 64 << 10,
        checkpoint_interval: float = 0.25,
        flush_delay: float = 0.002,
        on_alarm: Callable[[ExporterAlarm], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.spool_dir, 0o700)
        self.nf_id = nf_id
        self.ipid = ipid
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.spool_max_bytes = spool_max_bytes
        self.chunk_bytes = chunk_bytes
        self.window_bytes = window_bytes
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoint_interval = checkpoint_interval
        self.flush_delay = flush_delay
        self.on_alarm = on_alarm
        self.clock = clock
        self._links: dict[uuid.UUID, _Link] = {}
        self._tasks: dict[uuid.UUID, tuple[tuple[uuid.UUID, ...], str]] = {}
        # per-task sequence counters: the last number used, in a one-element list that the
        # cached streams of the task share (no dict look-up per PDU)
        self._seq: dict[uuid.UUID, list[int]] = {}
        self._seq_file = self.spool_dir / "sequence.json"
        if self._seq_file.exists():
            raw = json.loads(self._seq_file.read_text())
            self._seq = {uuid.UUID(k): [int(v)] for k, v in raw.items()}
        self._started = False
        # hot-path caches (bounded: cleared when full)
        self._nfid_tlv = encode_attributes([network_function_id(nf_id)]) if nf_id else b""
        self._ipid_tlv = encode_attributes([interception_point_id(ipid)]) if ipid else b""
        self._streams: dict[tuple[int, int, PduType, int, int, int], _Stream] = {}
        self._attr_cache: dict[int, _EncodedAttributes] = {}

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        for link in self._links.values():
            if link.task is None:
                link.start()

    async def close(self) -> None:
        for link in list(self._links.values()):
            await link.stop()
        self._save_seq()
        self._started = False

    async def __aenter__(self) -> X2X3Exporter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- configuration (X1 drives these) -------------------------------------------------
    def add_destination(self, dest: DeliveryDestination) -> None:
        """Add a destination (ValueError if the DID exists); its spool survives restarts."""
        old = self._links.get(dest.did)
        if old is not None:
            raise ValueError(f"destination {dest.did} exists; remove it first")
        spool = Spool(self.spool_dir / str(dest.did), max_bytes=self.spool_max_bytes)
        link = _Link(self, dest, spool)
        self._links[dest.did] = link
        self._streams.clear()
        if self._started:
            link.start()

    async def remove_destination(self, did: uuid.UUID) -> None:
        link = self._links.pop(did, None)
        self._streams.clear()
        if link is not None:
            await link.stop()

    def destinations(self) -> list[DeliveryDestination]:
        return [link.dest for link in self._links.values()]

    def bind_task(
        self, xid: uuid.UUID, dids: Iterable[uuid.UUID], delivery: str = "X2andX3"
    ) -> None:
        """Route the task ``xid`` to ``dids`` (ActivateTask/ModifyTask listOfDIDs); with the
        task's deliveryType, X2 of an X3Only task (and X3 of an X2Only one) is not sent."""
        self._tasks[xid] = (tuple(dids), delivery)
        self._streams.clear()

    def unbind_task(self, xid: uuid.UUID) -> None:
        self._tasks.pop(xid, None)
        self._streams.clear()

    def status(self, did: uuid.UUID) -> DestinationStatus:
        link = self._links[did]
        link.status.pending_bytes = link.spool.pending_bytes
        link.lag()
        return link.status

    # -- sending ---------------------------------------------------------------------------
    def next_sequence(self, xid: uuid.UUID) -> int:
        counter = self._counter(xid)
        counter[0] = seq = counter[0] + 1 & 0xFFFFFFFF
        return seq

    def _counter(self, xid: uuid.UUID) -> list[int]:
        counter = self._seq.get(xid)
        if counter is None:
            counter = self._seq[xid] = [-1]
        return counter

    def _save_seq(self) -> None:
        tmp = self._seq_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # created 0600 whatever the umask; an old 0644 file is replaced
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({str(k): v[0] for k, v in self._seq.items() if v[0] >= 0}))
        os.replace(tmp, self._seq_file)

    def send_pdu(self, pdu: Pdu, dids: Iterable[uuid.UUID] | None = None) -> int:
        """Stamp ``pdu`` (sequence, timestamp, NFID/IPID unless present) and spool it for
        each destination; return its sequence number (-1 when the delivery types of the
        task and its destinations exclude this PDU type: nothing is sent). Raises
        :class:`SpoolFullError` (and alarms) when a destination's spool is full: then no
        destination gets the PDU."""
        return self._send(
            pdu.version,
            pdu.pdu_type,
            pdu.payload_format,
            pdu.payload_direction,
            pdu.xid,
            pdu.correlation_id,
            pdu.attributes,
            pdu.payload,
            dids,
        )

    def _encoded_attributes(self, attrs: tuple[Attribute, ...]) -> _EncodedAttributes:
        """The TLV bytes of ``attrs`` and which stamps they already carry, cached by identity
        (POIs pass the same per-flow tuple for every packet; the entry holds the tuple, so
        its id cannot be reused while cached)."""
        hit = self._attr_cache.get(id(attrs))
        if hit is not None and hit.attrs is attrs:
            return hit
        has_seq = has_ts = has_nf = has_ip = False
        for a in attrs:
            if isinstance(a, SequenceNumber):
                has_seq = True
            elif isinstance(a, Timestamp):
                has_ts = True
            elif isinstance(a, OpaqueAttribute):
                has_nf = has_nf or a.type == AttributeType.NETWORK_FUNCTION_ID
                has_ip = has_ip or a.type == AttributeType.INTERCEPTION_POINT_ID
        enc = _EncodedAttributes(
            attrs=attrs,
            data=encode_attributes(attrs),
            stamp_prefix=(b"" if has_nf else self._nfid_tlv) + (b"" if has_ip else self._ipid_tlv),
            sequence=next((a.value for a in attrs if isinstance(a, SequenceNumber)), None)
            if has_seq
            else None,
            has_timestamp=has_ts,
        )
        if len(self._attr_cache) >= _CACHE_MAX:
            self._attr_cache.clear()
        self._attr_cache[id(attrs)] = enc
        return enc

    def _stream(
        self,
        key: tuple[int, int, PduType, int, int, int],
        xid: uuid.UUID,
        correlation_id: int,
        pdu_type: PduType,
        payload_format: int,
        payload_direction: int,
        version: int,
        dids: Iterable[uuid.UUID] | None,
    ) -> _Stream:
        """Route and header template of one PDU stream (cached unless ``dids`` is given; the
        cache is dropped whenever a task or a destination changes)."""
        bound = self._tasks.get(xid)
        targets = tuple(dids) if dids is not None else (bound[0] if bound else ())
        if not targets:
            raise ValueError(f"no destination for task {xid}")
        missing = [d for d in targets if d not in self._links]
        if missing:
            raise ValueError(f"task {xid}: unknown destination(s) {missing}")
        links = [self._links[d] for d in targets]
        task_carries = bound is None or dids is not None or _carries(bound[1], pdu_type)
        kept = tuple(lk for lk in links if task_carries and lk.dest.carries(pdu_type))
        prefix, tail = header_template(
            version, pdu_type, payload_format, payload_direction, xid, correlation_id
        )
        stream = _Stream(
            links=kept,
            filtered=tuple(lk for lk in links if lk not in kept),
            prefix=prefix,
            tail=tail,
            xid=xid,
            counter=self._counter(xid),
        )
        if dids is None:
            if len(self._streams) >= _CACHE_MAX:
                self._streams.clear()
            self._streams[key] = stream
        return stream

    def _send(
        self,
        version: int,
        pdu_type: PduType,
        payload_format: PayloadFormat | int,
        payload_direction: PayloadDirection | int,
        xid: uuid.UUID,
        correlation_id: int,
        attributes: tuple[Attribute, ...],
        payload: bytes,
        dids: Iterable[uuid.UUID] | None,
    ) -> int:
        # keyed by the XID object's id: the cached stream holds that object, so the id cannot
        # be reused while cached (an equal UUID object just gets its own entry)
        key = (id(xid), correlation_id, pdu_type, payload_format, payload_direction, version)
        stream = self._streams.get(key) if dids is None else None
        if stream is None:
            stream = self._stream(
                key, xid, correlation_id, pdu_type, payload_format, payload_direction, version, dids
            )
        for lk in stream.filtered:
            lk.status.filtered_pdus += 1
        links = stream.links
        if not links:
            return -1
        raw, seq = self._encode(stream, attributes, payload)
        self._spool(links, raw, 1)
        return seq

    def _encode(
        self, stream: _Stream, attributes: tuple[Attribute, ...], payload: bytes
    ) -> tuple[bytes, int]:
        """One PDU of ``stream``: stamps (sequence, timestamp, NFID/IPID), header, bytes."""
        enc = self._attr_cache.get(id(attributes))
        if enc is None or enc.attrs is not attributes:
            enc = self._encoded_attributes(attributes)
        seq = enc.sequence
        if seq is None:
            counter = stream.counter
            counter[0] = seq = counter[0] + 1 & 0xFFFFFFFF
            if enc.has_timestamp:
                stamp = enc.stamp_prefix + sequence_tlv(seq)
            else:
                ns = int(round(self.clock() * 1_000_000_000))
                stamp = enc.stamp_prefix + _SEQ_TS_TLVS.pack(
                    AttributeType.SEQUENCE_NUMBER,
                    4,
                    seq,
                    AttributeType.TIMESTAMP,
                    8,
                    ns // 1_000_000_000,
                    ns % 1_000_000_000,
                )
        elif enc.has_timestamp:
            stamp = enc.stamp_prefix
        else:
            stamp = enc.stamp_prefix + timestamp_tlv(self.clock())
        attrs = stamp + enc.data
        raw = b"".join(
            (
                stream.prefix,
                _LENGTH_FIELDS.pack(HEADER_LENGTH + len(attrs), len(payload)),
                stream.tail,
                attrs,
                payload,
            )
        )
        return raw, seq

    def _spool(self, links: tuple[_Link, ...], raw: bytes, pdus: int) -> None:
        """Append ``raw`` (``pdus`` whole PDUs) to each link's spool, or to none: raises
        :class:`SpoolFullError` (and alarms) when one of them has no room."""
        n = len(raw)
        for link in links:
            if link.spool.pending_bytes + n > link.spool.max_bytes:
                try:
                    link.spool.check_room(n)
                except SpoolFullError as exc:
                    link.status.refused_pdus += pdus
                    if not link.status.spool_full:
                        link.status.spool_full = True
                        self._alarm(
                            ExporterAlarm(kind="spool-full", did=link.dest.did, detail=str(exc))
                        )
                    raise
        for link in links:
            link.spool.append(raw)
            link.status.pdus_spooled += pdus
            link.spooled(n)
            if link.status.spool_full:
                link.status.spool_full = False
                self._alarm(ExporterAlarm(kind="spool-ok", did=link.dest.did, detail="room again"))
            link.kick()

    def send_x3_many(
        self,
        items: Iterable[tuple[uuid.UUID, int, int, bytes, tuple[Attribute, ...]]],
        *,
        payload_format: PayloadFormat | int = PayloadFormat.RTP_PACKET,
    ) -> int:
        """Send many X3 PDUs: ``(xid, correlation_id, direction, payload, attributes)`` each,
        in order. The same PDUs as one :meth:`send_x3` per item, stamped and encoded alike,
        but appended to each destination's spool in one write and with one wake-up of its
        link (a CC-POI gathers the packets of one event-loop iteration, li.poi.export).

        All or nothing per set of destinations (a task's DIDs): when a spool has no room for
        that set's batch, :class:`SpoolFullError` is raised (and alarmed) and none of the
        batch is spooled; its
        sequence numbers stay used, so the LEMF reports the loss as a gap. Returns how many
        PDUs were spooled (PDUs the delivery types exclude are counted as filtered)."""
        batches: dict[tuple[_Link, ...], list[bytes]] = {}
        streams = self._streams
        fmt = payload_format
        for xid, correlation_id, direction, payload, attributes in items:
            key = (id(xid), correlation_id, PduType.X3, fmt, direction, VERSION)
            stream = streams.get(key)
            if stream is None:
                stream = self._stream(
                    key, xid, correlation_id, PduType.X3, fmt, direction, VERSION, None
                )
            for lk in stream.filtered:
                lk.status.filtered_pdus += 1
            if not stream.links:
                continue
            raw, _ = self._encode(stream, attributes, payload)
            batch = batches.get(stream.links)
            if batch is None:
                batch = batches[stream.links] = []
            batch.append(raw)
        sent = 0
        for links, raws in batches.items():
            self._spool(links, b"".join(raws), len(raws))
            sent += len(raws)
        return sent

    def _alarm(self, alarm: ExporterAlarm) -> None:
        if alarm.kind == "spool-full":
            log.error("x2x3 spool full: PDUs refused", did=str(alarm.did), detail=alarm.detail)
        else:
            log.warning("x2x3 spool accepting again", did=str(alarm.did))
        if self.on_alarm is not None:
            self.on_alarm(alarm)

    def send_x2(
        self,
        *,
        xid: uuid.UUID,
        correlation_id: int,
        payload: bytes,
        direction: PayloadDirection | int,
        payload_format: PayloadFormat | int = PayloadFormat.SIP_MESSAGE,
        attributes: tuple[Attribute, ...] = (),
        dids: Iterable[uuid.UUID] | None = None,
    ) -> int:
        """Send an X2 (xIRI) PDU; by default the payload is a SIP message."""
        return self._send(
            VERSION,
            PduType.X2,
            payload_format,
            direction,
            xid,
            correlation_id,
            attributes,
            payload,
            dids,
        )

    def send_x3(
        self,
        *,
        xid: uuid.UUID,
        correlation_id: int,
        payload: bytes,
        direction: PayloadDirection | int,
        payload_format: PayloadFormat | int = PayloadFormat.RTP_PACKET,
        attributes: tuple[Attribute, ...] = (),
        dids: Iterable[uuid.UUID] | None = None,
    ) -> int:
        """Send an X3 (xCC) PDU; by default the payload is one RTP/SRTP packet."""
        return self._send(
            VERSION,
            PduType.X3,
            payload_format,
            direction,
            xid,
            correlation_id,
            attributes,
            payload,
            dids,
        )

    def send_key_record(
        self,
        *,
        xid: uuid.UUID,
        correlation_id: int,
        record: KeyRecord,
        dids: Iterable[uuid.UUID] | None = None,
    ) -> int:
        """Send an imslab key record (X2, format 4; docs/li-extensions.md)."""
        return self.send_pdu(key_record_pdu(xid, correlation_id, record), dids)

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every destination confirmed everything spooled; False on timeout."""
        self._save_seq()

        async def all_acked() -> None:
            while True:
                waiting = [lk for lk in self._links.values() if lk.spool.pending_bytes]
                if not waiting:
                    return
                for lk in waiting:
                    lk.acked_event.clear()
                    lk.checkpoint_now = True  # confirm what was sent without waiting
                    lk.wake()
                waiters = [asyncio.ensure_future(lk.acked_event.wait()) for lk in waiting]
                await asyncio.wait(waiters, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()

        try:
            await asyncio.wait_for(all_acked(), timeout)
        except TimeoutError:
            return False
        return True
