"""RFC 3261 §16 proxy core (sans-I/O), routing policy types and hook points.

The asyncio adapter that runs the core on sockets is :class:`ims.sip.aio.ProxyServer`, beside
the UA endpoint (the adapters live in one package above the sans-I/O layers). See
docs/sip-proxy-api.md.
"""

from __future__ import annotations

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
    StrayProcessor,
    Target,
    rewrite_message,
)

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
    "RequestUriRouter",
    "Respond",
    "ResponseContext",
    "ResponseProcessor",
    "Router",
    "RoutingContext",
    "StatelessRouter",
    "StrayProcessor",
    "SendResponse",
    "SendStateless",
    "Target",
    "loop_hash",
    "rewrite_message",
    "uas_checks",
    "uri_peer",
    "via_peer",
]
