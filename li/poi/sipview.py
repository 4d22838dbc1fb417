"""The IRI-POI's reading of a SIP message: the :mod:`ims.sip` message, its bytes, a few facts.

The POI reads SIP the one way the stack does (issue 15): through :mod:`ims.sip`. On an
element's hook it is handed the message the element has already parsed
(:meth:`SipView.of`), so reading costs the POI nothing but the fields it asks for, which the
element's parser has usually cached (Via, From, To, CSeq). Bytes alone (:func:`parse`: tests,
a replay) go through :func:`ims.sip.parse_message` without validation: the start line, the
header block split once (folding, compact forms: RFC 3261 §7.3.1, §7.3.3) and each field parsed
only when a property asks for it. ``benchmarks/bench_li_sipread.py`` and ``bench_li_overhead.py
--only hook`` measure both paths (docs/benchmarks/li.md).

What the POI needs is the start line, Call-ID, CSeq, From/To/P-Asserted-Identity and the body;
a message without a readable Call-ID or CSeq is :class:`NotSipError` (the POI counts it as
unreadable and goes on). The bytes themselves are what X2 carries (payload format 9), so
nothing is re-encoded.
"""

from __future__ import annotations

from ims.sip import parse_message
from ims.sip.errors import SipParseError
from ims.sip.message import Request, Response

__all__ = ["NotSipError", "SipView", "parse"]


class NotSipError(ValueError):
    """The bytes are not a SIP message the POI can read."""


class SipView:
    """One SIP message as the POI reads it (immutable by convention: the POI only reads)."""

    __slots__ = ("call_id", "cseq", "message", "method", "raw", "status")

    def __init__(self, message: Request | Response, raw: bytes) -> None:
        """Use :meth:`of` or :func:`parse`: they check what every view must have."""
        self.message = message
        self.raw = raw
        cseq = message.cseq  # cached by the element's parser; parsed here otherwise
        call_id = message.call_id
        if cseq is None or not call_id:
            raise NotSipError("missing Call-ID or CSeq")
        self.call_id: str = call_id
        self.cseq: int = cseq.seq
        if isinstance(message, Response):
            self.status: int | None = message.status
            self.method: str = cseq.method  # a response is known by its CSeq method
        else:
            self.status = None
            self.method = message.method

    @classmethod
    def of(cls, message: Request | Response, raw: bytes) -> SipView:
        """The view of a message an element parsed (``raw``: its bytes on the wire)."""
        try:
            return cls(message, raw)
        except SipParseError as exc:  # a lazily parsed CSeq that does not parse
            raise NotSipError(str(exc)) from exc

    # -- the start line ----------------------------------------------------------------------

    @property
    def is_request(self) -> bool:
        return self.status is None

    @property
    def reason(self) -> str:
        m = self.message
        return m.reason if isinstance(m, Response) else ""

    @property
    def request_uri(self) -> str | None:
        m = self.message
        return m.uri.encode() if isinstance(m, Request) else None

    @property
    def first_line(self) -> str:
        if self.status is None:
            return f"{self.method} {self.request_uri}"
        return f"{self.status} {self.reason}".strip()

    # -- header fields, raw (li.targets normalises the identities in them) -----------------

    def _first(self, name: str) -> str:
        return self.message.headers.get(name) or ""

    @property
    def via(self) -> str:
        """The first Via header field (its top entry holds the branch)."""
        return self._first("Via")

    @property
    def from_(self) -> str:
        return self._first("From")

    @property
    def to(self) -> str:
        return self._first("To")

    @property
    def pai(self) -> tuple[str, ...]:
        return tuple(self.message.headers.get_all("P-Asserted-Identity"))

    @property
    def content_type(self) -> str:
        return self._first("Content-Type")

    @property
    def body(self) -> bytes:
        return self.message.body

    # -- parsed on demand through ims.sip ---------------------------------------------------

    @property
    def to_tag(self) -> str | None:
        try:
            to = self.message.to
        except SipParseError:
            return None  # a To the element never had to parse; no tag to key on
        return None if to is None else to.tag

    @property
    def branch(self) -> str:
        try:
            via = self.message.via
        except SipParseError:
            return ""
        return (via.branch or "") if via is not None else ""

    @property
    def sdp(self) -> bytes | None:
        body = self.message.body
        if body and self.message.content_type == "application/sdp":
            return body
        return None


def parse(raw: bytes) -> SipView:
    """Read a SIP message from its bytes; raises :class:`NotSipError` on anything unreadable."""
    try:
        message = parse_message(raw, validate=False)
    except SipParseError as exc:
        raise NotSipError(str(exc)) from exc
    return SipView.of(message, raw)
