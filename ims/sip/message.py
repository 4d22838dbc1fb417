"""SIP requests and responses (RFC 3261 §7, §8.1.1, §8.2.6, §20) and their helpers.

Messages are mutable (proxies push Vias, rewrite Request-URIs); their headers live in a
:class:`~ims.sip.headers.Headers` container that keeps every raw field in order. Typed
accessors (``vias``, ``cseq``, ``from_``, ``contacts``...) parse on first use and cache the
result in the container until the next mutation. Bodies are ``bytes``; ``encode()`` always
writes a Content-Length equal to the body length.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ims.sip.errors import SipBuildError, SipParseError
from ims.sip.grammar import CALLID_RE, parse_delta_seconds, split_commas
from ims.sip.headers import (
    REGISTRY,
    AuthHeader,
    CSeq,
    HeaderKind,
    Headers,
    HeaderValue,
    NameAddr,
    ValueParams,
    Via,
    header_def,
    header_key,
    parse_auth,
    parse_contacts,
    parse_cseq,
    parse_header,
    parse_name_addr,
    parse_name_addr_list,
    parse_token_list,
    parse_value_params,
    parse_vias,
)
from ims.sip.uri import AbsoluteUri, Uri, parse_uri

__all__ = [
    "REASONS",
    "Message",
    "Request",
    "Response",
    "check_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
]

SIP_VERSION = "SIP/2.0"
BRANCH_COOKIE = "z9hG4bK"

#: RFC 3261 §21 reason phrases (plus the common extensions used in IMS)
REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}  # fmt: skip


def new_branch() -> str:
    """A fresh RFC 3261 branch: the ``z9hG4bK`` magic cookie + 64 random bits (§8.1.1.7)."""
    return BRANCH_COOKIE + os.urandom(8).hex()


def new_tag() -> str:
    """A fresh From/To tag (§19.3: at least 32 bits of randomness; here 48)."""
    return os.urandom(6).hex()


def new_call_id(host: str | None = None) -> str:
    """A fresh Call-ID (§8.1.1.4), ``random@host`` when a host is given."""
    cid = os.urandom(12).hex()
    return f"{cid}@{host}" if host else cid


class Message:
    """Common part of :class:`Request` and :class:`Response`."""

    __slots__ = ("headers", "body")

    def __init__(
        self, headers: Headers | Iterable[tuple[str, str]] | None = None, body: bytes = b""
    ) -> None:
        if headers is None:
            self.headers = Headers()
        elif isinstance(headers, Headers):
            self.headers = headers
        else:
            self.headers = Headers(headers)
        self.body = bytes(body)

    # -- start line / encoding ----------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def encode(self, *, compact: bool = False) -> bytes:
        """Serialise; Content-Length is (re)written to the body length in place.

        ``compact=True`` writes the compact form of every header that has one (``v:``,
        ``f:``, ``i:``...; RFC 3261 §7.3.3), e.g. to keep a UDP datagram under the MTU."""
        lines = [self.start_line(), "\r\n"]
        clen = str(len(self.body))
        seen = False
        for key, name, value in self.headers._fields:
            if key == "content-length":
                if seen:
                    continue
                seen = True
                value = clen
            if compact:
                name = _COMPACT.get(key, name)
            lines += [name, ": ", value, "\r\n"]
        if not seen:
            lines += ["l: " if compact else "Content-Length: ", clen, "\r\n"]
        lines.append("\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.encode()

    # -- typed access (cached in headers.cache) -------------------------------------------
    @property
    def vias(self) -> list[Via]:
        """Every Via element, top first."""
        c = self.headers.cache.get("via")
        if c is None:
            c = [v for raw in self.headers.get_all("Via") for v in parse_vias(raw)]
            self.headers.cache["via"] = c
        return c  # type: ignore[return-value]

    @property
    def via(self) -> Via | None:
        """The top Via."""
        vias = self.vias
        return vias[0] if vias else None

    def push_via(self, via: Via) -> None:
        """Add ``via`` on top (a proxy forwarding, §16.6 step 8); the parsed Via list stays
        known (no re-parse of the others)."""
        vias = self.vias
        self.headers.insert_first("Via", via.encode())
        self.headers.cache["via"] = [via, *vias]

    def replace_top_via(self, via: Via) -> None:
        """Replace the top Via element by ``via`` (``received``/``rport`` stamping, §18.2.1);
        the parsed Via list stays known."""
        vias = self.vias
        if not vias:
            raise SipBuildError("no Via to replace")
        self.headers.pop_first_element("Via")
        self.headers.insert_first("Via", via.encode())
        self.headers.cache["via"] = [via, *vias[1:]]

    @property
    def cseq(self) -> CSeq | None:
        c = self.headers.cache.get("cseq", _MISSING)
        if c is _MISSING:
            raw = self.headers.get("CSeq")
            c = None if raw is None else parse_cseq(raw)
            self.headers.cache["cseq"] = c
        return c  # type: ignore[return-value]

    @property
    def call_id(self) -> str | None:
        raw = self.headers.get("Call-ID")
        return None if raw is None else raw.strip(" \t")

    def _name_addr(self, name: str) -> NameAddr | None:
        key = name.lower()
        c = self.headers.cache.get(key, _MISSING)
        if c is _MISSING:
            raw = self.headers.get(name)
            c = None if raw is None else parse_name_addr(raw, header=name)
            self.headers.cache[key] = c
        return c  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr | None:
        return self._name_addr("From")

    @property
    def to(self) -> NameAddr | None:
        return self._name_addr("To")

    @property
    def contact_star(self) -> bool:
        """True for ``Contact: *`` (REGISTER removing all bindings)."""
        return self._contacts()[0]

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact addresses in order (empty for ``*``)."""
        return self._contacts()[1]

    def _contacts(self) -> tuple[bool, list[NameAddr]]:
        c = self.headers.cache.get("contact")
        if c is None:
            c = parse_contacts(self.headers.get_all("Contact"))
            self.headers.cache["contact"] = c
        return c  # type: ignore[return-value]

    def _addr_list(self, name: str) -> list[NameAddr]:
        key = "addr:" + header_key(name)  # own namespace: never collides with "contact" etc.
        c = self.headers.cache.get(key)
        if c is None:
            c = [
                a
                for raw in self.headers.get_all(name)
                for a in parse_name_addr_list(raw, header=name)
            ]
            self.headers.cache[key] = c
        return c  # type: ignore[return-value]

    @property
    def routes(self) -> list[NameAddr]:
        return self._addr_list("Route")

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._addr_list("Record-Route")

    def addresses(self, name: str) -> list[NameAddr]:
        """Any name-addr list header (Path, Service-Route, P-Asserted-Identity...)."""
        return self._addr_list(name)

    @property
    def max_forwards(self) -> int | None:
        raw = self.headers.get("Max-Forwards")
        return None if raw is None else _parse_max_forwards(raw)

    @property
    def content_type(self) -> str | None:
        """The media type, lower-cased, without parameters (``application/sdp``)."""
        raw = self.headers.get("Content-Type")
        return None if raw is None else raw.split(";", 1)[0].strip(" \t").lower()

    @property
    def expires(self) -> int | None:
        raw = self.headers.get("Expires")
        return None if raw is None else parse_delta_seconds(raw, header="Expires")

    def parsed(self, name: str) -> list[HeaderValue]:
        """Every element of every ``name`` field, typed by the header registry's parser
        (Via, NameAddr, CSeq, AuthHeader, ValueParams, int, or str for unregistered ones)."""
        return [v for raw in self.headers.get_all(name) for v in parse_header(name, raw)]

    def value_params(self, name: str) -> list[ValueParams]:
        """``value;params`` elements of a header (comma-split for list headers): Event,
        Session-Expires, Reason, Security-Client, Retry-After, Content-Type..."""
        d = header_def(name)
        raws = self.headers.get_all(name)
        if d is not None and d.kind is HeaderKind.LIST:
            raws = [e for r in raws for e in split_commas(r, header=d.name)]
        return [parse_value_params(r, header=name) for r in raws]

    @property
    def content_type_params(self) -> ValueParams | None:
        """Content-Type with its parameters (``boundary``, ``charset``...)."""
        raw = self.headers.get("Content-Type")
        return None if raw is None else parse_value_params(raw, header="Content-Type")

    def tokens(self, name: str) -> list[str]:
        """Option tags / methods of a token-list header (Require, Supported, Allow...)."""
        return parse_token_list(self.headers.get_all(name), header=name)

    @property
    def require(self) -> list[str]:
        return self.tokens("Require")

    @property
    def proxy_require(self) -> list[str]:
        return self.tokens("Proxy-Require")

    @property
    def supported(self) -> list[str]:
        return self.tokens("Supported")

    def auth_headers(self, name: str) -> list[AuthHeader]:
        """Parsed Authorization / Proxy-Authorization / WWW-Authenticate /
        Proxy-Authenticate fields."""
        return [parse_auth(v, header=name) for v in self.headers.get_all(name)]

    @property
    def authorization(self) -> list[AuthHeader]:
        return self.auth_headers("Authorization")

    @property
    def proxy_authorization(self) -> list[AuthHeader]:
        return self.auth_headers("Proxy-Authorization")

    @property
    def www_authenticate(self) -> list[AuthHeader]:
        return self.auth_headers("WWW-Authenticate")

    @property
    def proxy_authenticate(self) -> list[AuthHeader]:
        return self.auth_headers("Proxy-Authenticate")

    @property
    def transaction_branch(self) -> str | None:
        via = self.via
        return None if via is None else via.branch


_MISSING = object()
_COMPACT = {key: d.compact for key, d in REGISTRY.items() if d.compact}


def _parse_max_forwards(raw: str) -> int:
    v = raw.strip(" \t")
    if not v.isascii() or not v.isdigit() or len(v) > 10 or int(v) > 255:
        raise SipParseError(f"bad Max-Forwards {v[:20]!r}", header="Max-Forwards")
    return int(v)


class Request(Message):
    """A SIP request. ``uri`` is the parsed Request-URI."""

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri: Uri = parse_uri(uri) if isinstance(uri, str) else uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri.encode()} {SIP_VERSION}"

    def copy(self) -> Request:
        return Request(self.method, self.uri, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri.encode()} call-id={self.call_id}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    @property
    def is_provisional(self) -> bool:
        return 100 <= self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id}>"


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` per RFC 3261 §8.2.6.

    Copies every Via (in order), From, Call-ID, CSeq and To, adding ``to_tag`` to To when the
    request's To has no tag (never for 100, §8.2.6.2); copies Timestamp into a 100 (§8.2.6.1).
    Extra ``headers`` are appended after those.
    """
    out = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for raw in request.headers.get_all(name):
            if name == "To" and to_tag and status != 100:
                to = request.to
                if to is not None and to.tag is None:
                    raw = f"{raw};tag={to_tag}"
            out.add(name, raw)
    if status == 100:
        ts = request.headers.get("Timestamp")
        if ts is not None:
            out.add("Timestamp", ts)
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason, out, body)


_SINGLE_REQUIRED = ("To", "From", "CSeq", "Call-ID")


def check_request(
    request: Request,
    *,
    schemes: Iterable[str] = ("sip", "sips", "tel"),
) -> None:
    """Semantic checks a UAS/proxy makes before processing (RFC 3261 §8.2.1–§8.2.2, §16.3).

    Raises :class:`SipParseError` with the status to answer: 400 for missing or repeated
    mandatory headers (To, From, CSeq, Call-ID, Via; Max-Forwards may be absent for RFC 2543
    peers, RFC 4475 §3.4.1), several Content-Length values, a bad Call-ID; 416 for a
    Request-URI scheme outside ``schemes``. Method-specific checks (420, 415, 483) stay with
    the element: it knows what it supports.
    """
    h = request.headers
    for name in _SINGLE_REQUIRED:
        n = h.count(name)
        if n == 0:
            raise SipParseError(f"missing {name}", header=name)
        if n > 1:
            raise SipParseError(f"{n} {name} header fields", header=name)
    if h.count("Max-Forwards") > 1:
        raise SipParseError("several Max-Forwards header fields", header="Max-Forwards")
    if not request.vias:
        raise SipParseError("missing Via", header="Via")
    if len(set(v.strip(" \t") for v in h.get_all("Content-Length"))) > 1:
        raise SipParseError("conflicting Content-Length values", header="Content-Length")
    call_id = request.call_id or ""
    if not CALLID_RE.match(call_id):
        raise SipParseError(f"bad Call-ID {call_id[:40]!r}", header="Call-ID")
    scheme = request.uri.scheme.lower()
    if scheme not in {s.lower() for s in schemes}:
        raise SipParseError(f"unsupported URI scheme {scheme!r}", status_hint=416)
    if isinstance(request.uri, AbsoluteUri) and scheme in ("sip", "sips", "tel"):
        raise SipParseError("malformed Request-URI")  # pragma: no cover - parse_uri types it


def is_list_header(name: str) -> bool:
    d = header_def(name)
    return d is not None and d.kind is HeaderKind.LIST


__all__ += ["SIP_VERSION", "BRANCH_COOKIE", "is_list_header"]
