"""Hook points of the proxy core: observe, rewrite or drop every message in and out.

The proxy core (:mod:`ims.sip.proxy.core`) runs every SIP message it receives, and every
message it is about to send, through its hook chain with a :class:`MessageEvent` naming the
element, the direction, the peer (address and transport) and the message object. A hook

* observes: returns ``None``;
* rewrites: returns a replacement message (what the next hook and the core then use);
* drops: returns :data:`DROP` (an incoming message is then ignored as if never received, an
  outgoing one is not sent).

The shape matches :mod:`proxies.hooks` (``SipMessageEvent``: element, role, direction, peer,
transport, message, raw) so a :class:`proxies.hooks.SipHooks` chain can be attached with a
one-line adapter; ``ims`` cannot import ``proxies`` (layering), hence this own definition. A
hook that raises is logged and skipped: an observer (an LI tap) must never break the element.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from ims.log import get_logger
from ims.sip.message import Request, Response

_log = get_logger("ims.sip.proxy.hooks")

Message = Request | Response


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()
"""Returned by a hook to discard the message."""


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


MessageHook = Callable[[MessageEvent], "Message | _Drop | None"]


class MessageHooks:
    """An ordered chain of :data:`MessageHook` callables."""

    __slots__ = ("_hooks",)

    def __init__(self) -> None:
        self._hooks: list[MessageHook] = []

    def add(self, hook: MessageHook) -> Callable[[], None]:
        """Attach ``hook`` (runs after those already attached); returns its detach function."""
        self._hooks.append(hook)

        def remove() -> None:
            if hook in self._hooks:
                self._hooks.remove(hook)

        return remove

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)

    def run(self, event: MessageEvent) -> Message | _Drop:
        """The message to use after every hook (maybe rewritten), or :data:`DROP`."""
        message = event.message
        for hook in list(self._hooks):
            try:
                out = hook(event)
            except Exception as exc:  # an observer must never break the element
                _log.warning("hook failed", hook=repr(hook), error=repr(exc))
                continue
            if out is None:
                continue
            if isinstance(out, _Drop):
                return DROP
            message = out
            event = replace(event, message=message, raw=None)
        return message
