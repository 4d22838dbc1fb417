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
from typing import Protocol

from ims.sip.message import Request, Response
from ims.sip.proxy.hooks import Peer
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
    targets: Sequence[Target]
    parallel: bool = True
    record_route: bool | None = None
    headers: Sequence[tuple[str, str]] = ()


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


ResponseProcessor = Callable[[ResponseContext], "Response | Defer | None"]
