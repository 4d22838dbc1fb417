"""Overload control for the proxy core: shed new requests with 503 + Retry-After, sans-I/O.

Why: past its capacity a SIP server over UDP does not slow down gracefully. Requests wait in
the socket buffer; once a request waits longer than T1 (500 ms) its client retransmits it, the
retransmissions queue behind it too, and the server ends up spending its time on copies of
requests whose transactions have already timed out upstream (408 cascades; RFC 5390 §4 and
RFC 6357 §3 describe this collapse). The remedy both give is to reject *new* work early and
cheaply while carrying on with the work already accepted.

The signal is measured, not guessed: the **queueing delay** of a probe. The adapter
periodically sends a small datagram to its own listening socket (:meth:`OverloadControl.
probe_due`); it waits in the kernel queue and the event loop exactly like a SIP request, and
the time it took to come out (:meth:`probe_returned`) is the delay a request arriving now
would see before the core gets to it. While a probe is out, its age already counts (a
stalled loop does not hide behind a missing measurement).

The control law is RFC 7339's "loss" algorithm, driven locally: a rejection fraction ``p``
is raised while the standing delay (the smallest probe delay of a window, CoDel's rule) is
above ``target`` (more steeply the further above) and lowered while below, and new requests
are admitted in the proportion 1 - p, deterministically (an accumulator, no random draws: the
same inputs give the same decisions in a test). What is
rejected: requests that would open new work (out-of-dialog, not ACK/CANCEL). In-dialog
requests (BYE, re-INVITE), ACK and CANCEL belong to accepted calls and always pass;
retransmissions never reach the core (the transaction layer absorbs them), so a rejected
INVITE's retransmission gets the same 503 again from its server transaction.

503 + Retry-After: RFC 3261 §21.5.4 ("The server MAY indicate when the client should retry
the request in a Retry-After header field"); a proxy receiving a 503 does not relay it as a
503 (§16.7 step 6 turns it into 500), so an upstream proxy will not take the whole path for
overloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: a probe out longer than this (s) is taken as lost
PROBE_LOST = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class OverloadConfig:
    """``target``: standing queueing delay (s) above which new requests start to be shed,
    well below T1 so that clients do not retransmit. ``window``: the delay that counts is
    the *smallest* one measured over a window (CoDel's rule, RFC 8289 §3.2: a burst or one
    descheduling of the process drains within a window, a standing queue does not), so a
    transient stall sheds nothing. ``interval``: seconds between probes. ``step``: how much
    ``p`` moves per window (up: scaled by how far above the target, two steps at most; down:
    two steps when the delay is below half the target). ``max_reject``: ``p``
    never reaches 1 (a trickle of new calls keeps measuring the way out).
    ``retry_after``: seconds in the 503's Retry-After."""

    target: float = 0.1
    window: float = 0.2
    interval: float = 0.04
    step: float = 0.05
    max_reject: float = 0.95
    retry_after: int = 2


@dataclass(slots=True)
class OverloadControl:
    """The shedding state of one proxy: probe bookkeeping, ``p`` and admission."""

    config: OverloadConfig = field(default_factory=OverloadConfig)
    reject: float = 0.0  # p: the fraction of new requests answered 503
    delay: float = 0.0  # last measured queueing delay (s)
    admitted: int = 0
    rejected: int = 0
    _credit: float = 0.0
    _probe_sent: float | None = None
    _next_probe: float = 0.0
    _window_end: float | None = None
    _window_min: float = math.inf

    # -- the measured signal ---------------------------------------------------------------
    def probe_due(self, now: float) -> bool:
        """True when the adapter should send a probe now (it then calls :meth:`probe_sent`).
        A probe still out longer than ``target`` counts as a measurement of its age."""
        if self._probe_sent is not None:
            age = now - self._probe_sent
            if age > PROBE_LOST:
                # dropped (a full socket buffer is overload too): count it, send another
                self._sample(age, now)
                self._probe_sent = None
                return True
            if age > self.config.target and now >= self._next_probe:
                self._sample(age, now)
                self._next_probe = now + self.config.interval
            return False
        return now >= self._next_probe

    def probe_sent(self, now: float) -> None:
        self._probe_sent = now
        self._next_probe = now + self.config.interval

    def probe_returned(self, now: float) -> None:
        """The probe came out of the queue: its delay is one sample of the window."""
        if self._probe_sent is None:
            return
        self._sample(now - self._probe_sent, now)
        self._probe_sent = None

    def probe_lost(self) -> None:
        """The probe could not be sent (or vanished): measure afresh next time."""
        self._probe_sent = None

    def next_probe(self) -> float:
        return self._next_probe

    def _sample(self, delay: float, now: float) -> None:
        self.delay = delay
        self._window_min = min(self._window_min, delay)
        if self._window_end is None:
            self._window_end = now + self.config.window
        elif now >= self._window_end:
            self._close_window(now)

    def _close_window(self, now: float) -> None:
        cfg = self.config
        low = self._window_min
        if low > cfg.target:
            # up by at most two steps a window: the backlog of the last windows keeps the
            # delay high for a while after p is right, and every shed request costs too
            self.reject = min(cfg.max_reject, self.reject + cfg.step * min(2.0, low / cfg.target))
        elif low < cfg.target / 2:
            self.reject = max(0.0, self.reject - 2 * cfg.step)  # the queue is gone: recover fast
        else:
            self.reject = max(0.0, self.reject - cfg.step)
        self._window_min = math.inf
        self._window_end = now + cfg.window

    # -- admission -----------------------------------------------------------------------
    def admit(self) -> bool:
        """Whether to take one new request (False: answer it 503 + Retry-After)."""
        if self.reject <= 0.0:
            self.admitted += 1
            return True
        self._credit += 1.0 - self.reject
        if self._credit >= 1.0:
            self._credit -= 1.0
            self.admitted += 1
            return True
        self.rejected += 1
        return False

    @property
    def overloaded(self) -> bool:
        return self.reject > 0.0
