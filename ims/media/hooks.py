"""Hook points where a relay, tap (CC-POI) or MITM can observe or rewrite media packets.

A hook is ``Callable[[PacketEvent], bytes | None | Drop]``: return ``None`` to leave the packet
as it is, new bytes to replace its wire form, or :data:`DROP` to discard it. Hooks run inside
the packet path, so they must be quick; an exception in a hook is counted and the packet goes
on unchanged (media never raises into the loop). Observers (``Callable[[PacketEvent], None]``)
see the decrypted packet after unprotect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class PacketKind(StrEnum):
    RTP = "rtp"
    RTCP = "rtcp"


class Drop:
    """Sentinel type: the hook wants the packet discarded."""

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = Drop()


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


def run_hooks(hooks: Sequence[Hook], event: PacketEvent, errors: list[int]) -> bytes | None:
    """Apply ``hooks`` in order; returns the (possibly rewritten) wire bytes, None = dropped."""
    wire = event.wire
    for hook in hooks:
        try:
            result = hook(event)
        except Exception:
            errors[0] += 1
            continue
        if isinstance(result, Drop):
            return None
        if result is not None:
            wire = result
            event = PacketEvent(
                event.direction, event.kind, wire, event.plain, event.peer, event.time, event.leg
            )
    return wire


def run_observers(observers: Sequence[Observer], event: PacketEvent, errors: list[int]) -> None:
    for obs in observers:
        try:
            obs(event)
        except Exception:
            errors[0] += 1
