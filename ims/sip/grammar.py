"""RFC 3261 §25 ABNF as commented, bounded regular expressions and small scanners.

Every pattern here is linear: no nested quantifier can match the same text two ways, so a
hostile header cannot make the parser backtrack exponentially (checked by the hypothesis
fuzz tests). Scanners work on already unfolded header values (``str``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ims.sip.errors import SipParseError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = rf"[{TOKEN_CHARS}]+"
TOKEN_RE = re.compile(rf"{TOKEN}\Z")
# word = token chars plus ( ) < > : \ " / [ ] ? { }   (Call-ID)
WORD = rf"[{TOKEN_CHARS}()<>:\\\"/\[\]?{{}}]+"
CALLID_RE = re.compile(rf"{WORD}(?:@{WORD})?\Z")
# LWS collapsed to SP/HT after unfolding
WS = r"[ \t]*"
# hostname / IPv4 / IPv6reference (RFC 3261 §25.1); lenient on label rules, strict on charset
HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
HOST_RE = re.compile(rf"{HOST}\Z")
DIGITS_RE = re.compile(r"[0-9]{1,10}\Z")
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
QUOTED = r'"(?:[^"\\]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
QUOTED_RE = re.compile(QUOTED)
_WS_RE = re.compile(WS)
_TOKEN_AT = re.compile(TOKEN)
# a generic-param value: token / host / quoted-string (host covers IPv6 "[..]" in received)
_PVALUE_AT = re.compile(rf"{QUOTED}|[{TOKEN_CHARS}:\[\]]+")

MAX_DELTA_SECONDS = 2**32 - 1


def is_token(text: str) -> bool:
    return TOKEN_RE.match(text) is not None


def unquote(text: str) -> str:
    """``"a \\"b\\""`` -> ``a "b"``; text without surrounding quotes is returned unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        while i < len(inner):
            ch = inner[i]
            if ch == "\\" and i + 1 < len(inner):
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """Quote ``text`` as a quoted-string, escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_commas(value: str, *, header: str | None = None) -> list[str]:
    """Split a list header value on commas outside quoted strings and ``<...>``.

    Empty elements (``a,,b``) are a syntax error: unlike HTTP's ``#rule``, the SIP grammar
    writes its lists as ``x *(COMMA x)`` (RFC 3261 §25.1, e.g. ``via-parm *(COMMA via-parm)``),
    so there are no null elements (RFC 4475 §3.1.2.1). Elements are stripped of LWS.
    """
    if "," not in value:
        parts = [value]
    elif '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        start = 0
        i = 0
        n = len(value)
        in_quote = False
        in_angle = False
        while i < n:
            ch = value[i]
            if in_quote:
                if ch == "\\":
                    i += 1
                elif ch == '"':
                    in_quote = False
            elif ch == '"':
                in_quote = True
            elif ch == "<":
                in_angle = True
            elif ch == ">":
                in_angle = False
            elif ch == "," and not in_angle:
                parts.append(value[start:i])
                start = i + 1
            i += 1
        if in_quote:
            raise SipParseError("unterminated quoted string", header=header, offset=start)
        parts.append(value[start:])
    out = [p.strip(" \t") for p in parts]
    if any(not p for p in out):
        raise SipParseError("empty element in comma-separated list", header=header)
    return out


@dataclass(frozen=True, slots=True)
class Params:
    """Ordered ``;name=value`` parameters; names compare case-insensitively.

    Values are kept as on the wire (a quoted value keeps its quotes; :meth:`get_unquoted`
    removes them); a parameter without ``=`` has the value ``None``.
    """

    items: tuple[tuple[str, str | None], ...] = ()

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        low = name.lower()
        return any(k.lower() == low for k, _ in self.items)

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self.items:
            if k.lower() == low:
                return v
        return default

    def get_unquoted(self, name: str) -> str | None:
        v = self.get(name)
        return None if v is None else unquote(v)

    def set(self, name: str, value: str | None = None) -> Params:
        """A copy with ``name`` set (replaced in place, or appended)."""
        low = name.lower()
        out: list[tuple[str, str | None]] = []
        done = False
        for k, v in self.items:
            if k.lower() == low:
                if not done:
                    out.append((name, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((name, value))
        return Params(tuple(out))

    def remove(self, name: str) -> Params:
        low = name.lower()
        return Params(tuple((k, v) for k, v in self.items if k.lower() != low))

    def as_dict(self) -> dict[str, str | None]:
        """Lower-cased names to values (first occurrence wins)."""
        d: dict[str, str | None] = {}
        for k, v in self.items:
            d.setdefault(k.lower(), v)
        return d

    def encode(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.items)

    @classmethod
    def of(cls, **kwargs: str | None) -> Params:
        """``Params.of(branch="z9hG4bK1", rport=None)``."""
        return cls(tuple(kwargs.items()))


EMPTY_PARAMS = Params()
# the common case: no LWS, no quoted values -> one linear regex check and a split
_FAST_PARAMS_RE = re.compile(rf"(?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}:\[\]]+)?)*\Z")


def fast_params(text: str) -> Params | None:
    """``;a=b;c`` without LWS or quotes -> Params; None when the slow scanner is needed."""
    if not text:
        return EMPTY_PARAMS
    if _FAST_PARAMS_RE.match(text) is None:
        return None
    items: list[tuple[str, str | None]] = []
    for p in text[1:].split(";"):
        k, eq, v = p.partition("=")
        items.append((k, v if eq else None))
    return Params(tuple(items))


def skip_ws(text: str, pos: int) -> int:
    m = _WS_RE.match(text, pos)
    assert m is not None  # WS matches the empty string
    return m.end()


def scan_params(
    text: str, pos: int, *, header: str | None = None, stop: str = ""
) -> tuple[Params, int]:
    """Scan ``*( SEMI generic-param )`` with LWS around ``;`` and ``=`` from ``pos``.

    Stops at end of text or at a character in ``stop``; returns the params and the position.
    """
    if not stop:
        fast = fast_params(text[pos:])
        if fast is not None:
            return fast, len(text)
    items: list[tuple[str, str | None]] = []
    n = len(text)
    pos = skip_ws(text, pos)
    while pos < n and text[pos] not in stop:
        if text[pos] != ";":
            raise SipParseError(
                f"expected ';' at {text[pos : pos + 10]!r}", header=header, offset=pos
            )
        pos = skip_ws(text, pos + 1)
        m = _TOKEN_AT.match(text, pos)
        if m is None:
            raise SipParseError("empty or bad parameter name", header=header, offset=pos)
        name = m.group()
        pos = skip_ws(text, m.end())
        value: str | None = None
        if pos < n and text[pos] == "=":
            pos = skip_ws(text, pos + 1)
            mv = _PVALUE_AT.match(text, pos)
            if mv is None:
                raise SipParseError(f"bad value for parameter {name}", header=header, offset=pos)
            value = mv.group()
            pos = skip_ws(text, mv.end())
        items.append((name, value))
    return Params(tuple(items)), pos


def parse_delta_seconds(text: str, *, header: str | None = None) -> int:
    """delta-seconds = 1*DIGIT, at most 2**32-1 (RFC 3261 §20.19, §25)."""
    text = text.strip(" \t")
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise SipParseError(f"bad delta-seconds {text[:20]!r}", header=header)
    value = int(text)
    if value > MAX_DELTA_SECONDS:
        raise SipParseError(f"delta-seconds {text} too large", header=header)
    return value
