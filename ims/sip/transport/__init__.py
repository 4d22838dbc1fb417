"""asyncio SIP transports (RFC 3261 §18): UDP, TCP, TLS, and :class:`SipEndpoint`.

These are the only SIP modules that touch sockets; see docs/sip-transactions.md.
"""

from .endpoint import ServerContext, SipEndpoint
from .errors import SipTimeoutError, SipTransportError

__all__ = ["ServerContext", "SipEndpoint", "SipTimeoutError", "SipTransportError"]
