"""The NE's X1 server: HTTP/1.1 POST over TLS with mutual certificates (asyncio adapter).

A deliberately small HTTP/1.1 server: ``POST`` with ``Content-Length`` (no chunked bodies),
persistent connections, bounded header (16 KiB) and body (1 MiB) sizes, a read timeout. The
body goes to the sans-I/O :class:`~li.x1.handler.X1Handler` together with the client
certificate's CN (the ADMF identity it checks against ``admfIdentifier``). A client without a
certificate from the trusted CA never gets past the TLS handshake (which has its own timeout).

Work stays off the event loop (issue 11 finding 11): the handler (XML parsing, the SQLite
store) runs in one worker thread, so requests are serialised and a large document delays
only other X1 requests, never the element's SIP or media; its accepted changes are then
applied on the loop (:meth:`X1Handler.emit`) before the answer is written. At most
``max_pending`` requests wait for the worker: one more is answered at once with HTTP 503
(``Retry-After: 1``) carrying an X1 top-level error document (code 1000, "NE overloaded", in
its comment): nothing of it was acted on, and the ADMF may retry. Connections are capped in
all and per source address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ims.log import get_logger
from li.x1.handler import X1Handler
from li.x1.tlsutil import peer_common_name

log = get_logger("li.x1.server")

MAX_HEADER = 16 << 10
MAX_BODY = 1 << 20


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _response(status: int, reason: str, body: bytes, *, close: bool, ctype: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def read_http_message(
    reader: asyncio.StreamReader, *, timeout: float
) -> tuple[str, dict[str, str], bytes] | None:
    """Read one HTTP/1.1 message (start line, headers, Content-Length body); None at EOF."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise HttpError(400, "truncated request") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError(431, "request header too large") from exc
    if len(head) > MAX_HEADER:
        raise HttpError(431, "request header too large")
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "chunked bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise HttpError(400, "bad Content-Length") from exc
    if length < 0 or length > MAX_BODY:
        raise HttpError(413, "request body too large")
    body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return start, headers, body


class X1Server:
    """Serve X1 for one NE. ``ssl=None`` (plain HTTP) exists for tests of the handler only."""

    def __init__(
        self,
        handler: X1Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: ssl.SSLContext | None = None,
        check_admf_certificate: bool = True,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        max_pending: int = 8,
        max_connections: int = 64,
        max_connections_per_source: int = 16,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.max_pending = max_pending
        self.max_connections = max_connections
        self.max_connections_per_source = max_connections_per_source
        self.handshake_timeout = handshake_timeout
        self._pending = 0
        self._per_source: dict[str, int] = {}
        self._executor: ThreadPoolExecutor | None = None
        self.overloaded = 0
        self.refused_connections = 0
        self.handler = handler
        self.host = host
        self._port = port
        self.ssl = ssl
        self.check_admf_certificate = check_admf_certificate
        self.read_timeout = read_timeout
        self.clock = clock
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.handshake_failures = 0

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_conn,
            self.host,
            self._port,
            ssl=self.ssl,
            limit=MAX_HEADER + 1024,
            reuse_address=True,
            ssl_handshake_timeout=self.handshake_timeout if self.ssl is not None else None,
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="x1-handler")
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("X1 server listening", host=self.host, port=self._port, tls=self.ssl is not None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self._executor is not None:
            # a request still in the worker finishes (its store transaction completes)
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
            self._executor = None

    async def _handle(self, body: bytes, admf: str | None) -> bytes | None:
        """Run the handler in the worker thread; apply its changes here, on the loop. None
        when overloaded (nothing done)."""
        now = self.clock()
        if self._pending >= self.max_pending or self._executor is None:
            return None
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            out, events = await loop.run_in_executor(
                self._executor,
                lambda: self.handler.handle_collect(body, now=now, peer_admf=admf),
            )
        finally:
            self._pending -= 1
        self.handler.emit(events)
        return out

    async def __aenter__(self) -> X1Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        source = str(peername[0])
        if (
            len(self._conns) >= self.max_connections
            or self._per_source.get(source, 0) >= self.max_connections_per_source
        ):
            self.refused_connections += 1
            log.warning("X1 connection refused: too many connections", peer=source)
            writer.transport.abort()
            return
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._conns.add(writer)
        admf = None
        if self.ssl is not None and self.check_admf_certificate:
            admf = peer_common_name(writer.get_extra_info("ssl_object"))
        try:
            while True:
                try:
                    msg = await read_http_message(reader, timeout=self.read_timeout)
                except HttpError as exc:
                    writer.write(
                        _response(exc.status, exc.reason, b"", close=True, ctype="text/plain")
                    )
                    await writer.drain()
                    return
                if msg is None:
                    return
                start, headers, body = msg
                parts = start.split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    writer.write(_response(400, "Bad Request", b"", close=True, ctype="text/plain"))
                    return
                close = headers.get("connection", "").lower() == "close"
                if parts[0] != "POST":
                    writer.write(
                        _response(405, "Method Not Allowed", b"", close=close, ctype="text/plain")
                    )
                else:
                    out = await self._handle(body, admf)
                    if out is None:
                        self.overloaded += 1
                        log.warning("X1 request refused: NE overloaded", pending=self._pending)
                        busy = self.handler.overloaded(
                            now=self.clock(), peer_admf=admf, pending=self._pending
                        )
                        writer.write(
                            _response(
                                503, "Service Unavailable", busy, close=close, ctype="text/xml"
                            ).replace(b"\r\n\r\n", b"\r\nRetry-After: 1\r\n\r\n", 1)
                        )
                    else:
                        writer.write(_response(200, "OK", out, close=close, ctype="text/xml"))
                await writer.drain()
                if close:
                    return
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("X1 connection ended", error=repr(exc))
        finally:
            self._per_source[source] -= 1
            if not self._per_source[source]:
                del self._per_source[source]
            self._conns.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
