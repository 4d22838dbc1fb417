"""The asyncio adapters above the transaction layer (STYLE.md §1, pjsip's UA over nta).

:class:`SipEndpoint` (:mod:`ims.sip.aio.endpoint`) runs the sans-I/O
:class:`~ims.sip.transaction.TransactionLayer` on the socket adapters of
:mod:`ims.sip.transport` for a user agent (or a simple element built like one): one timer, an
``await request()`` API, server contexts. The layering is transport (sockets, flows) <
transaction (sans-I/O §17 machines) < this package; tests/test_layering.py checks that
transport never imports upward.
"""

from ims.sip.transport.errors import SipTimeoutError, SipTransportError

from .endpoint import ServerContext, SipEndpoint

__all__ = ["ServerContext", "SipEndpoint", "SipTimeoutError", "SipTransportError"]
