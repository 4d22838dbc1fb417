"""The few facts the IRI-POI needs from a SIP message, read straight from its bytes.

The POI must be cheap for the 90 % of calls that are not intercepted (the benchmark asks for a
P-CSCF throughput ratio >= 0.9 with 10 % of calls tasked), so it does not build a full message
object: it splits the header block once (RFC 3261 §7.3.1: folding, compact forms) and keeps the
start line, Call-ID, CSeq, top Via branch, From/To/P-Asserted-Identity and the body. The bytes
themselves are what X2 carries (payload format 9), so nothing is re-encoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
    "m": "contact",
}
_WANTED = frozenset({"call-id", "cseq", "from", "to", "via", "p-asserted-identity", "content-type"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SipView:
    raw: bytes
    method: str  # request method, or the CSeq method of a response
    status: int | None  # None for requests
    reason: str
    request_uri: str | None
    call_id: str
    cseq: int
    via: str  # the first Via header field (its top entry holds the branch)
    from_: str
    to: str
    pai: tuple[str, ...]
    content_type: str
    body: bytes

    @property
    def is_request(self) -> bool:
        return self.status is None

    @property
    def first_line(self) -> str:
        if self.status is None:
            return f"{self.method} {self.request_uri}"
        return f"{self.status} {self.reason}".strip()

    @property
    def to_tag(self) -> str | None:
        return _param(self.to, "tag") if ";" in self.to else None

    @property
    def branch(self) -> str:
        return _param(self.via.split(",", 1)[0], "branch") or ""

    @property
    def sdp(self) -> bytes | None:
        if self.body and "application/sdp" in self.content_type.lower():
            return self.body
        return None


def _param(value: str, name: str) -> str | None:
    # parameters after the name-addr's ">" (or the whole value for addr-spec)
    tail = value.rsplit(">", 1)[-1]
    for p in tail.split(";")[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == name:
            return v.strip()
    return None


class NotSipError(ValueError):
    """The bytes are not a SIP message the POI can read."""


# One C-level scan of the header block for the headers the POI reads (full or compact names,
# RFC 3261 §7.3.3); folded continuation lines (§7.3.1) are joined first.
_HEADER = re.compile(
    r"^(call-id|i|cseq|from|f|to|t|via|v|p-asserted-identity|content-type|c)"
    r"[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$",
    re.IGNORECASE | re.MULTILINE,
)
_FOLD = re.compile(r"\r?\n[ \t]+")


def parse(raw: bytes) -> SipView:
    """Read a SIP message; raises :class:`NotSipError` on anything unreadable."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotSipError("header block is not UTF-8") from exc
    first, _, rest = text.partition("\n")
    start = first.rstrip("\r").split(" ", 2)
    if len(start) < 3:
        raise NotSipError("bad start line")
    if "\n " in rest or "\n\t" in rest:
        rest = _FOLD.sub(" ", rest)
    headers: dict[str, list[str]] = {}
    for name, value in _HEADER.findall(rest):
        key = name.lower()
        headers.setdefault(_COMPACT.get(key, key), []).append(value)
    if start[0].startswith("SIP/"):
        try:
            status: int | None = int(start[1])
        except ValueError as exc:
            raise NotSipError("bad status code") from exc
        request_uri, reason = None, start[2]
    else:
        status, request_uri, reason = None, start[1], ""
    cseq_parts = (headers.get("cseq") or [""])[0].split()
    if len(cseq_parts) != 2 or not cseq_parts[0].isdigit():
        raise NotSipError("missing or bad CSeq")
    call_ids = headers.get("call-id")
    if not call_ids:
        raise NotSipError("missing Call-ID")
    return SipView(
        raw=raw,
        method=start[0] if status is None else cseq_parts[1],
        status=status,
        reason=reason,
        request_uri=request_uri,
        call_id=call_ids[0],
        cseq=int(cseq_parts[0]),
        via=(headers.get("via") or [""])[0],
        from_=(headers.get("from") or [""])[0],
        to=(headers.get("to") or [""])[0],
        pai=tuple(headers.get("p-asserted-identity", ())),
        content_type=(headers.get("content-type") or [""])[0],
        body=body,
    )
