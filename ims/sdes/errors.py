"""SDES errors: syntax (a DecodeError, SIP 400 hint) and negotiation (SIP 488 hint)."""

from __future__ import annotations

from ims.errors import DecodeError, ImsError


class SdesError(DecodeError):
    """An ``a=crypto`` value does not follow RFC 4568 §9.2."""

    status_hint = 400


class SdesNegotiationError(ImsError):
    """No offered crypto line is acceptable (RFC 4568 §7.1.2): answer 488 or reject the stream."""

    status_hint = 488

    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons
