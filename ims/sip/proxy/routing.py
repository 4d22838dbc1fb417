"""Routing decisions: what the application tells the proxy core to do with a request.

RFC 3261 §16.5 leaves "determining request targets" to the proxy's policy: a location service,
a static table, an IMS iFC evaluation. The core asks a :class:`Router` once per new request
(after validation §16.3 and Route pre-processing §16.4) and acts on the answer:

* :class:`Forward` — a target set (§16.5): each :class:`Target` becomes a branch (§16.6).
  ``parallel=True`` forks them all at once; ``False`` tries them one after the other in q
  order (§16.6, "sequential search"), the next starting when a branch ends without a 2xx or
  6xx. ``record_route`` overrides the core's default (insert for dialog-creating requests).
  ``headers`` are added to every forwarded copy (§16.6 step 5), e.g. P-Charging-Vector.
* :class:`Respond` — answer locally with this status (404, 403, a registrar's 200...).
* :class:`Defer` — decide asynchronously; call ``resume(ctx.key, decision, now)`` later.

:class:`RoutingContext` gives the router what the core learnt: the source peer, whether a
Route header still names the next hop (then the target set must be the Request-URI alone,
§16.5 first paragraph: the request is going elsewhere), and ``is_local`` / ``is_our_domain``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ims.hooks import Drop
from ims.sip.message import Message, Request, Response
from ims.sip.transport import Peer
from ims.sip.uri import Uri


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One request target (§16.5): the Request-URI of a branch, and optionally the next hop
    to send it to (an outbound proxy, a Path) instead of resolving the URI (§16.6 step 7)."""

    uri: Uri
    q: float | None = None
    next_hop: Peer | None = None
    route: tuple[str, ...] = ()  # Route values (name-addr text) to push on this branch


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """Forward to ``targets``. The rewrite fields apply to every forwarded copy, in this
    order: ``remove_headers`` (every value of each name), ``set_headers`` (each name's values
    replaced by the one given), the body (``body``/``content_type``), then the branch's
    ``Target.route`` pushed, then ``headers`` added. So ``remove_headers=("Route",)`` with
    ``Target(route=service_route)`` replaces the Route set. Via and Max-Forwards belong to
    the core (a name given here for them is ignored)."""

    targets: Sequence[Target]
    parallel: bool = True
    record_route: bool | None = None
    headers: Sequence[tuple[str, str]] = ()
    remove_headers: Sequence[str] = ()
    set_headers: Sequence[tuple[str, str]] = ()
    body: bytes | None = None  # None: keep the request's body; b"": send none
    content_type: str | None = None  # with body: the new Content-Type

    def rewrite(self, message: Message) -> None:
        """Apply this decision's header/body rewrites to ``message`` in place (the core
        calls it on each forwarded copy)."""
        _apply_rewrite(
            message,
            remove=self.remove_headers,
            set_=self.set_headers,
            body=self.body,
            content_type=self.content_type,
        )

    @property
    def rewrites(self) -> bool:
        return bool(self.remove_headers or self.set_headers or self.body is not None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Respond:
    status: int
    reason: str | None = None
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    response: Response | None = None  # a complete response, used as is when given


@dataclass(frozen=True, slots=True)
class Defer:
    """Decide later: the core answers 100 Trying (INVITE) and waits; the application calls
    ``core.resume(ctx.key, Forward(...) | Respond(...), now)`` (``ProxyServer.resume`` on
    sockets) when its asynchronous policy is done. A CANCEL meanwhile is answered 200 and
    the request 487; the late ``resume`` is then ignored."""


Decision = Forward | Respond | Defer


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingContext:
    source: Peer
    now: float
    has_route: bool
    is_local: Callable[[Uri], bool] = field(repr=False)
    is_our_domain: Callable[[Uri], bool] = field(repr=False)
    key: int = 0  # names this request in core.resume() after a Defer
    #: our own Route values removed in §16.4 (name-addr text, top first): e.g. an S-CSCF
    #: tells originating (``<sip:orig@scscf;lr>``) from terminating requests
    own_routes: tuple[str, ...] = ()

    @property
    def own_route_uris(self) -> tuple[Uri, ...]:
        """:attr:`own_routes` parsed (their URIs, top first)."""
        from ims.sip.headers import parse_name_addr

        return tuple(parse_name_addr(v, header="Route").uri for v in self.own_routes)


class Router(Protocol):
    """Decides the target set of every new request (§16.5)."""

    def route(self, request: Request, ctx: RoutingContext) -> Decision: ...


class RequestUriRouter:
    """The simplest policy: forward to the Request-URI (what a pure outbound proxy does)."""

    def route(self, request: Request, ctx: RoutingContext) -> Decision:
        return Forward(targets=[Target(uri=request.uri)])


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseContext:
    """A response about to be sent upstream (our Via removed, Record-Route rewritten) for the
    request ``request`` (as received, after Route pre-processing); ``key`` names it in
    ``core.release(key, response, now)`` when the processor returned :class:`Defer`."""

    key: int
    request: Request
    response: Response
    source: Peer | None = None  # where the request came from (e.g. the UE's flow)
    now: float = 0.0  # the core's clock when the response is processed

    def rewrite(
        self,
        *,
        remove_headers: Sequence[str] = (),
        set_headers: Sequence[tuple[str, str]] = (),
        add_headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        """A rewritten copy of :attr:`response` (``self.response`` is left as it is): return
        it from the response processor, or pass it to ``release(key, ...)`` for a held one."""
        return rewrite_message(
            self.response,
            remove_headers=remove_headers,
            set_headers=set_headers,
            add_headers=add_headers,
            body=body,
            content_type=content_type,
        )


M = TypeVar("M", Request, Response)

_CORE_HEADERS = frozenset({"via", "v", "max-forwards"})


def _apply_rewrite(
    message: Message,
    *,
    remove: Sequence[str],
    set_: Sequence[tuple[str, str]],
    body: bytes | None,
    content_type: str | None,
) -> None:
    h = message.headers
    for name in remove:
        if name.lower() not in _CORE_HEADERS:
            h.remove(name)
    for name, value in set_:
        if name.lower() not in _CORE_HEADERS:
            h.set(name, value)
    if body is not None:
        message.body = bytes(body)  # Content-Length is written from the body on encode
        if not body:
            h.remove("Content-Type")
        elif content_type is not None:
            h.set("Content-Type", content_type)


def rewrite_message(
    message: M,
    *,
    remove_headers: Sequence[str] = (),
    set_headers: Sequence[tuple[str, str]] = (),
    add_headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    content_type: str | None = None,
) -> M:
    """A copy of ``message`` with ``remove_headers`` removed (every value), ``set_headers``
    replacing each name's values, ``add_headers`` appended, and the body replaced when
    ``body`` is not None (Content-Type set from ``content_type``, removed for an empty body;
    Content-Length always follows the body). Via and Max-Forwards are left alone."""
    out = message.copy()
    _apply_rewrite(out, remove=remove_headers, set_=set_headers, body=body,
                   content_type=content_type)  # fmt: skip
    for name, value in add_headers:
        out.headers.add(name, value)
    return out


StatelessRouter = Callable[[Request, "RoutingContext"], "Target | Forward | None"]
"""Chooses where a stateless forward goes (an ACK for a 2xx, an unmatched CANCEL, §16.11):
``None`` keeps the default (top Route, else Request-URI); a :class:`Target` sets the
Request-URI / pushes ``route`` / sends to ``next_hop`` (e.g. the TLS connection the UE
registered from); a :class:`Forward` uses its first target and its header/body rewrites, and a
:class:`Forward` with no targets drops the request (the element is not the sender's relay; an
ACK is never answered)."""


ResponseProcessor = Callable[[ResponseContext], "Response | Defer | Drop | None"]
"""Sees every response about to go upstream: a replacement, ``None`` (unchanged), ``Defer()``
(hold it until ``release``) or ``DROP`` (not sent: e.g. a 2xx retransmission whose first copy
an element is still rewriting)."""

StrayProcessor = Callable[[Response, float], "Response | Drop | None"]
"""Sees a response the core forwards statelessly (no transaction matched it, §16.7; our Via
removed; and ``now``): a replacement, ``None`` (unchanged) or ``DROP``."""
