"""An IMS network element as a router on the RFC 3261 §16 proxy core (``ims.sip.proxy``).

What every element shares, and nothing more: the sans-I/O :class:`~ims.sip.proxy.ProxyCore`
(validation, Max-Forwards, loop detection, Route pre-processing, Record-Route, Via, forking,
best response, CANCEL, stateless ACK/2xx forwarding, Timer C, 408/503 for failed branches by
the transaction layer's typed events) with the element as its :class:`~ims.sip.proxy.Router`,
run on sockets by the core's asyncio adapter :class:`~ims.sip.proxy.ProxyServer` (UDP, TCP,
TLS). The element decides in ``route(request, ctx)`` with ``ctx.now``; it never reads a clock.

The trust rules of ``docs/security.md`` (RFC 3325, ``ims.sip.trust``):

* ingress: ``P-Asserted-Identity`` from a node outside the Trust Domain is removed by the core
  before routing (``ProxyConfig.trust``), on requests and on responses;
* :meth:`Element.classify`: by configured address *and* port, or the names a verified TLS
  client certificate proves;
* :meth:`Element.may_relay`: a request with a To tag or a route set (or an ACK) is relayed
  only for a Trust Domain node or along a route set this element Record-Routed;
* egress (:meth:`Element.forward`): towards a node outside the Trust Domain, ``Privacy: id``
  removes the asserted identity (RFC 3325 §5).

Every message in and out passes the core's hook chain :attr:`Element.sip_hooks` (the one hook
mechanism, :mod:`ims.hooks`): the LI IRI-POI, the hop-by-hop MIKEY function of the P-CSCF and
test observers attach there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence

from ims.sip.aio import ProxyServer
from ims.sip.message import Request
from ims.sip.proxy import (
    Decision,
    Forward,
    MessageHooks,
    Peer,
    ProxyConfig,
    ProxyCore,
    Respond,
    RoutingContext,
    Target,
    uri_peer,
)
from ims.sip.transport.flow import Flow
from ims.sip.trust import Trust, TrustPolicy
from ims.sip.uri import SipUri, TelUri, Uri


class Element:
    """The proxy core, its asyncio server and the trust rules; subclasses are routers."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        role: str,
        sip_port: int = 5060,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tcp: bool = True,
        trust: TrustPolicy | None = None,
        domains: Sequence[str] = (),
        allowed_networks: Sequence[str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        #: the clock the core runs on (``ProxyServer(clock=)``): None = the loop's monotonic
        #: clock; an element keeping state in a shared store passes the store's wall clock
        #: (``Store.now``), so ``ctx.now`` and the stored expiries are on one clock
        self.clock = clock
        self.role = role
        self.address = address
        self.sip_port = sip_port
        self.tls_port = tls_port if ssl_context is not None else None
        self.ssl_context = ssl_context
        self.tcp = tcp
        #: who this element trusts, by configured address and port (``ims.sip.trust``)
        self.trust = trust or TrustPolicy()
        #: where next hops may be (a lab safety net, ``ProxyServer(allowed_networks=)``)
        self.allowed_networks = list(allowed_networks) if allowed_networks is not None else None
        local = [Peer(transport="udp", host=address, port=sip_port)]
        if tcp:
            local.append(Peer(transport="tcp", host=address, port=sip_port))
        if self.tls_port is not None:
            local.append(Peer(transport="tls", host=address, port=self.tls_port))
        self.core = ProxyCore(
            ProxyConfig(
                name=name,
                role=role,
                local=tuple(local),
                domains=frozenset(d.lower() for d in domains),
                record_route=False,  # every decision says whether it Record-Routes
                trust=self.trust,
            ),
            router=self,
        )
        self.core.stateless_router = self.stateless_route
        self.server: ProxyServer | None = None

    @property
    def sip_hooks(self) -> MessageHooks:
        """The element's SIP hook point (the core's chain): observers, the IRI-POI, rewriters."""
        return self.core.hooks

    # --- life cycle --------------------------------------------------------------------
    async def start(self) -> None:
        server = ProxyServer(self.core, allowed_networks=self.allowed_networks, clock=self.clock)
        self.server = server
        await server.listen("udp", self.address, self.sip_port)
        if self.tcp:
            await server.listen("tcp", self.address, self.sip_port)
        if self.ssl_context is not None and self.tls_port is not None:
            await server.listen("tls", self.address, self.tls_port, ssl_context=self.ssl_context)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def now(self) -> float:
        """The clock the core runs on (its adapter's ``loop.time()``, or ``clock``), for
        callers outside a routing decision (a routing decision has ``ctx.now``) -- tests,
        asynchronous anchor work. Nothing on the routing path calls it."""
        if self.clock is not None:
            return self.clock()
        return asyncio.get_running_loop().time()

    # --- routing (subclasses) ----------------------------------------------------------
    def route(self, request: Request, ctx: RoutingContext) -> Decision:
        """§16.5: the element's target set or local answer (``Defer()``: later, through
        ``server.resume``). The base element relays along the Route set only."""
        if route_hop(request) is None:
            return Respond(status=404)
        if not self.may_relay(request, ctx):
            return Respond(status=403, reason="Not entitled to route through this element")
        return self.forward(request, Target(uri=request.uri))

    def stateless_route(self, request: Request, ctx: RoutingContext) -> Target | Forward | None:
        """An ACK for a 2xx or an unmatched CANCEL (§16.11): relayed by the default rule (top
        Route, else Request-URI) only when the sender is entitled; else dropped (an empty
        target set: an ACK is never answered)."""
        if not self.may_relay(request, ctx):
            return Forward(targets=())
        return None

    # --- trust (RFC 3325 §5; docs/security.md) -------------------------------------------
    def classify(self, source: Peer | Flow) -> Trust:
        """The trust level of the sender ``source`` (configured address and port, or the
        names in the verified certificate of a TLS peer)."""
        if isinstance(source, Flow):
            source = Peer(transport=source.transport.lower(), host=source.remote[0],
                          port=source.remote[1])  # fmt: skip
        flow = Flow(source.transport.upper(), (source.host, source.port))
        return self.trust.classify(flow, self._tls_names(source))

    def _tls_names(self, source: Peer) -> list[str]:
        if source.transport.lower() != "tls" or self.server is None:
            return []
        if not (self.trust.trusted_names or self.trust.known_names):
            return []
        cert = self.server.peer_certificate(source)
        if not isinstance(cert, dict):
            return []  # no verified client certificate: no TLS identity
        names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
        for rdn in cert.get("subject", ()):
            names += [v for k, v in rdn if k == "commonName"]
        return names

    def may_relay(self, request: Request, ctx: RoutingContext) -> bool:
        """May a request that carries a route set or a To tag (or an ACK) be relayed along it?

        Default: a node of the Trust Domain may route through us; anyone else only along a
        route set we are on (our own Route entry, i.e. a dialog we Record-Routed). Elements
        narrow it further (the Internet proxy checks the next hop)."""
        return bool(ctx.own_routes) or self.classify(ctx.source) is Trust.TRUSTED

    # --- forwarding ------------------------------------------------------------------------
    def forward(
        self,
        request: Request,
        target: Target,
        *,
        record_route: bool = False,
        remove_headers: Sequence[str] = (),
        set_headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Forward:
        """A one-target :class:`Forward` with the egress trust rule applied: towards a next
        hop outside the Trust Domain, ``Privacy: id`` removes ``P-Asserted-Identity``."""
        hop = next_hop(request, target)
        remove = list(remove_headers)
        if (hop is None or not self.trust.trusts_hop(hop.host, hop.port)) and privacy_id(request):
            remove.append("P-Asserted-Identity")
        return Forward(
            targets=[target],
            record_route=record_route,
            remove_headers=tuple(remove),
            set_headers=tuple(set_headers),
            body=body,
            content_type=content_type,
        )


def next_hop(request: Request, target: Target) -> Peer | None:
    """Where the core will send ``target`` (§16.6 step 7): its ``next_hop``, else the first
    Route it pushes or the request keeps, else its Request-URI."""
    if target.next_hop is not None:
        return target.next_hop
    if target.route:
        from ims.sip.headers import parse_name_addr

        return uri_peer(parse_name_addr(target.route[0], header="Route").uri)
    routes = request.routes
    return uri_peer(routes[0].uri if routes else target.uri)


def route_hop(request: Request) -> Peer | None:
    """The next hop named by the request's remaining Route set (None: no Route)."""
    routes = request.routes
    return uri_peer(routes[0].uri) if routes else None


def privacy_id(message: Request) -> bool:
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
