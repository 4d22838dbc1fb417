"""Target identities: normalisation and matching for the IRI-POI.

What a warrant names (an X1 ``TargetIdentifier``: ``sipUri``, ``telUri``, ``impu``,
``e164Number``, TS 103 221-1 clause 6.2.1) and what a SIP message carries (Request-URI, To,
From, P-Asserted-Identity, RFC 3261 §19.1, RFC 3966, RFC 3325) are both turned into a set of
canonical identity strings; a message matches a task when the sets meet.

Canonical forms (the rules and why):

* ``sip:user@host`` -- ``sips`` is folded into ``sip`` (the same AoR over TLS, RFC 3261
  §19.1.4 compares them as different URIs, but for LI they are the same subscriber); the host is
  lowercased (case-insensitive); the user part keeps its case (case-sensitive per §19.1.4) but is
  percent-decoded; port, URI parameters and headers are dropped (``;user=phone``, ``;transport``
  and GRUU ``;gr`` must not hide a target).
* ``tel:+<digits>`` -- global numbers (RFC 3966 §5.1.4) with visual separators ``-.()``
  removed; a local number with a global ``phone-context`` is made global by prefixing the
  context's digits; an ``e164Number`` target (digits, optional ``+``) is the same.
* A SIP URI whose user part is a telephone number (``;user=phone``, or ``+`` followed by digits
  and separators) also yields the ``tel:`` form, so ``sip:+44-20-7946-0000@ims.test;user=phone``,
  ``tel:+442079460000`` and the E.164 number ``442079460000`` match each other.

Matching is on the originating side (P-Asserted-Identity, else From: OpenLI's rule that From
is not trusted when a PAI exists) and the terminating side (Request-URI of an initial request,
To). The functions take strings; :func:`identities_of` also accepts any URI object whose
``str()`` is the URI (the SIP layer's ``SipUri``), so the POI can pass parsed headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from urllib.parse import unquote

from ims.errors import ImsError


class TargetError(ImsError, ValueError):
    """A target identifier that cannot be normalised (X1 error 3010 territory)."""


class TargetKind(StrEnum):
    """X1 TargetIdentifier choices the IMS POI supports (TS 103 221-1 clause 6.2.1)."""

    SIP_URI = "sipUri"
    TEL_URI = "telUri"
    IMPU = "impu"
    E164 = "e164Number"


_VISUAL = re.compile(r"[-.()\s]")  # RFC 3966 visual-separator (plus spaces seen in practice)
_GLOBAL_NUMBER = re.compile(r"^\+[0-9]+$")
_LOCAL_NUMBER = re.compile(r"^[0-9*#A-Fa-f]+$")
_PHONE_LIKE_USER = re.compile(r"^\+[0-9\-.()]+$")
# name-addr: [display-name] "<" addr-spec ">" ; addr-spec alone has no "<" (RFC 3261 §20.10).
_ANGLE = re.compile(r"<([^>]*)>")


@lru_cache(maxsize=8192)
def uri_of(header_value: str) -> str:
    """The URI inside a From/To/PAI value (name-addr or addr-spec), without header params."""
    value = header_value.strip()
    m = _ANGLE.search(value)
    if m:
        return m.group(1).strip()
    # addr-spec form: what follows ";" is a header parameter (;tag=) -- RFC 3261 §20.10 -- so
    # URI parameters of an addr-spec are dropped too, which the canonical form does anyway.
    return value.split(";", 1)[0].strip()


def split_values(header_value: str) -> list[str]:
    """Split a comma-separated header (e.g. two P-Asserted-Identity values) outside quotes/<>."""
    out: list[str] = []
    depth, quoted = 0, False
    cur: list[str] = []
    for ch in header_value:
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif ch == "<" and not quoted:
            depth += 1
        elif ch == ">" and not quoted and depth:
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    last = "".join(cur).strip()
    if last:
        out.append(last)
    return [v for v in out if v]


def _tel_digits(number: str, params: Mapping[str, str]) -> str | None:
    """Global ``+digits`` for a telephone-subscriber, or None if it cannot be made global."""
    n = _VISUAL.sub("", unquote(number))
    if _GLOBAL_NUMBER.match(n):
        return n
    ctx = params.get("phone-context")
    if ctx and _LOCAL_NUMBER.match(n):
        c = _VISUAL.sub("", ctx)
        if _GLOBAL_NUMBER.match(c):
            return c + n
    return None


def _params(text: str) -> tuple[str, dict[str, str]]:
    head, *rest = text.split(";")
    params: dict[str, str] = {}
    for p in rest:
        name, _, value = p.partition("=")
        params[name.strip().lower()] = value.strip()
    return head, params


@lru_cache(maxsize=8192)
def normalize_uri(uri: str) -> frozenset[str]:
    """Canonical identities of one URI (``sip:``, ``sips:`` or ``tel:``); empty if unusable.

    ``uri`` is a bare URI (its parameters are URI parameters) or a name-addr in angle brackets.
    """
    text = uri.strip()
    m = _ANGLE.search(text)
    if m:
        text = m.group(1).strip()
    scheme, sep, rest = text.partition(":")
    if not sep:
        return frozenset()
    scheme = scheme.strip().lower()
    rest = rest.split("?", 1)[0]  # URI headers never identify anyone
    out: set[str] = set()
    if scheme == "tel":
        number, params = _params(rest)
        digits = _tel_digits(number, params)
        if digits is not None:
            out.add(f"tel:{digits}")
        return frozenset(out)
    if scheme not in ("sip", "sips"):
        return frozenset()
    userinfo, at, hostport = rest.partition("@")
    if not at:
        userinfo, hostport = "", rest
    hostport, uparams = _params(hostport)
    host = hostport.lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.split(":", 1)[0]
    user = unquote(userinfo.split(":", 1)[0])  # drop any password
    user, user_params = _params(user) if ";" in user else (user, {})
    if user:
        out.add(f"sip:{user}@{host}")
    else:
        out.add(f"sip:{host}")
    if user and (uparams.get("user") == "phone" or _PHONE_LIKE_USER.match(user)):
        digits = _tel_digits(user, user_params)
        if digits is not None:
            out.add(f"tel:{digits}")
    return frozenset(out)


def normalize_target(kind: TargetKind | str, value: str) -> frozenset[str]:
    """Canonical identities of an X1 target identifier; raises :class:`TargetError`."""
    k = TargetKind(kind)
    if k is TargetKind.E164:
        digits = _VISUAL.sub("", value.strip()).lstrip("+")
        if not digits.isdigit():
            raise TargetError(f"not an E.164 number: {value!r}")
        return frozenset({f"tel:+{digits}"})
    ids = normalize_uri(value)
    if not ids:
        raise TargetError(f"cannot normalise {k.value} target {value!r}")
    if k is TargetKind.TEL_URI and not any(i.startswith("tel:") for i in ids):
        raise TargetError(f"not a global tel URI: {value!r}")
    return ids


class Side(StrEnum):
    """Which party of a message an identity belongs to."""

    ORIGINATING = "originating"
    TERMINATING = "terminating"


def identities_of(
    *,
    request_uri: object | None = None,
    from_: str | None = None,
    to: str | None = None,
    p_asserted_identity: Iterable[str] = (),
) -> dict[Side, frozenset[str]]:
    """Identities of the two parties of a SIP message.

    Originating: every P-Asserted-Identity value (RFC 3325 allows one sip and one tel), else
    From. Terminating: To and the Request-URI (``None`` for responses).
    """
    orig: set[str] = set()
    pai = [v for h in p_asserted_identity for v in split_values(h)]
    for v in pai:
        orig |= normalize_uri(uri_of(v))
    if not pai and from_:
        orig |= normalize_uri(uri_of(from_))
    term: set[str] = set()
    if to:
        term |= normalize_uri(uri_of(to))
    if request_uri is not None:
        term |= normalize_uri(str(request_uri))  # a SipUri object prints as its URI
    return {Side.ORIGINATING: frozenset(orig), Side.TERMINATING: frozenset(term)}


@dataclass(frozen=True, slots=True)
class TargetMatch:
    """A task (XID) matched a message on one side, with the identity that matched."""

    xid: str
    side: Side
    identity: str


@dataclass(slots=True)
class TargetTable:
    """Active tasks' targets (XID -> canonical identities); the POI's matching index."""

    _by_xid: dict[str, frozenset[str]] = field(default_factory=dict)
    _index: dict[str, set[str]] = field(default_factory=dict)

    def add(self, xid: str, identities: frozenset[str]) -> None:
        self.remove(xid)
        self._by_xid[xid] = identities
        for ident in identities:
            self._index.setdefault(ident, set()).add(xid)

    def remove(self, xid: str) -> None:
        for ident in self._by_xid.pop(xid, frozenset()):
            xids = self._index.get(ident)
            if xids is not None:
                xids.discard(xid)
                if not xids:
                    del self._index[ident]

    def __len__(self) -> int:
        return len(self._by_xid)

    def __contains__(self, xid: object) -> bool:
        return xid in self._by_xid

    def identities(self, xid: str) -> frozenset[str]:
        return self._by_xid.get(xid, frozenset())

    def match(self, parties: Mapping[Side, frozenset[str]]) -> list[TargetMatch]:
        """Every (task, side) whose target appears in the message; sorted, deterministic."""
        if not self._index:
            return []
        found: dict[tuple[str, Side], str] = {}
        for side in (Side.ORIGINATING, Side.TERMINATING):
            for ident in sorted(parties.get(side, frozenset())):
                for xid in self._index.get(ident, ()):
                    found.setdefault((xid, side), ident)
        return [TargetMatch(x, s, i) for (x, s), i in sorted(found.items())]
