"""The one hook mechanism of the stack: typed events through ordered chains (observe, rewrite,
drop).

Every hook point -- SIP messages in and out of a proxy (:mod:`ims.sip.proxy.hooks`), packets
through a media session or relay (:mod:`ims.media.hooks`), packets through the media anchor
(:mod:`proxies.hooks`) -- is a :class:`HookChain` over its own frozen event type. A hook is
``Callable[[E], P | Drop | None]``:

* ``None`` -- observe: the payload goes on as it is;
* a new payload (a rewritten message, new wire bytes) -- what later hooks and the wire see
  (the event is rebuilt around it);
* :data:`DROP` -- discard it; later hooks do not run.

Hooks run in the order they were added. A hook that raises is counted and skipped (logged once
per failure, no payload in the log): an observer -- an LI point of interception -- must never
break the element it is attached to. :class:`Direction` is the direction across the element's
boundary for every chain.

``ims`` is the bottom layer, so this module knows nothing of SIP, media or LI; ``li`` attaches
observers to these chains and ``lab`` wires them (STYLE.md §2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Final, Generic, TypeVar

from ims.log import get_logger

_log = get_logger("ims.hooks")


class Direction(StrEnum):
    """Which way a message or packet crosses the element's boundary."""

    IN = "in"
    OUT = "out"


class Drop:
    """Type of :data:`DROP`: a hook wants the message or packet discarded."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = Drop()
"""Returned by a hook to discard the message or packet."""

E = TypeVar("E")
P = TypeVar("P")


def run_chain(
    hooks: Sequence[Callable[[E], P | Drop | None]],
    event: E,
    payload: P,
    rebuild: Callable[[E, P], E],
    on_error: Callable[[Callable[[E], object], Exception], None],
) -> P | Drop:
    """Pass ``event`` (carrying ``payload``) through ``hooks`` in order; the payload after every
    rewrite, or :data:`DROP`. ``rebuild(event, new_payload)`` makes the event a later hook sees;
    ``on_error`` is told about a hook that raised (the chain goes on without it)."""
    for hook in hooks:
        try:
            out = hook(event)
        except Exception as exc:  # an observer must never break the element
            on_error(hook, exc)
            continue
        if out is None:
            continue
        if isinstance(out, Drop):
            return DROP
        payload = out
        event = rebuild(event, payload)
    return payload


class HookChain(Generic[E, P]):
    """An ordered chain of hooks over events ``E`` whose payload has type ``P``."""

    __slots__ = ("_hooks", "errors", "name")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._hooks: list[Callable[[E], P | Drop | None]] = []
        self.errors = 0  # hooks that raised

    def add(self, hook: Callable[[E], P | Drop | None]) -> Callable[[], None]:
        """Attach ``hook`` (it runs after those already attached); returns its detach function."""
        self._hooks.append(hook)

        def remove() -> None:
            if hook in self._hooks:
                self._hooks.remove(hook)

        return remove

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)

    def apply(self, event: E, payload: P, rebuild: Callable[[E, P], E]) -> P | Drop:
        """``event`` through every hook: the (possibly rewritten) payload, or :data:`DROP`."""
        if not self._hooks:
            return payload
        return run_chain(list(self._hooks), event, payload, rebuild, self._failed)

    def _failed(self, hook: Callable[[E], object], exc: Exception) -> None:
        self.errors += 1
        _log.warning("hook failed", chain=self.name, hook=repr(hook), error=repr(exc))


__all__ = ["DROP", "Direction", "Drop", "HookChain", "run_chain"]
