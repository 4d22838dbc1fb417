"""SDP errors: syntax (DecodeError, SIP 400 hint) and offer/answer failure (SIP 488 hint)."""

from __future__ import annotations

from ims.errors import DecodeError, ImsError


class SdpError(DecodeError):
    """The body is not RFC 8866 SDP (or a typed field does not follow its grammar)."""

    status_hint = 400


class SdpNegotiationError(ImsError):
    """No acceptable media in an offer/answer exchange (RFC 3264 §6): answer 488."""

    status_hint = 488
