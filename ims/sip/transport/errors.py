"""Errors raised by the asyncio SIP transports and :class:`~.endpoint.SipEndpoint`."""

from __future__ import annotations

from ims.sip.errors import SipError


class SipTransportError(SipError, OSError):
    """A message could not be sent or a connection failed (RFC 3261 §18, §17.1.4).

    The transaction that sent it gets a transport-error input; an awaiting
    :meth:`~.endpoint.SipEndpoint.request` raises this (the TU treats it as a 503, §8.1.3.1).
    """


class SipTimeoutError(SipError, TimeoutError):
    """Timer B or F fired: no final response (the TU treats it as a 408, §8.1.3.1)."""
