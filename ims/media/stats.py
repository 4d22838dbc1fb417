"""Receiver statistics (RFC 3550 Appendix A.1 sequence tracking, A.3 loss, A.8 jitter) and a
small reorder ("jitter") buffer. Sans-I/O: arrival times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100


@dataclass(slots=True)
class ReceiverStats:
    clock_rate: int = 8000
    received: int = 0
    duplicates: int = 0
    late: int = 0
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    jitter: float = 0.0  # in timestamp units (RFC 3550 A.8)
    _transit: float | None = None
    _seen: set[int] = field(default_factory=set)

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return 0 if self.base_seq < 0 else self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(self.expected - self.received, 0)

    def update(self, seq: int, timestamp: int, arrival: float) -> bool:
        """Account one packet; False for a duplicate (already counted)."""
        if self.base_seq < 0:
            self.base_seq = seq
            self.max_seq = seq
        else:
            udelta = (seq - self.max_seq) % RTP_SEQ_MOD
            if udelta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += RTP_SEQ_MOD
                self.max_seq = seq
            elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
                # A very large jump: RFC 3550 would wait for a second packet; we resync at once
                # (the SRTP layer has authenticated the packet already).
                self.base_seq = seq - self.received  # keep 'lost' meaningful
                self.max_seq = seq
        ext = self.cycles + seq if seq <= self.max_seq else self.cycles - RTP_SEQ_MOD + seq
        if ext in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(ext)
        if len(self._seen) > 4096:
            floor = self.extended_max - 2048
            self._seen = {s for s in self._seen if s >= floor}
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        return True


class ReorderBuffer:
    """Holds up to ``depth`` frames and releases them in sequence order.

    Missing frames are released as ``None`` (the caller plays silence/PLC) once the buffer is
    full, so timing is kept; a frame arriving after its slot was released is dropped as late.
    """

    def __init__(self, depth: int = 3, max_gap: int = 50) -> None:
        self.depth = depth
        self.max_gap = max_gap
        self._frames: dict[int, bytes] = {}
        self._next: int | None = None  # extended seq expected next
        self.late = 0

    def _extend(self, seq: int) -> int:
        if self._next is None:
            return seq
        base = self._next & ~0xFFFF
        cands = (base + seq - RTP_SEQ_MOD, base + seq, base + seq + RTP_SEQ_MOD)
        return min(cands, key=lambda c: abs(c - self._next))  # type: ignore[operator]

    def push(self, seq: int, frame: bytes) -> list[bytes | None]:
        ext = self._extend(seq)
        if self._next is None:
            self._next = ext
        if ext < self._next:
            self.late += 1
            return []
        if ext - self._next > self.max_gap:  # stream restarted / huge loss: resync
            self._frames.clear()
            self._next = ext
        self._frames[ext] = frame
        out: list[bytes | None] = []
        while self._frames and (self._next in self._frames or len(self._frames) > self.depth):
            out.append(self._frames.pop(self._next, None))
            self._next += 1
        return out

    def flush(self) -> list[bytes | None]:
        out: list[bytes | None] = []
        while self._frames and self._next is not None:
            out.append(self._frames.pop(self._next, None))
            self._next += 1
        return out
