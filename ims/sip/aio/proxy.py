"""asyncio adapter: the sans-I/O proxy core on the transaction layer and real sockets.

:class:`ProxyServer` owns one :class:`~ims.sip.transaction.TransactionLayer` and the transports
it listens on (UDP from :mod:`ims.sip.transport.udp`; TCP and TLS from
:mod:`ims.sip.transport.stream`).
It is the only place where time is read (``loop.time()``) and bytes move:

    datagram -> layer.receive_bytes -> events -> ProxyCore -> actions -> layer -> SendMessage
                                                                                 -> socket

Events map to the core one to one: ``RequestReceived``/``AckReceived`` ->
``receive_request``; ``ResponseReceived`` -> ``receive_response`` with the branch (the client
transaction's branch is the key the core chose); ``StrayResponse`` ->
``receive_stray_response``; ``TransactionTimedOut`` / ``TransportFailed`` of a client
transaction -> ``branch_failed`` with 408 / 503. One ``loop.call_at`` timer is kept armed at
the earlier of the layer's and the core's next deadline (aioquic's pattern).

TLS: ``listen("tls", host, port, ssl_context=server_ctx)`` (``server_ctx`` may require and
verify client certificates: ``verify_mode = CERT_REQUIRED`` + ``load_verify_locations``);
``client_ssl`` is used for connections the proxy opens. Connections are reused by remote
address (§18.1.1 / RFC 5923 in spirit): a response goes back on the request's connection, and
a request forwarded to ``Peer("tls", ue_host, ue_port)`` — the source a UE registered from —
travels on the UE's own connection (the UE needs no TLS listener). When that connection has
closed, a new one is opened to that address (which then usually fails: 503 for the branch).

Overload (``ims.sip.proxy.overload``): with the core's overload control on, the adapter sends a
small probe datagram to its first UDP listener every ``interval`` from a socket of its own; the
time it takes to come back out of the kernel queue and the loop is the queueing delay a request
arriving now would see, fed to the core with ``now``. A worker sharing its address with
siblings (SO_REUSEPORT) picks a probe port that the kernel's hash hands back to itself: it
tries ports until a probe returns (the hash of a source address and port is stable while the
group of sockets is). Every UDP datagram first meets the :class:`OverloadGate`, which sheds new
requests with a stateless 503 before anything is parsed.

Why not :class:`ims.sip.aio.endpoint.SipEndpoint`: a proxy needs the raw per-branch
events (every provisional, CANCEL of a client transaction, stray 2xx), and at the time of
writing the endpoint exposed a UA-style ``await request()`` instead. Driving the layer directly
also keeps the hot path short (no task per branch). Host names in next hops are resolved from
a static ``hosts`` map only: the lab never sends DNS queries off the machine.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import secrets
import socket
import ssl
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from ims.log import begin_message, end_message, get_logger, tag_message
from ims.sip.errors import SipParseError
from ims.sip.message import Request, Response, new_tag
from ims.sip.proxy.core import (
    Action,
    CancelBranch,
    ForwardRequest,
    ProxyCore,
    SendResponse,
    SendStateless,
)
from ims.sip.proxy.overload import OverloadGate, Shed
from ims.sip.proxy.routing import Forward, Respond
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
)
from ims.sip.transport import Peer
from ims.sip.transport.errors import SipTransportError
from ims.sip.transport.stream import StreamConnection, StreamTransport
from ims.sip.transport.udp import UdpTransport

_log = get_logger("ims.sip.proxy.aio")


class ProxyServer:
    """Runs a :class:`ProxyCore` on sockets until :meth:`close`."""

    def __init__(
        self,
        core: ProxyCore,
        *,
        timers: TimerConfig | None = None,
        hosts: Mapping[str, str] | None = None,
        allowed_networks: Sequence[str] | None = None,
        client_ssl: ssl.SSLContext | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.core = core
        # the clock the core and the transaction layer run on: the loop's monotonic clock by
        # default; the wall clock when the router keeps state in a shared store (ims.store),
        # whose expiries every instance and a restarted process must read alike
        self._clock = clock
        self.client_ssl = client_ssl  # TLS connections we open (None: no outbound TLS)
        # next hops outside these networks are refused (503) instead of contacted: a lab
        # safety net so that a torture message's Route cannot make us talk to other hosts
        self.allowed = (
            None
            if allowed_networks is None
            else [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
        )
        # the core sends 100 Trying itself at once (§16.2); the layer's TRYING timer is moot
        self.layer = TransactionLayer(timers or TimerConfig())
        self.hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self._udp: list[UdpTransport] = []
        self._streams: dict[str, StreamTransport] = {}  # "TCP" -> transport
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: dict[str, ClientTransaction] = {}  # branch -> INVITE/non-INVITE client tx
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = {"send_errors": 0, "unresolved": 0}
        self._probe: UdpTransport | None = None  # overload probe sender (see module docstring)
        self._probe_from: tuple[str, int] | None = None
        self._probe_to: tuple[str, int] | None = None
        self._probe_data = b"\0imslab-probe " + secrets.token_hex(8).encode()
        self._probe_back: asyncio.Future[None] | None = None
        # new UDP requests shed before parsing while overloaded (ims.sip.proxy.overload)
        self._gate = None if core.overload is None else OverloadGate(core.overload, new_tag())
        self._allowed_cache: dict[str, bool] = {}
        # a worker sharing its listen address sends what it forwards from its own port (the
        # Via sent-by it writes, ProxyConfig.sent_by), so the responses come back to it
        self._sender: dict[str, tuple[str, int]] = {
            p.transport.upper(): (p.host, p.port) for p in core.config.sent_by
        }

    # -- set-up ---------------------------------------------------------------------------
    async def listen(
        self,
        transport: str,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
    ) -> tuple[str, int]:
        """Listen on ``transport`` (``"udp"``, ``"tcp"``, ``"tls"`` — TLS needs
        ``ssl_context``, the server context); returns the bound address. UDP only:
        ``reuse_port`` shares the address with sibling worker processes (``SO_REUSEPORT``);
        ``sock`` adopts an already bound socket (a worker's own port, ``ProxyConfig.sent_by``)."""
        self._loop = asyncio.get_running_loop()
        kind = transport.lower()
        if kind in ("tcp", "tls"):
            if kind == "tls" and ssl_context is None:
                raise ValueError("a TLS listener needs ssl_context (the server certificate)")
            name = kind.upper()
            if name in self._streams:
                raise ValueError(f"already listening on {name}")
            stream = self._new_stream(name, ssl_context)
            addr = await stream.listen(host, port)
            self._streams[name] = stream
            return addr
        if kind != "udp":
            raise ValueError(f"transport {transport!r} is not available (udp, tcp, tls)")
        udp = UdpTransport(self._on_datagram)
        addr = await udp.bind(host, port, reuse_port=reuse_port, sock=sock)
        self._udp.append(udp)
        # a burst arriving while the loop is busy (a batch of timers, a GC pass) waits in the
        # kernel instead of being dropped and retransmitted 500 ms later
        udp.set_buffer_sizes(UDP_BUFFER, UDP_BUFFER)
        if self.core.overload is not None and self._probe is None:
            await self._bind_probe(addr)
        return addr

    async def _bind_probe(self, addr: tuple[str, int]) -> None:
        """A probe socket whose datagrams to ``addr`` reach this process (see the module
        docstring: with SO_REUSEPORT siblings, the kernel picks the receiver by source port)."""
        assert self._loop is not None
        for _ in range(PROBE_PORT_TRIES):
            probe = UdpTransport(lambda data, flow: None)
            self._probe_from = await probe.bind(addr[0], 0)
            self._probe_to = addr
            self._probe_back = self._loop.create_future()
            probe.send(self._probe_data, addr)
            try:
                async with asyncio.timeout(0.2):
                    await self._probe_back
            except TimeoutError:
                probe.close()
                continue
            finally:
                self._probe_back = None
            self._probe = probe
            self._arm()
            return
        self._probe_from = None
        _log.warning("no probe port reaches this worker: overload control measures nothing")

    def _new_stream(self, name: str, server_ssl: ssl.SSLContext | None) -> StreamTransport:
        return StreamTransport(
            name,
            self._on_stream_message,
            self._on_stream_error,
            server_ssl=server_ssl,
            client_ssl=self.client_ssl if name == "TLS" else None,
        )

    @property
    def streams(self) -> Mapping[str, StreamTransport]:
        """The stream listeners by transport (``"TCP"``, ``"TLS"``): their bounds and counters."""
        return self._streams

    def connection(self, peer: Peer) -> StreamConnection | None:
        """The open TCP/TLS connection with ``peer`` (e.g. the flow a UE registered from),
        None for UDP or when it is closed."""
        stream = self._streams.get(peer.transport.upper())
        if stream is None:
            return None
        return stream.lookup(Flow(peer.transport.upper(), (peer.host, peer.port)))

    def peer_certificate(self, peer: Peer) -> dict[str, Any] | None:
        """The verified client certificate of a TLS peer (``ssl.SSLSocket.getpeercert()``
        form), None without a TLS connection or when the listener did not ask for one."""
        conn = self.connection(peer)
        if conn is None or peer.transport.lower() != "tls":
            return None
        cert = conn.get_extra_info("peercert")
        return cert if isinstance(cert, dict) and cert else None

    def resume(self, key: int, decision: Forward | Respond) -> None:
        """Carry out a deferred routing decision (see :class:`~ims.sip.proxy.routing.Defer`)."""
        now = self._now()
        self._act(self.core.resume(key, decision, now), now)
        self._arm()

    def release(self, key: int, response: Response | None = None) -> None:
        """Send the responses held by the core's response processor (see ``core.release``)."""
        now = self._now()
        self._act(self.core.release(key, response, now), now)
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for udp in self._udp:
            udp.close()
        self._udp.clear()
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        for stream in self._streams.values():
            self._spawn(stream.close())
        self._streams.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- input ----------------------------------------------------------------------------
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time() if self._clock is None else self._clock()

    def _on_datagram(self, data: bytes, flow: Flow) -> None:
        now = self._now()
        if flow.remote == self._probe_from and data == self._probe_data:
            overload = self.core.overload
            if self._probe_back is not None and not self._probe_back.done():
                self._probe_back.set_result(None)
            elif overload is not None:
                overload.probe_returned(now)
            return
        gate = self._gate
        if gate is not None:
            verdict = gate.screen(data, flow.remote, now)
            if verdict is not None:
                self.core.stats["shed"] += 1
                if isinstance(verdict, Shed):
                    self._send_shed(verdict, flow.local)
                return
        token = begin_message()  # the Call-ID tagged by _events ends with this datagram
        try:
            self._events(self.layer.receive_bytes(data, flow, now), now)
        except Exception as exc:  # one bad message must never stop the element
            _log.warning("processing failed", error=repr(exc), peer=str(flow))
        finally:
            end_message(token)
        self._arm()

    def _events(self, events: list[Event], now: float) -> None:
        core = self.core
        for ev in events:
            tag_message(sip_event=ev)
            if isinstance(ev, SendMessage):
                self._send(ev)
            elif isinstance(ev, ResponseReceived):
                tx = ev.transaction
                if tx.method == "CANCEL":
                    continue  # the 200 to our CANCEL: nothing to do
                self._act(
                    core.receive_response(ev.response, tx.branch, now, source=ev.flow.peer),
                    now,
                )
            elif isinstance(ev, RequestReceived):
                self._act(
                    core.receive_request(
                        ev.request,
                        ev.flow.peer,
                        now,
                        transaction=ev.transaction,
                        cancelled=ev.cancelled,
                        checked=True,
                    ),
                    now,
                )
            elif isinstance(ev, AckReceived):
                self._act(core.receive_request(ev.request, ev.flow.peer, now, checked=True), now)
            elif isinstance(ev, StrayResponse):
                self._act(core.receive_stray_response(ev.response, now, source=ev.flow.peer), now)
            elif isinstance(ev, TransactionTimedOut | TransportFailed):
                tx2 = ev.transaction
                if isinstance(tx2, ClientTransaction) and tx2.method != "CANCEL":
                    status = 408 if isinstance(ev, TransactionTimedOut) else 503
                    self._act(core.branch_failed(tx2.branch, status, now), now)
            elif isinstance(ev, TransactionTerminated):
                tx3 = ev.transaction
                if isinstance(tx3, ClientTransaction) and self._clients.get(tx3.branch) is tx3:
                    del self._clients[tx3.branch]

    def _on_stream_message(
        self, message: Request | Response, flow: Flow, raw: bytes | None
    ) -> None:
        now = self._now()
        token = begin_message(sip_event=message)
        try:
            self._events(self.layer.receive(message, flow, now, raw=raw), now)
        except Exception as exc:  # one bad message must never stop the element
            _log.warning("processing failed", error=repr(exc), peer=str(flow))
        finally:
            end_message(token)
        self._arm()

    def _on_stream_error(self, exc: SipParseError, raw: bytes, flow: Flow) -> None:
        """A framing error on a TCP connection: the layer answers it on that connection when
        a Via is recoverable (the transport closes the connection afterwards)."""
        now = self._now()
        try:
            self._events(self.layer.refuse(raw, flow, exc), now)
        except Exception as exc2:
            _log.warning("processing failed", error=repr(exc2), peer=str(flow))

    # -- output ---------------------------------------------------------------------------
    def _act(self, actions: list[Action], now: float) -> None:
        layer = self.layer
        for a in actions:
            if isinstance(a, ForwardRequest):
                flow = self._flow(a.peer)
                if flow is None:
                    self.stats["unresolved"] += 1
                    self._act(self.core.branch_failed(a.branch, 503, now), now)
                    continue
                sender = self._sender.get(flow.transport)
                if sender is not None:
                    flow = Flow(flow.transport, flow.remote, sender)
                tx, events = layer.send_request(a.request, flow, now)
                self._clients[a.branch] = tx
                self._events(events, now)
            elif isinstance(a, SendResponse):
                self._respond(a.transaction, a.response, a.peer, now)
            elif isinstance(a, SendStateless):
                flow = self._flow(a.peer)
                if flow is not None:
                    self._events(layer.send_stateless(a.message, flow), now)
            elif isinstance(a, CancelBranch):
                ctx = self._clients.get(a.branch)
                if ctx is not None:
                    self._events(layer.cancel(ctx, now), now)

    def _respond(self, tx: object | None, response: Response, peer: Peer, now: float) -> None:
        if isinstance(tx, ServerTransaction) and not tx.terminated:
            try:
                self._events(self.layer.respond(tx, response, now), now)
                return
            except TransactionProtocolError:
                pass  # e.g. a 2xx after the transaction ended: send it statelessly
        flow = self._flow(peer)
        if flow is not None:
            self._events(self.layer.send_stateless(response, flow), now)

    def _flow(self, peer: Peer) -> Flow | None:
        host = peer.host
        if not _is_ip(host):
            resolved = self.hosts.get(host.lower())
            if resolved is None:
                return None
            host = resolved
        if self.allowed is not None and not self._allowed(host):
            return None
        return Flow(peer.transport.upper(), (host, peer.port))

    def may_send_to(self, host: str) -> bool:
        """Whether a next hop at ``host`` (an IP address) is inside ``allowed_networks``."""
        return self.allowed is None or (_is_ip(host) and self._allowed(host))

    def _allowed(self, host: str) -> bool:
        ok = self._allowed_cache.get(host)
        if ok is None:
            ip = ipaddress.ip_address(host)
            ok = any(ip in net for net in self.allowed or ())
            if len(self._allowed_cache) < 4096:
                self._allowed_cache[host] = ok
        return ok

    def _send(self, ev: SendMessage) -> None:
        flow = ev.flow
        if flow.transport != "UDP":
            self._send_stream(ev)
            return
        if not self._udp:
            self._send_failed(ev, "no UDP transport")
            return
        udp = self._udp[0]
        if flow.local is not None:
            for u in self._udp:
                if u.local == flow.local:
                    udp = u
                    break
        remote = flow.remote
        if not _is_ip(remote[0]):
            resolved = self.hosts.get(remote[0].lower())
            if resolved is not None:
                remote = (resolved, remote[1])
            else:
                self._send_failed(ev, f"cannot resolve {remote[0]!r} (no DNS in the lab)")
                return
        if self.allowed is not None and not self._allowed(remote[0]):
            # e.g. a response routed by a Via maddr naming a host outside the lab
            self._send_failed(ev, f"{remote[0]} is outside the allowed networks")
            return
        try:
            udp.send(ev.data, remote)
        except (SipTransportError, ValueError) as exc:
            self._send_failed(ev, str(exc))

    def _send_shed(self, shed: Shed, local: tuple[str, int] | None) -> None:
        """A gate's stateless 503, from the socket the request came in on."""
        if self.allowed is not None and not self._allowed(shed.to[0]):
            return
        for u in self._udp:
            if u.local == local:
                try:
                    u.send(shed.response, shed.to)
                except SipTransportError:
                    self.stats["send_errors"] += 1
                return

    def _send_stream(self, ev: SendMessage) -> None:
        stream = self._streams.get(ev.flow.transport)
        if stream is None and ev.flow.transport == "TLS" and self.client_ssl is not None:
            stream = self._streams["TLS"] = self._new_stream("TLS", None)  # client side only
        if stream is None:
            self._send_failed(ev, f"no {ev.flow.transport} transport")
            return
        conn = stream.lookup(ev.flow)
        if conn is not None:
            try:
                conn.send(ev.data)
                return
            except SipTransportError as exc:
                self._send_failed(ev, str(exc))
                return
        if not _is_ip(ev.flow.remote[0]):
            self._send_failed(ev, f"cannot resolve {ev.flow.remote[0]!r} (no DNS in the lab)")
            return
        self._spawn(self._connect_and_send(stream, ev))

    async def _connect_and_send(self, stream: StreamTransport, ev: SendMessage) -> None:
        """§18.1.1 / §18.2.2: open (or reuse) a connection, then send; failures go to the
        transaction as transport errors (a branch then ends with 503)."""
        try:
            conn = await stream.connect(ev.flow.remote)
            conn.send(ev.data)
        except SipTransportError as exc:
            self._send_failed(ev, str(exc))
            self._arm()

    def _send_failed(self, ev: SendMessage, reason: str) -> None:
        self.stats["send_errors"] += 1
        if ev.transaction is not None:
            now = self._now()
            self._events(self.layer.transport_error(ev.transaction, reason, now), now)

    # -- timers ---------------------------------------------------------------------------
    def _arm(self) -> None:
        t1 = self.layer.get_timer()
        t2 = self.core.get_timer()
        at = t1 if t2 is None else (t2 if t1 is None else min(t1, t2))
        overload = self.core.overload
        if self._probe is not None and overload is not None:
            t3 = overload.next_probe()
            at = t3 if at is None else min(at, t3)
        if at is None:
            return
        # fire in 10 ms buckets: thousands of transactions end per second (timers D, J, K,
        # L); one loop callback serves all that fall due together (a timer firing up to
        # 10 ms late is far below T1's 500 ms granularity)
        at = math.ceil(at * 100.0) / 100.0
        if self._timer is not None and self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = at
        if self._clock is not None:
            # a deadline on another clock: the same distance from now on the loop's clock
            at = self._loop.time() + max(0.0, at - self._clock())
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._now()
        try:
            self._events(self.layer.handle_timer(now), now)
            self._act(self.core.handle_timer(now), now)
            self._send_probe(now)
        except Exception as exc:
            _log.warning("timer processing failed", error=repr(exc))
        self._arm()

    def _send_probe(self, now: float) -> None:
        overload = self.core.overload
        if self._probe is None or self._probe_to is None or overload is None:
            return
        if not overload.probe_due(now):
            return
        try:
            self._probe.send(self._probe_data, self._probe_to)
        except SipTransportError:
            overload.probe_lost()
            return
        overload.probe_sent(now)


UDP_BUFFER = 4 * 1024 * 1024
#: probe ports tried before giving up (with N workers, each try reaches us with chance 1/N)
PROBE_PORT_TRIES = 32


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
