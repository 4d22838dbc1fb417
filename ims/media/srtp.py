"""SRTP/SRTCP per-direction contexts for media sessions, relays and taps.

Design (see also :mod:`ims.media.srtp_crypto`):

- **Fast path: pylibsrtp** (libsrtp 2.7): ~2 µs per protect/unprotect of a G.711 packet.
  :class:`SrtpSender` owns an outbound session, :class:`SrtpReceiver` an inbound one; each
  direction has its own master key (SDES: each side announces the key it sends with).
- **Own index tracking** (:class:`~ims.media.srtp_index.IndexTracker`, RFC 3711 §3.3.1) runs
  beside libsrtp on every authenticated packet, so we always know the ROC and highest index.
- **Slow path: our ``cryptography`` decryptor with explicit ROC**. pylibsrtp cannot set the ROC,
  so when libsrtp rejects a packet the receiver asks its tracker for ROC candidates and
  verifies each with :class:`~ims.media.srtp_crypto.SrtpCryptoContext`; the first that
  authenticates wins. A packet that authenticates there but not in libsrtp means libsrtp's
  index is wrong for good (late join past a wrap, a burst of > 2^15 lost packets, "index too
  old"): the receiver then stays on the slow path (~10 µs per packet, 0.05 % of a core
  for a 50 pps stream) and counts a ``resync``. Replays are judged by our own window.
- Rejected alternative: "driving" pylibsrtp to the right ROC by feeding it synthetic packets
  forged with our key. It would put fake indices into libsrtp's replay window, needs ~3 forged
  packets per ROC step, and cannot go back once wrong; verifying guesses with our own decryptor
  is exact (the tag covers the ROC) and is the same code the LI side needs anyway.
- Peer input never raises: every failure is counted in :class:`SrtpStats` and the packet is
  dropped (``None``); no per-packet logging.

:class:`LateJoinDecryptor` is the same machinery without libsrtp, for the LI side: it decrypts a
stream from whatever packet it first sees, trying ROCs 0..``max_roc`` (or the MIKEY-supplied ROC)
until one authenticates.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pylibsrtp

from ims.media.keys import SrtpKeys
from ims.media.srtp_crypto import (
    SrtpAuthError,
    SrtpCryptoContext,
    SrtpFormatError,
)
from ims.media.srtp_index import IndexTracker
from ims.sdes.suites import SUITES


@dataclass(slots=True)
class SrtpStats:
    protected: int = 0
    unprotected: int = 0
    rtcp_protected: int = 0
    rtcp_unprotected: int = 0
    auth_failures: int = 0
    replay_failures: int = 0
    format_errors: int = 0
    other_failures: int = 0
    resyncs: int = 0  # switched to the explicit-ROC path (late join / long loss)
    slow_path: int = 0  # packets decrypted by the cryptography path

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def _policy(keys: SrtpKeys, ssrc_type: int) -> pylibsrtp.Policy:
    suite = SUITES.get(keys.suite)
    if suite is None or suite.srtp_profile is None:
        raise ValueError(f"crypto-suite {keys.suite} cannot run on pylibsrtp")
    if len(keys.master_key) != suite.key_len or len(keys.master_salt) != suite.salt_len:
        raise ValueError(f"{keys.suite} needs {suite.key_len}+{suite.salt_len} bytes key+salt")
    return pylibsrtp.Policy(key=keys.key_salt, ssrc_type=ssrc_type, srtp_profile=suite.srtp_profile)


class SrtpSender:
    """Protects our outbound RTP/RTCP (pylibsrtp, any outbound SSRC).

    With a non-zero initial ROC (MIKEY's CS ID map may carry one, RFC 3830 §6.1) pylibsrtp cannot
    be used, so the sender runs on :class:`SrtpCryptoContext` and counts wraps itself (per SSRC).
    """

    def __init__(self, keys: SrtpKeys) -> None:
        self.keys = keys
        self.stats = SrtpStats()
        self._session: pylibsrtp.Session | None = None
        self._ctx: SrtpCryptoContext | None = None
        if keys.roc:
            self._ctx = SrtpCryptoContext(keys)
            self._tx: dict[int, IndexTracker] = {}
            self._rtcp_index = 0
        else:
            self._session = pylibsrtp.Session(_policy(keys, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))

    def protect(self, rtp: bytes) -> bytes | None:
        if self._ctx is not None:
            return self._protect_explicit(rtp)
        assert self._session is not None
        try:
            out: bytes = self._session.protect(rtp)
        except pylibsrtp.Error:
            self.stats.other_failures += 1
            return None
        self.stats.protected += 1
        return out

    def _protect_explicit(self, rtp: bytes) -> bytes | None:
        assert self._ctx is not None
        if len(rtp) < 12 or rtp[0] & 0xC0 != 0x80:
            self.stats.format_errors += 1
            return None
        seq, ssrc = _SEQ_SSRC.unpack_from(rtp, 2)
        t = self._tx.get(ssrc)
        if t is None:
            t = self._tx[ssrc] = IndexTracker(roc=self.keys.roc)
        index = t.estimate(seq)
        if t.synced:
            t.note(seq)
        else:
            t.update(index)
        try:
            out = self._ctx.protect(rtp, index >> 16)
        except SrtpFormatError:
            self.stats.format_errors += 1
            return None
        self.stats.protected += 1
        return out

    def protect_rtcp(self, rtcp: bytes) -> bytes | None:
        if self._ctx is not None:
            self._rtcp_index = (self._rtcp_index + 1) & 0x7FFFFFFF
            try:
                out = self._ctx.protect_rtcp(rtcp, self._rtcp_index)
            except SrtpFormatError:
                self.stats.format_errors += 1
                return None
            self.stats.rtcp_protected += 1
            return out
        assert self._session is not None
        try:
            rtcp_out: bytes = self._session.protect_rtcp(rtcp)
        except pylibsrtp.Error:
            self.stats.other_failures += 1
            return None
        self.stats.rtcp_protected += 1
        return rtcp_out


_SEQ_SSRC = struct.Struct("!H4xI")


class SrtpReceiver:
    """Unprotects inbound SRTP/SRTCP; never raises on peer input.

    One tracker per SSRC (a peer may change SSRC mid-call). ``roc_hint`` is the ROC to start
    with (MIKEY CS ID map; 0 for SDES); ``max_roc`` bounds the search of an unsynced stream.
    """

    def __init__(
        self, keys: SrtpKeys, *, roc_hint: int | None = None, max_roc: int = 64, fast: bool = True
    ) -> None:
        self.keys = keys
        self.stats = SrtpStats()
        self.max_roc = max_roc
        self.roc_hint = keys.roc if roc_hint is None else roc_hint
        self._fast = fast and self.roc_hint == 0
        self._session = (
            pylibsrtp.Session(_policy(keys, pylibsrtp.Policy.SSRC_ANY_INBOUND))
            if self._fast
            else None
        )
        self._crypto = SrtpCryptoContext(keys)
        self._trackers: dict[int, IndexTracker] = {}
        self._slow_ssrcs: set[int] = set()
        self._rtcp_windows: dict[int, IndexTracker] = {}

    def tracker(self, ssrc: int) -> IndexTracker:
        t = self._trackers.get(ssrc)
        if t is None:
            t = self._trackers[ssrc] = IndexTracker(roc=self.roc_hint)
        return t

    def roc(self, ssrc: int) -> int | None:
        t = self._trackers.get(ssrc)
        return t.roc if t is not None and t.synced else None

    def unprotect(self, srtp: bytes) -> bytes | None:
        if len(srtp) < 12 or srtp[0] & 0xC0 != 0x80:
            self.stats.format_errors += 1
            return None
        seq, ssrc = _SEQ_SSRC.unpack_from(srtp, 2)
        libsrtp_says_replay = False
        if self._session is not None and ssrc not in self._slow_ssrcs:
            try:
                plain: bytes = self._session.unprotect(srtp)
            except pylibsrtp.Error as exc:
                libsrtp_says_replay = "replay" in str(exc)
            else:
                tracker = self._trackers.get(ssrc)
                if tracker is None:
                    tracker = self.tracker(ssrc)
                tracker.note(seq)
                self.stats.unprotected += 1
                return plain
        return self._slow(srtp, seq, ssrc, self.tracker(ssrc), libsrtp_says_replay)

    def _slow(
        self, srtp: bytes, seq: int, ssrc: int, tracker: IndexTracker, libsrtp_replay: bool
    ) -> bytes | None:
        span = self.max_roc if not tracker.synced else 2
        for roc in tracker.candidates(seq, spread=2, unsynced_span=span):
            try:
                plain = self._crypto.unprotect(srtp, roc)
            except SrtpAuthError:
                continue
            except SrtpFormatError:
                self.stats.format_errors += 1
                return None
            index = (roc << 16) | seq
            if tracker.is_replay(index):
                self.stats.replay_failures += 1
                return None
            if ssrc not in self._slow_ssrcs:
                self.stats.resyncs += 1  # libsrtp's index is off (or LI late join): stay slow
                self._slow_ssrcs.add(ssrc)
            tracker.update(index)
            self.stats.unprotected += 1
            self.stats.slow_path += 1
            return plain
        if libsrtp_replay:
            self.stats.replay_failures += 1
        else:
            self.stats.auth_failures += 1
        return None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes | None:
        if self._session is not None:
            try:
                out: bytes = self._session.unprotect_rtcp(srtcp)
            except pylibsrtp.Error as exc:
                if "replay" in str(exc):
                    self.stats.replay_failures += 1
                else:
                    self.stats.auth_failures += 1
                return None
            self.stats.rtcp_unprotected += 1
            return out
        try:
            plain, index = self._crypto.unprotect_rtcp(srtcp)
        except SrtpAuthError:
            self.stats.auth_failures += 1
            return None
        except SrtpFormatError:
            self.stats.format_errors += 1
            return None
        # SRTCP carries its index explicitly (RFC 3711 §3.4): a replay window per SSRC suffices.
        ssrc = int.from_bytes(srtcp[4:8], "big")
        window = self._rtcp_windows.get(ssrc)
        if window is None:
            window = self._rtcp_windows[ssrc] = IndexTracker()
        if window.is_replay(index):
            self.stats.replay_failures += 1
            return None
        window.update(index)
        self.stats.rtcp_unprotected += 1
        return plain


class LateJoinDecryptor(SrtpReceiver):
    """The LI decryptor: explicit-ROC path only, from any packet of any stream (no libsrtp)."""

    def __init__(self, keys: SrtpKeys, *, roc_hint: int | None = None, max_roc: int = 64) -> None:
        super().__init__(keys, roc_hint=roc_hint, max_roc=max_roc, fast=False)


__all__ = ["LateJoinDecryptor", "SrtpKeys", "SrtpReceiver", "SrtpSender", "SrtpStats"]
