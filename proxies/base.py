"""The common async proxy behind the P-CSCF, the S-CSCF and the Internet proxy (RFC 3261 §16).

A transaction-stateful proxy on :class:`ims.sip.aio.endpoint.SipEndpoint`: each new request
arrives as a server transaction; the element decides (:meth:`SipProxy.decide`, async, so it may
talk to the media anchor) to answer it or to forward it; a forwarded request runs as one client
transaction whose provisional and final responses are relayed back in order, each through the
element's response processing (again async: SDP anchoring of answers). The proxy:

* checks Max-Forwards (483, §16.3) and pops its own Route entry (§16.4, loose routing);
* forwards along the remaining Route set when there is one (§16.5: the request is going elsewhere);
* adds Record-Route when the element asks (§16.6 step 4), decrements Max-Forwards, pushes its Via;
* relays CANCEL to the pending branch (§16.10) and forwards ACKs to 2xx and stray 2xx
  retransmissions statelessly (§16.7, §16.11);
* maps a client transaction timeout to 408 and a transport failure to 503 (§16.7 step 6).

Why not the generic proxy core of ``ims.sip.proxy``: its ``Defer``/``resume`` and deferring
response processor now cover the media-anchor round trips, but it has no TLS listener (the
P-CSCF's UE hop), its ``Forward`` cannot remove or replace headers or the body (SDP anchoring,
Service-Route/Path instead of Route, PAI at the trust boundary), and it forwards ACKs by
Route/Request-URI with no callback (the P-CSCF sends them on the UE's registered flow). The
details and what the core would need are in ``docs/ims-network.md`` (Design choices).

Every message in and out passes the element's :class:`~proxies.hooks.SipHooks` (through the
endpoint's filter), with the direction, peer, transport and element name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ims.log import get_logger
from ims.sip.aio.endpoint import SipEndpoint
from ims.sip.grammar import Params
from ims.sip.headers import NameAddr, Via
from ims.sip.message import Request, Response, make_response, new_branch
from ims.sip.trust import Trust, TrustPolicy, strip_asserted_identity
from ims.sip.uri import SipUri, TelUri, Uri
from proxies.hooks import Direction, SipHooks, SipMessageEvent, _Drop

_log = get_logger("proxies.base")

#: live REGISTER transactions without credentials one source address may hold at an element
#: facing users directly (P-CSCF, Internet proxy); the rest get 503 + Retry-After (Timer J
#: keeps each for 32 s on UDP; issue 11, finding 9)
UNAUTH_REGISTERS_PER_SOURCE = 16

ResponseProcessor = Callable[[Response], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class Hop:
    """Where to send a message: host, port and transport (``udp``, ``tcp``, ``tls``)."""

    host: str
    port: int
    transport: str = "udp"

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @classmethod
    def from_uri(cls, uri: Uri) -> Hop:
        if not isinstance(uri, SipUri):
            raise ValueError(f"cannot send to a non-SIP URI {uri.encode()}")
        transport = (uri.transport or ("tls" if uri.secure else "udp")).lower()
        default = 5061 if transport == "tls" else 5060
        host = uri.maddr or uri.host
        return cls(host.strip("[]"), uri.port or default, transport)


@dataclass(slots=True, kw_only=True)
class Forward:
    """Forward ``request`` (Request-URI and Route set already set by the element) to ``hop``."""

    request: Request
    hop: Hop
    record_route: bool = False
    on_response: ResponseProcessor | None = None  # returns the response to relay, or None = drop


Decision = Forward | Response


@dataclass(slots=True)
class _Pending:
    forward: Forward
    sent: Request | None = None
    cancelled: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    final_sent: bool = False


def _flow_transport(flow: Any) -> str:
    return str(getattr(flow, "transport", "udp")).lower()


def _flow_remote(flow: Any) -> tuple[str, int]:
    remote = getattr(flow, "remote", ("0.0.0.0", 0))
    return (str(remote[0]), int(remote[1]))


class SipProxy:
    """Base of every SIP network element; subclasses implement :meth:`decide`."""

    role = "proxy"

    def __init__(
        self,
        name: str,
        address: str,
        *,
        sip_port: int = 5060,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tcp: bool = True,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.name = name
        #: who this element trusts, by configured address and port (``ims.sip.trust``)
        self.trust = trust or TrustPolicy()
        self.address = address
        self.sip_port = sip_port
        self.tls_port = tls_port if ssl_context is not None else None
        self.ssl_context = ssl_context
        self.tcp = tcp
        self.sip_hooks = SipHooks(f"{name}.sip")
        # auto_cancel off: a CANCEL reaches the proxy, which relays it downstream (§16.10)
        self.endpoint = SipEndpoint(name=name, auto_cancel=False)
        self._pending: dict[int, _Pending] = {}  # id(server transaction) -> pending branch
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- life cycle --------------------------------------------------------------------
    async def start(self) -> None:
        ep = self.endpoint
        ep.add_filter(self._filter)
        ep.on_request(self._on_request)
        ep.on_ack(self._on_ack)
        ep.on_stray_response(self._on_stray_response)
        await ep.listen("udp", self.address, self.sip_port)
        if self.tcp:
            await ep.listen("tcp", self.address, self.sip_port)
        if self.ssl_context is not None and self.tls_port is not None:
            await ep.listen("tls", self.address, self.tls_port, ssl_context=self.ssl_context)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.endpoint.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("proxy task failed", element=self.name, error=repr(task.exception()))

    # --- hooks -------------------------------------------------------------------------
    def _filter(self, direction: str, message: Any, flow: Any) -> Any:
        if not self.sip_hooks:
            return message
        out = self.sip_hooks.process(
            SipMessageEvent(
                element=self.name,
                role=self.role,
                direction=Direction(direction),
                peer=_flow_remote(flow),
                transport=_flow_transport(flow),
                message=message,
            )
        )
        return None if isinstance(out, _Drop) else out

    # --- trust (RFC 3325 §5; docs/security.md) ---------------------------------------------
    def classify(self, flow: Any) -> Trust:
        """The trust level of the sender of a message received on ``flow`` (by configured
        address and port, or by the names in the certificate of a TLS peer)."""
        return self.trust.classify(flow, self._tls_names(flow))

    def _tls_names(self, flow: Any) -> list[str]:
        if str(getattr(flow, "transport", "")).upper() != "TLS" or not (
            self.trust.trusted_names or self.trust.known_names
        ):
            return []
        stream = self.endpoint.streams.get("TLS")
        conn = stream.lookup(flow) if stream is not None else None
        cert = conn.get_extra_info("peercert") if conn is not None else None
        if not isinstance(cert, dict):
            return []  # no verified client certificate: no TLS identity
        names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
        for rdn in cert.get("subject", ()):
            names += [v for k, v in rdn if k == "commonName"]
        return names

    def may_relay(self, request: Request, flow: Any, own_route: NameAddr | None) -> bool:
        """May a request that carries a route set or a To tag (or an ACK) be relayed along it?

        Default: a node of the Trust Domain may route through us; anyone else only along a
        route set we are on (our own Route entry, i.e. a dialog we Record-Routed). Elements
        narrow it further (the Internet proxy checks the next hop)."""
        return own_route is not None or self.classify(flow) is Trust.TRUSTED

    # --- identity ------------------------------------------------------------------------
    def is_me(self, uri: Uri) -> bool:
        if not isinstance(uri, SipUri):
            return False
        ports = {self.sip_port, self.tls_port, None}
        return uri.host.strip("[]") == self.address and uri.port in ports

    def my_uri(self, user: str | None = None, transport: str | None = None) -> SipUri:
        params = Params.of(lr=None)
        port = self.sip_port
        if transport == "tls" and self.tls_port is not None:
            port = self.tls_port
            params = params.set("transport", "tls")
        return SipUri(host=self.address, user=user, port=port, params=params)

    def my_name_addr(self, user: str | None = None, transport: str | None = None) -> str:
        return f"<{self.my_uri(user, transport).encode()}>"

    # --- request processing ------------------------------------------------------------
    async def _on_request(self, ctx: Any) -> None:
        request: Request = ctx.request
        if request.method == "CANCEL":
            await self._on_cancel(ctx)
            return
        try:
            mf = request.max_forwards
            if mf is not None and mf <= 0:
                ctx.respond(make_response(request, 483))
                return
            if self.classify(ctx.flow) is not Trust.TRUSTED:
                # §5: an identity asserted by a node we do not trust is removed on ingress;
                # only an element that authenticated the user may insert one again
                strip_asserted_identity(request)
            own_route = self.pop_own_route(request)
            decision = await self.decide(request, ctx.flow, own_route)
        except Exception as exc:
            _log.warning("request processing failed", element=self.name, error=repr(exc))
            status = getattr(exc, "status_hint", None) or getattr(exc, "status", None) or 500
            ctx.respond(make_response(request, int(status)))
            return
        if isinstance(decision, Response):
            ctx.respond(decision)
            return
        await self._forward(ctx, decision)

    def pop_own_route(self, request: Request) -> NameAddr | None:
        """§16.4: remove the top Route when it names this element; return it."""
        routes = request.routes
        if routes and self.is_me(routes[0].uri):
            request.headers.pop_first_element("Route")
            return routes[0]
        return None

    def route_set_hop(self, request: Request) -> Hop | None:
        """The next hop from the remaining Route set (the request goes elsewhere), or None."""
        routes = request.routes
        return Hop.from_uri(routes[0].uri) if routes else None

    async def decide(self, request: Request, flow: Any, own_route: NameAddr | None) -> Decision:
        """Subclasses: answer (a Response) or forward (a Forward)."""
        hop = self.route_set_hop(request)
        if hop is None:
            return make_response(request, 404)
        return Forward(request=request, hop=hop)

    def prepare(self, request: Request, hop: Hop, record_route: bool) -> Request:
        """The copy to send: Max-Forwards decremented, Record-Route and our Via added."""
        out = request.copy()
        if not self.trust.trusts_hop(hop.host, hop.port) and _privacy_id(out):
            # RFC 3325 §5: towards a node we do not trust, "Privacy: id" removes the identity
            strip_asserted_identity(out)
        mf = out.max_forwards
        out.headers.set("Max-Forwards", str(69 if mf is None else mf - 1))
        if record_route:
            out.headers.insert_first("Record-Route", self.my_name_addr())
        port = self.tls_port if hop.transport == "tls" and self.tls_port else self.sip_port
        via = Via(
            hop.transport.upper(), self.address, port, Params.of(branch=new_branch(), rport=None)
        )
        out.headers.insert_first("Via", via.encode())
        return out

    async def _forward(self, ctx: Any, fwd: Forward) -> None:
        request: Request = ctx.request
        pending = _Pending(forward=fwd)
        key = id(ctx.transaction)
        self._pending[key] = pending
        out = self.prepare(fwd.request, fwd.hop, fwd.record_route)
        pending.sent = out

        def provisional(resp: Response) -> None:
            if resp.status != 100:
                self._spawn(self._relay(ctx, pending, resp))

        try:
            final = await self.endpoint.request(
                out,
                destination=fwd.hop.addr,
                transport=fwd.hop.transport,
                on_provisional=provisional,
            )
        except Exception as exc:  # SipTimeoutError -> 408, SipTransportError -> 503
            name = type(exc).__name__
            status = 408 if "Timeout" in name else 503
            _log.info("forward failed", element=self.name, status=status, error=repr(exc))
            async with pending.lock:
                if not pending.final_sent:
                    pending.final_sent = True
                    ctx.respond(make_response(request, status))
            self._pending.pop(key, None)
            return
        await self._relay(ctx, pending, final)
        self._pending.pop(key, None)

    async def _relay(self, ctx: Any, pending: _Pending, resp: Response) -> None:
        async with pending.lock:  # FIFO: responses leave in the order they arrived
            if pending.final_sent:
                return
            resp = resp.copy()
            resp.headers.pop_first_element("Via")
            hop = pending.forward.hop
            if not self.trust.trusts_hop(hop.host, hop.port):
                strip_asserted_identity(resp)  # §5 applies to responses too
            if pending.forward.on_response is not None:
                processed = await pending.forward.on_response(resp)
                if processed is None:
                    return
                resp = processed
            if resp.is_final:
                pending.final_sent = True
            ctx.respond(resp)

    async def _on_cancel(self, ctx: Any) -> None:
        request: Request = ctx.request
        if ctx.cancelled is None:
            ctx.respond(make_response(request, 481))
            return
        ctx.respond(make_response(request, 200))
        pending = self._pending.get(id(ctx.cancelled.transaction))
        if pending is None or pending.sent is None:
            return
        pending.cancelled = True
        sent = pending.sent
        cancel = Request("CANCEL", sent.uri)
        for name in ("Via", "Route", "From", "To", "Call-ID", "Max-Forwards"):
            for value in sent.headers.get_all(name):
                if name == "Via":
                    cancel.headers.add(name, value)
                    break  # only our own (top) Via, §9.1
                cancel.headers.add(name, value)
        cseq = sent.cseq
        assert cseq is not None
        cancel.headers.add("CSeq", f"{cseq.seq} CANCEL")
        hop = pending.forward.hop
        with contextlib.suppress(Exception):
            await self.endpoint.request(cancel, destination=hop.addr, transport=hop.transport)

    # --- ACK to 2xx and stray responses (stateless, §16.11) ----------------------------
    async def ack_hop(self, request: Request, flow: Any) -> Hop | None:
        """Where an ACK to a 2xx goes when no Route remains: its Request-URI (the remote
        target), unless that is us (a P-CSCF overrides this with the UE's flow)."""
        if self.is_me(request.uri):
            return None
        try:
            return Hop.from_uri(request.uri)
        except ValueError:
            return None

    async def _on_ack(self, request: Request, flow: Any) -> None:
        if self.classify(flow) is not Trust.TRUSTED:
            strip_asserted_identity(request)
        own_route = self.pop_own_route(request)
        if not self.may_relay(request, flow, own_route):
            return  # an ACK is never answered: a relay we are not entitled to is dropped
        hop = self.route_set_hop(request) or await self.ack_hop(request, flow)
        if hop is None:
            return
        out = self.prepare(request, hop, record_route=False)
        self.endpoint.send_stateless(out, hop.addr, transport=hop.transport)

    def stray_2xx(self, response: Response) -> Response | None:
        """An element's say on a 2xx retransmission it relays statelessly (our Via already
        removed): the response to send, or None to drop it (the P-CSCF anchors its SDP)."""
        return response

    def _on_stray_response(self, response: Response, flow: Any) -> None:
        vias = response.vias
        if len(vias) < 2 or vias[0].host != self.address:
            return
        cseq = response.cseq
        if response.status // 100 != 2 or cseq is None or cseq.method != "INVITE":
            return  # only 2xx retransmissions to INVITE outlive our transaction (§16.7)
        out = response.copy()
        out.headers.pop_first_element("Via")
        processed = self.stray_2xx(out)
        if processed is None:
            return
        out = processed
        nxt = vias[1]
        host = nxt.received or nxt.host
        port = nxt.rport or nxt.port or (5061 if nxt.transport.upper() == "TLS" else 5060)
        self.endpoint.send_stateless(out, (host, port), transport=nxt.transport.lower())


def _privacy_id(message: Request) -> bool:
    values = ",".join(message.headers.get_all("Privacy")).replace(";", ",")
    return any(v.strip().lower() == "id" for v in values.split(","))


def uri_domain(uri: Uri) -> str | None:
    """The domain a Request-URI belongs to (host of a SIP URI), lower-cased."""
    if isinstance(uri, SipUri):
        return uri.host.lower()
    return None


def tel_number(uri: Uri) -> str | None:
    """A global number from a tel URI or a ``sip:+num@...;user=phone`` URI."""
    if isinstance(uri, TelUri):
        return "+" + uri.digits.lstrip("+") if uri.is_global else None
    if isinstance(uri, SipUri) and uri.user_param == "phone" and uri.user:
        return uri.user
    return None
