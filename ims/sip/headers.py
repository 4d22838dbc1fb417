"""SIP header registry, the ordered header container and typed header values.

RFC 3261 §7.3 (header syntax, compact forms, comma lists), §20 (each header), RFC 3581
(``rport``). The design follows sofia-sip's ``msg`` headers: a registry row per header
(canonical name, compact form, kind) and typed values parsed on demand.

* :class:`Headers`: ordered multi-map, case-insensitive, compact names equivalent to full
  names; keeps the name spelling and raw value of each field, so unknown headers and the
  order round-trip.
* Typed values are frozen dataclasses with ``encode()``: :class:`Via`, :class:`NameAddr`,
  :class:`CSeq`, :class:`AuthHeader`. Parse functions raise :class:`SipParseError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum

from ims.sip.errors import SipParseError
from ims.sip.grammar import (
    CALLID_RE,
    HOST_RE,
    QUOTED,
    QUOTED_RE,
    TOKEN,
    TOKEN_CHARS,
    Params,
    fast_params,
    is_token,
    parse_delta_seconds,
    quote,
    scan_params,
    skip_ws,
    split_commas,
    unquote,
)
from ims.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "REGISTRY",
    "AuthHeader",
    "CSeq",
    "HeaderDef",
    "HeaderKind",
    "Headers",
    "NameAddr",
    "ValueParams",
    "Via",
    "canonical_name",
    "parse_auth",
    "parse_contacts",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_token_list",
    "parse_header",
    "header_parser",
    "HeaderValue",
    "parse_value_params",
    "parse_via",
    "parse_vias",
]


class HeaderKind(Enum):
    SINGLE = "single"  # at most one field, no comma list (CSeq, Call-ID, To...)
    LIST = "list"  # comma-separated #element list, may repeat (Via, Contact, Route...)
    REPEAT = "repeat"  # may repeat, commas belong to the value (WWW-Authenticate, Date-like)


@dataclass(frozen=True, slots=True)
class HeaderDef:
    name: str
    compact: str | None
    kind: HeaderKind


_S, _L, _R = HeaderKind.SINGLE, HeaderKind.LIST, HeaderKind.REPEAT
_DEFS = [
    ("Accept", None, _L),
    ("Accept-Contact", "a", _L),
    ("Accept-Encoding", None, _L),
    ("Accept-Language", None, _L),
    ("Alert-Info", None, _L),
    ("Allow", None, _L),
    ("Allow-Events", "u", _L),
    ("Authentication-Info", None, _S),
    ("Authorization", None, _R),
    ("Call-ID", "i", _S),
    ("Call-Info", None, _L),
    ("Contact", "m", _L),
    ("Content-Disposition", None, _S),
    ("Content-Encoding", "e", _L),
    ("Content-Language", None, _L),
    ("Content-Length", "l", _S),
    ("Content-Type", "c", _S),
    ("CSeq", None, _S),
    ("Date", None, _S),
    ("Error-Info", None, _L),
    ("Event", "o", _S),
    ("Expires", None, _S),
    ("From", "f", _S),
    ("Identity", "y", _S),
    ("In-Reply-To", None, _L),
    ("Max-Forwards", None, _S),
    ("MIME-Version", None, _S),
    ("Min-Expires", None, _S),
    ("Min-SE", None, _S),
    ("Organization", None, _S),
    ("P-Access-Network-Info", None, _R),
    ("P-Asserted-Identity", None, _L),
    ("P-Associated-URI", None, _L),
    ("P-Called-Party-ID", None, _S),
    ("P-Charging-Function-Addresses", None, _R),
    ("P-Charging-Vector", None, _S),
    ("P-Preferred-Identity", None, _L),
    ("P-Visited-Network-ID", None, _L),
    ("Path", None, _L),
    ("Priority", None, _S),
    ("Privacy", None, _S),
    ("Proxy-Authenticate", None, _R),
    ("Proxy-Authorization", None, _R),
    ("Proxy-Require", None, _L),
    ("RAck", None, _S),
    ("Reason", None, _L),
    ("Record-Route", None, _L),
    ("Refer-To", "r", _S),
    ("Referred-By", "b", _S),
    ("Reject-Contact", "j", _L),
    ("Reply-To", None, _S),
    ("Request-Disposition", "d", _L),
    ("Require", None, _L),
    ("Retry-After", None, _S),
    ("Route", None, _L),
    ("RSeq", None, _S),
    ("Security-Client", None, _L),
    ("Security-Server", None, _L),
    ("Security-Verify", None, _L),
    ("Server", None, _S),
    ("Service-Route", None, _L),
    ("Session-Expires", "x", _S),
    ("Subject", "s", _S),
    ("Subscription-State", None, _S),
    ("Supported", "k", _L),
    ("Timestamp", None, _S),
    ("To", "t", _S),
    ("Unsupported", None, _L),
    ("User-Agent", None, _S),
    ("Via", "v", _L),
    ("Warning", None, _L),
    ("WWW-Authenticate", None, _R),
]

#: lower-case full name -> definition
REGISTRY: dict[str, HeaderDef] = {n.lower(): HeaderDef(n, c, k) for n, c, k in _DEFS}
_BY_COMPACT: dict[str, HeaderDef] = {d.compact: d for d in REGISTRY.values() if d.compact}
# lower-case full or compact name -> lower-case full name (the container key)
_KEY: dict[str, str] = {
    **{k: k for k in REGISTRY},
    **{c: d.name.lower() for c, d in _BY_COMPACT.items()},
}


_KEY_MEMO_MAX = 4096


class _KeyMemo(dict[str, str]):
    """Header name as written -> container key. A hit is one C-level dict lookup; a miss
    computes the key and keeps it while the memo holds fewer than ``_KEY_MEMO_MAX`` names
    (bounded: names come from the network; past the bound a miss just computes)."""

    __slots__ = ()

    def __missing__(self, name: str) -> str:
        low = name.lower()
        key = _KEY.get(low, low)
        if len(self) < _KEY_MEMO_MAX:
            self[name] = key
        return key


_KEY_MEMO = _KeyMemo()
for _d in REGISTRY.values():  # the spellings real traffic uses, known from the start
    for _n in (_d.name, _d.name.lower(), _d.name.upper(), _d.compact, (_d.compact or "").upper()):
        if _n:
            _KEY_MEMO[_n] = _d.name.lower()

#: ``header_key(name)``: the container key of a header name, i.e. its lower-case full name
#: (compact forms expanded, ``"v"`` -> ``"via"``; unknown names lower-cased). The hottest
#: function of a proxy (every field split and every lookup), so it is the memo's bound
#: ``__getitem__``: no Python frame on a hit.
header_key: Callable[[str], str] = _KEY_MEMO.__getitem__


def canonical_name(name: str) -> str:
    """``v`` -> ``Via``, ``call-id`` -> ``Call-ID``; unknown names are returned as given."""
    d = REGISTRY.get(header_key(name))
    return d.name if d else name


def header_def(name: str) -> HeaderDef | None:
    return REGISTRY.get(header_key(name))


def _own(value: object) -> object:
    """A cached value for a copy: the parsed elements are frozen and shared, the containers
    (the Via/Route lists, Contact's ``(star, list)``) are new, so appending to one message's
    list can never show up in the other's."""
    if type(value) is list:
        return list(value)
    if type(value) is tuple:
        return tuple(list(v) if type(v) is list else v for v in value)
    return value


class Headers:
    """Ordered, case-insensitive multi-header container.

    Each field keeps its name as written and its raw (unfolded) value. Lookups accept any
    case and the compact form (``headers.get("v")`` finds ``Via``). Typed accessors on the
    messages cache parsed values here, under the header's key (:func:`header_key`, or
    ``"addr:" + key``); a mutation drops the cached values of the header it touches only, so
    editing Route keeps the parsed Vias. ``cache`` is the messages' business: use their
    accessors (``Message.vias``, ``Message.push_via``...), not the dict.
    """

    __slots__ = ("_fields", "cache")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str, str]] = [(header_key(n), n, v) for n, v in fields]
        self.cache: dict[str, object] = {}

    @classmethod
    def _from_keyed(cls, fields: list[tuple[str, str, str]]) -> Headers:
        h = cls.__new__(cls)
        h._fields = fields
        h.cache = {}
        return h

    # -- reading --------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's raw value."""
        key = header_key(name)
        for k, _, v in self._fields:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Raw values of every field with this name, in order (no comma splitting)."""
        key = header_key(name)
        return [v for k, _, v in self._fields if k == key]

    def get_list(self, name: str) -> list[str]:
        """Every element of a comma-list header across all its fields, in order.

        Only LIST (and unregistered) headers are split: the commas of a SINGLE or REPEAT
        header (Date, WWW-Authenticate...) belong to its value, so those come back whole."""
        d = REGISTRY.get(header_key(name))
        if d is not None and d.kind is not HeaderKind.LIST:
            return self.get_all(name)
        out: list[str] = []
        canon = canonical_name(name)
        for v in self.get_all(name):
            out.extend(split_commas(v, header=canon))
        return out

    def count(self, name: str) -> int:
        key = header_key(name)
        return sum(1 for k, _, _ in self._fields if k == key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(name as written, raw value) pairs in order."""
        return ((n, v) for _, n, v in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def names(self) -> list[str]:
        return [n for _, n, _ in self._fields]

    def copy(self) -> Headers:
        """An independent copy; the parsed values (immutable) come along, so the copy's typed
        accessors do not parse again."""
        h = Headers._from_keyed(list(self._fields))
        h.cache = {k: _own(v) for k, v in self.cache.items()}
        return h

    # -- writing --------------------------------------------------------------------------
    def _changed(self, key: str) -> None:
        """Drop what the typed accessors cached for header ``key``."""
        cache = self.cache
        if cache:
            cache.pop(key, None)
            cache.pop("addr:" + key, None)

    def add(self, name: str, value: str) -> None:
        """Append a field at the end."""
        key = header_key(name)
        self._fields.append((key, name, value))
        self._changed(key)

    def insert_first(self, name: str, value: str) -> None:
        """Insert before the first field of this name (or at the top if there is none):
        how a proxy pushes its Via or a Record-Route."""
        key = header_key(name)
        idx = next((i for i, (k, _, _) in enumerate(self._fields) if k == key), 0)
        self._fields.insert(idx, (key, name, value))
        self._changed(key)

    def set(self, name: str, value: str) -> None:
        """Replace the first field of this name in place and drop the others; append if none."""
        key = header_key(name)
        out: list[tuple[str, str, str]] = []
        done = False
        for f in self._fields:
            if f[0] == key:
                if not done:
                    out.append((key, f[1], value))
                    done = True
            else:
                out.append(f)
        if not done:
            out.append((key, name, value))
        self._fields = out
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every field of this name; return how many were removed."""
        key = header_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        self._changed(key)
        return before - len(self._fields)

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first field's raw value."""
        key = header_key(name)
        for i, f in enumerate(self._fields):
            if f[0] == key:
                del self._fields[i]
                self._changed(key)
                return f[2]
        return None

    def pop_first_element(self, name: str) -> str | None:
        """Remove the first element of a comma-list header (the top Via of ``Via: a, b``)."""
        key = header_key(name)
        for i, f in enumerate(self._fields):
            if f[0] == key:
                parts = split_commas(f[2], header=canonical_name(name))
                if len(parts) == 1:
                    del self._fields[i]
                else:
                    self._fields[i] = (key, f[1], ", ".join(parts[1:]))
                self._changed(key)
                return parts[0]
        return None

    def encode(self) -> str:
        return "".join(f"{n}: {v}\r\n" for _, n, v in self._fields)


# ---------------------------------------------------------------------------------------
# Via (RFC 3261 §20.42, §18.2.1; RFC 3581)
# ---------------------------------------------------------------------------------------
_VIA_RE = re.compile(
    rf"({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"  # sent-protocol LWS
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"  # host
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?"  # [ COLON port ]
)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element: ``SIP/2.0/UDP host:port;branch=...;received=...;rport=...``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server (RFC 3581 §4); None if empty/absent."""
        v = self.params.get("rport")
        return int(v) if v is not None and v.isascii() and v.isdigit() else None

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        v = self.params.get("ttl")
        return int(v) if v is not None and v.isascii() and v.isdigit() else None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_rfc3261_branch(self) -> bool:
        b = self.branch
        return b is not None and b.startswith("z9hG4bK") and len(b) > 7

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=self.params.set(name, value))

    def without_param(self, name: str) -> Via:
        return replace(self, params=self.params.remove(name))

    def encode(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self.params.encode()}"

    __str__ = encode


_VIA_FAST_RE = re.compile(
    rf"SIP/2\.0/({TOKEN}) (\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{{1,5}}))?((?:;.*)?)\Z"
)


def parse_via(text: str) -> Via:
    """Parse one via-parm (after comma splitting)."""
    fm = _VIA_FAST_RE.match(text)
    if fm is not None:
        params = fast_params(fm.group(4))
        port = fm.group(3)
        if params is not None and (port is None or int(port) <= 65535) and _via_params_ok(params):
            return Via(
                transport=fm.group(1).upper(),
                host=fm.group(2),
                port=None if port is None else int(port),
                params=params,
            )
    m = _VIA_RE.match(text)
    if m is None:
        raise SipParseError(f"bad Via {text[:60]!r}", header="Via")
    name, version, transport, host, port = m.groups()
    params, pos = scan_params(text, m.end(), header="Via")
    if pos != len(text):
        raise SipParseError(f"junk in Via {text[pos : pos + 20]!r}", header="Via", offset=pos)
    p = None
    if port is not None:
        p = int(port)
        if p > 65535:
            raise SipParseError(f"bad Via port {port}", header="Via")
    if not _via_params_ok(params):
        raise SipParseError(f"bad Via ttl/rport in {text[:60]!r}", header="Via")
    return Via(
        transport=transport.upper(),
        host=host,
        port=p,
        params=params,
        protocol=f"{name.upper()}/{version}",
    )


def _via_params_ok(params: Params) -> bool:
    for key in ("ttl", "rport"):
        v = params.get(key)
        if v is not None and (not v.isascii() or not v.isdigit() or len(v) > 5):
            return False
    return True


def parse_vias(value: str) -> list[Via]:
    return [parse_via(v) for v in split_commas(value, header="Via")]


# ---------------------------------------------------------------------------------------
# name-addr / addr-spec (RFC 3261 §20.10, §20.20, §20.39, §25.1)
# ---------------------------------------------------------------------------------------
_DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:[ \t]+{TOKEN})*[ \t]*<")
_QUOTED_DISPLAY_RE = re.compile(rf"({QUOTED})[ \t]*<")


_NA_FAST_RE = re.compile(
    r'(?:"((?:[^"\\]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)" ?'  # quoted display name
    rf"|({TOKEN}(?: {TOKEN})*) ?)?"  # or tokens
    r'<([^<>"\s]+)>'  # <uri>
    r"((?:;.*)?)\Z"  # params (checked by fast_params)
)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <uri>;params`` (From, To, Contact, Route, Record-Route, P-Asserted-Identity...).

    ``display_name`` is unquoted (None when absent). ``encode()`` always uses ``<>``.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = field(default_factory=Params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        v = self.params.get("expires")
        return None if v is None else parse_delta_seconds(v, header="Contact")

    @property
    def q(self) -> float | None:
        v = self.params.get("q")
        if v is None:
            return None
        if not _QVALUE_RE.match(v):
            raise SipParseError(f"bad q value {v[:10]!r}", header="Contact")
        return float(v)

    @property
    def sip_uri(self) -> SipUri:
        """The URI as a SipUri (raises SipParseError if it is tel: or another scheme)."""
        if not isinstance(self.uri, SipUri):
            raise SipParseError(f"not a SIP URI: {self.uri.encode()[:60]!r}")
        return self.uri

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params=self.params.set("tag", tag))

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=self.params.set(name, value))

    def without_param(self, name: str) -> NameAddr:
        return replace(self, params=self.params.remove(name))

    def encode(self) -> str:
        dn = ""
        if self.display_name is not None:
            dn = self.display_name if _is_token_seq(self.display_name) else quote(self.display_name)
            dn += " "
        return f"{dn}<{self.uri.encode()}>{self.params.encode()}"

    __str__ = encode


def _is_token_seq(text: str) -> bool:
    return bool(text) and all(is_token(t) for t in text.split(" "))


def parse_name_addr(text: str, *, header: str = "To") -> NameAddr:
    try:
        return _parse_name_addr(text, header)
    except SipParseError as exc:
        if exc.header is None:
            exc.header = header
        raise


def _parse_name_addr(text: str, header: str) -> NameAddr:
    """Parse ``( name-addr / addr-spec ) *( SEMI param )``.

    Without ``<>`` the URI ends at the first ``;`` (the parameters are header parameters) and
    may not contain ``?`` or ``,`` (RFC 3261 §20.10, RFC 8217; RFC 4475 §3.1.2.13).
    """
    fm = _NA_FAST_RE.match(text)
    if fm is not None:
        quoted, tokens, raw_uri, ptext = fm.groups()
        params = fast_params(ptext)
        if params is not None:
            if quoted is not None:
                dn: str | None = unquote(f'"{quoted}"')
            else:
                dn = tokens
            return NameAddr(uri=parse_uri(raw_uri), display_name=dn, params=params)
    pos = skip_ws(text, 0)
    display: str | None = None
    n = len(text)
    if pos < n and text[pos] == '"':
        m = _QUOTED_DISPLAY_RE.match(text, pos)
        if m is None:
            if QUOTED_RE.match(text, pos) is None:
                raise SipParseError("unterminated quoted display name", header=header)
            raise SipParseError("quoted display name not followed by <", header=header)
        display = unquote(m.group(1))
        pos = m.end()
        bracketed = True
    elif pos < n and text[pos] == "<":
        pos += 1
        bracketed = True
    else:
        m = _DISPLAY_TOKENS_RE.match(text, pos)
        if m is not None:
            display = text[pos : m.end() - 1].rstrip(" \t")
            pos = m.end()
            bracketed = True
        else:
            bracketed = False
    if bracketed:
        end = text.find(">", pos)
        if end < 0:
            raise SipParseError("missing '>'", header=header)
        uri = parse_uri(text[pos:end]) if "\t" not in text[pos:end] else None
        if uri is None:
            raise SipParseError("whitespace inside <>", header=header)
        pos = end + 1
    else:
        end = text.find(";", pos)
        if end < 0:
            end = n
        raw = text[pos:end].rstrip(" \t")
        if not raw or "?" in raw or "," in raw or " " in raw or "<" in raw or '"' in raw:
            raise SipParseError(f"bad addr-spec {raw[:60]!r} (needs <>)", header=header)
        uri = parse_uri(raw)
        pos = end
    params, pos = scan_params(text, pos, header=header)
    if pos != n:
        raise SipParseError(f"junk after address {text[pos : pos + 20]!r}", header=header)
    return NameAddr(uri=uri, display_name=display, params=params)


def parse_name_addr_list(value: str, *, header: str) -> list[NameAddr]:
    return [parse_name_addr(v, header=header) for v in split_commas(value, header=header)]


_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


def parse_contacts(values: Iterable[str]) -> tuple[bool, list[NameAddr]]:
    """All Contact fields -> (is_star, addresses). ``*`` must stand alone (RFC 3261 §10.2.2)."""
    out: list[NameAddr] = []
    star = False
    for value in values:
        if value.strip(" \t") == "*":
            star = True
            continue
        for c in parse_name_addr_list(value, header="Contact"):
            if "expires" in c.params:
                c.expires  # noqa: B018  (validates the delta-seconds range)
            q = c.params.get("q")
            if q is not None and not _QVALUE_RE.match(q):
                raise SipParseError(f"bad q value {q!r}", header="Contact")
            out.append(c)
    if star and out:
        raise SipParseError("Contact '*' mixed with addresses", header="Contact")
    return star, out


# ---------------------------------------------------------------------------------------
# CSeq (§20.16)
# ---------------------------------------------------------------------------------------
_CSEQ_RE = re.compile(rf"[ \t]*([0-9]{{1,10}})[ \t]+({TOKEN})[ \t]*\Z")


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def encode(self) -> str:
        return f"{self.seq} {self.method}"

    __str__ = encode


def parse_cseq(value: str) -> CSeq:
    m = _CSEQ_RE.match(value)
    if m is None:
        raise SipParseError(f"bad CSeq {value[:40]!r}", header="CSeq")
    seq = int(m.group(1))
    if seq >= 2**31:
        raise SipParseError(f"CSeq number {seq} >= 2**31", header="CSeq")
    return CSeq(seq, m.group(2))


# ---------------------------------------------------------------------------------------
# value *(;param): Content-Type, Event, Session-Expires, Reason, Security-Client, Retry-After,
# Subscription-State, P-Charging-Vector... (RFC 3261 §20.15, §20.33; RFC 3265, 4028, 3326, 3329)
# ---------------------------------------------------------------------------------------
_VALUE_RE = re.compile(r"[^;\s\\\"]+(?:[ \t]+[^;\s\\\"]+)*")


@dataclass(frozen=True, slots=True)
class ValueParams:
    """``value;p1=v1;p2``: the value as written (``application/sdp``, ``presence``,
    ``1800``, ``SIP``, ``ipsec-3gpp``) and its parameters."""

    value: str
    params: Params = field(default_factory=Params)

    def encode(self) -> str:
        return f"{self.value}{self.params.encode()}"

    __str__ = encode


def parse_value_params(text: str, *, header: str = "header") -> ValueParams:
    """Parse one ``value *(SEMI param)`` element (after comma splitting for list headers)."""
    pos = skip_ws(text, 0)
    m = _VALUE_RE.match(text, pos)
    if m is None:
        raise SipParseError(f"missing value in {text[:40]!r}", header=header)
    params, end = scan_params(text, m.end(), header=header)
    if end != len(text):
        raise SipParseError(f"junk in {text[end : end + 20]!r}", header=header)
    return ValueParams(m.group(), params)


def parse_token_list(values: Iterable[str], *, header: str) -> list[str]:
    """Option-tag / method lists (Require, Supported, Allow...)."""
    out: list[str] = []
    for value in values:
        if not value.strip(" \t"):
            continue  # an empty Supported: is legal
        for t in split_commas(value, header=header):
            if not is_token(t):
                raise SipParseError(f"bad token {t[:40]!r}", header=header)
            out.append(t)
    return out


# ---------------------------------------------------------------------------------------
# Authentication headers (§20.7, §20.27, §20.28, §20.44; RFC 7616 §3.3, §3.4)
# ---------------------------------------------------------------------------------------
_AUTH_PARAM_RE = re.compile(
    rf"[ \t]*({TOKEN})[ \t]*=[ \t]*({QUOTED}|[{TOKEN_CHARS}/:@\[\]]+)[ \t]*"
)


@dataclass(frozen=True, slots=True)
class AuthHeader:
    """``Digest realm="x", nonce="y"``: a challenge or credentials.

    ``params`` keep the wire form (quotes included); use :meth:`get` for unquoted values.
    ``token68`` holds an opaque credential of other schemes (``Basic xyz==``).
    """

    scheme: str
    params: Params = field(default_factory=Params)
    token68: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get_unquoted(name)

    def encode(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        return f"{self.scheme} " + ", ".join(
            k if v is None else f"{k}={v}" for k, v in self.params.items
        )

    __str__ = encode


def parse_auth(value: str, *, header: str = "Authorization") -> AuthHeader:
    text = value.strip(" \t")
    m = re.match(TOKEN, text)
    if m is None:
        raise SipParseError("missing auth scheme", header=header)
    scheme = m.group()
    rest = text[m.end() :]
    if rest and rest[0] not in " \t":
        raise SipParseError("bad auth scheme", header=header)
    rest = rest.strip(" \t")
    items: list[tuple[str, str | None]] = []
    pos = 0
    while pos < len(rest):
        pm = _AUTH_PARAM_RE.match(rest, pos)
        if pm is None:
            if not items and re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", rest):
                return AuthHeader(scheme, Params(), token68=rest)
            raise SipParseError(f"bad auth-param at {rest[pos : pos + 20]!r}", header=header)
        items.append((pm.group(1), pm.group(2)))
        pos = pm.end()
        if pos < len(rest):
            if rest[pos] != ",":
                raise SipParseError(f"expected ',' at {rest[pos : pos + 20]!r}", header=header)
            pos += 1
    return AuthHeader(scheme, Params(tuple(items)))


def check_host(host: str) -> bool:
    return HOST_RE.match(host) is not None


# ---------------------------------------------------------------------------------------
# Per-header element parsers: the "parse" column of the registry (sofia-sip's header
# classes). parse_header() applies them, after comma splitting for LIST headers.
# ---------------------------------------------------------------------------------------
HeaderValue = Via | NameAddr | CSeq | AuthHeader | ValueParams | int | str


def _token(header: str) -> Callable[[str], HeaderValue]:
    def parse(text: str) -> HeaderValue:
        if not is_token(text):
            raise SipParseError(f"bad token {text[:40]!r}", header=header)
        return text

    return parse


def _delta(header: str) -> Callable[[str], HeaderValue]:
    return lambda text: parse_delta_seconds(text, header=header)


def _addr(header: str) -> Callable[[str], HeaderValue]:
    return lambda text: parse_name_addr(text, header=header)


def _contact(text: str) -> HeaderValue:
    return "*" if text.strip(" \t") == "*" else parse_name_addr(text, header="Contact")


def _call_id(text: str) -> HeaderValue:
    if not CALLID_RE.match(text):
        raise SipParseError(f"bad Call-ID {text[:40]!r}", header="Call-ID")
    return text


def _vp(header: str) -> Callable[[str], HeaderValue]:
    return lambda text: parse_value_params(text, header=header)


def _auth(header: str) -> Callable[[str], HeaderValue]:
    return lambda text: parse_auth(text, header=header)


_PARSERS: dict[str, Callable[[str], HeaderValue]] = {
    "via": parse_via,
    "cseq": parse_cseq,
    "call-id": _call_id,
    "contact": _contact,
    **{
        n.lower(): _addr(n)
        for n in (
            "From", "To", "Route", "Record-Route", "Path", "Service-Route", "Reply-To",
            "Refer-To", "Referred-By", "P-Asserted-Identity", "P-Preferred-Identity",
            "P-Associated-URI", "P-Called-Party-ID",
        )
    },
    **{
        n.lower(): _auth(n)
        for n in ("Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate")
    },
    **{
        n.lower(): _token(n)
        for n in ("Require", "Proxy-Require", "Supported", "Unsupported", "Allow", "Allow-Events")
    },
    **{
        n.lower(): _delta(n)
        for n in ("Expires", "Min-Expires", "Max-Forwards", "Content-Length", "RSeq", "Min-SE")
    },
    **{
        n.lower(): _vp(n)
        for n in (
            "Content-Type", "Content-Disposition", "Event", "Session-Expires", "Reason",
            "Security-Client", "Security-Server", "Security-Verify", "Retry-After",
            "Subscription-State", "P-Charging-Vector", "Accept", "Accept-Contact",
            "Reject-Contact", "P-Access-Network-Info", "P-Visited-Network-ID",
        )
    },
}  # fmt: skip


def header_parser(name: str) -> Callable[[str], HeaderValue] | None:
    """The element parser registered for ``name`` (None: kept as text)."""
    return _PARSERS.get(header_key(name))


def parse_header(name: str, value: str) -> list[HeaderValue]:
    """One header field's raw value -> its typed elements (comma-split for LIST headers).

    Unregistered headers give ``[value]``. Raises :class:`SipParseError` with the header name.
    """
    d = REGISTRY.get(header_key(name))
    canon = d.name if d else name
    if d is not None and d.kind is HeaderKind.LIST:
        if not value.strip(" \t") and canon in ("Supported", "Allow", "Accept"):
            return []  # empty lists are legal for these (RFC 3261 §20.1, §20.5, §20.37)
        elements = split_commas(value, header=canon)
    else:
        elements = [value]
    parser = _PARSERS.get(header_key(name))
    if parser is None:
        return list(elements)
    if canon == "Max-Forwards":
        out = [parser(e) for e in elements]
        if any(isinstance(v, int) and v > 255 for v in out):
            raise SipParseError("Max-Forwards above 255", header=canon)
        return out
    return [parser(e) for e in elements]
