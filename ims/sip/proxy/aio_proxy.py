"""asyncio adapter: the sans-I/O proxy core on the transaction layer and real sockets.

:class:`ProxyServer` owns one :class:`~ims.sip.transaction.TransactionLayer` and the transports
it listens on (UDP from :mod:`ims.sip.transport.udp`; TCP/TLS when that package provides them).
It is the only place where time is read (``loop.time()``) and bytes move:

    datagram -> layer.receive_bytes -> events -> ProxyCore -> actions -> layer -> SendMessage
                                                                                 -> socket

Events map to the core one to one: ``RequestReceived``/``AckReceived`` ->
``receive_request``; ``ResponseReceived`` -> ``receive_response`` with the branch (the client
transaction's branch is the key the core chose); ``StrayResponse`` ->
``receive_stray_response``; ``TransactionTimedOut`` / ``TransportFailed`` of a client
transaction -> ``branch_failed`` with 408 / 503. One ``loop.call_at`` timer is kept armed at
the earlier of the layer's and the core's next deadline (aioquic's pattern).

Why not :class:`ims.sip.transport.endpoint.SipEndpoint`: a proxy needs the raw per-branch
events (every provisional, CANCEL of a client transaction, stray 2xx), and at the time of
writing the endpoint exposed a UA-style ``await request()`` instead. Driving the layer directly
also keeps the hot path short (no task per branch). Host names in next hops are resolved from
a static ``hosts`` map only: the lab never sends DNS queries off the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping

from ims.log import get_logger
from ims.sip.message import Response
from ims.sip.proxy.core import (
    Action,
    CancelBranch,
    ForwardRequest,
    ProxyCore,
    SendResponse,
    SendStateless,
)
from ims.sip.proxy.hooks import Peer
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
from ims.sip.transport.errors import SipTransportError
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
    ) -> None:
        self.core = core
        self.layer = TransactionLayer(timers or TimerConfig(trying_delay=None))
        self.hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self._udp: list[UdpTransport] = []
        self._clients: dict[str, ClientTransaction] = {}  # branch -> INVITE/non-INVITE client tx
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = {"send_errors": 0, "unresolved": 0}

    # -- set-up ---------------------------------------------------------------------------
    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        self._loop = asyncio.get_running_loop()
        kind = transport.lower()
        if kind != "udp":
            raise ValueError(f"transport {transport!r} is not available in this build")
        udp = UdpTransport(self._on_datagram)
        addr = await udp.bind(host, port)
        self._udp.append(udp)
        return addr

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for udp in self._udp:
            udp.close()
        self._udp.clear()

    # -- input ----------------------------------------------------------------------------
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _on_datagram(self, data: bytes, flow: Flow) -> None:
        now = self._now()
        try:
            self._events(self.layer.receive_bytes(data, flow, now), now)
        except Exception as exc:  # one bad message must never stop the element
            _log.warning("processing failed", error=repr(exc), peer=str(flow))
        self._arm()

    def _events(self, events: list[Event], now: float) -> None:
        core = self.core
        for ev in events:
            if isinstance(ev, SendMessage):
                self._send(ev)
            elif isinstance(ev, ResponseReceived):
                tx = ev.transaction
                if tx.method == "CANCEL":
                    continue  # the 200 to our CANCEL: nothing to do
                self._act(
                    core.receive_response(ev.response, tx.branch, now, source=_peer(ev.flow)),
                    now,
                )
            elif isinstance(ev, RequestReceived):
                self._act(
                    core.receive_request(
                        ev.request,
                        _peer(ev.flow),
                        now,
                        transaction=ev.transaction,
                        cancelled=ev.cancelled,
                    ),
                    now,
                )
            elif isinstance(ev, AckReceived):
                self._act(core.receive_request(ev.request, _peer(ev.flow), now), now)
            elif isinstance(ev, StrayResponse):
                self._act(core.receive_stray_response(ev.response, now, source=_peer(ev.flow)), now)
            elif isinstance(ev, TransactionTimedOut | TransportFailed):
                tx2 = ev.transaction
                if isinstance(tx2, ClientTransaction) and tx2.method != "CANCEL":
                    status = 408 if isinstance(ev, TransactionTimedOut) else 503
                    self._act(core.branch_failed(tx2.branch, status, now), now)
            elif isinstance(ev, TransactionTerminated):
                tx3 = ev.transaction
                if isinstance(tx3, ClientTransaction) and self._clients.get(tx3.branch) is tx3:
                    del self._clients[tx3.branch]

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
        try:
            ipaddress.ip_address(host)
        except ValueError:
            resolved = self.hosts.get(host.lower())
            if resolved is None:
                return None
            host = resolved
        return Flow(peer.transport.upper(), (host, peer.port))

    def _send(self, ev: SendMessage) -> None:
        flow = ev.flow
        if flow.transport != "UDP" or not self._udp:
            self._send_failed(ev, f"no {flow.transport} transport")
            return
        udp = self._udp[0]
        if flow.local is not None:
            for u in self._udp:
                if u.local == flow.local:
                    udp = u
                    break
        try:
            udp.send(ev.data, flow.remote)
        except SipTransportError as exc:
            self._send_failed(ev, str(exc))

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
        if at is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._now()
        try:
            self._events(self.layer.handle_timer(now), now)
            self._act(self.core.handle_timer(now), now)
        except Exception as exc:
            _log.warning("timer processing failed", error=repr(exc))
        self._arm()


def _peer(flow: Flow) -> Peer:
    return Peer(transport=flow.transport.lower(), host=flow.remote[0], port=flow.remote[1])
