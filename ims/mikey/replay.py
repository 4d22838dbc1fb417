"""Replay protection for received MIKEY messages (RFC 3830 §5.3, §5.4, §6.6).

A message whose NTP/NTP-UTC timestamp is further than ``window`` seconds from ``now`` is
refused with ``Invalid TS`` (§5.4: messages outside the allowable clock skew are discarded).
Inside the window, a replay cache keyed by a digest of the message's T, RAND, CSB ID and its
MAC/signature refuses duplicates (§5.4: "replay cache"); entries older than the window are
purged, so the cache is bounded by (message rate x window). COUNTER timestamps (§6.6) are
accepted only when strictly greater than the last counter seen for the same CSB ID.
"""

from __future__ import annotations

from collections import OrderedDict

from ims.mikey.constants import ErrorNo, TsType
from ims.mikey.errors import MikeyError
from ims.mikey.payloads import TPayload

NTP_UNIX_OFFSET = 2_208_988_800


def ntp_from_unix(now: float) -> int:
    """64-bit NTP timestamp (RFC 5905 format, as RFC 3830 §6.6 uses) for a Unix time."""
    secs = int(now)
    frac = int((now - secs) * (1 << 32)) & 0xFFFFFFFF
    return ((secs + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32 | frac


def unix_from_ntp(value: int) -> float:
    return (value >> 32) - NTP_UNIX_OFFSET + (value & 0xFFFFFFFF) / (1 << 32)


class ReplayCache:
    """Timestamp window plus a bounded cache of recently accepted messages."""

    def __init__(self, window: float = 300.0, max_entries: int = 100_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._counters: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def check_time(self, t: TPayload, now: float, csb_id: int) -> None:
        """Refuse timestamps outside the window (or non-increasing counters)."""
        if t.ts_type is TsType.COUNTER:
            last = self._counters.get(csb_id)
            if last is not None and t.value <= last:
                raise MikeyError("counter did not increase", mikey_error=ErrorNo.INVALID_TS)
            return
        skew = abs(unix_from_ntp(t.value) - now)
        if skew > self.window:
            raise MikeyError(
                f"timestamp {skew:.0f} s away from now (window {self.window:.0f} s)",
                mikey_error=ErrorNo.INVALID_TS,
            )

    def check_and_store(self, key: bytes, t: TPayload, now: float, csb_id: int) -> None:
        """Run :meth:`check_time`, refuse a seen ``key``, then remember it."""
        self.check_time(t, now, csb_id)
        self._purge(now)
        if key in self._seen:
            raise MikeyError("replayed MIKEY message", mikey_error=ErrorNo.INVALID_TS)
        self._seen[key] = now
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        if t.ts_type is TsType.COUNTER:
            self._counters[csb_id] = t.value

    def _purge(self, now: float) -> None:
        while self._seen:
            oldest_key, when = next(iter(self._seen.items()))
            if now - when <= self.window:
                break
            del self._seen[oldest_key]
