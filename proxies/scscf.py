"""The S-CSCF (TS 24.229 §5.4) and, with IMS features off, the Internet SIP proxy.

One class, :class:`HomeServer`, serves a home domain:

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
  port of each P-/S-CSCF). ``P-Asserted-Identity`` from anyone else is removed on ingress (in
  :class:`~proxies.base.SipProxy`, before any routing decision); ``P-Asserted-Identity`` and
  ``P-Charging-Vector`` are removed when a request leaves towards a peer outside the Trust
  Domain (the Internet proxy).
* **No open relay**: a request with a To tag or a Route set is relayed only when the sender is
  entitled (:meth:`HomeServer.may_relay`): a Trust Domain node, or a configured peer / user
  routing along a route set this element Record-Routed; the Internet proxy, whose users are
  anyone on the Internet, also requires the next hop to be a configured peer or one of its
  registered contacts. Out-of-dialog requests from outside go only to our own users.
"""

from __future__ import annotations

import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Any

from ims.log import get_logger
from ims.sip.auth import DigestServer
from ims.sip.errors import SipParseError
from ims.sip.headers import NameAddr
from ims.sip.message import Request, Response, make_response
from ims.sip.registrar import BindingStore, ContactRequest, RegistrarError
from ims.sip.trust import Trust, TrustPolicy
from ims.sip.uri import SipUri, TelUri, parse_uri, uri_equal
from ims.store import Store
from ims.store.shared import shared_secret
from proxies.base import (
    UNAUTH_REGISTERS_PER_SOURCE,
    Forward,
    Hop,
    SipProxy,
    tel_number,
    uri_domain,
)
from proxies.subscribers import SubscriberDb, SubscriberRecord, normalize_identity

_log = get_logger("proxies.scscf")


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """A peer serving a domain: where to send, and whether it is inside the IMS trust domain."""

    hop: Hop
    trusted: bool


class HomeServer(SipProxy):
    """Registrar + routing proxy of one home domain (S-CSCF when ``ims=True``)."""

    role = "scscf"

    def __init__(
        self,
        name: str,
        address: str,
        *,
        domain: str,
        subscribers: SubscriberDb,
        peers: dict[str, Peer],
        tel_domains: dict[str, str],
        trust: TrustPolicy | None = None,
        ims: bool = True,
        sip_port: int = 5060,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        digest_algorithms: tuple[str, ...] = ("MD5",),
        store: Store | None = None,
    ) -> None:
        super().__init__(
            name,
            address,
            sip_port=sip_port,
            tls_port=tls_port,
            ssl_context=ssl_context,
            trust=trust,
        )
        self.role = "scscf" if ims else "internet_proxy"
        self.domain = domain.lower()
        self.subscribers = subscribers
        self.peers = {d.lower(): p for d, p in peers.items()}
        self.tel_domains = tel_domains
        self.ims = ims
        if not ims:
            # the Internet proxy faces its users directly (no P-CSCF in front): one source
            # address may hold only a few unauthenticated REGISTERs (issue 11, finding 9)
            self.endpoint.max_unauthenticated_registers_per_source = UNAUTH_REGISTERS_PER_SOURCE
        # bindings, nonce counts and the nonce key in the shared store (ims.store), when given:
        # every instance of this S-CSCF then serves every registered user (issue 18)
        self.store = BindingStore(store, namespace=f"location.{self.domain}")
        # ims.sip.auth: stateless HMAC nonces, stale detection, nc replay refusal. MD5 by
        # default because SIPp 3.6 answers only the first challenge and only with MD5; our UE
        # (ims.sip.auth.DigestClient) also answers SHA-256.
        if store is None:
            secret = secrets.token_bytes(32)
        else:
            secret = shared_secret(store, f"digest/{self.domain}", self.now())
        self.digest = DigestServer(
            realm=self.domain, secret=secret, algorithms=digest_algorithms, nonce_store=store
        )
        self.proxy_digest = DigestServer(
            realm=self.domain,
            secret=secret,
            algorithms=digest_algorithms,
            proxy=True,
            nonce_store=store,
        )

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def now() -> float:
        # wall clock: binding expiries and nonce issue times are shared between instances
        # and kept across restarts (ims.store)
        return time.time()

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
    def may_relay(self, request: Request, flow: Any, own_route: NameAddr | None) -> bool:
        trust = self.classify(flow)
        if trust is Trust.TRUSTED:
            return True
        if own_route is None:
            return False  # not a route set we are on: we are not this sender's relay
        if self.ims:
            # an S-CSCF serves no UE directly: only configured peers route through it
            return trust is Trust.KNOWN
        if trust is Trust.KNOWN:
            return True
        # the Internet proxy's users are anyone: relay only towards a configured peer or one
        # of our registered users, never to an arbitrary next hop
        hop = self.route_set_hop(request) or self._uri_hop(request)
        return hop is not None and self._serves_hop(hop)

    @staticmethod
    def _uri_hop(request: Request) -> Hop | None:
        try:
            return Hop.from_uri(request.uri)
        except ValueError:
            return None

    def _serves_hop(self, hop: Hop) -> bool:
        """Is ``hop`` a configured peer or the contact of one of our registered users?"""
        if any(p.hop.addr == hop.addr for p in self.peers.values()):
            return True
        if self.trust.trusts_hop(hop.host, hop.port):
            return True
        now = self.now()
        for aor in self.store.aors(now):
            for b in self.store.lookup(aor, now):
                try:
                    if Hop.from_uri(parse_uri(b.uri)).addr == hop.addr:
                        return True
                except (ValueError, SipParseError):
                    continue
        return False

    async def decide(self, request: Request, flow: Any, own_route: NameAddr | None) -> Any:
        if request.method == "REGISTER":
            return self._register(request)
        hop = self.route_set_hop(request)
        to = request.to
        in_dialog = to is not None and to.tag is not None
        if in_dialog or (hop is not None and own_route is None):
            # in-dialog (loose routing along the Record-Route set, else to the remote target)
            # or a pre-loaded route: only for a sender entitled to route through us
            if not self.may_relay(request, flow, own_route):
                return make_response(request, 403, "Not entitled to route through this element")
            if hop is None:
                hop = self._uri_hop(request)
                if hop is None:
                    return make_response(request, 416)
            return Forward(request=request, hop=hop)
        from_trusted = self.classify(flow) is Trust.TRUSTED
        if hop is not None and not from_trusted:
            # an initial request is routed by its Request-URI here; a route pre-loaded by a
            # sender outside the Trust Domain would make us its relay to anywhere
            request.headers.remove("Route")
        originating = (
            own_route is not None
            and isinstance(own_route.uri, SipUri)
            and own_route.uri.user == "orig"
        )
        if not self.ims and request.method != "ACK" and not from_trusted:
            frm = request.from_
            if frm is not None and uri_domain(frm.uri) == self.domain:
                auth = self._authenticate(request, proxy=True)
                if isinstance(auth, Response):
                    return auth
                originating = True
        if originating and self.ims and not request.headers.get("P-Asserted-Identity"):
            return make_response(request, 403, "No asserted identity")
        domain = self.target_domain(request)
        if domain == self.domain:
            return self._terminating(request)
        if not originating:
            # neither ours nor sent by one of our users: this element is no open relay
            return make_response(request, 403, "Not an originating request for this network")
        peer = self.peers.get(domain or "")
        if peer is None:
            return make_response(request, 404, "No route to the target domain")
        out = request.copy()
        if self.ims and not out.headers.get("P-Charging-Vector"):
            out.headers.set(
                "P-Charging-Vector",
                f"icid-value={secrets.token_hex(16)};icid-generated-at={self.address}",
            )
        if not peer.trusted:
            out.headers.remove("P-Asserted-Identity")
            out.headers.remove("P-Charging-Vector")
        return Forward(request=out, hop=peer.hop, record_route=request.method == "INVITE")

    def _terminating(self, request: Request) -> Any:
        sub = self.subscribers.by_identity(request.uri)
        if sub is None:
            return make_response(request, 404)
        bindings = self.store.lookup(sub.impi, self.now())
        if not bindings:
            return make_response(request, 480, "Temporarily Unavailable")
        binding = bindings[0]
        out = request.copy()
        out.uri = parse_uri(binding.uri)
        out.headers.remove("Route")
        for value in binding.path:
            out.headers.add("Route", value)
        if self.ims:
            out.headers.set("P-Called-Party-ID", f"<{request.uri.encode()}>")
        hop = self.route_set_hop(out) or Hop.from_uri(out.uri)
        return Forward(request=out, hop=hop, record_route=request.method == "INVITE")

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

    def _authenticate(self, request: Request, *, proxy: bool) -> Response | str:
        """The authenticated digest username, or the 401/407 (stale or not) / 403 to send."""
        server = self.proxy_digest if proxy else self.digest
        now = self.now()
        result = server.verify(self._as_digested(request, server), now, self._lookup)
        if result.ok and result.username is not None:
            return result.username
        if result.stale or result.reason in self._RECHALLENGE:
            return server.challenge_response(request, now, stale=result.stale)
        _log.info("digest refused", element=self.name, reason=result.reason)
        return make_response(request, 403, "Bad credentials")

    def _register(self, request: Request) -> Any:
        if uri_domain(request.uri) != self.domain:
            return make_response(request, 403, "Not our domain")
        username = self._authenticate(request, proxy=False)
        if isinstance(username, Response):
            return username
        sub = self.subscribers.by_username(username, self.domain)
        assert sub is not None  # _lookup found its password
        to = request.to
        if to is None or self.subscribers.by_identity(to.uri) is not sub:
            return make_response(request, 403, "Identity not owned by this subscriber")
        now = self.now()
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
            return make_response(request, exc.status, exc.reason, headers=exc.headers)
        headers = [("Contact", b.contact_value(now)) for b in bindings]
        if self.ims:
            if path:
                headers += [("Path", p) for p in path]
                headers.append(("Supported", "path"))
            headers.append(("Service-Route", self.my_name_addr("orig")))
            headers.append(("P-Associated-URI", ", ".join(f"<{i}>" for i in sub.impus)))
        _log.info("registered", element=self.name, impi=sub.impi, bindings=len(bindings))
        return make_response(request, 200, headers=headers)

    def registered(self, identity: str) -> bool:
        sub = self.subscribers.by_identity(identity)
        return sub is not None and bool(self.store.lookup(sub.impi, self.now()))


def subscriber_records(items: Any) -> list[SubscriberRecord]:
    """Records from any objects with ``impi``, ``impus`` and ``password`` (the topology's)."""
    return [SubscriberRecord(impi=s.impi, impus=tuple(s.impus), password=s.password) for s in items]


__all__ = [
    "HomeServer",
    "Peer",
    "SipUri",
    "TelUri",
    "normalize_identity",
    "subscriber_records",
]
