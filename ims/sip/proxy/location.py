"""The default routing policy: registrar + location service (RFC 3261 §10, §16.5).

:class:`LocationRouter` is what ``imslab run sip-proxy`` uses:

* a Route still present after pre-processing: forward to the Request-URI (§16.5: the request
  is bound elsewhere);
* REGISTER addressed to one of our domains: answered by the :class:`~ims.sip.registrar.Registrar`;
* a Request-URI in one of our domains: the AOR's bindings become the target set (parallel
  fork, q order for information); no binding -> 480 if the AOR is a known user, else 404 —
  the proxy then acts as the UAS for that request, so it makes the §8.2.2/§8.2.3 checks a UAS
  makes first (Require 420, unknown Content-Type 415 with Accept, Accept without
  application/sdp 406: RFC 4475 §3.3.6, §3.3.15);
* any other SIP URI: forwarded to the Request-URI (outbound proxy behaviour); other schemes
  (tel:) have no route here: 404 (an IMS S-CSCF plugs its own router in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ims.sip.message import Request
from ims.sip.proxy.routing import Decision, Forward, Respond, RoutingContext, Target
from ims.sip.registrar import BindingStore, Registrar, aor_of
from ims.sip.uri import SipUri, parse_uri

ACCEPTED_TYPES = ("application/sdp",)


def uas_checks(request: Request, supported: frozenset[str] = frozenset()) -> Respond | None:
    """§8.2.2 (Require) and §8.2.3 (Content-Type, Accept) checks, for a request the proxy
    answers itself."""
    unsupported = [t for t in request.require if t not in supported]
    if unsupported:
        return Respond(status=420, headers=[("Unsupported", ", ".join(unsupported))])
    ctype = request.content_type
    if request.body and ctype is not None and ctype not in ACCEPTED_TYPES:
        return Respond(status=415, headers=[("Accept", ", ".join(ACCEPTED_TYPES))])
    if request.method == "INVITE" and "Accept" in request.headers:
        accepted = [a.split(";", 1)[0].strip().lower() for a in request.headers.get_list("Accept")]
        if accepted and not any(a in ("application/sdp", "application/*", "*/*") for a in accepted):
            return Respond(status=406, headers=[("Accept", ", ".join(ACCEPTED_TYPES))])
    return None


class LocationRouter:
    """Registrar + location-service routing (see module docstring)."""

    def __init__(
        self,
        registrar: Registrar | None = None,
        *,
        static: Mapping[str, Sequence[str]] | None = None,
        is_known_user: Callable[[str], bool] | None = None,
        clock_offset: float = 0.0,
    ) -> None:
        self.registrar = registrar or Registrar()
        #: added to the core's ``now`` for the registrar: a store shared between processes
        #: (``ims.store``) keeps wall-clock expiry times, the core runs on a monotonic clock
        self.clock_offset = clock_offset
        self.store: BindingStore = self.registrar.store
        self.static = {k: [parse_uri(u) for u in v] for k, v in (static or {}).items()}
        self.is_known_user = is_known_user

    def route(self, request: Request, ctx: RoutingContext) -> Decision:
        uri = request.uri
        if ctx.has_route:
            return Forward(targets=[Target(uri=uri)])
        now = ctx.now + self.clock_offset
        if request.method == "REGISTER" and ctx.is_our_domain(uri):
            return Respond(status=200, response=self.registrar.handle(request, now))
        if ctx.is_our_domain(uri):
            aor = aor_of(uri)
            if aor is None:
                if ctx.is_local(uri) and isinstance(uri, SipUri) and uri.user is None:
                    return Respond(status=404, reason="No Such Service")
                return Respond(status=404)
            targets = [Target(uri=parse_uri(b.uri), q=b.q) for b in self.store.lookup(aor, now)]
            targets += [Target(uri=u) for u in self.static.get(aor, ())]
            if targets:
                return Forward(targets=targets, parallel=True)
            refused = uas_checks(request)
            if refused is not None:
                return refused
            known = self.is_known_user(aor) if self.is_known_user else False
            return Respond(status=480 if known else 404)
        if not isinstance(uri, SipUri):
            return Respond(status=404, reason="No Route For URI Scheme")
        return Forward(targets=[Target(uri=uri)])
