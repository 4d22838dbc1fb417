"""SIP registrar core and location service (RFC 3261 §10.3), sans-I/O.

Two layers, like every engine here:

* :class:`BindingStore` holds the location service: per address-of-record (AOR) a set of
  contact bindings, each with its expiry time, q-value, the Call-ID and CSeq of the REGISTER
  that last touched it and the Contact header parameters it was registered with. Its
  :meth:`BindingStore.apply` transcribes §10.3 steps 6-7 exactly:

  - ``Contact: *`` is only valid with ``Expires: 0`` and no other Contact (else 400); it removes
    every binding of the AOR, except that a binding with the *same* Call-ID and a CSeq not lower
    than the request's aborts the whole request.
  - each contact's expiry comes from its ``expires`` parameter, else the ``Expires`` header,
    else the configured default; a non-zero value below ``min_expires`` answers
    ``423 Interval Too Brief`` with ``Min-Expires``; values above ``max_expires`` are shortened.
  - an existing binding (URI comparison, §19.1.4, through the caller-supplied key) with a
    different Call-ID is updated or removed; with the same Call-ID only when the request's CSeq
    is higher, otherwise the whole update is aborted.
  - updates are atomic: the request is checked completely before anything changes.

* :class:`Registrar` turns a REGISTER request into that call (steps 2-5: Require, the
  authentication callback, the AOR from To) and answers with the 200 listing every current
  binding with its remaining ``expires`` (step 8), or with the error's status (400, 401, 404,
  420, 423 + Min-Expires).

Time is always the ``now`` argument; nothing here reads a clock. The bindings live in an
:class:`ims.store.Store`, shared by instances and kept across restarts, so ``now`` is wall-clock
seconds (``time.time()``) wherever the store outlives the process.
"""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ims.errors import ImsError
from ims.sip.auth import DigestServer
from ims.sip.errors import SipParseError
from ims.sip.message import Request, Response, make_response, new_tag
from ims.sip.uri import SipUri, Uri, unescape
from ims.store import Store, Write, keep
from ims.store.sqlite import SqliteStore

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 86400


class RegistrarError(ImsError):
    """A REGISTER the registrar refuses; carries the SIP status and extra response headers."""

    def __init__(
        self, status: int, reason: str, *, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRequest:
    """One Contact of a REGISTER, as the message layer extracted it.

    ``key`` is what two contacts compare by (RFC 3261 §19.1.4 URI equality; the message layer
    provides it), ``uri`` the URI text to give back in 200 OK and in lookups, ``expires`` the
    contact's own ``expires`` parameter (``None`` when absent), ``q`` its q-value (``None``
    when absent) and ``params`` every other Contact header parameter, kept in order.
    """

    key: Hashable
    uri: str
    display_name: str | None = None
    expires: int | None = None
    q: float | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    #: the REGISTER's Path header values (RFC 3327 §5.3: stored with the binding)
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """A current binding of an AOR to a contact address (RFC 3261 §10)."""

    aor: str
    key: Hashable
    uri: str
    display_name: str | None
    q: float | None
    expires_at: float
    call_id: str
    cseq: int
    params: tuple[tuple[str, str | None], ...] = ()
    path: tuple[str, ...] = ()

    def expires_in(self, now: float) -> int:
        """Seconds left, rounded up, never negative (the ``expires`` to report)."""
        # rounded to the microsecond first: at a monotonic now of 4008.44..., now + 600 - now
        # is 600.0000000000002, and a 200 must not report more than was granted (601 for 600)
        left = round(self.expires_at - now, 6)
        return max(0, int(left) + (1 if left > int(left) else 0))

    def contact_value(self, now: float) -> str:
        """The Contact header value a 200 OK lists for this binding (§10.3 step 8)."""
        parts = []
        if self.display_name:
            parts.append(f'"{self.display_name}" ')
        parts.append(f"<{self.uri}>")
        for name, value in self.params:
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.q is not None:
            parts.append(f";q={_format_q(self.q)}")
        parts.append(f";expires={self.expires_in(now)}")
        return "".join(parts)


def _format_q(q: float) -> str:
    text = f"{q:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _tuplify(value: Any) -> Any:
    """JSON gives lists back where the contact key had tuples (hashable again)."""
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def _encode_bindings(bindings: Iterable[Binding]) -> bytes:
    return msgspec.json.encode(
        [
            [
                b.key,
                b.uri,
                b.display_name,
                b.q,
                b.expires_at,
                b.call_id,
                b.cseq,
                [list(p) for p in b.params],
                list(b.path),
            ]
            for b in bindings
        ]
    )


def _decode_bindings(aor: str, raw: bytes | None) -> dict[Hashable, Binding]:
    if raw is None:
        return {}
    out: dict[Hashable, Binding] = {}
    for key, uri, display, q, expires_at, call_id, cseq, params, path in msgspec.json.decode(raw):
        k = _tuplify(key)
        out[k] = Binding(
            aor=aor,
            key=k,
            uri=uri,
            display_name=display,
            q=q,
            expires_at=expires_at,
            call_id=call_id,
            cseq=cseq,
            params=tuple((n, v) for n, v in params),
            path=tuple(path),
        )
    return out


class BindingStore:
    """The location service: AOR -> bindings, with §10.3 update rules.

    The bindings live in an :class:`ims.store.Store` (namespace ``location``, one record per
    AOR holding all its bindings, expiring with the last of them), so several registrar
    instances share them and they outlive a restart; every REGISTER is one atomic
    read-check-write of its AOR's record (:meth:`ims.store.Store.update`). With no store given,
    a private in-memory SQLite database (one process, nothing kept).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        namespace: str = "location",
        default_expires: int = DEFAULT_EXPIRES,
        min_expires: int = MIN_EXPIRES,
        max_expires: int = MAX_EXPIRES,
    ) -> None:
        self.store: Store = store if store is not None else SqliteStore(":memory:")
        #: one namespace per registrar service (its instances share it; another operator's
        #: registrar on the same store has its own)
        self.NAMESPACE = namespace
        self.default_expires = default_expires
        self.min_expires = min_expires
        self.max_expires = max_expires

    def apply(
        self,
        aor: str,
        contacts: Sequence[ContactRequest],
        *,
        call_id: str,
        cseq: int,
        now: float,
        wildcard: bool = False,
        expires_header: int | None = None,
    ) -> list[Binding]:
        """Apply one REGISTER's contacts to ``aor`` atomically; return the AOR's bindings.

        Raises :class:`RegistrarError` (400, 423) without changing anything.
        """

        def change(raw: bytes | None) -> tuple[Write, list[Binding]]:
            current = _live(_decode_bindings(aor, raw), now)
            updated = self._changed(
                aor, current, contacts, call_id, cseq, now, wildcard, expires_header
            )
            if not updated:
                return Write(None), []
            expires_at = max(b.expires_at for b in updated.values())
            return Write(_encode_bindings(updated.values()), expires_at), _ordered(updated)

        return self.store.update(self.NAMESPACE, aor, now, change)

    def _changed(
        self,
        aor: str,
        current: dict[Hashable, Binding],
        contacts: Sequence[ContactRequest],
        call_id: str,
        cseq: int,
        now: float,
        wildcard: bool,
        expires_header: int | None,
    ) -> dict[Hashable, Binding]:
        if wildcard:
            if contacts or expires_header != 0:
                raise RegistrarError(400, "Wildcard Contact Needs Expires 0 And No Other Contact")
            for binding in current.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise RegistrarError(400, "CSeq Not Higher Than Existing Binding")
            return {}

        # First pass: compute every change, so that a failure leaves the store untouched.
        changes: list[tuple[ContactRequest, int]] = []
        for contact in contacts:
            if contact.expires is not None:
                expires = contact.expires
            elif expires_header is not None:
                expires = expires_header
            else:
                expires = self.default_expires
            if expires < 0:
                raise RegistrarError(400, "Negative Expires")
            if 0 < expires < self.min_expires:
                raise RegistrarError(
                    423, "Interval Too Brief", headers=[("Min-Expires", str(self.min_expires))]
                )
            expires = min(expires, self.max_expires)
            existing = current.get(contact.key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise RegistrarError(400, "CSeq Not Higher Than Existing Binding")
            changes.append((contact, expires))

        updated = dict(current)
        for contact, expires in changes:
            if expires == 0:
                updated.pop(contact.key, None)
                continue
            updated[contact.key] = Binding(
                aor=aor,
                key=contact.key,
                uri=contact.uri,
                display_name=contact.display_name,
                q=contact.q,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                params=contact.params,
                path=contact.path,
            )
        return updated

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Current bindings of ``aor``, highest q first (absent q counts as 1.0, §16.6)."""
        raw = self.store.get(self.NAMESPACE, aor, now)
        return _ordered(_live(_decode_bindings(aor, raw), now))

    def aors(self, now: float) -> Iterable[str]:
        """The AORs with a binding current at ``now``."""
        return tuple(
            aor
            for aor, raw in self.store.scan(self.NAMESPACE, now)
            if _live(_decode_bindings(aor, raw), now)
        )

    def expire(self, now: float) -> int:
        """Drop every binding expired at ``now``; return how many the store still held (a
        Redis server may already have reclaimed whole records itself)."""
        dropped = 0
        # read at -inf: records whose every binding has expired are still seen, and each AOR
        # is pruned in one atomic update (a REGISTER racing in on another instance is kept)
        for aor, _ in list(self.store.scan(self.NAMESPACE, -math.inf)):
            dropped += self.store.update(
                self.NAMESPACE, aor, -math.inf, functools.partial(_prune, aor, now=now)
            )
        return dropped

    def next_expiry(self, now: float) -> float | None:
        """When the earliest binding current at ``now`` expires (for a timer), or None."""
        times = [
            b.expires_at
            for aor, raw in self.store.scan(self.NAMESPACE, now)
            for b in _live(_decode_bindings(aor, raw), now).values()
        ]
        return min(times) if times else None


def _live(bindings: dict[Hashable, Binding], now: float) -> dict[Hashable, Binding]:
    return {k: b for k, b in bindings.items() if b.expires_at > now}


def _ordered(bindings: dict[Hashable, Binding]) -> list[Binding]:
    found = list(bindings.values())
    found.sort(key=lambda b: -(1.0 if b.q is None else b.q))
    return found


def _prune(aor: str, raw: bytes | None, *, now: float) -> tuple[Write, int]:
    every = _decode_bindings(aor, raw)
    live = _live(every, now)
    if len(live) == len(every):
        return keep, 0
    if not live:
        return Write(None), len(every)
    expires_at = max(b.expires_at for b in live.values())
    return Write(_encode_bindings(live.values()), expires_at), len(every) - len(live)


# ---------------------------------------------------------------------------------------
# REGISTER handling (§10.3 steps 2-8)
# ---------------------------------------------------------------------------------------
#: authentication callback: ``(request, now) -> None`` when the request is authenticated,
#: else the challenge headers to send with a 401 (``WWW-Authenticate: Digest ...``); it may
#: raise :class:`RegistrarError` (403 when the user may not register that AOR, §10.3 step 4).
Authenticate = Callable[[Request, float], Sequence[tuple[str, str]] | None]


def digest_authenticator(
    realm: str,
    passwords: Mapping[str, str],
    algorithms: Sequence[str] = ("SHA-256", "MD5"),
    *,
    secret: bytes | None = None,
) -> Authenticate:
    """REGISTER authentication with :class:`ims.sip.auth.DigestServer` (RFC 7616 digest,
    qop=auth; a 401 challenge per algorithm, most preferred first), then authorization
    (§10.3 step 4): the authenticated user must own the AOR in To, else 403."""
    server = DigestServer(
        realm=realm, secret=secret or secrets.token_bytes(32), algorithms=tuple(algorithms)
    )

    def lookup(username: str, _realm: str) -> str | None:
        return passwords.get(username)

    def authenticate(request: Request, now: float) -> Sequence[tuple[str, str]] | None:
        result = server.verify(request, now, lookup)
        if not result.ok:
            return server.challenge(now, stale=result.stale)
        to = request.to
        aor = None if to is None else aor_of(to.uri)
        if aor is None or aor.removeprefix("sip:").split("@", 1)[0] != result.username:
            raise RegistrarError(403, "Forbidden")
        return None

    return authenticate


_URI_PARAMS_COMPARED = ("transport", "user", "ttl", "method", "maddr")


def contact_key(uri: Uri) -> Hashable:
    """A hashable key with RFC 3261 §19.1.4 equality for the URIs a registrar meets: scheme,
    user (case-sensitive, unescaped), host (case-insensitive), port, the parameters that must
    match when present, and the headers; other parameters do not take part."""
    if not isinstance(uri, SipUri):
        return ("raw", uri.encode())
    params = tuple(
        sorted(
            (k.lower(), (v or "").lower())
            for k, v in uri.params
            if k.lower() in _URI_PARAMS_COMPARED
        )
    )
    user = None if uri.user is None else unescape(uri.user)
    headers = tuple(sorted((unescape(k).lower(), unescape(v)) for k, v in uri.headers))
    return (uri.scheme, user, uri.password, uri.host.lower(), uri.port, params, headers)


def aor_of(uri: Uri) -> str | None:
    """The canonical address-of-record (§10.3 step 5): ``sip:user@host``, or None."""
    if not isinstance(uri, SipUri) or not uri.user:
        return None
    return f"sip:{unescape(uri.user)}@{uri.host.lower()}"


class Registrar:
    """Answers REGISTER requests for the domains of a proxy (RFC 3261 §10.3)."""

    def __init__(
        self,
        store: BindingStore | None = None,
        *,
        authenticate: Authenticate | None = None,
        known_aors: Callable[[str], bool] | None = None,
        supported: frozenset[str] = frozenset({"path"}),
    ) -> None:
        self.store = store or BindingStore()
        self.authenticate = authenticate
        self.known_aors = known_aors
        self.supported = supported
        self._tag = new_tag()

    def handle(self, request: Request, now: float) -> Response:
        try:
            return self._handle(request, now)
        except RegistrarError as exc:
            return make_response(
                request, exc.status, exc.reason, to_tag=self._tag, headers=exc.headers
            )
        except SipParseError as exc:
            return make_response(request, exc.status_hint, to_tag=self._tag)

    def _handle(self, request: Request, now: float) -> Response:
        # step 2: Require
        unsupported = [t for t in request.require if t not in self.supported]
        if unsupported:
            raise RegistrarError(
                420, "Bad Extension", headers=[("Unsupported", ", ".join(unsupported))]
            )
        # step 3: authentication
        if self.authenticate is not None:
            challenge = self.authenticate(request, now)
            if challenge is not None:
                raise RegistrarError(401, "Unauthorized", headers=challenge)
        # step 5: the address-of-record
        to = request.to
        aor = None if to is None else aor_of(to.uri)
        if aor is None or (self.known_aors is not None and not self.known_aors(aor)):
            raise RegistrarError(404, "Not Found")
        # steps 6-7
        cseq = request.cseq
        contacts = []
        for c in request.contacts:
            params = tuple((k, v) for k, v in c.params if k.lower() not in ("q", "expires"))
            try:
                q = c.q
            except ValueError as exc:
                raise RegistrarError(400, "Bad q Value") from exc
            if q is not None and not 0.0 <= q <= 1.0:
                raise RegistrarError(400, "Bad q Value")
            contacts.append(
                ContactRequest(
                    key=contact_key(c.uri),
                    uri=c.uri.encode(),
                    display_name=c.display_name,
                    expires=c.expires,
                    q=q,
                    params=params,
                )
            )
        bindings = self.store.apply(
            aor,
            contacts,
            call_id=request.call_id or "",
            cseq=cseq.seq if cseq else 0,
            now=now,
            wildcard=request.contact_star,
            expires_header=request.expires,
        )
        # step 8
        headers = [("Contact", b.contact_value(now)) for b in bindings]
        return make_response(request, 200, to_tag=self._tag, headers=headers)
