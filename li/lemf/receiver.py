"""The LEMF's X2/X3 receiver: a TCP or TLS (mutual certificates) server for many POIs.

Each connection gets a :class:`~li.x2x3.framing.PduFramer`; X2/X3 PDUs go to the
:class:`~li.lemf.mediation.Mediation`; a Keepalive is answered with a Keepalive-Ack echoing
its sequence number (TS 103 221-2 clause 5.3) **after** the mediation has flushed its files
and duplicate filter: an Ack therefore confirms that everything before the Keepalive is on
disk, which is what the exporter's spool relies on. A malformed stream closes that
connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from ims.log import get_logger
from li.lemf.call import DecryptorFactory, KeyPolicy, default_decryptor
from li.lemf.mediation import Mediation
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
    ) -> None:
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

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_conn, self.host, self._port, ssl=self.ssl, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self.mediation = Mediation(
            self.out_dir,
            lemf_addr=(self.host, self._port),
            key_policy=self._key_policy,
            task_key_policies=self._task_key_policies,
            decryptor_factory=self._decryptor_factory,
            clock=self._clock,
            liids=self._liids,
        )
        log.info("lemf listening", host=self.host, port=self._port, tls=self.ssl is not None)

    def flush(self) -> None:
        """Flush every call's files and rewrite every summary.json now (``Mediation.flush``).
        Call it once the POIs' exporters have drained (every PDU acknowledged): the output
        directory then holds everything delivered, and a call whose end was seen says
        ``"complete": true``."""
        if self.mediation is not None:
            self.mediation.flush()

    async def close(self) -> None:
        """Stop listening, drop every connection (unread data is not acknowledged), and close
        the output files."""
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

    async def __aenter__(self) -> LemfServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self.mediation is not None
        self._tasks.add(task)
        self._conns.add(writer)
        self.connections += 1
        peername = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        peer = (str(peername[0]), int(peername[1]))
        framer = PduFramer(max_pdu_size=self.max_pdu_size)
        mediation = self.mediation
        try:
            while True:
                data = await reader.read(256 << 10)
                if not data:
                    break
                for raw in framer.feed_raw(data):
                    ptype = (raw[2] << 8) | raw[3]
                    if ptype == PduType.KEEPALIVE:
                        seq = int.from_bytes(raw[-4:], "big") if len(raw) >= 48 else 0
                        mediation.checkpoint()
                        writer.write(encode_pdu(keepalive_ack(seq)))
                        self.keepalives += 1
                    elif ptype == PduType.KEEPALIVE_ACK:
                        continue
                    else:
                        mediation.handle_raw(raw, peer)
                await writer.drain()
        except X2X3DecodeError as exc:
            log.warning("closing X2/X3 connection: bad stream", peer=peer[0], error=str(exc))
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.info("X2/X3 connection lost", peer=peer[0], error=repr(exc))
        finally:
            self._conns.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
