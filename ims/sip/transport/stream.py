"""asyncio TCP and TLS transports for SIP (RFC 3261 §18, §18.3, §26.2.1 for TLS).

* framing: one :class:`~ims.sip.parser.StreamParser` per connection (Content-Length mandatory,
  size cap -> 513/413).  The messages framed before a framing error (even in the same read)
  are delivered first; then ``on_error(exc, failed_bytes, flow)`` lets the endpoint answer the
  failed request when its Via can be recovered, and the connection is closed (a stream cannot
  be resynchronised).
* connection reuse (§18.1.1, §18.2.2): connections are kept by remote address; a request to an
  address with an open connection (inbound or outbound) goes on it; a response goes on the
  connection its request came on (``Flow.connection``).
* idle close: connections without traffic for ``idle_timeout`` seconds are closed; at most
  ``max_connections`` inbound connections are held (more are closed on accept).
* errors: a refused or failed connection raises :class:`~.errors.SipTransportError` from
  :meth:`StreamTransport.connect`; the endpoint reports it to the transaction.

The transport only moves bytes and framed messages; the endpoint decides what they mean.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from typing import cast

from ims.log import get_logger
from ims.sip.errors import SipParseError
from ims.sip.message import Request, Response
from ims.sip.parser import StreamParser
from ims.sip.transaction.flow import Address, Flow

from .errors import SipTransportError

log = get_logger("sip.transport.stream")

_ids = itertools.count(1)

MessageSink = Callable[[Request | Response, Flow, bytes | None], None]
ErrorSink = Callable[[SipParseError, bytes, Flow], None]


def _addr(value: object) -> Address:
    assert isinstance(value, tuple)
    return (str(value[0]), int(value[1]))


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection with its framing state."""

    def __init__(self, owner: StreamTransport, *, outbound: bool) -> None:
        self.owner = owner
        self.outbound = outbound
        self.id = next(_ids)
        self.remote: Address = ("", 0)
        self.local: Address = ("", 0)
        self.parser = StreamParser(max_message_size=owner.max_message_size)
        self._transport: asyncio.Transport | None = None
        self.last_active = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def flow(self) -> Flow:
        return Flow(self.owner.kind, self.remote, self.local, self.id)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-type, do not assert
        self._transport = cast(asyncio.Transport, transport)
        self.remote = _addr(transport.get_extra_info("peername"))
        self.local = _addr(transport.get_extra_info("sockname"))
        self.last_active = asyncio.get_running_loop().time()
        if not self.owner._register(self):
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = asyncio.get_running_loop().time()
        parser = self.parser
        try:
            messages = parser.feed(data)
        except SipParseError:
            messages = []  # nothing framed before the error: parser.error has it
        if parser.keepalives:
            # RFC 5626 §3.5.1: answer each CRLFCRLF ping with a CRLF pong
            self.send(b"\r\n" * parser.keepalives)
            parser.keepalives = 0
        flow = self.flow
        for message in messages:
            self.owner.on_message(message, flow, None)
        error = parser.error
        if error is not None:
            # the messages framed before the error were delivered above; answer the failed
            # one if its Via can be recovered, then close (no resynchronisation)
            self.owner.on_error(error, parser.unparsed, flow)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._unregister(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise SipTransportError(f"{self.owner.kind} connection to {self.remote} is closed")
        self._transport.write(data)
        self.last_active = asyncio.get_running_loop().time()

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def get_extra_info(self, name: str) -> object:
        """The asyncio transport's extra info (``"peercert"``, ``"ssl_object"``...); None
        when the connection is not made yet."""
        if self._transport is None:
            return None
        return self._transport.get_extra_info(name)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StreamTransport:
    """A TCP or TLS listener plus its inbound and outbound connections."""

    def __init__(
        self,
        kind: str,
        on_message: MessageSink,
        on_error: ErrorSink,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        max_message_size: int = 65535,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        max_connections: int = 4096,
    ) -> None:
        assert kind in ("TCP", "TLS")
        self.kind = kind
        self.on_message = on_message
        self.on_error = on_error
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.refused = 0
        self.local: Address | None = None
        #: source IP for outbound connections (our listening address, so that the peer's
        #: ``received`` and a §18.2.2 reconnect point at us, not at 127.0.0.1)
        self.source_host: str | None = None
        self.connections: dict[int, StreamConnection] = {}
        self.by_remote: dict[Address, StreamConnection] = {}
        self._connecting: dict[Address, asyncio.Future[StreamConnection]] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.opened = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def listen(self, host: str, port: int) -> Address:
        if self.kind == "TLS" and self.server_ssl is None:
            raise ValueError("a TLS listener needs an ssl_context")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: StreamConnection(self, outbound=False), host, port, ssl=self.server_ssl
        )
        self.local = _addr(self._server.sockets[0].getsockname())
        if self.local[0] not in ("0.0.0.0", "::"):
            self.source_host = self.local[0]
        self._arm_sweeper()
        return self.local

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        conns = list(self.connections.values())
        for conn in conns:
            conn.close()
        if conns:
            await asyncio.wait([c.closed for c in conns], timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()

    # -- connections -------------------------------------------------------------------------
    def _register(self, conn: StreamConnection) -> bool:
        if not conn.outbound and len(self.connections) >= self.max_connections:
            self.refused += 1  # a bound on resources a peer can make us hold
            log.info("connection refused: limit", remote=conn.remote, limit=self.max_connections)
            return False
        self.connections[conn.id] = conn
        self.by_remote[conn.remote] = conn
        self.opened += 1
        self._arm_sweeper()
        return True

    def _unregister(self, conn: StreamConnection) -> None:
        self.connections.pop(conn.id, None)
        if self.by_remote.get(conn.remote) is conn:
            del self.by_remote[conn.remote]

    def lookup(self, flow: Flow) -> StreamConnection | None:
        """The open connection for ``flow``: its connection id first, else by remote address."""
        if flow.connection is not None:
            conn = self.connections.get(flow.connection)
            if conn is not None and conn.is_open:
                return conn
        conn = self.by_remote.get(flow.remote)
        return conn if conn is not None and conn.is_open else None

    async def connect(
        self, remote: Address, server_hostname: str | None = None
    ) -> StreamConnection:
        """An open connection to ``remote``, reusing one if it exists (§18.1.1)."""
        conn = self.by_remote.get(remote)
        if conn is not None and conn.is_open:
            return conn
        pending = self._connecting.get(remote)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[StreamConnection] = loop.create_future()
        self._connecting[remote] = fut
        try:
            if self.kind == "TLS" and self.client_ssl is None:
                raise SipTransportError("no TLS client context configured")
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, proto = await loop.create_connection(
                        lambda: StreamConnection(self, outbound=True),
                        remote[0],
                        remote[1],
                        ssl=self.client_ssl,
                        server_hostname=server_hostname if self.client_ssl else None,
                        local_addr=(self.source_host, 0) if self.source_host else None,
                    )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                raise SipTransportError(
                    f"{self.kind} connect to {remote[0]}:{remote[1]} failed: {exc}"
                ) from exc
            fut.set_result(proto)
            return proto
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            del self._connecting[remote]

    def _arm_sweeper(self) -> None:
        if self._sweeper is None and self.idle_timeout > 0:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(max(self.idle_timeout / 4, 0.05), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for conn in list(self.connections.values()):
            if now - conn.last_active > self.idle_timeout:
                log.debug("closing idle connection", remote=conn.remote, kind=self.kind)
                conn.close()
        if self.connections or self._server is not None:
            self._arm_sweeper()
