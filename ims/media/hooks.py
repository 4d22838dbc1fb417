"""Hook points where a relay, tap (CC-POI) or MITM can observe or rewrite media packets.

A hook is ``Callable[[PacketEvent], bytes | None | Drop]``: return ``None`` to leave the packet
as it is, new bytes to replace its wire form, or :data:`DROP` to discard it. Hooks run inside
the packet path, so they must be quick; an exception in a hook is counted and the packet goes
on unchanged (media never raises into the loop). Observers (``Callable[[PacketEvent], None]``)
see the decrypted packet after unprotect.

The chain is the stack's one hook mechanism (:func:`ims.hooks.run_chain`, one
:class:`~ims.hooks.Direction`, one :data:`~ims.hooks.DROP`); sessions keep their hooks in plain
lists because they run on every packet and count failures per session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from ims.hooks import DROP, Direction, Drop, run_chain

__all__ = [
    "DROP",
    "Direction",
    "Drop",
    "Hook",
    "Observer",
    "PacketEvent",
    "PacketKind",
    "run_hooks",
    "run_observers",
]


class PacketKind(StrEnum):
    RTP = "rtp"
    RTCP = "rtcp"


@dataclass(frozen=True, slots=True)
class PacketEvent:
    direction: Direction
    kind: PacketKind
    wire: bytes  # as on the socket (SRTP when secure)
    plain: bytes | None  # RTP/RTCP in clear when known (outbound, or after unprotect)
    peer: tuple[str, int] | None
    time: float  # loop time
    leg: str = ""  # relay leg name ("a", "b"), empty for a session


Hook = Callable[[PacketEvent], "bytes | None | Drop"]
Observer = Callable[[PacketEvent], None]


def _rebuild(event: PacketEvent, wire: bytes) -> PacketEvent:
    return replace(event, wire=wire)


def run_hooks(hooks: Sequence[Hook], event: PacketEvent, errors: list[int]) -> bytes | None:
    """Apply ``hooks`` in order; returns the (possibly rewritten) wire bytes, None = dropped."""
    if not hooks:
        return event.wire

    def failed(hook: object, exc: Exception) -> None:
        errors[0] += 1  # media never logs per packet: counted, the packet goes on

    out = run_chain(hooks, event, event.wire, _rebuild, failed)
    return None if isinstance(out, Drop) else out


def run_observers(observers: Sequence[Observer], event: PacketEvent, errors: list[int]) -> None:
    for obs in observers:
        try:
            obs(event)
        except Exception:
            errors[0] += 1
