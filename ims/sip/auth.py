"""HTTP Digest authentication for SIP, sans-I/O (RFC 3261 §22, RFC 7616, RFC 2617).

Client side (:class:`DigestClient`): given a 401/407 and the request that caused it, build
the retried request with Authorization/Proxy-Authorization (MD5, MD5-sess, SHA-256,
SHA-256-sess; qop=auth or auth-int, or the RFC 2069 form when the challenge has no qop),
with a nonce count per nonce and a fresh cnonce.

Server side (:class:`DigestServer`): challenges with self-validating nonces,
``base64(timestamp || random || HMAC-SHA256(secret, timestamp || random || realm)[:16])``, so
no per-nonce state is needed to detect forged or expired nonces; an expired nonce with a
correct response gets ``stale=true`` (RFC 7616 §3.3) so the UA retries silently. Time is the
``now`` argument (seconds, any origin).

Replay protection (RFC 7616 §3.4, nc: "if the same nc value is seen twice, then the request is
a replay") with bounded memory that *refuses* rather than forgets (issue 11, finding 6): the
highest ``nc`` is kept per nonce from its first use until the nonce expires (after that the
nonce is stale anyway). A user holds at most ``max_nonces_per_user`` live nonces, all users at
most ``max_nonces``; making room evicts the oldest entry and raises a *floor* (per user, or
global) to that nonce's issue time: a nonce issued at or before the floor and no longer
remembered is answered ``stale`` (a fresh challenge), never accepted. So one subscriber's
authentications cannot push another's nonce out of memory and make its capture replayable.
A response without ``qop`` (the RFC 2069 form, which has no ``nc``; RFC 7616 deprecates it) makes
its nonce single-use ("an implementation might choose to use one-time nonces", §3.3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from ims.sip.errors import SipBuildError, SipParseError
from ims.sip.grammar import Params, quote
from ims.sip.headers import AuthHeader, CSeq, parse_auth
from ims.sip.message import Request, Response, make_response, new_branch
from ims.sip.uri import parse_uri, uri_equal
from ims.store import Store, Write, keep

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "DigestChallenge",
    "DigestClient",
    "DigestServer",
    "digest_response",
]

#: algorithm name (upper-case) -> hashlib name
ALGORITHMS: dict[str, str] = {
    "MD5": "md5",
    "MD5-SESS": "md5",
    "SHA-256": "sha256",
    "SHA-256-SESS": "sha256",
}


def _h(alg: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(ALGORITHMS[alg.upper()], raw).hexdigest()


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str = "MD5",
    qop: str | None = "auth",
    nc: str = "00000001",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 when ``qop`` is None)."""
    alg = algorithm.upper()
    if alg not in ALGORITHMS:
        raise SipBuildError(f"unsupported digest algorithm {algorithm}")
    ha1 = _h(alg, f"{username}:{realm}:{password}")
    if alg.endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(alg, f"{method}:{uri}:{_h(alg, body)}")
    else:
        ha2 = _h(alg, f"{method}:{uri}")
    if qop is None:
        return _h(alg, f"{ha1}:{nonce}:{ha2}")
    return _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A parsed ``Digest`` challenge (WWW-Authenticate / Proxy-Authenticate)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False  # came in Proxy-Authenticate (407)

    @classmethod
    def from_header(cls, header: AuthHeader, *, proxy: bool = False) -> DigestChallenge:
        if header.scheme.lower() != "digest":
            raise SipParseError(f"not a Digest challenge: {header.scheme}")
        realm, nonce = header.get("realm"), header.get("nonce")
        if realm is None or nonce is None:
            raise SipParseError("Digest challenge without realm or nonce")
        qop = header.get("qop")
        return cls(
            realm=realm,
            nonce=nonce,
            algorithm=(header.get("algorithm") or "MD5").upper(),
            qop=tuple(q.strip() for q in qop.split(",") if q.strip()) if qop else (),
            opaque=header.get("opaque"),
            stale=(header.get("stale") or "").lower() == "true",
            proxy=proxy,
        )

    def to_header(self) -> AuthHeader:
        items: list[tuple[str, str | None]] = [
            ("realm", quote(self.realm)),
            ("nonce", quote(self.nonce)),
            ("algorithm", self.algorithm),
        ]
        if self.qop:
            items.append(("qop", quote(",".join(self.qop))))
        if self.opaque is not None:
            items.append(("opaque", quote(self.opaque)))
        if self.stale:
            items.append(("stale", "true"))
        return AuthHeader("Digest", Params(tuple(items)))


def challenges_of(response: Response) -> list[DigestChallenge]:
    """Every Digest challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate), in
    the server's order of preference; other schemes are skipped."""
    out: list[DigestChallenge] = []
    for name, proxy in (("WWW-Authenticate", False), ("Proxy-Authenticate", True)):
        for h in response.auth_headers(name):
            if h.scheme.lower() == "digest":
                try:
                    out.append(DigestChallenge.from_header(h, proxy=proxy))
                except SipParseError:
                    continue
    return out


class DigestClient:
    """Answers digest challenges for one set of credentials (RFC 3261 §22.2, §22.3)."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.username = username
        self.password = password
        self._cnonce = cnonce_factory
        self._nc: dict[str, int] = {}

    def credentials(
        self, challenge: DigestChallenge, method: str, uri: str, body: bytes = b""
    ) -> AuthHeader:
        """The Authorization value answering ``challenge`` for ``method uri``."""
        if challenge.algorithm.upper() not in ALGORITHMS:
            raise SipBuildError(f"unsupported digest algorithm {challenge.algorithm}")
        qop: str | None = None
        if challenge.qop:
            if "auth" in challenge.qop:
                qop = "auth"
            elif "auth-int" in challenge.qop:
                qop = "auth-int"
            else:
                raise SipBuildError(f"no supported qop in {challenge.qop}")
        n = self._nc.get(challenge.nonce, 0) + 1
        if len(self._nc) > 64:
            self._nc.clear()
        self._nc[challenge.nonce] = n
        nc = f"{n:08x}"
        cnonce = self._cnonce()
        resp = digest_response(
            username=self.username,
            password=self.password,
            realm=challenge.realm,
            method=method,
            uri=uri,
            nonce=challenge.nonce,
            algorithm=challenge.algorithm,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        items: list[tuple[str, str | None]] = [
            ("username", quote(self.username)),
            ("realm", quote(challenge.realm)),
            ("nonce", quote(challenge.nonce)),
            ("uri", quote(uri)),
            ("response", quote(resp)),
            ("algorithm", challenge.algorithm),
        ]
        if qop is not None:
            items += [("qop", qop), ("nc", nc), ("cnonce", quote(cnonce))]
        if challenge.opaque is not None:
            items.append(("opaque", quote(challenge.opaque)))
        return AuthHeader("Digest", Params(tuple(items)))

    def authorize(self, request: Request, response: Response) -> Request:
        """The request to resend after a 401/407 (RFC 3261 §22.2): a copy with CSeq + 1, a new
        top Via branch, and one credential per challenged realm (the first, i.e. preferred,
        challenge with a supported algorithm for each realm)."""
        if response.status not in (401, 407):
            raise SipBuildError(f"{response.status} is not a challenge")
        chosen: dict[tuple[str, bool], DigestChallenge] = {}
        for ch in challenges_of(response):
            if ch.algorithm.upper() in ALGORITHMS:
                chosen.setdefault((ch.realm, ch.proxy), ch)
        if not chosen:
            raise SipBuildError("no usable Digest challenge")
        new = request.copy()
        h = new.headers
        for ch in chosen.values():
            name = "Proxy-Authorization" if ch.proxy else "Authorization"
            # replace an earlier credential for the same realm
            keep = [v for v in h.get_all(name) if parse_auth(v).get("realm") != ch.realm]
            h.remove(name)
            for v in keep:
                h.add(name, v)
            cred = self.credentials(ch, request.method, request.uri.encode(), request.body)
            h.add(name, cred.encode())
        cseq = request.cseq
        if cseq is None:
            raise SipBuildError("request without CSeq")
        h.set("CSeq", CSeq(cseq.seq + 1, cseq.method).encode())
        via = request.via
        if via is not None:
            h.pop_first_element("Via")
            h.insert_first("Via", via.with_param("branch", new_branch()).encode())
        return new


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of :meth:`DigestServer.verify`. ``ok`` -> ``username`` is authenticated.
    Otherwise answer 401/407 with :meth:`DigestServer.challenge` (``stale`` passed on)."""

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


@dataclass(slots=True)
class _NonceUse:
    issued: float
    count: int
    username: str


@dataclass
class DigestServer:
    """Issues and verifies Digest challenges for one realm (registrar / proxy)."""

    realm: str
    secret: bytes
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    qop: str = "auth"
    nonce_lifetime: float = 300.0
    proxy: bool = False  # 407 / Proxy-Authenticate / Proxy-Authorization
    #: bounds of the replay memory (see the module docstring)
    max_nonces: int = 4096
    max_nonces_per_user: int = 32
    _nc_seen: OrderedDict[str, _NonceUse] = field(
        default_factory=OrderedDict, repr=False, init=False
    )
    _by_user: dict[str, OrderedDict[str, None]] = field(
        default_factory=dict, repr=False, init=False
    )
    _floor: float = field(default=-math.inf, repr=False, init=False)
    _user_floor: dict[str, float] = field(default_factory=dict, repr=False, init=False)
    #: shared nonce-count memory (:mod:`ims.store`), for several instances of one element and
    #: across restarts; None keeps it in this process (see :meth:`_use_nonce_shared`)
    nonce_store: Store | None = field(default=None, repr=False)

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    @property
    def status(self) -> int:
        return 407 if self.proxy else 401

    # -- nonces ---------------------------------------------------------------------------
    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self.secret, stamp + self.realm.encode(), hashlib.sha256).digest()[:16]

    def make_nonce(self, now: float) -> str:
        stamp = struct.pack("!d", now) + secrets.token_bytes(8)
        return base64.b64encode(stamp + self._mac(stamp)).decode()

    def nonce_issued(self, nonce: str) -> float | None:
        """When we issued ``nonce`` (our clock), or None if we did not issue it."""
        try:
            raw = base64.b64decode(nonce, validate=True)
        except (ValueError, TypeError):
            return None
        if len(raw) != 32 or not hmac.compare_digest(raw[16:], self._mac(raw[:16])):
            return None
        (issued,) = struct.unpack("!d", raw[:8])
        return float(issued)

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``, or None if we did not issue it."""
        issued = self.nonce_issued(nonce)
        if issued is None:
            return None
        age = now - issued
        return age if age >= -1.0 else None  # issued in the future: not ours

    @property
    def tracked_nonces(self) -> int:
        """How many nonces the replay memory holds (bounded by ``max_nonces``)."""
        return len(self._nc_seen)

    def _use_nonce(self, nonce: str, username: str, count: int, now: float) -> AuthResult | None:
        """Record one use of ``nonce`` with nonce count ``count``; an AuthResult refusing it,
        or None when it is fresh."""
        if self.nonce_store is not None:
            return self._use_nonce_shared(self.nonce_store, nonce, username, count, now)
        entry = self._nc_seen.get(nonce)
        if entry is not None:
            if entry.username != username or count <= entry.count:
                return AuthResult(False, username, reason="nonce count replayed")
            entry.count = count
            return None
        issued = self.nonce_issued(nonce)
        assert issued is not None  # checked by the caller
        if issued <= max(self._floor, self._user_floor.get(username, -math.inf)):
            # we may have forgotten this nonce's count: refuse (a fresh challenge), not accept
            return AuthResult(False, username, stale=True, reason="nonce no longer tracked")
        mine = self._by_user.setdefault(username, OrderedDict())
        if len(mine) >= self.max_nonces_per_user:
            old, _ = mine.popitem(last=False)
            gone = self._nc_seen.pop(old)
            self._user_floor[username] = max(self._user_floor.get(username, -math.inf), gone.issued)
        if len(self._nc_seen) >= self.max_nonces:
            self._expire(now)
        if len(self._nc_seen) >= self.max_nonces:
            old, gone = self._nc_seen.popitem(last=False)
            self._forget(old, gone)
            self._floor = max(self._floor, gone.issued)
        if issued <= max(self._floor, self._user_floor.get(username, -math.inf)):
            return AuthResult(False, username, stale=True, reason="nonce no longer tracked")
        self._nc_seen[nonce] = _NonceUse(issued, count, username)
        mine[nonce] = None
        return None

    def _use_nonce_shared(
        self, store: Store, nonce: str, username: str, count: int, now: float
    ) -> AuthResult | None:
        """The same rules on a shared store: one record per (realm, authenticated user) holding
        that user's live nonces with their highest nc and the user's floor, changed in one
        atomic update, so two instances never both accept one nc. The global bound of the
        in-process memory is not needed: records exist only for subscribers whose response
        verified, each holds at most ``max_nonces_per_user`` nonces, and it expires with the
        newest of them."""
        issued = self.nonce_issued(nonce)
        assert issued is not None  # checked by the caller
        cutoff = now - self.nonce_lifetime

        def change(raw: bytes | None) -> tuple[Write, AuthResult | None]:
            floor, live = -math.inf, {}
            if raw is not None:
                state = msgspec.json.decode(raw)
                floor = -math.inf if state["floor"] is None else float(state["floor"])
                nonces = state["nonces"].items()
                live = {n: (float(i), int(c)) for n, (i, c) in nonces if i >= cutoff}
            entry = live.get(nonce)
            if entry is not None:
                if count <= entry[1]:
                    return keep, AuthResult(False, username, reason="nonce count replayed")
                live[nonce] = (entry[0], count)
            else:
                if issued <= floor:
                    return keep, AuthResult(
                        False, username, stale=True, reason="nonce no longer tracked"
                    )
                while len(live) >= self.max_nonces_per_user:
                    oldest = min(live, key=lambda n: live[n][0])
                    floor = max(floor, live.pop(oldest)[0])
                if issued <= floor:
                    return keep, AuthResult(
                        False, username, stale=True, reason="nonce no longer tracked"
                    )
                live[nonce] = (issued, count)
            record = {
                "floor": None if floor == -math.inf else floor,
                "nonces": {n: [i, c] for n, (i, c) in live.items()},
            }
            expires_at = max(i for i, _ in live.values()) + self.nonce_lifetime
            return Write(msgspec.json.encode(record), expires_at), None

        return store.update("digest-nc", f"{self.realm}/{int(self.proxy)}/{username}", now, change)

    def _forget(self, nonce: str, use: _NonceUse) -> None:
        mine = self._by_user.get(use.username)
        if mine is not None:
            mine.pop(nonce, None)
            if not mine:
                del self._by_user[use.username]

    def _expire(self, now: float) -> None:
        """Drop the nonces past their lifetime: they are refused as stale without memory."""
        cutoff = now - self.nonce_lifetime
        for nonce, use in list(self._nc_seen.items()):
            if use.issued < cutoff:
                del self._nc_seen[nonce]
                self._forget(nonce, use)
        self._user_floor = {u: f for u, f in self._user_floor.items() if f >= cutoff}

    def challenge(self, now: float, *, stale: bool = False) -> list[tuple[str, str]]:
        """(header name, value) pairs to put in the 401/407, most preferred first."""
        nonce = self.make_nonce(now)
        out = []
        for alg in self.algorithms:
            ch = DigestChallenge(
                realm=self.realm,
                nonce=nonce,
                algorithm=alg,
                qop=(self.qop,),
                stale=stale,
                opaque=None,
            )
            out.append((self.challenge_header, ch.to_header().encode()))
        return out

    # -- verification ---------------------------------------------------------------------
    def verify(
        self, request: Request, now: float, lookup: Callable[[str, str], str | None]
    ) -> AuthResult:
        """Check the request's credentials for our realm. ``lookup(username, realm)`` returns
        the password (None: unknown user)."""
        creds = None
        for h in request.auth_headers(self.credentials_header):
            if h.scheme.lower() == "digest" and h.get("realm") == self.realm:
                creds = h
                break
        if creds is None:
            return AuthResult(False, reason="no credentials for realm")
        username, nonce = creds.get("username"), creds.get("nonce")
        uri, response = creds.get("uri"), creds.get("response")
        if not username or not nonce or not uri or not response:
            return AuthResult(False, reason="incomplete credentials")
        alg = (creds.get("algorithm") or "MD5").upper()
        if alg not in ALGORITHMS or alg.split("-SESS")[0] not in {
            a.upper().split("-SESS")[0] for a in self.algorithms
        }:
            return AuthResult(False, username, reason=f"algorithm {alg} not offered")
        try:
            if not uri_equal(parse_uri(uri), request.uri):
                return AuthResult(False, username, reason="digest uri does not match")
        except SipParseError:
            return AuthResult(False, username, reason="bad digest uri")
        qop = creds.get("qop")
        nc = creds.get("nc") or ""
        cnonce = creds.get("cnonce") or ""
        if qop is not None and (qop != self.qop or len(nc) != 8 or not cnonce):
            return AuthResult(False, username, reason="bad qop/nc/cnonce")
        password = lookup(username, self.realm)
        if password is None:
            return AuthResult(False, username, reason="unknown user")
        expected = digest_response(
            username=username,
            password=password,
            realm=self.realm,
            method=request.method,
            uri=uri,
            nonce=nonce,
            algorithm=alg,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=request.body,
        )
        if not hmac.compare_digest(expected, response.lower()):
            return AuthResult(False, username, reason="wrong response")
        age = self.nonce_age(nonce, now)
        if age is None:
            return AuthResult(False, username, reason="nonce not issued here")
        if age > self.nonce_lifetime:
            return AuthResult(False, username, stale=True, reason="nonce expired")
        count = 1  # RFC 2069 form (no qop, no nc): the nonce is good for one request
        if qop is not None:
            try:
                count = int(nc, 16)
            except ValueError:
                return AuthResult(False, username, reason="bad nc")
        refused = self._use_nonce(nonce, username, count, now)
        if refused is not None:
            return refused
        return AuthResult(True, username)

    def challenge_response(
        self, request: Request, now: float, *, stale: bool = False, to_tag: str | None = None
    ) -> Response:
        """The 401/407 answering ``request`` (RFC 3261 §22.1)."""
        return make_response(
            request, self.status, to_tag=to_tag, headers=self.challenge(now, stale=stale)
        )
