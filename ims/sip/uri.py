"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966) and their comparison rules.

* :class:`SipUri` keeps each component as written on the wire (still %-escaped), so parse ->
  encode is byte-exact; :func:`unescape` gives the decoded form and :func:`uri_equal`
  compares per RFC 3261 §19.1.4 (escaped and unescaped forms of unreserved characters are
  equal, userinfo case-sensitive, host/params case-insensitive, ``user``/``ttl``/``method``/
  ``maddr``/``transport`` and the port must agree when either side has them, other
  parameters only when both have them, URI headers always).
* :class:`TelUri` (RFC 3966 §3): global (``+``) or local numbers with ``phone-context``;
  compared per RFC 3966 §4 (visual separators ignored, parameters order-independent).
* :class:`AbsoluteUri`: any other scheme (``http:``, ``urn:``, ``isbn:``...), kept raw, so a
  server can answer 416 (RFC 3261 §8.2.2.1) or carry it in a header (RFC 4475 §3.3.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ims.sip.errors import SipParseError
from ims.sip.grammar import EMPTY_PARAMS, HOST_RE, Params

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "escape",
    "parse_uri",
    "unescape",
    "uri_equal",
]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]{0,31}:")
_ESC_BYTES_RE = re.compile(rb"%([0-9A-Fa-f]{2})")
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")
# characters of userinfo/params/headers that are never allowed raw (RFC 3261 §25.1)
_BAD_URI_CHARS = re.compile(r"[\x00-\x20\x7f<>\"]")
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*\Z")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*\Z")
_VISUAL = str.maketrans("", "", "-.()")

# unreserved / user-unreserved characters that need no escaping in a user part
_USER_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/"
)


def unescape(text: str) -> str:
    """Decode %HH escapes (UTF-8); a ``%`` not followed by two hex digits is kept as data."""
    if "%" not in text:
        return text
    raw = _ESC_BYTES_RE.sub(
        lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8", "surrogateescape")
    )
    return raw.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str] = _USER_SAFE) -> str:
    """%-escape every character of ``text`` outside ``safe`` (default: the user-part set)."""
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _check_chars(text: str, what: str) -> None:
    if _BAD_URI_CHARS.search(text):
        raise SipParseError(f"illegal character in URI {what}: {text[:40]!r}")


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:`` / ``sips:`` URI. Fields are in wire form (escapes kept); ``host`` keeps IPv6
    brackets (``[::1]``)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    # -- accessors ------------------------------------------------------------------------
    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def transport(self) -> str | None:
        v = self.params.get("transport")
        return None if v is None else v.lower()

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def user_param(self) -> str | None:
        return self.params.get("user")

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """Canonical address-of-record key (RFC 3261 §10.3 step 5): ``scheme:user@host`` with
        port, parameters and headers dropped, host lower-cased and the user's escaping
        normalised (``%61lice`` and ``alice`` give the same key)."""
        host = self.host.lower()
        if not self.user:
            return f"{self.scheme}:{host}"
        return f"{self.scheme}:{escape(unescape(self.user))}@{host}"

    def as_tel(self) -> TelUri | None:
        """The tel URI of a ``;user=phone`` SIP URI (RFC 3261 §19.1.6), else None: the user
        part is a telephone-subscriber (``+1-212-555-1212;phone-context=...``)."""
        if (self.user_param or "").lower() != "phone" or not self.user:
            return None
        try:
            return _parse_tel(f"tel:{self.user}", unescape(self.user))
        except SipParseError:
            return None

    def param(self, name: str) -> str | None:
        return self.params.get(name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return replace(self, params=self.params.set(name, value))

    def without_param(self, name: str) -> SipUri:
        return replace(self, params=self.params.remove(name))

    def without_headers(self) -> SipUri:
        return replace(self, headers=())

    def replace(self, **changes: object) -> SipUri:
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- wire -----------------------------------------------------------------------------
    def encode(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        if self.params.items:
            parts.append(self.params.encode())
        if self.headers:
            parts += ["?", "&".join(f"{k}={v}" for k, v in self.headers)]
        return "".join(parts)

    __str__ = encode


@dataclass(frozen=True, slots=True)
class TelUri:
    """``tel:`` URI (RFC 3966): ``number`` as written (visual separators kept)."""

    number: str
    params: Params = field(default_factory=Params)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (``+12015550123``)."""
        return self.number.translate(_VISUAL)

    @property
    def phone_context(self) -> str | None:
        return self.params.get("phone-context")

    def encode(self) -> str:
        return f"tel:{self.number}{self.params.encode()}"

    __str__ = encode


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of another scheme, kept verbatim (``raw`` includes the scheme)."""

    raw: str

    @property
    def scheme(self) -> str:
        return self.raw.split(":", 1)[0].lower()

    def encode(self) -> str:
        return self.raw

    __str__ = encode


Uri = SipUri | TelUri | AbsoluteUri


_PCHAR = r"A-Za-z0-9\-_.!~*'()\[\]/:&+$%"
_SIP_FAST_RE = re.compile(
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?"  # user (no escapes, password, ';' or '?')
    r"([A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])"  # host
    r"(?::([0-9]{1,5}))?"  # port
    rf"((?:;[{_PCHAR}]+(?:=[{_PCHAR}]+)?)*)\Z"  # uri-parameters, no headers
)


def _parse_sip(text: str, scheme: str, rest: str) -> SipUri:
    m = _SIP_FAST_RE.match(rest)
    if m is not None:
        user, host, port, ptext = m.groups()
        if port is None or int(port) <= 65535:
            params = EMPTY_PARAMS
            if ptext:
                pl: list[tuple[str, str | None]] = []
                for p in ptext[1:].split(";"):
                    k, eq, v = p.partition("=")
                    pl.append((k, v if eq else None))
                params = Params(tuple(pl))
            return SipUri(
                host=host,
                user=user,
                port=None if port is None else int(port),
                params=params,
                scheme=scheme,
            )
    return _parse_sip_slow(text, scheme, rest)


def _parse_sip_slow(text: str, scheme: str, rest: str) -> SipUri:
    user = password = None
    at = rest.find("@")
    if at >= 0:
        if rest.find("@", at + 1) >= 0:
            raise SipParseError(f"unescaped '@' in URI {text[:60]!r}")
        userinfo, rest = rest[:at], rest[at + 1 :]
        _check_chars(userinfo, "userinfo")
        colon = userinfo.find(":")
        if colon >= 0:
            user, password = userinfo[:colon], userinfo[colon + 1 :]
        else:
            user = userinfo
        if not user:
            raise SipParseError(f"empty user part in {text[:60]!r}")
    headers: tuple[tuple[str, str], ...] = ()
    q = rest.find("?")
    if q >= 0:
        hpart, rest = rest[q + 1 :], rest[:q]
        _check_chars(hpart, "headers")
        hl: list[tuple[str, str]] = []
        for h in hpart.split("&"):
            name, eq, value = h.partition("=")
            if not name or not eq:
                raise SipParseError(f"bad URI header {h[:40]!r}")
            hl.append((name, value))
        headers = tuple(hl)
    params = Params()
    semi = rest.find(";")
    if semi >= 0:
        ppart, rest = rest[semi + 1 :], rest[:semi]
        _check_chars(ppart, "parameters")
        pl: list[tuple[str, str | None]] = []
        for p in ppart.split(";"):
            name, eq, value = p.partition("=")
            if not name or (eq and not value):
                raise SipParseError(f"bad URI parameter {p[:40]!r}")
            pl.append((name, value if eq else None))
        params = Params(tuple(pl))
    port: int | None = None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {text[:60]!r}")
        host, portpart = rest[: end + 1], rest[end + 1 :]
        if portpart:
            if portpart[0] != ":":
                raise SipParseError(f"junk after IPv6 reference in {text[:60]!r}")
            portpart = portpart[1:]
        else:
            portpart = ""
        has_port = bool(rest[end + 1 :])
    else:
        host, sep, portpart = rest.partition(":")
        has_port = bool(sep)
    if has_port:
        if not _PORT_RE.match(portpart) or int(portpart) > 65535:
            raise SipParseError(f"bad port {portpart[:10]!r} in {text[:60]!r}")
        port = int(portpart)
    if not host or not HOST_RE.match(host):
        raise SipParseError(f"bad host {host[:40]!r} in URI")
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        params=params,
        headers=headers,
        scheme=scheme,
    )


def _parse_tel(text: str, rest: str) -> TelUri:
    _check_chars(rest, "tel")
    number, _, ppart = rest.partition(";")
    pl: list[tuple[str, str | None]] = []
    if ppart:
        for p in ppart.split(";"):
            name, eq, value = p.partition("=")
            if not name or (eq and not value):
                raise SipParseError(f"bad tel parameter {p[:40]!r}")
            pl.append((name, value if eq else None))
    params = Params(tuple(pl))
    if number.startswith("+"):
        if not _TEL_GLOBAL_RE.match(number):
            raise SipParseError(f"bad global number in {text[:60]!r}")
    else:
        if not _TEL_LOCAL_RE.match(number):
            raise SipParseError(f"bad local number in {text[:60]!r}")
        if "phone-context" not in params:
            raise SipParseError(f"local tel number without phone-context: {text[:60]!r}")
    return TelUri(number=number, params=params)


#: Parsed URIs are immutable, so results are memoised by text: real traffic repeats the same
#: URIs constantly (a proxy's own Record-Route/Route entries, AORs, registered contacts), while
#: what changes per message (branch, tags, Call-ID) lives outside the URI. Bounded: the memo is
#: simply emptied when full. Set to 0 to disable (the benchmark reports both).
URI_CACHE_MAX = 2048
_URI_CACHE: dict[str, SipUri | TelUri | AbsoluteUri] = {}


def parse_uri(text: str) -> Uri:
    """Parse a URI (no surrounding ``<>``). Raises :class:`SipParseError` (status 400).

    Unknown schemes give an :class:`AbsoluteUri` (the caller decides on 416).
    """
    uri = _URI_CACHE.get(text)
    if uri is not None:
        return uri
    uri = _parse_uri(text)
    if URI_CACHE_MAX:
        if len(_URI_CACHE) >= URI_CACHE_MAX:
            _URI_CACHE.clear()
        _URI_CACHE[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    m = _SCHEME_RE.match(text)
    if m is None:
        raise SipParseError(f"no URI scheme in {text[:60]!r}")
    scheme = text[: m.end() - 1].lower()
    rest = text[m.end() :]
    if scheme in ("sip", "sips"):
        return _parse_sip(text, scheme, rest)
    if scheme == "tel":
        return _parse_tel(text, rest)
    if not rest or _BAD_URI_CHARS.search(rest):
        raise SipParseError(f"bad absolute URI {text[:60]!r}")
    return AbsoluteUri(text)


# -- comparison -------------------------------------------------------------------------
_SIP_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


def _norm_params(params: Params, *, strip_visual: bool = False) -> dict[str, str | None]:
    d: dict[str, str | None] = {}
    for k, v in params.items:
        value = None if v is None else unescape(v).lower()
        if strip_visual and value is not None:
            value = value.translate(_VISUAL)
        d.setdefault(unescape(k).lower(), value)
    return d


def _sip_equal(a: SipUri, b: SipUri) -> bool:
    if a.scheme != b.scheme:
        return False
    if (a.user is None) != (b.user is None):
        return False
    if a.user is not None and b.user is not None and unescape(a.user) != unescape(b.user):
        return False
    if (None if a.password is None else unescape(a.password)) != (
        None if b.password is None else unescape(b.password)
    ):
        return False
    if unescape(a.host).lower() != unescape(b.host).lower() or a.port != b.port:
        return False
    pa, pb = _norm_params(a.params), _norm_params(b.params)
    for name in _SIP_MUST_MATCH:
        if pa.get(name, "\x00absent") != pb.get(name, "\x00absent"):
            return False
    for name in pa.keys() & pb.keys():
        if pa[name] != pb[name]:
            return False
    ha = {unescape(k).lower(): unescape(v) for k, v in a.headers}
    hb = {unescape(k).lower(): unescape(v) for k, v in b.headers}
    return ha == hb


def _tel_equal(a: TelUri, b: TelUri) -> bool:
    if a.is_global != b.is_global:
        return False
    if a.digits.lower() != b.digits.lower():
        return False
    pa = _norm_params(a.params, strip_visual=True)
    pb = _norm_params(b.params, strip_visual=True)
    return pa == pb


def uri_equal(a: Uri, b: Uri) -> bool:
    """URI equivalence: RFC 3261 §19.1.4 (sip/sips), RFC 3966 §4 (tel), else exact text
    with a case-insensitive scheme."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return _sip_equal(a, b)
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        return _tel_equal(a, b)
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme == b.scheme and a.raw.split(":", 1)[1] == b.raw.split(":", 1)[1]
    return False
