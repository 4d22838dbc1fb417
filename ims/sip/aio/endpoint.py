"""``SipEndpoint``: the asyncio glue between sockets and the sans-I/O transaction layer.

One endpoint per SIP element (UE, P-CSCF, S-CSCF, proxy).  It binds UDP, TCP and TLS
transports, feeds every received message into one :class:`~ims.sip.transaction.TransactionLayer`,
carries out the layer's :class:`~ims.sip.transaction.SendMessage` events, arms a single
``loop.call_at`` timer for all transactions (STYLE.md §1, after aioquic's asyncio protocol), and
gives applications an async API:

* ``await ep.request(req, destination)`` -> the final response (provisional ones to a
  callback); ``ep.start_request(...)`` is the callback form a proxy core uses for its client
  transactions.
* ``ep.on_request(handler)`` -> ``handler(ctx: ServerContext)`` for each new request;
  ``ctx.respond(...)`` answers through the server transaction.
* ``ep.on_ack``, ``ep.on_stray_response``: the messages that have no transaction (ACK to 2xx,
  2xx retransmissions) for a UA core or a proxy's stateless forwarding.
* ``ep.send_stateless(message, destination)``.
* hooks: ``add_observer(fn(direction, message, flow))`` sees every message in and out;
  ``add_filter(fn(direction, message, flow) -> message | None)`` may rewrite or drop it.  The
  proxy/LI layers attach there.
* ``ep.on_event(fn)`` receives every raw layer event first, for a stateful proxy core that wants
  the transaction layer's view (server transaction in, client transactions out).

Large requests (§18.1.1): with ``udp_to_tcp=True``, a request we originate over UDP whose size
comes within 200 bytes of a 1500-byte MTU goes over TCP instead (same destination port) when the
endpoint listens on TCP.  Off by default: the lab runs on loopback, whose MTU is 65,536, so the
rule does not apply there, and a peer without TCP on that port would otherwise fail the call.

Overload (issue 11, finding 9): at most ``max_server_transactions`` live server transactions,
of which at most ``max_unauthenticated_registers`` REGISTERs without credentials (each holds
its request and the 401 for Timer J, 32 s on UDP; a flood of them held 130 MB). A new request
beyond either bound is answered ``503`` with ``Retry-After`` statelessly (RFC 3261 §21.5.4: "The
server is temporarily unable to process the request due to a temporary overloading"), never
queued and never dropped silently; retransmissions of live transactions are still absorbed.

CANCEL (§9.2): with ``auto_cancel=True`` (a UA) the endpoint answers a matching CANCEL 200,
answers the INVITE 487 if it is still pending, and runs ``ctx`` cancel callbacks; with
``auto_cancel=False`` (a proxy, §16.10) the CANCEL goes to the request handler with
``ctx.cancelled`` set to the INVITE's context.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ims.log import get_logger
from ims.log import message as log_message
from ims.sip.errors import SipParseError
from ims.sip.message import Request, Response, make_response, new_branch, new_tag
from ims.sip.parser import is_keepalive, parse_message
from ims.sip.transaction import (
    AckReceived,
    ClientTransaction,
    Event,
    Flow,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    ServerTransaction,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionProtocolError,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
    normalize_transport,
)
from ims.sip.transaction.server import server_key
from ims.sip.transaction.server_tables import InviteServerState, NonInviteServerState
from ims.sip.transport.errors import SipTimeoutError, SipTransportError
from ims.sip.transport.flow import Address
from ims.sip.transport.stream import StreamTransport
from ims.sip.transport.udp import UdpTransport

log = get_logger("sip.endpoint")

#: RFC 3261 §18.1.1: "within 200 bytes of the path MTU", with an MTU of 1500
UDP_TCP_THRESHOLD = 1300

Direction = Literal["in", "out"]
Message = Request | Response
Observer = Callable[[Direction, Message, Flow], None]
Filter = Callable[[Direction, Message, Flow], Message | None]
RequestHandler = Callable[["ServerContext"], Awaitable[None] | None]
ResponseCallback = Callable[[Response], None]


@dataclass(eq=False)
class ServerContext:
    """A received request and its server transaction, as handed to the request handler."""

    endpoint: SipEndpoint
    request: Request
    flow: Flow
    transaction: ServerTransaction
    cancelled: ServerContext | None = None  # for a CANCEL: the INVITE it targets (§9.2)
    to_tag: str = field(default_factory=new_tag)
    is_cancelled: bool = False
    _cancel_callbacks: list[Callable[[], None]] = field(default_factory=list)

    def response(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """A response to this request (§8.2.6) with this context's To tag."""
        return make_response(self.request, status, reason, self.to_tag, headers=headers, body=body)

    def respond(
        self,
        status_or_response: int | Response,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Answer through the server transaction; returns the response (sent or not).

        After the endpoint answered a CANCEL with 487 (``auto_cancel``), a late final response
        from the application is the normal CANCEL/answer race of §9.2: it is dropped (logged),
        not raised. Any other response the transaction no longer allows raises
        :class:`~ims.sip.transaction.TransactionProtocolError`.
        """
        if isinstance(status_or_response, Response):
            response = status_or_response
        else:
            response = self.response(status_or_response, reason, headers=headers, body=body)
        if self.is_cancelled:
            log.info("response after CANCEL dropped", status=response.status)
            return response
        self.endpoint.respond(self.transaction, response)
        return response

    @property
    def answered(self) -> bool:
        """A final response has been given."""
        last = self.transaction.last_response
        return last is not None and last.status >= 200

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cancel_callbacks.append(callback)


@dataclass(eq=False)
class _Pending:
    on_response: Callable[[Response], None] | None
    on_failure: Callable[[Exception], None] | None


class SipEndpoint:
    """UDP/TCP/TLS transports + a TransactionLayer + a timer, for one SIP element."""

    def __init__(
        self,
        *,
        timers: TimerConfig | None = None,
        name: str = "sip",
        auto_cancel: bool = True,
        max_message_size: int = 65535,
        idle_timeout: float = 300.0,
        client_ssl: ssl.SSLContext | None = None,
        uri_schemes: Iterable[str] = ("sip", "sips", "tel"),
        udp_to_tcp: bool = False,
        advertised_host: str | None = None,
        max_server_transactions: int = 32768,
        max_unauthenticated_registers: int = 1024,
        max_unauthenticated_registers_per_source: int | None = None,
        allowed_networks: Iterable[str] | None = None,
    ) -> None:
        self.name = name
        self.max_server_transactions = max_server_transactions
        self.max_unauthenticated_registers = max_unauthenticated_registers
        #: for an element facing UEs (a P-CSCF): one source address cannot take the whole
        #: budget (off for elements whose REGISTERs all come from a few proxies)
        self.max_unauthenticated_registers_per_source = max_unauthenticated_registers_per_source
        self.overloaded = 0  #: requests answered 503 by the bounds above
        #: where this endpoint may send at all (None: anywhere). A proxy tricked into relaying
        #: still cannot reach outside these networks; a refused send is a transport error
        #: (503 for a forwarded request, §16.7 step 6)
        self.allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
        self._allowed_cache: dict[str, bool] = {}
        self.restrict_to(allowed_networks)
        self._unauth_registers: set[ServerTransaction] = set()
        #: the host put in our Via sent-by (default: the address we listen on; set it when
        #: listening on 0.0.0.0 or behind an address translation)
        self.advertised_host = advertised_host
        self.udp_to_tcp = udp_to_tcp
        self.layer = TransactionLayer(
            timers, uri_schemes=uri_schemes, max_message_size=max_message_size
        )
        self.auto_cancel = auto_cancel
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.client_ssl = client_ssl
        self.udp: list[UdpTransport] = []
        self.streams: dict[str, StreamTransport] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pending: dict[ClientTransaction, _Pending] = {}
        self._contexts: dict[ServerTransaction, ServerContext] = {}
        self._request_handler: RequestHandler | None = None
        self._ack_handlers: list[Callable[[Request, Flow], Any]] = []
        self._stray_handlers: list[Callable[[Response, Flow], Any]] = []
        self._event_handlers: list[Callable[[Event], Any]] = []
        self.observers: list[Observer] = []
        self.filters: list[Filter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ================================================================ set-up
    async def listen(
        self,
        transport: str,
        host: str,
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Address:
        """Bind ``transport`` ("udp", "tcp", "tls") on host:port; returns the bound address."""
        kind = normalize_transport(transport)
        self._loop = asyncio.get_running_loop()
        if kind == "UDP":
            udp = UdpTransport(self._on_datagram, self._on_unreachable)
            addr = await udp.bind(host, port)
            self.udp.append(udp)
            return addr
        if kind in self.streams:
            raise ValueError(f"already listening on {kind}")
        stream = self._stream(kind, server_ssl=ssl_context)
        return await stream.listen(host, port)

    def _stream(self, kind: str, server_ssl: ssl.SSLContext | None = None) -> StreamTransport:
        stream = self.streams.get(kind)
        if stream is None:
            stream = StreamTransport(
                kind,
                self._on_stream_message,
                self._on_stream_error,
                server_ssl=server_ssl,
                client_ssl=self.client_ssl,
                max_message_size=self.max_message_size,
                idle_timeout=self.idle_timeout,
            )
            if self.udp and self.udp[0].local[0] not in ("0.0.0.0", "::"):
                stream.source_host = self.udp[0].local[0]
            self.streams[kind] = stream
        return stream

    def local_address(self, transport: str = "UDP") -> Address:
        """The address we listen on for ``transport`` (falls back to the first UDP socket)."""
        kind = normalize_transport(transport)
        if kind == "UDP" or kind not in self.streams or self.streams[kind].local is None:
            if self.udp:
                return self.udp[0].local
            for stream in self.streams.values():
                if stream.local is not None:
                    return stream.local
            raise RuntimeError("endpoint is not listening")
        local = self.streams[kind].local
        assert local is not None
        return local

    def make_via(
        self, transport: str = "UDP", branch: str | None = None, local: Address | None = None
    ) -> str:
        """A Via value for a request we originate: our sent-by, a fresh branch, ``rport``.

        ``local`` picks one of several listening addresses (a multi-homed P-CSCF)."""
        kind = normalize_transport(transport)
        host, port = local or self.local_address(kind)
        if self.advertised_host:
            host = self.advertised_host
        if ":" in host:
            host = f"[{host}]"
        return f"SIP/2.0/{kind} {host}:{port};branch={branch or new_branch()};rport"

    def stats(self) -> dict[str, int]:
        """Counters: the layer's (parse errors, absorbed retransmissions...) and the transports'."""
        out = dict(self.layer.stats)
        out["transactions"] = self.layer.pending
        out["overloaded"] = self.overloaded
        out["udp_received"] = sum(u.received for u in self.udp)
        out["udp_sent"] = sum(u.sent for u in self.udp)
        out["udp_errors"] = sum(u.errors for u in self.udp)
        for kind, stream in self.streams.items():
            out[f"{kind.lower()}_connections"] = len(stream.connections)
            out[f"{kind.lower()}_opened"] = stream.opened
        return out

    def on_request(self, handler: RequestHandler) -> None:
        """``handler(ctx)`` (sync or async) for every new request except ACK."""
        self._request_handler = handler

    def on_ack(self, handler: Callable[[Request, Flow], Any]) -> None:
        self._ack_handlers.append(handler)

    def on_stray_response(self, handler: Callable[[Response, Flow], Any]) -> None:
        self._stray_handlers.append(handler)

    def on_event(self, handler: Callable[[Event], Any]) -> None:
        """Every raw layer event (except SendMessage), before the endpoint handles it."""
        self._event_handlers.append(handler)

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def add_filter(self, flt: Filter) -> None:
        self.filters.append(flt)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for udp in self.udp:
            udp.close()
        for stream in self.streams.values():
            await stream.close()
        for task in list(self._tasks):
            task.cancel()
        for pending in list(self._pending.values()):
            if pending.on_failure is not None:
                pending.on_failure(SipTransportError("endpoint closed"))
        self._pending.clear()

    # ================================================================ client side
    def _flow_to(self, destination: Address, transport: str, local: Address | None = None) -> Flow:
        kind = normalize_transport(transport)
        if kind == "UDP":
            if local is None:
                local = self.udp[0].local if self.udp else None
            return Flow("UDP", destination, local)
        stream = self.streams.get(kind)
        conn = stream.by_remote.get(destination) if stream else None
        return Flow(kind, destination, None, conn.id if conn is not None else None)

    def prepare(
        self, request: Request, transport: str = "UDP", local: Address | None = None
    ) -> Request:
        """Push our Via (fresh branch, rport) unless the request already has one with a branch."""
        via = request.via
        if via is None or not via.branch:
            request.headers.insert_first("Via", self.make_via(transport, local=local))
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")
        return request

    def start_request(
        self,
        request: Request,
        destination: Address,
        transport: str = "UDP",
        *,
        on_response: Callable[[Response], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
        add_via: bool = True,
        local: Address | None = None,
    ) -> ClientTransaction:
        """Start a client transaction; ``on_response`` gets every response (1xx and final),
        ``on_failure`` a SipTimeoutError (B/F) or SipTransportError. ``local`` chooses the UDP
        socket (and Via sent-by) when the endpoint listens on several addresses."""
        if add_via:
            transport = self._maybe_tcp(request, transport)
            self.prepare(request, transport, local)
        flow = self._flow_to(destination, transport, local)
        tx, events = self.layer.send_request(request, flow, self._now())
        self._pending[tx] = _Pending(on_response, on_failure)
        self._process(events)
        return tx

    def _maybe_tcp(self, request: Request, transport: str) -> str:
        """§18.1.1: a request within 200 bytes of the path MTU (1500) goes over TCP when we
        have a TCP transport (our Via is not yet in it, so count ~100 bytes for it)."""
        if (
            self.udp_to_tcp
            and normalize_transport(transport) == "UDP"
            and "TCP" in self.streams
            and (request.via is None or not request.via.branch)
            and len(request.encode()) + 100 > UDP_TCP_THRESHOLD
        ):
            return "TCP"
        return transport

    async def request(
        self,
        request: Request,
        destination: Address,
        transport: str = "UDP",
        *,
        on_provisional: ResponseCallback | None = None,
        add_via: bool = True,
        local: Address | None = None,
    ) -> Response:
        """Send ``request`` in a client transaction; return the final response.

        Raises :class:`SipTimeoutError` (timer B/F) or :class:`SipTransportError`.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()

        def on_response(resp: Response) -> None:
            if resp.status < 200:
                if on_provisional is not None:
                    on_provisional(resp)
            elif not fut.done():
                fut.set_result(resp)

        def on_failure(exc: Exception) -> None:
            if not fut.done():
                fut.set_exception(exc)

        tx = self.start_request(
            request,
            destination,
            transport,
            on_response=on_response,
            on_failure=on_failure,
            add_via=add_via,
            local=local,
        )
        try:
            return await fut
        except asyncio.CancelledError:
            self.cancel(tx)
            raise

    def cancel(self, transaction: ClientTransaction) -> None:
        """CANCEL an INVITE client transaction (§9.1; held until a 1xx if needed)."""
        self._process(self.layer.cancel(transaction, self._now()))
        ctx = transaction.cancel_transaction
        if ctx is not None and ctx not in self._pending:
            self._pending[ctx] = _Pending(None, None)

    def send_stateless(
        self,
        message: Message,
        destination: Address,
        transport: str = "UDP",
        *,
        local: Address | None = None,
    ) -> None:
        """Send without a transaction (ACK to 2xx, 2xx retransmission, stateless proxying)."""
        flow = self._flow_to(destination, transport, local)
        self._process(self.layer.send_stateless(message, flow))

    # ================================================================ server side
    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        """Send ``response`` through ``transaction`` (raises TransactionProtocolError when the
        transaction no longer allows it)."""
        self._process(self.layer.respond(transaction, response, self._now()))

    def context(self, transaction: ServerTransaction) -> ServerContext | None:
        return self._contexts.get(transaction)

    # ================================================================ inbound
    def _now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        return loop.time()

    def _on_datagram(self, data: bytes, flow: Flow) -> None:
        if is_keepalive(data):
            return
        try:
            message = parse_message(data)
        except SipParseError:
            self._process(self.layer.receive_bytes(data, flow, self._now()))
            return
        self._inbound(message, flow, data)

    def _on_unreachable(self, remote: Address, reason: str) -> None:
        """ICMP unreachable for ``remote`` (§18.4): a transport error for the live UDP
        transactions towards it (§17.1.4, §17.2.4)."""
        now = self._now()
        txs: list[ClientTransaction | ServerTransaction] = [
            tx
            for tx in self.layer.clients.values()
            if tx.flow.transport == "UDP" and tx.flow.remote == remote
        ]
        txs += [
            tx
            for tx in self.layer.servers.values()
            if tx.response_flow.transport == "UDP" and tx.response_flow.remote == remote
        ]
        for tx in dict.fromkeys(txs):  # a server transaction may be filed under two keys
            self._process(self.layer.transport_error(tx, f"ICMP: {reason}", now))

    def _on_stream_message(self, message: Message, flow: Flow, raw: bytes | None) -> None:
        self._inbound(message, flow, raw)

    def _on_stream_error(self, exc: SipParseError, raw: bytes, flow: Flow) -> None:
        log.info("stream framing error", peer=str(flow), error=str(exc))
        self._process(self.layer.refuse(raw, flow, exc))

    def _overloaded(self, request: Request, flow: Flow) -> str | None:
        """Why a new request must be refused now (None: it may start a transaction)."""
        unauth = request.method == "REGISTER" and not (
            "Authorization" in request.headers or "Proxy-Authorization" in request.headers
        )
        servers = self.layer.servers
        per_source = self.max_unauthenticated_registers_per_source
        if len(servers) < self.max_server_transactions and not (
            unauth
            and (
                len(self._unauth_registers) >= self.max_unauthenticated_registers
                or (per_source is not None and len(self._unauth_registers) >= per_source)
            )
        ):
            return None
        try:
            if server_key(request) in servers:
                return None  # a retransmission: the transaction absorbs it
        except SipParseError:
            return None  # the layer answers the malformed request itself
        if len(servers) >= self.max_server_transactions:
            return "server transactions"
        if not unauth:
            return None
        self._unauth_registers = {tx for tx in self._unauth_registers if not tx.terminated}
        if len(self._unauth_registers) >= self.max_unauthenticated_registers:
            return "unauthenticated REGISTERs"
        if per_source is not None:
            ip = flow.remote[0]
            if sum(1 for tx in self._unauth_registers if tx.flow.remote[0] == ip) >= per_source:
                return "unauthenticated REGISTERs from one source"
        return None

    def _inbound(self, message: Message, flow: Flow, raw: bytes | None) -> None:
        with log_message(call_id=message.call_id):
            self._inbound_message(message, flow, raw)

    def _inbound_message(self, message: Message, flow: Flow, raw: bytes | None) -> None:
        try:
            if isinstance(message, Request) and message.method not in ("ACK", "CANCEL"):
                why = self._overloaded(message, flow)
                if why is not None:
                    self.overloaded += 1
                    log.info("overloaded: 503", peer=str(flow), limit=why)
                    busy = make_response(message, 503, headers=[("Retry-After", "10")])
                    self._process(self.layer.send_stateless_response(busy, flow))
                    return
            for observer in self.observers:
                observer("in", message, flow)
            for flt in self.filters:
                filtered = flt("in", message, flow)
                if filtered is None:
                    return
                message = filtered
            self._process(self.layer.receive(message, flow, self._now(), raw=raw))
        except Exception:  # never let one message kill the transport
            log.exception("error handling inbound message", peer=str(flow))

    # ================================================================ events
    def _process(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SendMessage):
                self._transmit(event)
                continue
            for handler in self._event_handlers:
                self._call(handler, event)
            if isinstance(event, RequestReceived):
                self._on_request_received(event)
            elif isinstance(event, ResponseReceived):
                pending = self._pending.get(event.transaction)
                if pending is not None and pending.on_response is not None:
                    self._call(pending.on_response, event.response)
            elif isinstance(event, AckReceived):
                for ack_handler in self._ack_handlers:
                    self._call(ack_handler, event.request, event.flow)
            elif isinstance(event, StrayResponse):
                for stray in self._stray_handlers:
                    self._call(stray, event.response, event.flow)
            elif isinstance(event, TransactionTimedOut | TransportFailed):
                tx = event.transaction
                if isinstance(tx, ClientTransaction):
                    pending = self._pending.get(tx)
                    if pending is not None and pending.on_failure is not None:
                        exc: Exception = (
                            SipTimeoutError(f"{tx.method} timed out (no final response)")
                            if isinstance(event, TransactionTimedOut)
                            else SipTransportError(event.reason)
                        )
                        self._call(pending.on_failure, exc)
            elif isinstance(event, TransactionTerminated):
                tx = event.transaction
                if isinstance(tx, ClientTransaction):
                    self._pending.pop(tx, None)
                else:
                    self._contexts.pop(tx, None)
                    self._unauth_registers.discard(tx)
        self._rearm()

    def _on_request_received(self, event: RequestReceived) -> None:
        req = event.request
        if req.method == "REGISTER":
            if not ("Authorization" in req.headers or "Proxy-Authorization" in req.headers):
                self._unauth_registers.add(event.transaction)
            elif self._unauth_registers:
                # The UE answered its challenge: the unauthenticated transaction of that
                # registration (same Call-ID, same source) served its purpose and no longer
                # counts against the bounds, which are for REGISTERs nobody follows up (a
                # flood). It still lives out Timer J under max_server_transactions; without
                # this, a UE (or a SIPp loop) re-registering from one address more than
                # the per-source bound within 32 s got 503.
                source = event.flow.remote[0]
                self._unauth_registers = {
                    tx
                    for tx in self._unauth_registers
                    if not (tx.request.call_id == req.call_id and tx.flow.remote[0] == source)
                }
        cancelled = self._contexts.get(event.cancelled) if event.cancelled else None
        ctx = ServerContext(self, event.request, event.flow, event.transaction, cancelled)
        self._contexts[event.transaction] = ctx
        if event.request.method == "CANCEL" and self.auto_cancel:
            self._auto_cancel(ctx)
            return
        if self._request_handler is None:
            ctx.respond(501 if event.request.method != "CANCEL" else 481)
            return
        self._call(self._request_handler, ctx, on_error=lambda: self._handler_failed(ctx))

    def _auto_cancel(self, ctx: ServerContext) -> None:
        """§9.2 for a UA: 200 to the CANCEL, 487 to the INVITE if still pending."""
        target = ctx.cancelled
        if target is None:
            ctx.respond(481)
            return
        ctx.to_tag = target.to_tag
        ctx.respond(200)
        if target.transaction.state is InviteServerState.PROCEEDING:
            target.respond(487)
            target.is_cancelled = True
            for callback in target._cancel_callbacks:
                self._call(callback)

    def _handler_failed(self, ctx: ServerContext) -> None:
        if ctx.transaction.state in (
            InviteServerState.PROCEEDING,
            NonInviteServerState.TRYING,
            NonInviteServerState.PROCEEDING,
        ):
            ctx.respond(500)

    def _call(
        self, fn: Callable[..., Any], *args: Any, on_error: Callable[[], None] | None = None
    ) -> None:
        try:
            result = fn(*args)
        except Exception:
            log.exception("handler failed", handler=getattr(fn, "__qualname__", repr(fn)))
            if on_error is not None:
                on_error()
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)

            def done(t: asyncio.Task[Any]) -> None:
                self._tasks.discard(t)
                if not t.cancelled() and t.exception() is not None:
                    log.error("async handler failed", error=repr(t.exception()))
                    if on_error is not None:
                        on_error()

            task.add_done_callback(done)

    # ================================================================ outbound
    def restrict_to(self, networks: Iterable[str] | None) -> None:
        """Send only to addresses in ``networks`` (CIDR strings); None lifts the restriction."""
        self.allowed_networks = (
            None
            if networks is None
            else tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        )
        self._allowed_cache.clear()

    def allowed(self, host: str) -> bool:
        """May this endpoint send to ``host`` (``allowed_networks``)?"""
        if self.allowed_networks is None:
            return True
        ok = self._allowed_cache.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                ok = False  # a name: we only send to resolved addresses
            else:
                ok = any(ip in net for net in self.allowed_networks)
            if len(self._allowed_cache) < 4096:
                self._allowed_cache[host] = ok
        return ok

    def _transmit(self, event: SendMessage) -> None:
        message, data, flow = event.message, event.data, event.flow
        if not self.allowed(flow.remote[0]):
            self._transport_error(event, f"{flow.remote[0]} is outside the allowed networks")
            return
        for flt in self.filters:
            filtered = flt("out", message, flow)
            if filtered is None:
                return
            if filtered is not message:
                message = filtered
                data = message.encode()
        for observer in self.observers:
            try:
                observer("out", message, flow)
            except Exception:
                log.exception("observer failed")
        try:
            if flow.transport == "UDP":
                self._udp_for(flow).send(data, flow.remote)
                return
            stream = self.streams.get(flow.transport) or self._stream(flow.transport)
            conn = stream.lookup(flow)
            if conn is not None:
                conn.send(data)
                return
        except SipTransportError as exc:
            self._transport_error(event, str(exc))
            return
        task = asyncio.ensure_future(self._connect_and_send(stream, event, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(
        self, stream: StreamTransport, event: SendMessage, data: bytes
    ) -> None:
        try:
            conn = await stream.connect(event.flow.remote)
            conn.send(data)
        except SipTransportError as exc:
            self._transport_error(event, str(exc))
        except Exception as exc:  # never leave a transaction hanging on an unexpected error
            log.exception("connect failed", peer=str(event.flow))
            self._transport_error(event, f"{type(exc).__name__}: {exc}")

    def _transport_error(self, event: SendMessage, reason: str) -> None:
        log.info("transport error", peer=str(event.flow), error=reason)
        if event.transaction is not None and not self._closed:
            self._process(self.layer.transport_error(event.transaction, reason, self._now()))

    def _udp_for(self, flow: Flow) -> UdpTransport:
        if not self.udp:
            raise SipTransportError("no UDP transport bound")
        if flow.local is not None:
            for udp in self.udp:
                if udp.local == flow.local:
                    return udp
        return self.udp[0]

    # ================================================================ timer
    def _rearm(self) -> None:
        when = self.layer.get_timer()
        if when == self._timer_at or self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            loop = self._loop or asyncio.get_running_loop()
            self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        scheduled = self._timer_at or 0.0
        self._timer = None
        self._timer_at = None
        try:
            # call_at may run us up to one clock resolution early: never fire before the deadline
            self._process(self.layer.handle_timer(max(self._now(), scheduled)))
        except TransactionProtocolError:  # pragma: no cover - timers only fire armed inputs
            log.exception("timer input refused")
            self._rearm()
