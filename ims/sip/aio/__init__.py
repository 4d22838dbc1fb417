"""The asyncio adapters of the SIP stack, in one place (STYLE.md §1; pjsip's UA and proxy
over its transaction layer).

Each runs sans-I/O engines on the socket adapters of :mod:`ims.sip.transport`, owns one
``loop.call_at`` timer and is the only place its engines' time is read:

* :class:`SipEndpoint` (:mod:`.endpoint`): the :class:`~ims.sip.transaction.TransactionLayer`
  for a user agent (or a simple element built like one): ``await request()``, server
  contexts, hooks;
* :class:`ProxyServer` (:mod:`.proxy`): the RFC 3261 §16 :class:`~ims.sip.proxy.ProxyCore`
  on the transaction layer, for proxies.

The layering is transport (sockets, flows) < transaction (sans-I/O §17 machines) < dialog and
proxy core (sans-I/O) < this package; tests/test_layering.py checks that nothing below imports
upward. ``ProxyServer`` is imported on first use, so a UA never loads the proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ims.sip.transport.errors import SipTimeoutError, SipTransportError

from .endpoint import ServerContext, SipEndpoint

if TYPE_CHECKING:
    from .proxy import ProxyServer

__all__ = ["ProxyServer", "ServerContext", "SipEndpoint", "SipTimeoutError", "SipTransportError"]


def __getattr__(name: str) -> Any:
    if name == "ProxyServer":
        from .proxy import ProxyServer

        return ProxyServer
    raise AttributeError(name)
