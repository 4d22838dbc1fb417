"""SIP errors (STYLE.md §5).

A :class:`SipParseError` carries the status a server should answer with (RFC 3261 §8.2,
§21.4, §21.5): 400 for bad syntax, 413 for an oversize body, 416 for an unsupported URI scheme,
505 for an unknown SIP version, 513 for an oversize message. The codec only raises; the
transaction or transport layer turns the error into a response (requests) or drops the
message (responses, RFC 3261 §18.1.2).
"""

from __future__ import annotations

from ims.errors import DecodeError, ImsError


class SipError(ImsError):
    """Root of SIP-layer errors that are not decoding errors."""


class SipParseError(DecodeError):
    """A SIP message, header or URI could not be parsed.

    ``status_hint``: the response status to send back for a request (400, 413, 416, 505, 513).
    ``header``: the header field (canonical name) where it failed, when known.
    ``offset``: byte offset into the message (of the start line, or of the header line, or of
    the failing character inside a header value when that is known: ``column``), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        status_hint: int = 400,
        header: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, offset=offset)
        self.status_hint = status_hint
        self.header = header
        #: position inside the (unfolded) header value where parsing stopped, when known
        self.column: int | None = None

    def __str__(self) -> str:
        base = super().__str__()
        where = f" in {self.header}" if self.header else ""
        return f"{self.status_hint}: {base}{where}"


class SipBuildError(SipError, ValueError):
    """A request cannot be built (missing header, wrong state for a dialog request...)."""
