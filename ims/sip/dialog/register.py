"""Registration client (RFC 3261 §10.2; RFC 3608 Service-Route; RFC 3327 Path), sans-I/O.

:class:`RegistrationClient` keeps one binding of an AOR alive: it builds the REGISTERs (one
Call-ID, CSeq raised on every request, §10.2.4), answers 401/407 with digest credentials
(once per challenge, again on ``stale=true``), retries a 423 with the registrar's
Min-Expires, reads the granted expiry of *its* contact from the 200 (§10.2.4: the registrar
may shorten it), records the Service-Route (RFC 3608) to use for later requests, and says
when to refresh: half-way through the granted time, but not earlier than 60 s before expiry
for long registrations. Time is the ``now`` argument; the caller sends the returned requests
through its transaction layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from ims.sip.auth import DigestClient, challenges_of
from ims.sip.dialog.builders import Local, build_register
from ims.sip.errors import SipBuildError, SipParseError
from ims.sip.grammar import parse_delta_seconds
from ims.sip.headers import NameAddr
from ims.sip.message import Request, Response, new_call_id, new_tag
from ims.sip.uri import Uri, uri_equal

__all__ = [
    "Registered",
    "RegistrationClient",
    "RegistrationFailed",
    "RegistrationState",
    "Unregistered",
]


class RegistrationState(Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Registered:
    expires: int  # seconds granted for our contact
    contacts: tuple[NameAddr, ...]  # every binding the registrar reported
    service_route: tuple[NameAddr, ...]  # RFC 3608: preloaded Route for later requests
    response: Response


@dataclass(frozen=True, slots=True)
class Unregistered:
    response: Response


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    response: Response | None
    reason: str


RegistrationEvent = Registered | Unregistered | RegistrationFailed


class RegistrationClient:
    def __init__(
        self,
        registrar: Uri | str,
        aor: NameAddr | Uri | str,
        local: Local,
        *,
        expires: int = 600,
        credentials: DigestClient | None = None,
        routes: Sequence[NameAddr | Uri | str] = (),
        headers: Iterable[tuple[str, str]] = (),
        contact: NameAddr | None = None,
    ) -> None:
        self.registrar = registrar
        self.aor = aor
        self.local = local
        self.expires = expires
        self.credentials = credentials
        self.routes = tuple(routes)
        self.headers = tuple(headers)
        self.contact = contact or local.contact()
        self.call_id = new_call_id(local.host)
        self.from_tag = new_tag()
        self.state = RegistrationState.UNREGISTERED
        self.cseq = 0
        self.granted: int | None = None
        self.service_route: tuple[NameAddr, ...] = ()
        self.pending: Request | None = None
        self._refresh_at: float | None = None
        self._answered_nonces: set[str] = set()
        self._last_challenge: Response | None = None

    # -- requests out ---------------------------------------------------------------------
    def _build(self, expires: int) -> Request:
        self.cseq += 1
        req = build_register(
            self.registrar,
            self.aor,
            local=self.local,
            expires=expires,
            contact=self.contact,
            call_id=self.call_id,
            cseq=self.cseq,
            from_tag=self.from_tag,
            headers=[("Supported", "path"), *self.headers],
            routes=self.routes,
        )
        self.pending = req
        return req

    def register(self, now: float) -> Request:
        """The REGISTER to send now (first registration or refresh)."""
        self.state = RegistrationState.REGISTERING
        self._refresh_at = None
        return self._build(self.expires)

    def unregister(self, now: float) -> Request:
        """The REGISTER removing our binding (``Expires: 0``, §10.2.2)."""
        self.state = RegistrationState.UNREGISTERING
        self._refresh_at = None
        return self._reauthorize(self._build(0))

    # -- responses in ---------------------------------------------------------------------
    def receive_response(
        self, response: Response, now: float
    ) -> tuple[list[RegistrationEvent], Request | None]:
        """Feed the final response to the pending REGISTER. Returns the events and the next
        request to send at once (an authenticated or 423-corrected retry), if any."""
        pending = self.pending
        if pending is None or response.status < 200:
            return [], None
        cseq = response.cseq
        if response.call_id != self.call_id or cseq is None or cseq.seq != self.cseq:
            return [], None
        self.pending = None
        if response.status in (401, 407):
            return self._challenged(pending, response)
        if response.status == 423:
            raw = response.headers.get("Min-Expires")
            try:
                minimum = parse_delta_seconds(raw or "", header="Min-Expires")
            except SipParseError:
                return self._fail(response, "423 without a usable Min-Expires")
            if minimum <= self.expires:
                return self._fail(response, "423 with Min-Expires not above our request")
            self.expires = minimum
            return [], self._reauthorize(self._build(minimum))
        if response.status >= 300:
            return self._fail(response, f"{response.status} {response.reason}")
        if self.state is RegistrationState.UNREGISTERING:
            self.state = RegistrationState.UNREGISTERED
            self.granted = None
            return [Unregistered(response)], None
        return self._registered(response, now)

    def _reauthorize(self, request: Request) -> Request:
        """Answer the last challenge again for a new request (nonce reuse with nc + 1, RFC
        7616 §3.4): no 401 round trip per refresh; an expired nonce comes back as a 401
        with stale=true and is answered then."""
        if self.credentials is None or self._last_challenge is None:
            return request
        try:
            request = self.credentials.authorize(request, self._last_challenge)
        except SipBuildError:
            return request
        assert request.cseq is not None  # authorize raised it
        self.cseq = request.cseq.seq
        self.pending = request
        return request

    def _challenged(
        self, request: Request, response: Response
    ) -> tuple[list[RegistrationEvent], Request | None]:
        if self.credentials is None:
            return self._fail(response, "authentication required, no credentials")
        challenges = challenges_of(response)
        try:
            sent = {
                h.get("realm")
                for name in ("Authorization", "Proxy-Authorization")
                for h in request.auth_headers(name)
            }
        except SipParseError:
            sent = set()
        # §22.2: credentials we just sent for a realm were rejected (a new challenge for it
        # without stale=true): do not retry with the same password
        rejected = [c for c in challenges if c.realm in sent and not c.stale]
        fresh = [c for c in challenges if c.stale or c.nonce not in self._answered_nonces]
        if rejected or not fresh:
            return self._fail(response, "credentials rejected")
        try:
            retry = self.credentials.authorize(request, response)
        except SipBuildError as exc:
            return self._fail(response, str(exc))
        if len(self._answered_nonces) > 64:
            self._answered_nonces.clear()
        self._answered_nonces.update(c.nonce for c in challenges)
        self._last_challenge = response
        assert retry.cseq is not None  # authorize copies and raises the CSeq
        self.cseq = retry.cseq.seq
        self.pending = retry
        return [], retry

    def _fail(
        self, response: Response, reason: str
    ) -> tuple[list[RegistrationEvent], Request | None]:
        self.state = RegistrationState.FAILED
        self._refresh_at = None
        return [RegistrationFailed(response, reason)], None

    def _registered(
        self, response: Response, now: float
    ) -> tuple[list[RegistrationEvent], Request | None]:
        try:
            contacts = response.contacts
            header_expires = response.expires
            mine = [c for c in contacts if uri_equal(c.uri, self.contact.uri)]
            granted = mine[0].expires if mine and mine[0].expires is not None else None
            self.service_route = tuple(response.addresses("Service-Route"))
        except SipParseError as exc:
            return self._fail(response, f"bad 200: {exc}")
        if granted is None:
            granted = header_expires if header_expires is not None else self.expires
        if contacts and not mine:
            return self._fail(response, "our contact is not in the 200")
        self.granted = granted
        self.state = RegistrationState.REGISTERED
        self._refresh_at = now + max(granted / 2, granted - 60) if granted > 0 else None
        return [Registered(granted, tuple(contacts), self.service_route, response)], None

    # -- refresh timer --------------------------------------------------------------------
    def get_timer(self) -> float | None:
        return self._refresh_at

    def handle_timer(self, now: float) -> Request | None:
        """The refreshing REGISTER when it is due, else None."""
        if self._refresh_at is None or now < self._refresh_at:
            return None
        return self._reauthorize(self.register(now))
