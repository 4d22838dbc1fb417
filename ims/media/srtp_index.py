"""SRTP packet-index tracking (RFC 3711 §3.3.1, Appendix A) and a replay window (§3.3.2).

The receiver keeps the highest index seen ``s_l`` and its ROC and estimates the index of a new
packet from its 16-bit sequence number. A receiver that has never seen the stream (late join)
or whose estimate is wrong after a long loss (more than 2^15 packets) cannot know the ROC; then
:meth:`IndexTracker.candidates` proposes neighbouring ROCs (or a whole range when unsynced) and
the caller keeps the one whose authentication tag verifies — the tag covers the ROC, so a wrong
guess never authenticates (RFC 3711 §3.3.1: "the receiver... MUST NOT update the ROC... unless
the packet authenticates").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

SEQ_MOD = 1 << 16
HALF = 1 << 15
MAX_ROC = (1 << 32) - 1


@dataclass(slots=True)
class IndexTracker:
    """Highest authenticated index and a bitmask replay window below it."""

    window_size: int = 128
    synced: bool = False
    roc: int = 0
    s_l: int = 0
    _highest: int = -1
    _mask: int = 0  # bit k set = index (highest - k) already received
    _mask_valid: bool = True  # False after note(): libsrtp kept the window, ours is unknown

    @property
    def highest_index(self) -> int:
        return self._highest

    def estimate(self, seq: int) -> int:
        """RFC 3711 §3.3.1 / Appendix A index guess; ``roc`` hint when not synced."""
        if not self.synced:
            return (self.roc << 16) | seq
        if self.s_l < HALF:
            v = self.roc - 1 if seq - self.s_l > HALF else self.roc
        else:
            v = self.roc + 1 if self.s_l - HALF > seq else self.roc
        return (max(v, 0) << 16) | seq

    def candidates(self, seq: int, *, spread: int = 2, unsynced_span: int = 64) -> Iterator[int]:
        """ROC guesses for ``seq``, most likely first (estimate, then ±1, ±2 ...)."""
        est = self.estimate(seq) >> 16
        seen = set()
        span = spread if self.synced else unsynced_span
        for d in range(span + 1):
            for roc in (est + d, est - d):
                if 0 <= roc <= MAX_ROC and roc not in seen:
                    seen.add(roc)
                    yield roc

    def note(self, seq: int) -> None:
        """Cheap update for a packet libsrtp authenticated (its replay window is libsrtp's).

        Only the highest index, ROC and ``s_l`` are kept; our own window is marked unknown,
        so until :meth:`update` rebuilds it every index at or below the highest counts as seen.
        """
        if not self.synced:
            self.update((self.roc << 16) | seq)
            return
        roc, s_l = self.roc, self.s_l
        if s_l < HALF:
            v = roc - 1 if seq - s_l > HALF else roc
        else:
            v = roc + 1 if s_l - HALF > seq else roc
        if v < roc or (v == roc and seq <= s_l):
            return
        self.roc, self.s_l = v, seq
        self._highest = (v << 16) | seq
        self._mask_valid = False

    def is_replay(self, index: int) -> bool:
        if self._highest < 0 or index > self._highest:
            return False
        if not self._mask_valid:
            return True
        delta = self._highest - index
        if delta >= self.window_size:
            return True  # too old to tell: treat as replay (RFC 3711 §3.3.2)
        return bool(self._mask >> delta & 1)

    def update(self, index: int) -> None:
        """Record an authenticated index."""
        if not self._mask_valid:
            self._mask = (1 << self.window_size) - 1
            self._mask_valid = True
        if index > self._highest:
            shift = index - self._highest if self._highest >= 0 else self.window_size
            self._mask = ((self._mask << shift) | 1) & ((1 << self.window_size) - 1)
            self._highest = index
            self.roc, self.s_l = index >> 16, index & 0xFFFF
        else:
            self._mask |= 1 << (self._highest - index)
        self.synced = True
