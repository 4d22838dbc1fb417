"""DTMF as RTP telephone-events (RFC 4733 §2.3, the payload negotiated as ``telephone-event``).

Payload (4 bytes): event (8 bits) | E (end) | R | volume (6 bits) | duration (16 bits, in
timestamp units). All packets of one event share the RTP timestamp of its start; the first
carries the marker bit; the end packet is sent three times (§2.5.1.4) so one loss does not
lose the digit. :class:`DtmfReceiver` reports each digit once (keyed by the event timestamp).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ims.media.rtp import RtpError

EVENTS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfEvent:
    event: int  # 0-9, 10 '*', 11 '#', 12-15 A-D
    end: bool = False
    volume: int = 10  # -dBm0, 0..63
    duration: int = 0  # timestamp units

    @property
    def digit(self) -> str:
        return EVENTS[self.event] if self.event < len(EVENTS) else f"event-{self.event}"

    def encode(self) -> bytes:
        if not 0 <= self.volume <= 63 or not 0 <= self.duration <= 0xFFFF:
            raise ValueError("volume 0..63, duration 0..65535")
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )

    @classmethod
    def decode(cls, data: bytes) -> DtmfEvent:
        if len(data) < 4:
            raise RtpError(f"telephone-event payload of {len(data)} bytes, need 4")
        event, flags, duration = struct.unpack_from("!BBH", data)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def digit_event(digit: str) -> int:
    i = EVENTS.find(digit.upper())
    if i < 0 or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return i


def event_payloads(
    digit: str, *, duration_ms: int = 100, ptime_ms: int = 20
) -> list[tuple[bool, bytes]]:
    """(marker, payload) for one digit: updates every ptime, then the end packet three times."""
    event = digit_event(digit)
    step = 8 * ptime_ms
    total = 8 * duration_ms
    out = []
    for n, d in enumerate(range(step, total, step)):
        out.append((n == 0, DtmfEvent(event=event, duration=d).encode()))
    end = DtmfEvent(event=event, end=True, duration=total).encode()
    out += [(not out, end), (False, end), (False, end)]
    return out


class DtmfReceiver:
    """Collects digits from telephone-event payloads; each event is reported once."""

    def __init__(self) -> None:
        self.digits: list[str] = []
        self._done: set[int] = set()

    def push(self, timestamp: int, payload: bytes) -> str | None:
        ev = DtmfEvent.decode(payload)
        if not ev.end or timestamp in self._done:
            return None
        self._done.add(timestamp)
        if len(self._done) > 256:
            self._done = set(sorted(self._done)[-128:])
        self.digits.append(ev.digit)
        return ev.digit
