"""Stateful SIP proxy core (RFC 3261 §16), sans-I/O.

The core sits on a transaction layer (RFC 3261 §17: retransmissions, absorbing duplicates,
ACK for non-2xx and CANCEL timing are the layer's job) and does what §16 gives the proxy:

==========  ============================================================================
§16.3       request validation: syntax/mandatory headers (400, via ``check_request``), URI
            scheme (416), Max-Forwards (483; OPTIONS to the proxy itself is answered),
            loop detection (482, see :func:`loop_hash`), Proxy-Require (420 + Unsupported)
§16.4       Route pre-processing: a Request-URI that is our own Record-Route value (an
            upstream strict router) is replaced by the last Route; our own top Route(s)
            are removed; a Request-URI ``maddr`` naming us is stripped
§16.5       target set: asked from the application's :class:`~ims.sip.proxy.routing.Router`
§16.6       forwarding each target: copy, new Request-URI, Max-Forwards - 1, Record-Route
            (``;lr``, one per direction when transports differ), strict-route compatibility
            (step 6: a Route without ``lr`` becomes the Request-URI, the Request-URI goes last
            in Route), next hop (step 7), Via with a branch carrying the loop-detection hash
            (step 8), Timer C for INVITE (step 11); 100 Trying at once for INVITE (§16.2)
§16.7       response context: 100 absorbed; other 1xx and every 2xx forwarded at once (every
            2xx of a forked INVITE); other finals kept; the best one sent when every branch
            has ended: 6xx first, else the lowest class (4xx: 401/407/415/420/484 first), 503
            sent as 500, no response at all as 408; 401/407 challenges of every branch merged
            into the chosen 401/407 (step 7); our Record-Route rewritten to the upstream-facing
            value (step 9); pending branches CANCELled after a 2xx or 6xx (step 10)
§16.8       Timer C: CANCEL a branch that had a provisional, else act as on a 408
§16.9       transport errors and transaction timeouts: the branch ends with 503 / 408
§16.10      CANCEL: matched to its INVITE context -> 200 and CANCEL every pending branch;
            unmatched -> forwarded statelessly
§16.11      stateless forwarding: ACK for a 2xx, unmatched CANCEL, stray responses; the
            next hop of a stateless request may be chosen by ``stateless_router``
==========  ============================================================================

Inputs: :meth:`ProxyCore.receive_request` (with the layer's server-transaction handle),
:meth:`~ProxyCore.receive_response` (with the branch key the core chose),
``receive_stray_response``, ``branch_failed``, ``handle_timer(now)``. Outputs: a list of actions
(:class:`SendResponse`, :class:`ForwardRequest`, :class:`CancelBranch`, :class:`SendStateless`)
for the adapter (:mod:`ims.sip.aio.proxy`) to hand to the transaction layer; plus
``get_timer()``. Every message in and out runs through the :class:`MessageHooks` chain.
Asynchronous applications: a router may return ``Defer()`` and call ``resume(key, decision,
now)`` later; a ``response_processor`` may hold responses (``Defer()``) until
``release(key, response, now)``, order kept. A :class:`~ims.sip.proxy.routing.Forward` may
remove/replace headers and the body of the forwarded copies; ``ResponseContext.rewrite``
does the same for a response (see docs/sip-proxy-api.md).

Loop detection (why the hash leaves out the top Via): §16.6 step 8 suggests hashing the
received top Via too, but a request that comes back to us carries a *different* top Via (the
previous hop's), so such a hash never matches on a real loop (RFC 5393 §3 discusses the
weakness). We hash what stays the same along a loop and changes on a legitimate spiral: the
received Request-URI, From tag, To tag, Call-ID, CSeq number, Proxy-Require and
Proxy-Authorization. A request is looped when one of *our* Vias (sent-by ours) has a branch
whose hash part equals the hash of the request as received now.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import itertools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from ims.log import get_logger
from ims.sip.errors import SipParseError
from ims.sip.grammar import Params
from ims.sip.headers import Via
from ims.sip.message import Request, Response, check_request, make_response, new_tag
from ims.sip.proxy.hooks import DROP, Direction, Drop, Message, MessageEvent, MessageHooks
from ims.sip.proxy.overload import OverloadConfig, OverloadControl
from ims.sip.proxy.routing import (
    Defer,
    Forward,
    RequestUriRouter,
    Respond,
    ResponseContext,
    ResponseProcessor,
    Router,
    RoutingContext,
    StatelessRouter,
    StrayProcessor,
    Target,
)
from ims.sip.transport import Peer
from ims.sip.transport.flow import Flow
from ims.sip.trust import Trust, TrustPolicy, strip_asserted_identity
from ims.sip.uri import SipUri, Uri

_log = get_logger("ims.sip.proxy")

BRANCH_COOKIE = "z9hG4bK"
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
ALLOW = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, PRACK, SUBSCRIBE, NOTIFY, "
    "MESSAGE, REFER"
)
_PREFERRED_4XX = (401, 407, 415, 420, 484)
_RELIABLE = frozenset({"tcp", "tls"})


# ---------------------------------------------------------------------------------------
# configuration and actions
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """What the core needs to know about itself.

    ``local``: the addresses it listens on (its Via sent-by and Record-Route values; the
    first of each transport is used for that transport). ``aliases``: host names that also
    mean this proxy in a Route or Request-URI. ``domains``: domains it is responsible for
    (§16.5; the router uses :meth:`ProxyCore.is_our_domain`). ``supported``: option tags
    accepted in Proxy-Require. ``timer_c``: > 3 min by default (§16.6 step 11). ``trust``: the
    RFC 3325 Trust Domain this proxy belongs to (``ims.sip.trust``, peers by address and port);
    when set, ``P-Asserted-Identity`` from any other source is removed on ingress, before
    routing (RFC 3325 §5). None: a plain RFC 3261 proxy, identity headers untouched.
    ``sent_by``: the Via sent-by of requests this proxy forwards, when it is not ``local``'s:
    one of several worker processes sharing ``local`` (SO_REUSEPORT) puts a port of its own
    there, so that the responses (§18.2.2: sent to the Via) come back to the worker holding
    the client transaction; Record-Route keeps naming ``local``.
    """

    name: str = "proxy"
    role: str = "proxy"
    local: tuple[Peer, ...]
    aliases: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    record_route: bool = True
    supported: frozenset[str] = frozenset()
    schemes: frozenset[str] = frozenset({"sip", "sips", "tel"})
    timer_c: float = 181.0
    default_max_forwards: int = 70
    trust: TrustPolicy | None = None
    #: off by default (on: OverloadConfig(), `run sip-proxy --overload`): on a machine
    #: shared with other work the probe also reads others' CPU use as queueing delay and
    #: sheds below capacity (docs/benchmarks.md, "imslab vs Kamailio")
    overload: OverloadConfig | None = None
    sent_by: tuple[Peer, ...] = ()


@dataclass(frozen=True, slots=True)
class SendResponse:
    """Send ``response`` through the server transaction ``transaction`` (None: statelessly
    to ``peer``, the §18.2.2 destination from the top Via)."""

    transaction: object | None
    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """Start a client transaction for ``request`` (Via already pushed, branch ``branch``)
    towards ``peer``; report its responses with ``receive_response(..., branch)``."""

    branch: str
    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True)
class CancelBranch:
    """CANCEL the INVITE client transaction of ``branch`` (§9.1: the layer holds the CANCEL
    until a provisional response has arrived)."""

    branch: str


@dataclass(frozen=True, slots=True)
class SendStateless:
    """Send ``message`` to ``peer`` outside any transaction (§16.11)."""

    message: Message
    peer: Peer


Action = SendResponse | ForwardRequest | CancelBranch | SendStateless


# ---------------------------------------------------------------------------------------
# response context (§16.7)
# ---------------------------------------------------------------------------------------
class BranchState(Enum):
    CALLING = "calling"  # sent, nothing back
    PROCEEDING = "proceeding"  # a provisional arrived
    COMPLETED = "completed"  # a final arrived (or the branch failed)


@dataclass(slots=True, eq=False)
class _Branch:
    key: str
    ctx: _Context
    request: Request
    peer: Peer
    state: BranchState = BranchState.CALLING
    timer_c: float | None = None
    cancelled: bool = False


@dataclass(slots=True, eq=False)
class _Context:
    request: Request  # after Route pre-processing; copied per branch
    transaction: object | None
    source: Peer
    method: str
    loop_hash: str
    rr_in: str | None = None
    rr_out: dict[str, str] = field(default_factory=dict)  # transport -> RR value used
    record_route: bool = False
    extra_headers: Sequence[tuple[str, str]] = ()
    rewrite: Forward | None = None  # the decision, when it rewrites headers or the body
    branches: list[_Branch] = field(default_factory=list)
    pending: list[Target] = field(default_factory=list)  # sequential search: still to try
    finals: list[Response] = field(default_factory=list)  # non-2xx finals, Via intact
    final_sent: bool = False
    cancelled: bool = False
    no_new_branches: bool = False
    key: int = 0
    held: list[tuple[Response, bool]] = field(default_factory=list)  # (response, stateless)

    def active(self) -> bool:
        return any(b.state is not BranchState.COMPLETED for b in self.branches)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def loop_hash(request: Request) -> str:
    """The loop-detection part of our branch parameter (§16.6 step 8; see module doc)."""
    frm = request.from_
    to = request.to
    cseq = request.cseq
    h = request.headers
    text = "\x00".join(
        (
            request.uri.encode(),
            (frm.tag or "") if frm else "",
            (to.tag or "") if to else "",
            request.call_id or "",
            str(cseq.seq) if cseq else "",
            ",".join(h.get_all("Proxy-Require")),
            ",".join(h.get_all("Proxy-Authorization")),
        )
    )
    return hashlib.md5(text.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[
        :16
    ]


def uri_peer(uri: Uri) -> Peer | None:
    """Next hop for a SIP URI without DNS (RFC 3263 §4 with numeric or literal hosts):
    transport from ``transport=`` (TLS for sips), host from ``maddr`` or the host part,
    port from the URI or the transport's default. None for non-SIP URIs."""
    if not isinstance(uri, SipUri):
        return None
    transport = uri.transport or ("tls" if uri.secure else "udp")
    if uri.secure and transport == "tcp":
        transport = "tls"
    host = uri.maddr or uri.host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = uri.port or (5061 if transport == "tls" else 5060)
    return Peer(transport=transport, host=host, port=port)


def via_peer(message: Message) -> Peer | None:
    """Where a response goes (RFC 3261 §18.2.2, RFC 3581): the top Via's maddr, else its
    ``received`` (with ``rport`` when filled in), else its sent-by. None for a broadcast or
    multicast address (RFC 4475 §3.3.10: never answer to 255.255.255.255)."""
    via = message.via
    if via is None:
        return None
    transport = via.transport.lower()
    host = via.maddr or via.received or via.host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = via.rport if (via.rport and via.received) else via.port
    if port is None:
        port = 5061 if transport == "tls" else 5060
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and (ip.is_multicast or (ip.version == 4 and str(ip) == "255.255.255.255")):
        return None
    return Peer(transport=transport, host=host, port=port)


def _reply_peer(request: Request, source: Peer) -> Peer:
    return via_peer(request) or source


# ---------------------------------------------------------------------------------------
# the core
# ---------------------------------------------------------------------------------------
class ProxyCore:
    """RFC 3261 §16 stateful proxy logic (see the module docstring for the rules kept)."""

    def __init__(
        self,
        config: ProxyConfig,
        router: Router | None = None,
        hooks: MessageHooks | None = None,
    ) -> None:
        if not config.local:
            raise ValueError("ProxyConfig.local needs at least one listening address")
        self.config = config
        self.router: Router = router or RequestUriRouter()
        self.hooks = hooks if hooks is not None else MessageHooks()
        self._prefix = secrets.token_hex(3)
        self._counter = itertools.count(1)
        self._tag = new_tag()
        self._contexts: dict[int, _Context] = {}  # id(server transaction) -> context
        self._deferred: dict[int, _Context] = {}  # RoutingContext.key -> waiting for resume()
        self._holding: dict[int, _Context] = {}  # contexts with responses held for release()
        #: asynchronous response processing (SDP anchoring of answers...): called with every
        #: response about to go upstream; returns it (maybe replaced), None (unchanged) or
        #: Defer() to hold it (and every later one of that request) until release(key, ...)
        self.response_processor: ResponseProcessor | None = None
        #: next hop (and rewrites) of stateless forwards: the ACK for a 2xx, an unmatched
        #: CANCEL (§16.11); None or a None result: top Route, else Request-URI
        self.stateless_router: StatelessRouter | None = None
        #: a response matching no transaction that is forwarded statelessly (a 2xx
        #: retransmission, §16.7): returns it (maybe replaced), None (unchanged) or DROP
        self.stray_processor: StrayProcessor | None = None
        self._keys = itertools.count(1)
        self._branches: dict[str, _Branch] = {}
        self._timers: list[tuple[float, int, str]] = []  # (deadline, seq, branch key): Timer C
        self._tseq = itertools.count()
        self._local_hosts = {p.host.lower() for p in config.local} | {
            a.lower() for a in config.aliases
        }
        self._local_ports = {p.port for p in config.local}
        self._sent_bys = set()
        for p in (*config.local, *config.sent_by):
            self._sent_bys.add(f"{p.host}:{p.port}".lower())
            if p.port == 5060:
                self._sent_bys.add(p.host.lower())
        self._via_local: dict[str, Peer] = {}
        for p in config.local:
            self._via_local.setdefault(p.transport.lower(), p)
        self._sent_by = dict(self._via_local)
        for p in config.sent_by:
            self._sent_by[p.transport.lower()] = p
        self._domains = {d.lower() for d in config.domains}
        self._rr_values = {self._rr_value(p.transport) for p in config.local}
        #: fed by the adapter with the measured queueing delay (None: no overload control)
        self.overload = None if config.overload is None else OverloadControl(config.overload)
        self._retry_after = (
            () if config.overload is None else (("Retry-After", str(config.overload.retry_after)),)
        )
        self.stats: dict[str, int] = {
            "requests": 0,
            "responses": 0,
            "forwarded": 0,
            "local_responses": 0,
            "stateless": 0,
            "shed": 0,
        }

    # -- identity -------------------------------------------------------------------------
    def is_local(self, uri: Uri) -> bool:
        """True when ``uri`` names this proxy (one of its addresses or aliases)."""
        if not isinstance(uri, SipUri):
            return False
        host = (uri.maddr or uri.host).lower()
        if host not in self._local_hosts:
            return False
        if uri.port is None:
            return True  # an alias (or 5060)
        return uri.port in self._local_ports

    def _in_domains(self, uri: SipUri) -> bool:
        """The URI's host is one of our domains *and* its port (if any) is one we listen on:
        ``sip:127.0.0.1:OTHERPORT`` with domain 127.0.0.1 is another element on the same host
        (a UA's contact), not a user of ours (issue 11, finding 13; RFC 3261 §19.1.4: a URI
        with an explicit port does not equal one without)."""
        if uri.host.lower() not in self._domains:
            return False
        return uri.port is None or uri.port in self._local_ports

    def trusts(self, source: Peer) -> bool:
        """Is ``source`` a node of our Trust Domain (``config.trust``, address and port)?"""
        trust = self.config.trust
        if trust is None:
            return False
        flow = Flow(source.transport.upper(), (source.host, source.port))
        return trust.classify(flow) is Trust.TRUSTED

    def is_our_domain(self, uri: Uri) -> bool:
        """True when the URI names a domain this proxy is responsible for (§16.5), host and
        port."""
        return isinstance(uri, SipUri) and (self._in_domains(uri) or self.is_local(uri))

    def addressed_to_me(self, request: Request) -> bool:
        """The Request-URI names the proxy itself (no user part): OPTIONS/REGISTER target."""
        uri = request.uri
        return (
            isinstance(uri, SipUri)
            and uri.user is None
            and (self.is_local(uri) or self._in_domains(uri))
        )

    def _rr_value(self, transport: str) -> str:
        p = self._via_local.get(transport.lower()) or self.config.local[0]
        t = p.transport.lower()
        tp = "" if t == "udp" else f";transport={t}"
        scheme = "sips" if t == "tls" else "sip"
        return f"<{scheme}:{p.host}:{p.port}{tp};lr>"

    def _new_branch(self, lhash: str) -> str:
        return f"{BRANCH_COOKIE}{lhash}.{self._prefix}{next(self._counter):x}"

    def _via(self, transport: str, branch: str) -> Via:
        p = self._sent_by.get(transport.lower()) or self.config.local[0]
        return Via(p.transport.upper(), p.host, p.port, Params.of(branch=branch))

    def _via_value(self, transport: str, branch: str) -> str:
        return self._via(transport, branch).encode()

    # -- hooks ----------------------------------------------------------------------------
    def _hook(self, direction: Direction, message: Message, peer: Peer) -> Message | None:
        if not self.hooks:
            return message
        out = self.hooks.run(
            MessageEvent(
                element=self.config.name,
                role=self.config.role,
                direction=direction,
                peer=peer.addr,
                transport=peer.transport,
                message=message,
            )
        )
        return None if out is DROP else out  # type: ignore[return-value]

    def _reply_peer(self, message: Message, fallback: Peer, *, needed: bool = False) -> Peer:
        """The §18.2.2 destination of a response; computed only when hooks will see it or
        the send is stateless (the transaction layer routes its own responses)."""
        if not needed and not self.hooks:
            return fallback
        if fallback.transport.lower() in _RELIABLE:
            # §18.2.2: over TCP/TLS a response goes back on the connection the request came
            # in on (the source address names it): a TLS UE has no listener at its Via
            return fallback
        return via_peer(message) or fallback

    def _out(self, actions: list[Action], action: Action) -> bool:
        """Run an outgoing action's message through the hooks; False when dropped."""
        if not self.hooks or isinstance(action, CancelBranch):
            actions.append(action)
            return True
        if isinstance(action, SendResponse):
            msg = self._hook(Direction.OUT, action.response, action.peer)
            if msg is None:
                return False
            assert isinstance(msg, Response)
            actions.append(SendResponse(action.transaction, msg, action.peer))
        elif isinstance(action, ForwardRequest):
            msg = self._hook(Direction.OUT, action.request, action.peer)
            if msg is None:
                return False
            assert isinstance(msg, Request)
            actions.append(ForwardRequest(action.branch, msg, action.peer))
        else:
            msg = self._hook(Direction.OUT, action.message, action.peer)
            if msg is None:
                return False
            actions.append(SendStateless(msg, action.peer))
        return True

    # -- local answers --------------------------------------------------------------------
    def _respond(
        self,
        request: Request,
        transaction: object | None,
        source: Peer,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> list[Action]:
        if request.method == "ACK":
            return []
        try:
            resp = make_response(
                request, status, reason, to_tag=self._tag, headers=headers, body=body
            )
        except SipParseError:
            return []
        self.stats["local_responses"] += 1
        actions: list[Action] = []
        peer = self._reply_peer(request, source, needed=transaction is None)
        self._out(actions, SendResponse(transaction, resp, peer))
        return actions

    # =====================================================================================
    # requests
    # =====================================================================================
    def receive_request(
        self,
        request: Request,
        source: Peer,
        now: float,
        *,
        transaction: object | None = None,
        cancelled: object | None = None,
        checked: bool = False,
    ) -> list[Action]:
        """A request from the transaction layer (``transaction``: its server transaction;
        ``cancelled``: for a CANCEL, the INVITE server transaction it matched, §9.2;
        ``checked``: the layer already ran ``check_request`` with the same schemes).

        An ACK here is one no server transaction absorbed: the ACK for a 2xx (§16.11).
        """
        self.stats["requests"] += 1
        msg = self._hook(Direction.IN, request, source)
        if msg is None:
            return []
        assert isinstance(msg, Request)
        request = msg
        try:
            return self._process_request(request, source, now, transaction, cancelled, checked)
        except SipParseError as exc:
            _log.info("bad request", error=str(exc), call_id=request.call_id)
            return self._respond(request, transaction, source, exc.status_hint)

    def _process_request(
        self,
        request: Request,
        source: Peer,
        now: float,
        transaction: object | None,
        cancelled: object | None,
        checked: bool,
    ) -> list[Action]:
        method = request.method
        # §16.3 step 1-2: syntax, mandatory headers, URI scheme (400 / 416)
        if not checked:
            check_request(request, schemes=self.config.schemes)
        if self.config.trust is not None and not self.trusts(source):
            strip_asserted_identity(request)  # RFC 3325 §5, before any routing decision
        if method == "ACK":
            return self._forward_stateless(request, source, now)
        if method == "CANCEL":
            return self._cancel(request, source, transaction, cancelled, now)
        overload = self.overload
        if (
            overload is not None
            and overload.reject > 0.0
            and transaction is not None
            and source.transport != "udp"  # UDP: shed before parsing (ims.sip.aio.proxy's gate)
            and _out_of_dialog(request)
            and not overload.admit()
        ):
            # new work while the queue is too long: refuse it cheaply, before any routing,
            # and keep serving the calls already accepted (ims.sip.proxy.overload)
            self.stats["shed"] += 1
            return self._respond(
                request, transaction, source, 503, "Overloaded", headers=self._retry_after
            )
        # step 3: Max-Forwards
        mf = request.max_forwards
        if mf == 0:
            if method == "OPTIONS" and self.addressed_to_me(request):
                return self._options(request, transaction, source)
            if not (method == "REGISTER" and self.addressed_to_me(request)):
                return self._respond(request, transaction, source, 483)
            # a REGISTER for our own domain: the registrar is its final recipient (it is
            # not forwarded, so Max-Forwards 0 is no reason to refuse it)
        # step 4: loop detection
        lhash = loop_hash(request)
        if self._looped(request, lhash):
            return self._respond(request, transaction, source, 482)
        # step 5: Proxy-Require
        unsupported = [t for t in request.proxy_require if t not in self.config.supported]
        if unsupported:
            return self._respond(
                request, transaction, source, 420, headers=[("Unsupported", ", ".join(unsupported))]
            )
        # §16.4 Route information pre-processing
        self._strip_own_maddr(request, source)
        own_routes = self._preprocess_routes(request)
        has_route = "Route" in request.headers
        if not has_route and method == "OPTIONS" and self.addressed_to_me(request):
            return self._options(request, transaction, source)
        # §16.5 targets
        key = next(self._keys)
        try:
            decision = self.router.route(
                request,
                RoutingContext(
                    source=source,
                    now=now,
                    has_route=has_route,
                    is_local=self.is_local,
                    is_our_domain=self.is_our_domain,
                    key=key,
                    own_routes=own_routes,
                ),
            )
        except SipParseError:
            raise
        except Exception as exc:  # a failing policy answers, instead of leaving the UAC waiting
            status = _error_status(exc)
            _log.warning("router failed", error=repr(exc), call_id=request.call_id, status=status)
            return self._respond(request, transaction, source, status)
        ctx = _Context(
            request=request,
            transaction=transaction,
            source=source,
            method=method,
            loop_hash=lhash,
            key=key,
        )
        if isinstance(decision, Respond):
            return self._local_answer(ctx, decision)
        actions: list[Action] = []
        if method == "INVITE":
            # §16.2/§17.2.1: a stateful proxy answers 100 Trying at once (no 200 ms wait here)
            trying = make_response(request, 100)
            peer = self._reply_peer(request, source, needed=transaction is None)
            self._out(actions, SendResponse(transaction, trying, peer))
        if transaction is not None:
            self._contexts[id(transaction)] = ctx
        if isinstance(decision, Defer):
            self._deferred[key] = ctx
            return actions
        return actions + self._apply(ctx, decision, now)

    def resume(self, key: int, decision: Forward | Respond, now: float) -> list[Action]:
        """Carry out a routing decision the router deferred (it returned :class:`Defer` for
        ``RoutingContext.key``): an asynchronous policy (a database, a media-anchor round
        trip) answers here. A request CANCELled meanwhile was already answered 487: then
        nothing happens."""
        ctx = self._deferred.pop(key, None)
        if ctx is None or ctx.final_sent:
            return []
        if isinstance(decision, Respond):
            actions = self._local_answer(ctx, decision)
            ctx.final_sent = True
            if ctx.transaction is not None:
                self._contexts.pop(id(ctx.transaction), None)
            return actions
        return self._apply(ctx, decision, now)

    @property
    def deferred(self) -> int:
        """Requests waiting for :meth:`resume`."""
        return len(self._deferred)

    def waiting(self, key: int) -> bool:
        """Is request ``key`` still waiting for :meth:`resume` (not CANCELled meanwhile)?"""
        ctx = self._deferred.get(key)
        return ctx is not None and not ctx.final_sent  # a CANCEL answered it 487 meanwhile

    def _local_answer(self, ctx: _Context, decision: Respond) -> list[Action]:
        request, transaction, source = ctx.request, ctx.transaction, ctx.source
        if decision.response is not None:
            self.stats["local_responses"] += 1
            actions: list[Action] = []
            peer = self._reply_peer(request, source, needed=transaction is None)
            self._out(actions, SendResponse(transaction, decision.response, peer))
            return actions
        return self._respond(
            request,
            transaction,
            source,
            decision.status,
            decision.reason,
            decision.headers,
            decision.body,
        )

    def _options(self, request: Request, transaction: object | None, source: Peer) -> list[Action]:
        headers = [("Allow", ALLOW), ("Accept", "application/sdp")]
        if self.config.supported:
            headers.append(("Supported", ", ".join(sorted(self.config.supported))))
        return self._respond(request, transaction, source, 200, headers=headers)

    def _looped(self, request: Request, lhash: str) -> bool:
        prefix = BRANCH_COOKIE + lhash + "."
        for via in request.vias:
            if via.sent_by.lower() in self._sent_bys:
                branch = via.branch
                if branch is not None and branch.startswith(prefix):
                    return True
        return False

    def _preprocess_routes(self, request: Request) -> tuple[str, ...]:
        """§16.4: undo an upstream strict router, strip our own Route values (returned)."""
        h = request.headers
        if "Route" not in h:
            return ()
        return self._strip_routes(request)  # Route edits keep the parsed Vias

    def _strip_own_maddr(self, request: Request, source: Peer) -> None:
        """§16.4: a Request-URI ``maddr`` naming us, on the port and transport we received
        the request with, is removed with that port and transport parameter."""
        uri = request.uri
        if not isinstance(uri, SipUri) or uri.maddr is None:
            return
        if uri.maddr.lower() not in self._local_hosts:
            return
        transport = uri.transport or ("tls" if uri.secure else "udp")
        port = uri.port or (5061 if transport == "tls" else 5060)
        if transport != source.transport.lower() or port not in self._local_ports:
            return
        request.uri = uri.without_param("maddr").without_param("transport").replace(port=None)

    def _strip_routes(self, request: Request) -> tuple[str, ...]:
        removed: list[str] = []
        h = request.headers
        uri = request.uri
        if isinstance(uri, SipUri) and uri.lr and self.is_local(uri):
            # the Request-URI is a Record-Route value we placed: a strict router sent it
            values = h.get_list("Route")
            last = values.pop()
            h.remove("Route")
            for v in values:
                h.add("Route", v)
            request.uri = _name_addr_uri(last)
        first = h.get("Route")
        if first is None:
            return tuple(removed)
        if first in self._rr_values and "," not in first and h.get_all("Route")[1:2] == []:
            # fast path: one Route field, a peer copied our Record-Route value (§12.1.1)
            h.pop_first("Route")
            removed.append(first)
            return tuple(removed)
        # one parse of the whole Route set and one rewrite: popping our entries one by one
        # re-parsed the set each time, O(n^2) for a request carrying thousands of our own
        # Routes (issue 11, finding 10)
        values = h.get_list("Route")
        routes = request.routes
        if len(routes) != len(values):
            values = [r.encode() for r in routes]
        own = 0
        while own < len(values) and (
            values[own] in self._rr_values or self.is_local(routes[own].uri)
        ):
            own += 1
        if own == 0:
            return tuple(removed)
        removed.extend(
            v if v in self._rr_values else routes[i].encode() for i, v in enumerate(values[:own])
        )
        h.remove("Route")
        for v in values[own:]:
            h.add("Route", v)
        return tuple(removed)

    # -- forwarding (§16.6) -----------------------------------------------------------------
    def _apply(self, ctx: _Context, decision: Forward, now: float) -> list[Action]:
        """Start the branches of a Forward decision (§16.5-§16.6)."""
        request, method = ctx.request, ctx.method
        if request.max_forwards == 0:  # only a REGISTER to us gets here: never forward it
            if ctx.transaction is not None:
                self._contexts.pop(id(ctx.transaction), None)
            ctx.final_sent = True
            return self._respond(request, ctx.transaction, ctx.source, 483)
        if decision.record_route is not None:
            rr = decision.record_route
        else:
            to = request.to
            rr = (
                self.config.record_route
                and method in DIALOG_CREATING
                and (to is None or to.tag is None)
            )
        ctx.record_route = rr
        ctx.extra_headers = decision.headers
        ctx.rewrite = decision if decision.rewrites else None
        if rr:
            ctx.rr_in = self._rr_value(ctx.source.transport)
        actions: list[Action] = []
        targets = list(decision.targets)
        if not targets:
            return self._finish(ctx, now)
        if not decision.parallel:
            targets.sort(key=lambda t: -(1.0 if t.q is None else t.q))
            ctx.pending = targets[1:]
            targets = targets[:1]
        for target in targets:
            self._fork(ctx, target, now, actions)
        if not ctx.active():
            actions += self._finish(ctx, now)
        return actions

    def _fork(self, ctx: _Context, target: Target, now: float, actions: list[Action]) -> None:
        """Forward one copy of the request to ``target`` (§16.6 steps 1-11)."""
        req = ctx.request.copy()  # step 1
        h = req.headers
        req.uri = target.uri  # step 2
        mf = ctx.request.max_forwards  # step 3
        h.set("Max-Forwards", str(self.config.default_max_forwards if mf is None else mf - 1))
        if ctx.rewrite is not None:  # the router's removals / replacements / new body
            ctx.rewrite.rewrite(req)
        for value in reversed(target.route):  # pre-loaded route for this branch
            h.insert_first("Route", value)
        for name, value in ctx.extra_headers:  # step 5
            h.add(name, value)
        # step 6: strict-route compatibility
        routes = req.routes
        if routes and isinstance(routes[0].uri, SipUri) and not routes[0].uri.lr:
            values = h.get_list("Route")
            first = values.pop(0)
            values.append(f"<{req.uri.encode()}>")
            h.remove("Route")
            for v in values:
                h.add("Route", v)
            req.uri = _name_addr_uri(first)
            routes = []  # step 7: the strict router (now the Request-URI) is the next hop
        # step 7: next hop
        peer = target.next_hop
        if peer is None:
            peer = uri_peer(routes[0].uri if routes else req.uri)
        key = self._new_branch(ctx.loop_hash)
        branch = _Branch(key=key, ctx=ctx, request=req, peer=peer or ctx.source)
        ctx.branches.append(branch)
        if peer is None:  # nowhere to send it (tel: without a translation): 503 for this branch
            self._complete_branch(
                branch, make_response(req, 503, "No Route To Target", to_tag=self._tag), now
            )
            return
        # step 4: Record-Route, facing the next hop
        if ctx.record_route:
            rr = self._rr_value(peer.transport)
            ctx.rr_out[peer.transport] = rr
            h.insert_first("Record-Route", rr)
        # step 8: Via
        via = self._via(peer.transport, key)
        req.push_via(via)  # the parsed Vias stay known: no re-parse by the layer
        self._branches[key] = branch
        if ctx.method == "INVITE":  # step 11: Timer C
            self._arm_c(branch, now)
        self.stats["forwarded"] += 1
        if not self._out(actions, ForwardRequest(key, req, peer)):
            self._branches.pop(key, None)
            self._complete_branch(
                branch, make_response(req, 503, "Dropped By Hook", to_tag=self._tag), now
            )

    def _arm_c(self, branch: _Branch, now: float) -> None:
        branch.timer_c = now + self.config.timer_c
        heapq.heappush(self._timers, (branch.timer_c, next(self._tseq), branch.key))

    # -- CANCEL (§16.10) ----------------------------------------------------------------------
    def _cancel(
        self,
        request: Request,
        source: Peer,
        transaction: object | None,
        cancelled: object | None,
        now: float,
    ) -> list[Action]:
        if cancelled is None:
            # no response context: forward statelessly (it may belong to a request that was
            # forwarded statelessly before, §16.10)
            return self._forward_stateless(request, source, now)
        actions = self._respond(request, transaction, source, 200)
        ctx = self._contexts.get(id(cancelled))
        if ctx is not None and not ctx.final_sent:
            ctx.cancelled = True
            ctx.no_new_branches = True
            ctx.pending.clear()
            actions += self._cancel_pending(ctx)
            if not ctx.branches:  # still waiting for a deferred decision: 487 from here
                actions += self._respond(ctx.request, ctx.transaction, ctx.source, 487)
                ctx.final_sent = True
                self._contexts.pop(id(cancelled), None)
        return actions

    def _cancel_pending(self, ctx: _Context) -> list[Action]:
        actions: list[Action] = []
        if ctx.method != "INVITE":
            return actions
        for b in ctx.branches:
            if b.state is not BranchState.COMPLETED and not b.cancelled:
                b.cancelled = True
                actions.append(CancelBranch(b.key))
        return actions

    # -- stateless forwarding (§16.11) --------------------------------------------------------
    def _forward_stateless(self, request: Request, source: Peer, now: float) -> list[Action]:
        mf = request.max_forwards
        if mf == 0:
            return [] if request.method == "ACK" else self._respond(request, None, source, 483)
        own_routes = self._preprocess_routes(request)
        if "Route" not in request.headers and self.addressed_to_me(request):
            return []  # e.g. an ACK for a response we generated: absorbed here
        req = request  # stateless: the received object is not kept, so edit it in place
        h = req.headers
        h.set("Max-Forwards", str(self.config.default_max_forwards if mf is None else mf - 1))
        next_hop: Peer | None = None
        if self.stateless_router is not None:
            choice = self.stateless_router(
                req,
                RoutingContext(
                    source=source,
                    now=now,
                    has_route="Route" in h,
                    is_local=self.is_local,
                    is_our_domain=self.is_our_domain,
                    own_routes=own_routes,
                ),
            )
            target: Target | None = None
            if isinstance(choice, Forward):
                if not choice.targets:
                    return []  # the element is not this sender's relay: not forwarded
                choice.rewrite(req)
                target = choice.targets[0] if choice.targets else None
                for name, value in choice.headers:
                    h.add(name, value)
            elif isinstance(choice, Target):
                target = choice
            if target is not None:
                req.uri = target.uri
                for value in reversed(target.route):
                    h.insert_first("Route", value)
                next_hop = target.next_hop
        routes = req.routes
        if routes and isinstance(routes[0].uri, SipUri) and not routes[0].uri.lr:
            values = h.get_list("Route")
            first = values.pop(0)
            values.append(f"<{req.uri.encode()}>")
            h.remove("Route")
            for v in values:
                h.add("Route", v)
            req.uri = _name_addr_uri(first)
            routes = []
        peer = next_hop or uri_peer(routes[0].uri if routes else req.uri)
        if peer is None:
            return []
        # a stateless branch must be the same for retransmissions (§16.11): derive it
        top = req.via
        seed = f"{top.branch if top else ''}|{req.method}|{req.call_id}"
        digest = hashlib.md5(seed.encode("utf-8", "surrogateescape"), usedforsecurity=False)
        key = BRANCH_COOKIE + digest.hexdigest()[:16] + ".s"
        via = self._via(peer.transport, key)
        req.push_via(via)
        self.stats["stateless"] += 1
        actions: list[Action] = []
        self._out(actions, SendStateless(req, peer))
        return actions

    # =====================================================================================
    # responses (§16.7)
    # =====================================================================================
    def receive_response(
        self, response: Response, branch: str, now: float, *, source: Peer | None = None
    ) -> list[Action]:
        """A response of the client transaction started for ``branch``."""
        self.stats["responses"] += 1
        b = self._branches.get(branch)
        if b is None:
            return self.receive_stray_response(response, now, source=source)
        msg = self._hook(Direction.IN, response, source or b.peer)
        if msg is None:
            return []
        assert isinstance(msg, Response)
        response = msg
        if self.config.trust is not None and not self.trusts(b.peer):
            strip_asserted_identity(response)  # RFC 3325 §5 applies to responses too
        ctx = b.ctx
        status = response.status
        if status < 200:
            if b.state is BranchState.CALLING:
                b.state = BranchState.PROCEEDING
            if status == 100:
                return []
            if ctx.method == "INVITE" and b.state is not BranchState.COMPLETED:
                self._arm_c(b, now)  # §16.7 step 2: reset Timer C
            if ctx.final_sent or b.state is BranchState.COMPLETED:
                return []
            return self._send_upstream(ctx, response, now)
        if b.state is BranchState.COMPLETED:
            # a 2xx retransmission (RFC 6026 Accepted) or a late final: only 2xx go on
            if 200 <= status < 300 and ctx.method == "INVITE":
                return self._send_upstream(ctx, response, now, stateless=True)
            return []
        return self._complete_branch(b, response, now)

    def receive_stray_response(
        self, response: Response, now: float, *, source: Peer | None = None
    ) -> list[Action]:
        """A response matching no client transaction: forward it statelessly when the top
        Via is ours (§16.7 step 1 / §16.11), else drop it (§18.1.2)."""
        if source is not None and self.hooks:  # observers see every message received
            msg = self._hook(Direction.IN, response, source)
            if msg is None:
                return []
            assert isinstance(msg, Response)
            response = msg
        via = response.via
        if via is None or via.sent_by.lower() not in self._sent_bys:
            return []
        fwd = response.copy()
        fwd.headers.pop_first_element("Via")
        if self.stray_processor is not None:
            out = self.stray_processor(fwd, now)
            if isinstance(out, Drop):
                return []
            if out is not None:
                fwd = out
        peer = via_peer(fwd)
        if peer is None:
            return []
        self.stats["stateless"] += 1
        actions: list[Action] = []
        self._out(actions, SendStateless(fwd, peer))
        return actions

    def branch_failed(self, branch: str, status: int, now: float) -> list[Action]:
        """The client transaction of ``branch`` timed out (408, timer B/F) or its transport
        failed (503, §16.9): the branch ends as if that response had arrived."""
        b = self._branches.get(branch)
        if b is None or b.state is BranchState.COMPLETED:
            return []
        return self._complete_branch(b, make_response(b.request, status, to_tag=self._tag), now)

    def _complete_branch(self, b: _Branch, response: Response, now: float) -> list[Action]:
        ctx = b.ctx
        b.state = BranchState.COMPLETED
        b.timer_c = None
        self._branches.pop(b.key, None)
        status = response.status
        actions: list[Action] = []
        if 200 <= status < 300:
            if ctx.final_sent:
                if ctx.method == "INVITE":  # another fork answered too: every 2xx goes up
                    actions += self._send_upstream(ctx, response, now, stateless=True)
            else:
                actions += self._send_upstream(ctx, response, now)
                ctx.final_sent = True
                ctx.no_new_branches = True
                ctx.pending.clear()
                actions += self._cancel_pending(ctx)
        else:
            ctx.finals.append(response)
            if status >= 600:
                ctx.no_new_branches = True
                ctx.pending.clear()
                actions += self._cancel_pending(ctx)
        if not ctx.active():
            while ctx.pending and not ctx.no_new_branches and not ctx.final_sent:
                self._fork(ctx, ctx.pending.pop(0), now, actions)  # sequential search
                if ctx.active():
                    return actions
            actions += self._finish(ctx, now)
        return actions

    def _finish(self, ctx: _Context, now: float) -> list[Action]:
        """Every branch has ended: send the best final if none was sent, forget the context."""
        actions: list[Action] = []
        if not ctx.final_sent:
            best, ours = self._best(ctx)
            actions += self._send_upstream(ctx, best, now, strip_via=ours)
            ctx.final_sent = True
        if ctx.transaction is not None:
            self._contexts.pop(id(ctx.transaction), None)
        return actions

    def _best(self, ctx: _Context) -> tuple[Response, bool]:
        """§16.7 steps 6-7: the response to send, and whether it still carries our Via."""
        finals = ctx.finals
        if not finals:  # an empty target set: nobody to ask
            return make_response(ctx.request, 480, to_tag=self._tag), False
        six = [r for r in finals if r.status >= 600]
        if six:
            best = six[0]
        else:
            lowest = min(r.status // 100 for r in finals)
            cands = [r for r in finals if r.status // 100 == lowest]
            best = cands[0]
            if lowest == 4:
                for pref in _PREFERRED_4XX:
                    found = [r for r in cands if r.status == pref]
                    if found:
                        best = found[0]
                        break
        if best.status == 503:
            best = best.copy()
            best.status = 500
            best.reason = "Server Internal Error"
        if best.status in (401, 407):
            best = best.copy()
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                have = set(best.headers.get_all(name))
                for r in finals:
                    if r is not best and r.status in (401, 407):
                        for v in r.headers.get_all(name):
                            if v not in have:
                                have.add(v)
                                best.headers.add(name, v)
        return best, True

    def _send_upstream(
        self,
        ctx: _Context,
        response: Response,
        now: float,
        *,
        stateless: bool = False,
        strip_via: bool = True,
    ) -> list[Action]:
        """§16.7 steps 3, 9: drop our Via, rewrite our Record-Route, send upstream."""
        fwd = response.copy()
        h = fwd.headers
        if strip_via:
            h.pop_first_element("Via")
        if "Via" not in h:
            return []  # it was for this element (never forwarded)
        if ctx.rr_in is not None and ctx.rr_out and "Record-Route" in h:
            outs = set(ctx.rr_out.values())
            if outs != {ctx.rr_in}:
                values = h.get_list("Record-Route")
                if any(v in outs for v in values):
                    h.remove("Record-Route")
                    for v in values:
                        h.add("Record-Route", ctx.rr_in if v in outs else v)
        stateless = stateless or ctx.transaction is None
        if self.response_processor is not None:
            if ctx.held:  # keep the order: queue behind the response being processed
                ctx.held.append((fwd, stateless))
                return []
            rc = ResponseContext(
                key=ctx.key, request=ctx.request, response=fwd, source=ctx.source, now=now
            )
            out = self.response_processor(rc)
            if isinstance(out, Defer):
                ctx.held.append((fwd, stateless))
                self._holding[ctx.key] = ctx
                return []
            if isinstance(out, Drop):
                return []  # held back by the element (a 2xx retransmission, fail closed)
            if out is not None:
                fwd = out
        return self._emit_upstream(ctx, fwd, stateless)

    def _emit_upstream(self, ctx: _Context, fwd: Response, stateless: bool) -> list[Action]:
        peer = self._reply_peer(fwd, ctx.source, needed=stateless)
        actions: list[Action] = []
        if stateless:
            self._out(actions, SendStateless(fwd, peer))
        else:
            self._out(actions, SendResponse(ctx.transaction, fwd, peer))
        return actions

    def release(self, key: int, response: Response | None, now: float) -> list[Action]:
        """Send the response the response processor held for context ``key`` (``response``
        replaces it, ``None`` sends it as held), then the ones queued behind it, in order,
        each through the processor again (which may hold the next one)."""
        ctx = self._holding.get(key)
        if ctx is None or not ctx.held:
            return []
        held, stateless = ctx.held.pop(0)
        actions = self._emit_upstream(ctx, response if response is not None else held, stateless)
        while ctx.held:
            nxt, nxt_stateless = ctx.held[0]
            assert self.response_processor is not None
            rc = ResponseContext(
                key=key, request=ctx.request, response=nxt, source=ctx.source, now=now
            )
            out = self.response_processor(rc)
            if isinstance(out, Defer):
                return actions  # stays held (first in the queue)
            ctx.held.pop(0)
            if isinstance(out, Drop):
                continue
            actions += self._emit_upstream(ctx, out if out is not None else nxt, nxt_stateless)
        del self._holding[key]
        return actions

    @property
    def holding(self) -> int:
        """Contexts whose responses wait for :meth:`release`."""
        return len(self._holding)

    # =====================================================================================
    # timers (§16.8 Timer C)
    # =====================================================================================
    def get_timer(self) -> float | None:
        while self._timers:
            deadline, _, key = self._timers[0]
            b = self._branches.get(key)
            if b is None or b.timer_c != deadline:
                heapq.heappop(self._timers)  # stale entry
                continue
            return deadline
        return None

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _, key = heapq.heappop(self._timers)
            b = self._branches.get(key)
            if b is None or b.timer_c != deadline:
                continue
            b.timer_c = None
            if b.state is BranchState.PROCEEDING:
                if not b.cancelled:
                    b.cancelled = True
                    actions.append(CancelBranch(b.key))
            else:
                actions += self._complete_branch(
                    b, make_response(b.request, 408, to_tag=self._tag), now
                )
        return actions

    # -- introspection (tests, stats) -------------------------------------------------------
    @property
    def open_contexts(self) -> int:
        return len(self._contexts)

    @property
    def open_branches(self) -> int:
        return len(self._branches)


def _out_of_dialog(request: Request) -> bool:
    to = request.to
    return to is None or to.tag is None


def _error_status(exc: Exception) -> int:
    """The SIP status an exception carries (``status`` / ``status_hint``, 4xx-6xx), else 500."""
    for attr in ("status", "status_hint"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 400 <= value < 700:
            return value
    return 500


def _name_addr_uri(value: str) -> Uri:
    from ims.sip.headers import parse_name_addr

    return parse_name_addr(value, header="Route").uri
