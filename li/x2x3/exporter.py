"""The X2/X3 exporter (POI side, TS 103 221-2): delivery to one or more destinations.

One :class:`X2X3Exporter` serves every task of a network element. ``send_x2``/``send_x3`` are
plain synchronous calls (POIs call them from hook callbacks): they stamp the PDU with the
task's next sequence number (u32 per XID, so the LEMF sees gaps), a timestamp and the NF/IP
identifiers, and append it to the on-disk spool of each destination of the task. A
:class:`_Link` per destination (an asyncio task) connects over TCP or TLS with mutual
certificates, reconnects with exponential backoff, sends the spool in order, and inserts a
Keepalive after each chunk; the Keepalive-Ack is the delivery checkpoint that lets the spool
drop data (see :mod:`li.x2x3.spool`). Idle links send Keepalives every ``keepalive_interval``
and give up on a peer whose Ack is later than ``keepalive_timeout``. Keepalives from the peer
are answered. A full spool raises :class:`SpoolFullError` to the caller and an
:class:`ExporterAlarm` to ``on_alarm`` (and the log): never silent loss.

Plain TCP mode (``tls=None``) exists because tshark cannot decode X2/X3 inside TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
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
    Attribute,
    PayloadDirection,
    PayloadFormat,
    Pdu,
    PduType,
    SequenceNumber,
    Timestamp,
    X2X3DecodeError,
    encode_pdu,
    interception_point_id,
    keepalive,
    keepalive_ack,
    network_function_id,
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


class _LinkDown(Exception):
    pass


class _Link:
    """Delivery to one destination: connect, send spool, checkpoint with keepalives."""

    def __init__(self, exporter: X2X3Exporter, dest: DeliveryDestination, spool: Spool) -> None:
        self.x = exporter
        self.dest = dest
        self.spool = spool
        self.status = DestinationStatus(did=dest.did)
        self.status.pending_bytes = spool.pending_bytes
        self.wake = asyncio.Event()
        self.acked_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self._ka_seq = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"x2x3-link-{self.dest.did}"
        )

    async def stop(self) -> None:
        self.closing = True
        self.wake.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.spool.close()

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
        send_pos = self.spool.acked
        loop = asyncio.get_running_loop()

        def send_keepalive(now: float) -> None:
            seq = self._next_ka()
            writer.write(encode_pdu(keepalive(seq)))
            pending.append((seq, send_pos, now))
            self.status.keepalives_sent += 1

        async def read_acks() -> None:
            framer = PduFramer()
            while True:
                data = await reader.read(65536)
                if not data:
                    raise _LinkDown("peer closed the connection")
                for pdu in framer.feed(data):
                    if pdu.pdu_type is PduType.KEEPALIVE_ACK:
                        seq = pdu.sequence_number
                        while pending and seq is not None:
                            kseq, pos, _ = pending.popleft()
                            self.spool.ack(pos)
                            if kseq == seq:
                                break
                        self.status.keepalive_acks += 1
                        self.status.pending_bytes = self.spool.pending_bytes
                        self.status.delivered_bytes = self.spool.acked
                        self.acked_event.set()
                        self.wake.set()
                    elif pdu.pdu_type is PduType.KEEPALIVE:
                        writer.write(encode_pdu(keepalive_ack(pdu.sequence_number or 0)))

        async def drain() -> None:
            # A peer that stops reading fills the TCP window: give up after the keepalive
            # timeout instead of blocking forever (the data stays in the spool).
            try:
                await asyncio.wait_for(writer.drain(), self.x.keepalive_timeout)
            except TimeoutError as exc:
                raise _LinkDown("peer stopped reading (send timed out)") from exc

        reader_task = loop.create_task(read_acks())
        try:
            last_send = loop.time()
            while not self.closing:
                if reader_task.done():
                    reader_task.result()
                    raise _LinkDown("reader stopped")
                now = loop.time()
                if pending and now - pending[0][2] > self.x.keepalive_timeout:
                    raise _LinkDown("keepalive acknowledgement timed out")
                in_flight = send_pos - self.spool.acked
                if send_pos < self.spool.end and in_flight < self.x.window_bytes:
                    data = self.spool.read(send_pos, self.x.chunk_bytes)
                    writer.write(data)
                    send_pos += len(data)
                    send_keepalive(now)
                    last_send = now
                    await drain()
                    continue
                if now - last_send >= self.x.keepalive_interval:
                    send_keepalive(now)
                    last_send = now
                    await drain()
                self.wake.clear()
                timeout = max(0.0, self.x.keepalive_interval - (loop.time() - last_send))
                if pending:
                    timeout = min(timeout, self.x.keepalive_timeout)
                waiter = loop.create_task(self.wake.wait())
                done, _ = await asyncio.wait(
                    {waiter, reader_task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if waiter not in done:
                    waiter.cancel()
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
        self.on_alarm = on_alarm
        self.clock = clock
        self._links: dict[uuid.UUID, _Link] = {}
        self._tasks: dict[uuid.UUID, tuple[tuple[uuid.UUID, ...], str]] = {}
        self._seq: dict[uuid.UUID, int] = {}
        self._seq_file = self.spool_dir / "sequence.json"
        if self._seq_file.exists():
            raw = json.loads(self._seq_file.read_text())
            self._seq = {uuid.UUID(k): int(v) for k, v in raw.items()}
        self._started = False

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
        if self._started:
            link.start()

    async def remove_destination(self, did: uuid.UUID) -> None:
        link = self._links.pop(did, None)
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

    def unbind_task(self, xid: uuid.UUID) -> None:
        self._tasks.pop(xid, None)

    def status(self, did: uuid.UUID) -> DestinationStatus:
        link = self._links[did]
        link.status.pending_bytes = link.spool.pending_bytes
        return link.status

    # -- sending ---------------------------------------------------------------------------
    def next_sequence(self, xid: uuid.UUID) -> int:
        seq = self._seq.get(xid, -1) + 1 & 0xFFFFFFFF
        self._seq[xid] = seq
        return seq

    def _save_seq(self) -> None:
        tmp = self._seq_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(k): v for k, v in self._seq.items()}))
        os.replace(tmp, self._seq_file)

    def send_pdu(self, pdu: Pdu, dids: Iterable[uuid.UUID] | None = None) -> int:
        """Stamp ``pdu`` (sequence, timestamp, NFID/IPID unless present) and spool it for
        each destination; return its sequence number (-1 when the delivery types of the
        task and its destinations exclude this PDU type: nothing is sent). Raises
        :class:`SpoolFullError` (and alarms) when a destination's spool is full: then no
        destination gets the PDU."""
        bound = self._tasks.get(pdu.xid)
        targets = tuple(dids) if dids is not None else (bound[0] if bound else ())
        if not targets:
            raise ValueError(f"no destination for task {pdu.xid}")
        missing = [d for d in targets if d not in self._links]
        if missing:
            raise ValueError(f"task {pdu.xid}: unknown destination(s) {missing}")
        links = [self._links[d] for d in targets]
        task_carries = bound is None or dids is not None or _carries(bound[1], pdu.pdu_type)
        kept = [lk for lk in links if task_carries and lk.dest.carries(pdu.pdu_type)]
        for lk in links:
            if lk not in kept:
                lk.status.filtered_pdus += 1
        links = kept
        if not links:
            return -1
        extra: list[Attribute] = []
        if self.nf_id is not None and pdu.opaque(6) is None:
            extra.append(network_function_id(self.nf_id))
        if self.ipid is not None and pdu.opaque(7) is None:
            extra.append(interception_point_id(self.ipid))
        seq = pdu.sequence_number
        if seq is None:
            seq = self.next_sequence(pdu.xid)
            extra.append(SequenceNumber(value=seq))
        if pdu.find(Timestamp) is None:
            extra.append(Timestamp.from_float(self.clock()))
        raw = encode_pdu(pdu.with_attributes(*extra, first=True) if extra else pdu)
        for link in links:
            try:
                link.spool.check_room(len(raw))
            except SpoolFullError as exc:
                link.status.refused_pdus += 1
                if not link.status.spool_full:
                    link.status.spool_full = True
                    self._alarm(
                        ExporterAlarm(kind="spool-full", did=link.dest.did, detail=str(exc))
                    )
                raise
        for link in links:
            link.spool.append(raw)
            link.status.pdus_spooled += 1
            if link.status.spool_full:
                link.status.spool_full = False
                self._alarm(ExporterAlarm(kind="spool-ok", did=link.dest.did, detail="room again"))
            link.wake.set()
        return seq

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
        return self.send_pdu(
            Pdu(
                pdu_type=PduType.X2,
                payload_format=payload_format,
                payload_direction=direction,
                xid=xid,
                correlation_id=correlation_id,
                attributes=attributes,
                payload=payload,
            ),
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
        return self.send_pdu(
            Pdu(
                pdu_type=PduType.X3,
                payload_format=payload_format,
                payload_direction=direction,
                xid=xid,
                correlation_id=correlation_id,
                attributes=attributes,
                payload=payload,
            ),
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
                    lk.wake.set()
                waiters = [asyncio.ensure_future(lk.acked_event.wait()) for lk in waiting]
                await asyncio.wait(waiters, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()

        try:
            await asyncio.wait_for(all_acked(), timeout)
        except TimeoutError:
            return False
        return True
