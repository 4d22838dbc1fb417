"""RFC 3261 §16 proxy core (sans-I/O), routing policy types, hook points and the asyncio
adapter. See docs/sip-proxy-api.md.

``ProxyServer`` (asyncio) is imported lazily so that sans-I/O users of the core never load
the event loop machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ims.sip.transport.flow import Peer

from .core import (
    Action,
    CancelBranch,
    ForwardRequest,
    ProxyConfig,
    ProxyCore,
    SendResponse,
    SendStateless,
    loop_hash,
    uri_peer,
    via_peer,
)
from .hooks import DROP, Direction, MessageEvent, MessageHook, MessageHooks
from .location import LocationRouter, uas_checks
from .routing import (
    Decision,
    Defer,
    Forward,
    RequestUriRouter,
    Respond,
    ResponseContext,
    ResponseProcessor,
    Router,
    RoutingContext,
    StatelessRouter,
    Target,
    rewrite_message,
)

if TYPE_CHECKING:
    from .aio_proxy import ProxyServer

__all__ = [
    "DROP",
    "Action",
    "CancelBranch",
    "Decision",
    "Defer",
    "Direction",
    "Forward",
    "ForwardRequest",
    "LocationRouter",
    "MessageEvent",
    "MessageHook",
    "MessageHooks",
    "Peer",
    "ProxyConfig",
    "ProxyCore",
    "ProxyServer",
    "RequestUriRouter",
    "Respond",
    "ResponseContext",
    "ResponseProcessor",
    "Router",
    "RoutingContext",
    "StatelessRouter",
    "SendResponse",
    "SendStateless",
    "Target",
    "loop_hash",
    "rewrite_message",
    "uas_checks",
    "uri_peer",
    "via_peer",
]


def __getattr__(name: str) -> Any:
    if name == "ProxyServer":
        from .aio_proxy import ProxyServer

        return ProxyServer
    raise AttributeError(name)
