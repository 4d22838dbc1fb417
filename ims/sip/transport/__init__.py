"""SIP transport (RFC 3261 §18): the lowest layer of the stack, sockets and flows only.

* :mod:`.flow`: the addresses (plain data): :class:`Peer`, where to send or listen, and
  :class:`Flow`, the path one message took (what the transaction layer is told and tells back);
* :mod:`.udp`, :mod:`.stream`: the asyncio socket adapters (UDP; TCP and TLS with framing by
  Content-Length), which hand parsed messages and their :class:`Flow` upward;
* :mod:`.errors`: the transport's exceptions.

Nothing here imports the transaction layer or anything above it (tests/test_layering.py); the
UA endpoint that drives transactions over these sockets is :mod:`ims.sip.aio`. The package
itself imports only the sans-I/O :mod:`.flow` and :mod:`.errors`, so the transaction layer can
use :class:`Flow` without loading asyncio.
"""

from .errors import SipTimeoutError, SipTransportError
from .flow import DEFAULT_PORTS, TRANSPORTS, Address, Flow, Peer, normalize_transport

__all__ = [
    "DEFAULT_PORTS",
    "TRANSPORTS",
    "Address",
    "Flow",
    "Peer",
    "SipTimeoutError",
    "SipTransportError",
    "normalize_transport",
]
