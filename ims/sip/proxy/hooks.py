"""Hook points of the proxy core: observe, rewrite or drop every message in and out.

The proxy core (:mod:`ims.sip.proxy.core`) runs every SIP message it receives, and every
message it is about to send, through its hook chain with a :class:`MessageEvent` naming the
element, the direction, the peer (address and transport) and the message object. A hook

* observes: returns ``None``;
* rewrites: returns a replacement message (what the next hook and the core then use);
* drops: returns :data:`DROP` (an incoming message is then ignored as if never received, an
  outgoing one is not sent).

The chain is the stack's one hook mechanism (:mod:`ims.hooks`: one :class:`Direction`, one
:data:`DROP`); :class:`MessageEvent` is the SIP event every element (P-CSCF, S-CSCF, Internet
proxy, ``imslab run sip-proxy``) emits and what the LI IRI-POI observes
(``proxies.hooks.SipMessageEvent`` is this class). A hook that raises is logged and skipped:
an observer (an LI tap) must never break the element.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ims.hooks import DROP, Direction, Drop, HookChain
from ims.sip.message import Request, Response

Message = Request | Response
_Drop = Drop  # the name the core and older callers use

__all__ = ["DROP", "Direction", "Drop", "MessageEvent", "MessageHook", "MessageHooks"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent:
    """One SIP message crossing the element's boundary."""

    element: str
    role: str
    direction: Direction
    peer: tuple[str, int]
    transport: str
    message: Message
    raw: bytes | None = None


MessageHook = Callable[[MessageEvent], "Message | Drop | None"]


def _rebuild(event: MessageEvent, message: Message) -> MessageEvent:
    return replace(event, message=message, raw=None)


class MessageHooks(HookChain[MessageEvent, Message]):
    """An ordered chain of :data:`MessageHook` callables (the element's SIP hook point)."""

    __slots__ = ()

    def run(self, event: MessageEvent) -> Message | Drop:
        """The message to use after every hook (maybe rewritten), or :data:`DROP`."""
        return self.apply(event, event.message, _rebuild)

    process = run  # the name proxies.hooks.SipHooks callers use
