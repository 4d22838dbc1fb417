"""asyncio TCP and TLS transports for SIP (RFC 3261 §18, §18.3, §26.2.1 for TLS).

* framing: one :class:`~ims.sip.parser.StreamParser` per connection (Content-Length mandatory,
  size cap -> 513/413).  The messages framed before a framing error (even in the same read)
  are delivered first; then ``on_error(exc, failed_bytes, flow)`` lets the endpoint answer the
  failed request when its Via can be recovered, and the connection is closed (a stream cannot
  be resynchronised).
* connection reuse (§18.1.1, §18.2.2): connections are kept by remote address; a request to an
  address with an open connection (inbound or outbound) goes on it; a response goes on the
  connection its request came on (``Flow.connection``).
* limits (issue 11, finding 9: 4,200 idle connections locked every client out, and one
  element's connections could take every descriptor of the process): an inbound connection is
  refused (closed on accept) beyond ``max_connections`` per listener, beyond
  ``max_per_source`` from one IP address, or beyond the process-wide budget shared by every
  stream transport of the process (3/4 of ``RLIMIT_NOFILE``, so the other listeners of the same
  process, its UDP sockets and files keep descriptors). Defaults scale with the descriptor
  limit: ``ulimit -n 1024`` gives 64 per listener.
* read timeouts: an inbound connection must deliver its first complete message, and a started
  message must be completed, within ``read_timeout`` seconds (a slow-loris or a silent
  connection holds a slot for seconds, not for ``idle_timeout``); connections without traffic
  for ``idle_timeout`` seconds are closed.
* errors: a refused or failed connection raises :class:`~.errors.SipTransportError` from
  :meth:`StreamTransport.connect`; the endpoint reports it to the transaction.

The transport only moves bytes and framed messages; the endpoint decides what they mean.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import ssl
from collections import Counter
from collections.abc import Callable
from typing import cast

from ims.log import get_logger
from ims.sip.errors import SipParseError
from ims.sip.message import Request, Response
from ims.sip.parser import StreamParser
from ims.sip.transport.flow import Address, Flow

from .errors import SipTransportError

log = get_logger("sip.transport.stream")

_ids = itertools.count(1)


def _nofile() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY and soft > 0 else 65536


#: inbound stream connections the whole process may hold (every listener together)
PROCESS_BUDGET = max(16, _nofile() * 3 // 4)
#: default per-listener cap: a sixteenth of the descriptors, at most 4,096
DEFAULT_MAX_CONNECTIONS = max(16, min(4096, _nofile() // 16))
DEFAULT_MAX_PER_SOURCE = 64
DEFAULT_READ_TIMEOUT = 10.0

_process_inbound = 0  # inbound connections open in this process, all listeners


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
        self.messages = 0  # complete messages received
        self.opened_at = 0.0
        #: when the message now being received started (None: nothing partial buffered)
        self.partial_since: float | None = None
        self.registered = False
        self.refused = False  # closed on accept by a limit
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def flow(self) -> Flow:
        return Flow(self.owner.kind, self.remote, self.local, self.id)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-type, do not assert
        self._transport = cast(asyncio.Transport, transport)
        self.remote = _addr(transport.get_extra_info("peername"))
        self.local = _addr(transport.get_extra_info("sockname"))
        self.last_active = self.opened_at = asyncio.get_running_loop().time()
        if not self.owner._register(self):
            self.refused = True
            transport.close()

    def data_received(self, data: bytes) -> None:
        now = self.last_active = asyncio.get_running_loop().time()
        if self.refused:
            return  # the close is under way
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
        self.messages += len(messages)
        if parser.buffered:
            if messages or self.partial_since is None:
                self.partial_since = now
        else:
            self.partial_since = None
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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_per_source: int = DEFAULT_MAX_PER_SOURCE,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
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
        self.max_per_source = max_per_source
        self.read_timeout = read_timeout
        self.refused = 0
        self.timed_out = 0
        self.per_source: Counter[str] = Counter()  # inbound connections by remote IP
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
        # a TLS connection counts against the limits once its handshake is done: bound how
        # long a handshake may hold a descriptor before that
        handshake = self.read_timeout if self.server_ssl and self.read_timeout > 0 else None
        self._server = await loop.create_server(
            lambda: StreamConnection(self, outbound=False),
            host,
            port,
            ssl=self.server_ssl,
            ssl_handshake_timeout=handshake,
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
    @property
    def inbound(self) -> int:
        return sum(self.per_source.values())

    def _register(self, conn: StreamConnection) -> bool:
        global _process_inbound
        if not conn.outbound:
            # bounds on the resources a peer can make us hold
            why = None
            if self.inbound >= self.max_connections:
                why = "listener limit"
            elif self.per_source[conn.remote[0]] >= self.max_per_source:
                why = "per-source limit"
            elif _process_inbound >= PROCESS_BUDGET:
                why = "process limit"
            if why is not None:
                self.refused += 1
                log.info("connection refused", remote=conn.remote, reason=why)
                return False
            self.per_source[conn.remote[0]] += 1
            _process_inbound += 1
        conn.registered = True
        self.connections[conn.id] = conn
        self.by_remote[conn.remote] = conn
        self.opened += 1
        self._arm_sweeper()
        return True

    def _unregister(self, conn: StreamConnection) -> None:
        global _process_inbound
        if not conn.registered:
            return
        conn.registered = False
        if not conn.outbound:
            _process_inbound -= 1
            ip = conn.remote[0]
            self.per_source[ip] -= 1
            if self.per_source[ip] <= 0:
                del self.per_source[ip]
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
        periods = [t for t in (self.idle_timeout, self.read_timeout) if t > 0]
        if self._sweeper is None and periods:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(max(min(periods) / 4, 0.05), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        rt = self.read_timeout
        for conn in list(self.connections.values()):
            if self.idle_timeout > 0 and now - conn.last_active > self.idle_timeout:
                log.debug("closing idle connection", remote=conn.remote, kind=self.kind)
                conn.close()
            elif rt > 0 and (
                (conn.partial_since is not None and now - conn.partial_since > rt)
                or (not conn.outbound and conn.messages == 0 and now - conn.opened_at > rt)
            ):
                # a message not completed in time, or a connection that never sent one
                self.timed_out += 1
                log.info("closing connection: read timeout", remote=conn.remote, kind=self.kind)
                conn.close()
        if self.connections or self._server is not None:
            self._arm_sweeper()
