"""The LEMF's X2/X3 receiver: a mutual-TLS server for many POIs (plain TCP only on request).

Each connection gets a :class:`~li.x2x3.framing.PduFramer`; X2/X3 PDUs go to the
:class:`~li.lemf.mediation.Mediation` together with the connection's authenticated identity
(the POI certificate's CN, TS 103 221-2 clause 5: TLS with mutual authentication); a
Keepalive is answered with a Keepalive-Ack echoing its sequence number (clause 5.3)
**after** the mediation has flushed its files and duplicate filter: an Ack therefore confirms
that everything before the Keepalive is on disk, which is what the exporter's spool relies on.
Checkpoints are coalesced: the Keepalives of one read -- and those arriving within
``checkpoint_interval`` of the last checkpoint -- share one, so a busy LEMF with many calls
does not flush every call's files per 64 KB of input. A held Keepalive is answered within
``checkpoint_interval`` even when nothing more arrives.

How far behind the POIs the LEMF is shows in ``OUT/lemf-status.json`` (:meth:`LemfServer.status`,
rewritten every ``idle_interval``): ``lag_s``, the age of the newest PDU at the last
checkpoint (its POI timestamp against this clock), and ``max_lag_s``. A LEMF that cannot keep
up reads more slowly, TCP and the exporter's window stop the exporter, and the rest waits in
the exporter's spool (li.x2x3.exporter): nothing is lost, and both sides report the lag.

A PDU the mediation refuses (an NFID the POI's certificate does not entitle it to, or beyond
the task/call limits) closes the connection *before* any later Keepalive is acknowledged: the
LEMF never acknowledges a PDU it did not store. A malformed stream closes that connection only.

Plain TCP (``plain_tcp=True``) exists because tshark cannot decode X2/X3 inside TLS; it is
off unless asked for, and then the sender is only ``tcp:<address>`` (docs/security.md).

Limits (issue 11): ``max_connections`` in all and ``max_connections_per_source`` per peer
address (the excess is closed at once), a ``read_timeout`` after which an idle or stalled
connection -- and any partial PDU it holds -- is dropped, ``max_pdu_size`` per PDU, and a
TLS handshake timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from ims.log import get_logger
from ims.store import Store
from li.lemf.call import DecryptorFactory, KeyPolicy, default_decryptor
from li.lemf.mediation import Mediation, PduRefused
from li.lemf.output import write_json_private
from li.x1.tlsutil import peer_identity
from li.x2x3.framing import DEFAULT_MAX_PDU_SIZE, PduFramer
from li.x2x3.pdu import PduType, X2X3DecodeError, encode_pdu, keepalive_ack

log = get_logger("li.lemf.receiver")


class LemfServer:
    """Receive X2/X3 on ``host:port`` (``port=0``: any free port, see :attr:`port`)."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: ssl.SSLContext | None = None,
        key_policy: KeyPolicy | None = None,
        task_key_policies: dict[str, KeyPolicy] | None = None,
        decryptor_factory: DecryptorFactory = default_decryptor,
        max_pdu_size: int = DEFAULT_MAX_PDU_SIZE,
        clock: Callable[[], float] = time.time,
        liids: dict[str, str] | None = None,
        plain_tcp: bool = False,
        poi_identities: Mapping[str, Collection[str]] | None = None,
        max_connections: int = 256,
        max_connections_per_source: int = 32,
        read_timeout: float = 30.0,
        handshake_timeout: float = 10.0,
        max_streams: int = 4096,
        max_xids: int = 10_000,
        idle_interval: float = 1.0,
        checkpoint_interval: float = 0.05,
        delivery_store: Store | None = None,
    ) -> None:
        if ssl is None and not plain_tcp:
            raise ValueError(
                "the LEMF takes X2/X3 over mutual TLS: give an ssl context, or plain TCP "
                "explicitly (plain_tcp=True: anyone who reaches the port can send)"
            )
        self.plain_tcp = ssl is None
        self.poi_identities = poi_identities
        self.max_connections = max_connections
        self.max_connections_per_source = max_connections_per_source
        self.read_timeout = read_timeout
        self.handshake_timeout = handshake_timeout
        self.max_streams = max_streams
        self.max_xids = max_xids
        self.idle_interval = idle_interval
        # Keepalives are acknowledged after a checkpoint (every call's files flushed), at
        # most one per checkpoint_interval: with many calls a checkpoint costs milliseconds,
        # and an exporter sends a Keepalive per 64 KB; the held ones wait at most that long
        self.checkpoint_interval = checkpoint_interval
        self._next_checkpoint = 0.0
        self.checkpoints = 0
        self.delivery_store = delivery_store  # the lab's shared store, else a file in out_dir
        self._per_source: dict[str, int] = {}
        self._framers: set[PduFramer] = set()
        self._idle_task: asyncio.Task[None] | None = None
        self.refused_connections = 0
        self.refused_pdus = 0
        self.timeouts = 0
        self.out_dir = Path(out_dir)
        self._liids = liids  # XID -> LIID (HI2)
        self.host = host
        self._port = port
        self.ssl = ssl
        self.max_pdu_size = max_pdu_size
        self._key_policy = key_policy
        self._task_key_policies = task_key_policies
        self._decryptor_factory = decryptor_factory
        self._clock = clock
        self.mediation: Mediation | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.keepalives = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def active_connections(self) -> int:
        return len(self._conns)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of partial PDUs held for all connections now."""
        return sum(f.buffered for f in self._framers)

    async def start(self) -> None:
        # the mediation first: it repairs what a crash left (WAV headers) before any input
        self.mediation = Mediation(
            self.out_dir,
            lemf_addr=(self.host, self._port),
            key_policy=self._key_policy,
            task_key_policies=self._task_key_policies,
            decryptor_factory=self._decryptor_factory,
            clock=self._clock,
            liids=self._liids,
            poi_identities=self.poi_identities,
            max_streams=self.max_streams,
            max_xids=self.max_xids,
            delivery_store=self.delivery_store,
        )
        self._server = await asyncio.start_server(
            self._on_conn,
            self.host,
            self._port,
            ssl=self.ssl,
            reuse_address=True,
            ssl_handshake_timeout=self.handshake_timeout if self.ssl is not None else None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self.mediation.lemf_addr = (self.host, self._port)
        self._idle_task = asyncio.get_running_loop().create_task(self._idle())
        log.info("lemf listening", host=self.host, port=self._port, tls=self.ssl is not None)

    def flush(self) -> None:
        """Flush every call's files and rewrite every summary.json now (``Mediation.flush``).
        Call it once the POIs' exporters have drained (every PDU acknowledged): the output
        directory then holds everything delivered, and a call whose end was seen says
        ``"complete": true``."""
        if self.mediation is not None:
            self.mediation.flush()

    def _checkpoint_due(self) -> bool:
        return asyncio.get_running_loop().time() >= self._next_checkpoint

    def _checkpoint(self) -> None:
        """Flush everything stored (``Mediation.checkpoint``); Keepalive-Acks may follow."""
        assert self.mediation is not None
        self.mediation.checkpoint()
        self.checkpoints += 1
        self._next_checkpoint = asyncio.get_running_loop().time() + self.checkpoint_interval

    def status(self) -> dict[str, object]:
        """The LEMF's own summary (``OUT/lemf-status.json``, rewritten every
        ``idle_interval``): connections, PDUs, calls, duplicates, gaps, and the lag behind
        the POIs (``lag_s`` at the last checkpoint, ``max_lag_s`` since start)."""
        m = self.mediation
        stats = dataclasses.asdict(m.stats) if m is not None else {}
        return {
            "listening": f"{self.host}:{self._port}",
            "tls": self.ssl is not None,
            "connections": self.connections,
            "active_connections": self.active_connections,
            "refused_connections": self.refused_connections,
            "refused_pdus": self.refused_pdus,
            "timeouts": self.timeouts,
            "keepalives": self.keepalives,
            "checkpoints": self.checkpoints,
            "buffered_bytes": self.buffered_bytes,
            **stats,
        }

    def write_status(self) -> None:
        write_json_private(self.out_dir / "lemf-status.json", self.status())

    async def _idle(self) -> None:
        """Once per ``idle_interval``: WAV headers of calls whose audio paused are brought up
        to date, so a player sees every frame on disk even when no checkpoint comes."""
        while True:
            await asyncio.sleep(self.idle_interval)
            if self.mediation is not None:
                self.mediation.idle()
                self.write_status()

    async def close(self) -> None:
        """Stop listening, drop every connection (unread data is not acknowledged), and close
        the output files."""
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
            self._idle_task = None
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.transport.abort()  # the handlers see EOF and finish on their own
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=2.0)
            for t in late:
                t.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self.mediation is not None:
            self.mediation.close()
            self.write_status()

    async def __aenter__(self) -> LemfServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _admit(self, source: str) -> bool:
        if (
            len(self._conns) >= self.max_connections
            or self._per_source.get(source, 0) >= self.max_connections_per_source
        ):
            self.refused_connections += 1
            return False
        self._per_source[source] = self._per_source.get(source, 0) + 1
        return True

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self.mediation is not None
        peername = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        peer = (str(peername[0]), int(peername[1]))
        if not self._admit(peer[0]):
            log.warning("X2/X3 connection refused: too many connections", peer=peer[0])
            writer.transport.abort()
            return
        identity = None
        if self.ssl is not None:
            identity = peer_identity(writer.get_extra_info("ssl_object"))
            if identity is None:  # CERT_REQUIRED makes this unreachable; never trust less
                self._per_source[peer[0]] -= 1
                writer.transport.abort()
                return
        self._tasks.add(task)
        self._conns.add(writer)
        self.connections += 1
        framer = PduFramer(max_pdu_size=self.max_pdu_size)
        self._framers.add(framer)
        mediation = self.mediation
        loop = asyncio.get_running_loop()
        acks: list[int] = []  # Keepalives read, not acknowledged yet
        idle_since = loop.time()
        try:
            while True:
                wait = self.read_timeout - (loop.time() - idle_since)
                if acks:
                    wait = min(wait, max(0.0, self._next_checkpoint - loop.time()))
                try:
                    data = await asyncio.wait_for(reader.read(256 << 10), max(0.0, wait))
                except TimeoutError:
                    if acks:  # the held Keepalives are due: nothing more came meanwhile
                        self._checkpoint()
                        writer.write(b"".join(encode_pdu(keepalive_ack(q)) for q in acks))
                        acks.clear()
                        await writer.drain()
                        continue
                    self.timeouts += 1
                    log.info(
                        "closing X2/X3 connection: nothing read in time",
                        peer=peer[0],
                        poi=identity,
                        partial_bytes=framer.buffered,
                    )
                    break
                if not data:
                    break
                idle_since = loop.time()
                for raw in framer.feed_raw(data):
                    ptype = (raw[2] << 8) | raw[3]
                    if ptype == PduType.KEEPALIVE:
                        # acknowledged after the checkpoint that follows everything read
                        # so far (below): one checkpoint for all the Keepalives of a read
                        acks.append(int.from_bytes(raw[-4:], "big") if len(raw) >= 48 else 0)
                        self.keepalives += 1
                    elif ptype == PduType.KEEPALIVE_ACK:
                        continue
                    else:
                        mediation.handle_raw(raw, peer, identity)
                if acks and self._checkpoint_due():
                    self._checkpoint()
                    writer.write(b"".join(encode_pdu(keepalive_ack(q)) for q in acks))
                    acks.clear()
                await writer.drain()
        except PduRefused as exc:
            self.refused_pdus += 1
            log.error(
                "closing X2/X3 connection: PDU refused, not acknowledged",
                peer=peer[0],
                poi=identity,
                error=str(exc),
            )
            # what came before the refused PDU is stored: make it durable; nothing after it
            # on this connection is read, so no later Keepalive is acknowledged
            mediation.checkpoint()
            writer.transport.abort()
        except X2X3DecodeError as exc:
            log.warning("closing X2/X3 connection: bad stream", peer=peer[0], error=str(exc))
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.info("X2/X3 connection lost", peer=peer[0], error=repr(exc))
        finally:
            self._framers.discard(framer)
            self._per_source[peer[0]] -= 1
            if not self._per_source[peer[0]]:
                del self._per_source[peer[0]]
            self._conns.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
