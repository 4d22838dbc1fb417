"""The S-CSCF (TS 24.229 §5.4) and, with IMS features off, the Internet SIP proxy.

One class, :class:`HomeServer`, serves a home domain. It is a router on the RFC 3261 §16 proxy
core (:mod:`proxies.element`, ``ims.sip.proxy``): it decides, the core proxies; every decision
is synchronous and takes the core's ``now``.

* **Registrar** with digest authentication (RFC 3261 §22, RFC 7616) against the subscriber
  database; the location service is :class:`ims.sip.registrar.BindingStore`. For IMS it keeps the
  ``Path`` of each binding (RFC 3327: terminating requests are routed back through it), answers
  with ``Service-Route`` (RFC 3608: ``<sip:orig@scscf;lr>``, so originating requests come back
  through this S-CSCF) and ``P-Associated-URI`` (the implicit registration set, RFC 7315 §4.1).
* **Originating** requests (Route was our ``orig`` Service-Route entry, or, for the Internet
  proxy, a request from one of its own users after proxy authentication): routed by the
  Request-URI — a tel URI through the ENUM stand-in table, a SIP URI by domain — either to our own
  terminating processing or to the peer serving the target domain (the static peering table
  stands in for DNS and the I-CSCF). ``P-Charging-Vector`` is kept (or created) so the ICID
  follows the call (RFC 7315 §5.1).
* **Terminating** requests: the Request-URI is replaced by the registered contact and the Route
  set by the binding's Path; the S-CSCF Record-Routes (RFC 3261 §16.6).
* **Trust domain** (RFC 3325 §5, ``ims.sip.trust``): who is trusted is configured (address *and*
  port of each P-/S-CSCF). ``P-Asserted-Identity`` from anyone else is removed on ingress (by
  the proxy core, before any routing decision); ``P-Asserted-Identity`` and
  ``P-Charging-Vector`` are removed when a request leaves towards a peer outside the Trust
  Domain (the Internet proxy).
* **Unauthenticated REGISTERs** at the Internet proxy (which faces its users directly) are
  bounded per source address (:mod:`proxies.admission`): 503 + Retry-After beyond 16 unanswered
  challenges.
* **No open relay**: a request with a To tag or a Route set is relayed only when the sender is
  entitled (:meth:`HomeServer.may_relay`): a Trust Domain node, or a configured peer / user
  routing along a route set this element Record-Routed; the Internet proxy, whose users are
  anyone on the Internet, also requires the next hop to be a configured peer or one of its
  registered contacts. Out-of-dialog requests from outside go only to our own users.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ims.log import get_logger
from ims.sip.auth import DigestServer
from ims.sip.errors import SipParseError
from ims.sip.message import Request
from ims.sip.proxy import Defer, Forward, Peer, Respond, RoutingContext, Target, uri_peer
from ims.sip.registrar import BindingStore, ContactRequest, RegistrarError
from ims.sip.trust import Trust, TrustPolicy
from ims.sip.uri import SipUri, TelUri, parse_uri, uri_equal
from ims.store import Store
from ims.store.shared import shared_secret
from proxies.admission import UnauthenticatedRegisters
from proxies.element import Element, route_hop, tel_number, uri_domain
from proxies.subscribers import SubscriberDb, SubscriberRecord, normalize_identity

_log = get_logger("proxies.scscf")


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainPeer:
    """The element serving another domain: where to send (``Peer``: transport, host, port), and
    whether it is inside the IMS Trust Domain."""

    hop: Peer
    trusted: bool


class HomeServer(Element):
    """Registrar + routing proxy of one home domain (S-CSCF when ``ims=True``), a router on
    the proxy core.

    State that instances share or a restart keeps lives in ``store`` (:mod:`ims.store`): the
    location service (bindings with their Path, RFC 3327 §5.3), the nonce key and nonce
    counts. With a store the core runs on the store's wall clock (``Store.now``). The digest
    servers (``digest``/``proxy_digest``) and the REGISTER admission may also be passed in."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        domain: str,
        subscribers: SubscriberDb,
        peers: dict[str, DomainPeer],
        tel_domains: dict[str, str],
        trust: TrustPolicy | None = None,
        ims: bool = True,
        sip_port: int = 5060,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        digest_algorithms: tuple[str, ...] = ("MD5",),
        store: Store | None = None,
        digest_secret: bytes | None = None,
        digest: DigestServer | None = None,
        proxy_digest: DigestServer | None = None,
        admission: UnauthenticatedRegisters | None = None,
        allowed_networks: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            name,
            address,
            role="scscf" if ims else "internet_proxy",
            sip_port=sip_port,
            tls_port=tls_port,
            ssl_context=ssl_context,
            trust=trust,
            domains=(domain,),
            allowed_networks=allowed_networks,
            clock=store.now if store is not None else None,
        )
        self.domain = domain.lower()
        self.subscribers = subscribers
        self.peers = {d.lower(): p for d, p in peers.items()}
        self.tel_domains = tel_domains
        self.ims = ims
        #: the Internet proxy faces its users directly (no P-CSCF in front): one source
        #: address may hold only a few unanswered REGISTER challenges (issue 11, finding 9)
        self.admission = admission if admission is not None or ims else UnauthenticatedRegisters()
        # bindings (with their Path, RFC 3327), nonce counts and the nonce key in the shared
        # store (ims.store), when given: every instance of this S-CSCF then serves every
        # registered user, and a restarted one keeps them (issue 18). The core then runs on
        # the store's wall clock (see __init__'s clock=), so ctx.now matches stored expiries.
        self.store = BindingStore(store, namespace=f"location.{self.domain}")
        # ims.sip.auth: stateless HMAC nonces, stale detection, nc replay refusal. MD5 by
        # default because SIPp 3.6 answers only the first challenge and only with MD5; our UE
        # (ims.sip.auth.DigestClient) also answers SHA-256.
        # The digest servers hold the nonce state (nonce key, nonce counts seen): passed in,
        # or on the store when one is given, so that several instances share it.
        if digest_secret is not None:
            secret = digest_secret
        elif store is not None:
            secret = shared_secret(store, f"digest/{self.domain}", store.now())
        else:
            secret = secrets.token_bytes(32)
        self.digest = digest or DigestServer(
            realm=self.domain, secret=secret, algorithms=digest_algorithms, nonce_store=store
        )
        self.proxy_digest = proxy_digest or DigestServer(
            realm=self.domain,
            secret=secret,
            algorithms=digest_algorithms,
            proxy=True,
            nonce_store=store,
        )

    # --- helpers -------------------------------------------------------------------------
    def tel_domain(self, number: str) -> str | None:
        best, best_len = None, -1
        for prefix, domain in self.tel_domains.items():
            if number.startswith(prefix) and len(prefix) > best_len:
                best, best_len = domain, len(prefix)
        return best

    def target_domain(self, request: Request) -> str | None:
        number = tel_number(request.uri)
        if number is not None:
            if self.subscribers.by_identity(request.uri) is not None:
                return self.domain
            return self.tel_domain(number)
        return uri_domain(request.uri)

    # --- decisions -----------------------------------------------------------------------
    def may_relay(self, request: Request, ctx: RoutingContext) -> bool:
        trust = self.classify(ctx.source)
        if trust is Trust.TRUSTED:
            return True
        if not ctx.own_routes:
            return False  # not a route set we are on: we are not this sender's relay
        if self.ims:
            # an S-CSCF serves no UE directly: only configured peers route through it
            return trust is Trust.KNOWN
        if trust is Trust.KNOWN:
            return True
        # the Internet proxy's users are anyone: relay only towards a configured peer or one
        # of our registered users, never to an arbitrary next hop
        hop = route_hop(request) or uri_peer(request.uri)
        return hop is not None and self._serves_hop(hop, ctx.now)

    def _serves_hop(self, hop: Peer, now: float) -> bool:
        """Is ``hop`` a configured peer or the contact of one of our registered users?"""
        if any(p.hop.addr == hop.addr for p in self.peers.values()):
            return True
        if self.trust.trusts_hop(hop.host, hop.port):
            return True
        for aor in self.store.aors(now):
            for b in self.store.lookup(aor, now):
                try:
                    peer = uri_peer(parse_uri(b.uri))
                except (ValueError, SipParseError):
                    continue
                if peer is not None and peer.addr == hop.addr:
                    return True
        return False

    def route(self, request: Request, ctx: RoutingContext) -> Forward | Respond | Defer:
        if request.method == "REGISTER":
            return self._register(request, ctx)
        hop = route_hop(request)
        own_routes = ctx.own_route_uris
        own = own_routes[0] if own_routes else None
        to = request.to
        in_dialog = to is not None and to.tag is not None
        if in_dialog or (hop is not None and own is None):
            # in-dialog (loose routing along the Record-Route set, else to the remote target)
            # or a pre-loaded route: only for a sender entitled to route through us
            if not self.may_relay(request, ctx):
                return Respond(status=403, reason="Not entitled to route through this element")
            if hop is None and uri_peer(request.uri) is None:
                return Respond(status=416)
            return self.forward(request, Target(uri=request.uri))
        from_trusted = self.classify(ctx.source) is Trust.TRUSTED
        # an initial request is routed by its Request-URI here; a route pre-loaded by a
        # sender outside the Trust Domain would make us its relay to anywhere
        drop_route = hop is not None and not from_trusted
        originating = isinstance(own, SipUri) and own.user == "orig"
        if not self.ims and request.method != "ACK" and not from_trusted:
            frm = request.from_
            if frm is not None and uri_domain(frm.uri) == self.domain:
                auth = self._authenticate(request, proxy=True, now=ctx.now)
                if isinstance(auth, Respond):
                    return auth
                originating = True
        if originating and self.ims and not request.headers.get("P-Asserted-Identity"):
            return Respond(status=403, reason="No asserted identity")
        domain = self.target_domain(request)
        if domain == self.domain:
            return self._terminating(request, ctx)
        if not originating:
            # neither ours nor sent by one of our users: this element is no open relay
            return Respond(status=403, reason="Not an originating request for this network")
        peer = self.peers.get(domain or "")
        if peer is None:
            return Respond(status=404, reason="No route to the target domain")
        remove: list[str] = ["Route"] if drop_route else []
        set_: list[tuple[str, str]] = []
        if self.ims and not request.headers.get("P-Charging-Vector"):
            set_.append(
                (
                    "P-Charging-Vector",
                    f"icid-value={secrets.token_hex(16)};icid-generated-at={self.address}",
                )
            )
        if not peer.trusted:
            remove += ["P-Asserted-Identity", "P-Charging-Vector"]
            set_ = []
        return self.forward(
            request,
            Target(uri=request.uri, next_hop=peer.hop),
            record_route=request.method == "INVITE",
            remove_headers=remove,
            set_headers=set_,
        )

    def _terminating(self, request: Request, ctx: RoutingContext) -> Forward | Respond:
        sub = self.subscribers.by_identity(request.uri)
        if sub is None:
            return Respond(status=404)
        bindings = self.store.lookup(sub.impi, ctx.now)
        if not bindings:
            return Respond(status=480, reason="Temporarily Unavailable")
        binding = bindings[0]
        set_ = [("P-Called-Party-ID", f"<{request.uri.encode()}>")] if self.ims else []
        # the Path recorded with the binding (RFC 3327 §5.3): kept in the store, so another
        # instance, or this one after a restart, routes through the same P-CSCF
        return self.forward(
            request,
            Target(uri=parse_uri(binding.uri), route=tuple(binding.path)),
            record_route=request.method == "INVITE",
            remove_headers=("Route",),
            set_headers=set_,
        )

    # --- registrar -----------------------------------------------------------------------
    # a fresh challenge (not 403) for these: the client may simply not have the right nonce
    _RECHALLENGE = frozenset(
        {
            "no credentials for realm",
            "nonce not issued here",
            "unknown user",
            "incomplete credentials",
        }
    )

    def _lookup(self, username: str, realm: str) -> str | None:
        sub = self.subscribers.by_username(username, realm)
        return sub.password if sub is not None else None

    @staticmethod
    def _as_digested(request: Request, server: DigestServer) -> Request:
        """The request as the client digested it. For REGISTER a digest ``uri`` naming a host
        (``sip:host[:port]``, no user part) is accepted in place of the Request-URI: SIPp 3.6
        digests the address it sent to (``sip:<P-CSCF ip>:5060``) unless given ``-auth_uri``,
        and a registrar's Request-URI is only the domain. The response still covers that uri,
        the method, the nonce and the nonce count (replays refused), and the To AOR must belong
        to the authenticated user. Other requests must digest their Request-URI."""
        if request.method != "REGISTER":
            return request
        for h in request.auth_headers(server.credentials_header):
            if h.scheme.lower() != "digest" or h.get("realm") != server.realm:
                continue
            try:
                uri = parse_uri(h.get("uri") or "")
            except SipParseError:
                return request
            if isinstance(uri, SipUri) and uri.user is None and not uri_equal(uri, request.uri):
                digested = request.copy()
                digested.uri = uri
                return digested
            return request
        return request

    def _authenticate(self, request: Request, *, proxy: bool, now: float) -> Respond | str:
        """The authenticated digest username, or the 401/407 (stale or not) / 403 to send."""
        server = self.proxy_digest if proxy else self.digest
        result = server.verify(self._as_digested(request, server), now, self._lookup)
        if result.ok and result.username is not None:
            return result.username
        if result.stale or result.reason in self._RECHALLENGE:
            challenge = server.challenge_response(request, now, stale=result.stale)
            return Respond(status=challenge.status, response=challenge)
        _log.info("digest refused", element=self.name, reason=result.reason)
        return Respond(status=403, reason="Bad credentials")

    def _register(self, request: Request, ctx: RoutingContext) -> Respond:
        now = ctx.now
        if uri_domain(request.uri) != self.domain:
            return Respond(status=403, reason="Not our domain")
        if self.admission is not None:
            source, call_id = ctx.source.host, request.call_id or ""
            if "Authorization" in request.headers:
                self.admission.answered(source, call_id)
            elif not self.admission.admit(source, call_id, now):
                _log.info("unauthenticated REGISTER refused", element=self.name, source=source)
                return Respond(
                    status=503,
                    reason="Too Many Unauthenticated Registrations",
                    headers=[("Retry-After", str(self.admission.retry_after))],
                )
        username = self._authenticate(request, proxy=False, now=now)
        if isinstance(username, Respond):
            return username
        sub = self.subscribers.by_username(username, self.domain)
        assert sub is not None  # _lookup found its password
        to = request.to
        if to is None or self.subscribers.by_identity(to.uri) is not sub:
            return Respond(status=403, reason="Identity not owned by this subscriber")
        path = request.headers.get_list("Path")
        contacts = [
            ContactRequest(
                key=c.uri.encode(),
                uri=c.uri.encode(),
                display_name=c.display_name,
                expires=c.expires,
                q=c.q,
                params=tuple(
                    (n, v) for n, v in c.params.items if n.lower() not in ("expires", "q")
                ),
                path=tuple(path),
            )
            for c in request.contacts
        ]
        cseq = request.cseq
        try:
            bindings = self.store.apply(
                sub.impi,
                contacts,
                call_id=request.call_id or "",
                cseq=cseq.seq if cseq else 0,
                now=now,
                wildcard=request.contact_star,
                expires_header=request.expires,
            )
        except RegistrarError as exc:
            return Respond(status=exc.status, reason=exc.reason, headers=exc.headers)
        headers = [("Contact", b.contact_value(now)) for b in bindings]
        if self.ims:
            if path:
                headers += [("Path", p) for p in path]
                headers.append(("Supported", "path"))
            headers.append(("Service-Route", f"<sip:orig@{self.address}:{self.sip_port};lr>"))
            headers.append(("P-Associated-URI", ", ".join(f"<{i}>" for i in sub.impus)))
        _log.info("registered", element=self.name, impi=sub.impi, bindings=len(bindings))
        return Respond(status=200, headers=headers)

    def registered(self, identity: str, now: float | None = None) -> bool:
        """Has ``identity`` a live binding (at ``now``; default: the core's clock now)?"""
        sub = self.subscribers.by_identity(identity)
        when = self.now() if now is None else now
        return sub is not None and bool(self.store.lookup(sub.impi, when))


def subscriber_records(items: Any) -> list[SubscriberRecord]:
    """Records from any objects with ``impi``, ``impus`` and ``password`` (the topology's)."""
    return [SubscriberRecord(impi=s.impi, impus=tuple(s.impus), password=s.password) for s in items]


__all__ = [
    "DomainPeer",
    "HomeServer",
    "SipUri",
    "TelUri",
    "normalize_identity",
    "subscriber_records",
]
