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
* **Trust domain** (RFC 3325 §5): ``P-Asserted-Identity`` and ``P-Charging-Vector`` are removed
  when a request leaves towards a peer outside the IMS trust domain (the Internet proxy), and
  ``P-Asserted-Identity`` is ignored when it arrives from outside.
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
from ims.sip.uri import SipUri, TelUri, parse_uri, uri_equal
from proxies.base import Forward, Hop, SipProxy, tel_number, uri_domain
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
        trusted_addresses: set[str],
        ims: bool = True,
        sip_port: int = 5060,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        digest_algorithms: tuple[str, ...] = ("MD5",),
    ) -> None:
        super().__init__(
            name, address, sip_port=sip_port, tls_port=tls_port, ssl_context=ssl_context
        )
        self.role = "scscf" if ims else "internet_proxy"
        self.domain = domain.lower()
        self.subscribers = subscribers
        self.peers = {d.lower(): p for d, p in peers.items()}
        self.tel_domains = tel_domains
        self.trusted_addresses = trusted_addresses
        self.ims = ims
        self.store = BindingStore()
        self.paths: dict[tuple[str, str], list[str]] = {}  # (impi, contact uri) -> Path values
        # ims.sip.auth: stateless HMAC nonces, stale detection, nc replay refusal. MD5 by
        # default because SIPp 3.6 answers only the first challenge and only with MD5; our UE
        # (ims.sip.auth.DigestClient) also answers SHA-256.
        secret = secrets.token_bytes(32)
        self.digest = DigestServer(realm=self.domain, secret=secret, algorithms=digest_algorithms)
        self.proxy_digest = DigestServer(
            realm=self.domain, secret=secret, algorithms=digest_algorithms, proxy=True
        )

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def now() -> float:
        return time.monotonic()

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
    async def decide(self, request: Request, flow: Any, own_route: NameAddr | None) -> Any:
        if request.method == "REGISTER":
            return self._register(request)
        hop = self.route_set_hop(request)
        to = request.to
        if to is not None and to.tag is not None:
            # in-dialog: loose routing along the Record-Route set, else to the remote target
            if hop is None:
                try:
                    hop = Hop.from_uri(request.uri)
                except ValueError:
                    return make_response(request, 416)
            return Forward(request=request, hop=hop)
        if hop is not None and own_route is None:
            return Forward(request=request, hop=hop)
        from_trusted = str(flow.remote[0]) in self.trusted_addresses
        if not from_trusted:
            request.headers.remove("P-Asserted-Identity")
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
        path = self.paths.get((sub.impi, binding.uri), [])
        for value in path:
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
        path = request.headers.get_list("Path")
        for c in contacts:
            self.paths[(sub.impi, c.uri)] = list(path)
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
