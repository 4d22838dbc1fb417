"""RFC 3261 transaction timers (§17, Table 4 of Appendix A), as plain arithmetic.

Nothing here reads a clock: every deadline is computed from a ``now`` passed in by the caller
(STYLE.md §1), so the timers are tested instantly.

=====  =================================  ====================================================
Timer  Value                              Meaning (RFC 3261 section)
=====  =================================  ====================================================
T1     500 ms default                     RTT estimate (§17.1.1.1)
T2     4 s                                maximum retransmit interval, non-INVITE/responses
T4     5 s                                maximum time a message stays in the network
A      initially T1, doubles              INVITE request retransmit (UDP only) §17.1.1.2
B      64*T1                              INVITE transaction timeout §17.1.1.2
C      > 3 min                            proxy INVITE timeout (§16.6, proxy core's business)
D      > 32 s for UDP, 0 for TCP/TLS      wait time for response retransmits §17.1.1.2
E      initially T1, doubles up to T2     non-INVITE request retransmit (UDP only) §17.1.2.2
F      64*T1                              non-INVITE transaction timeout §17.1.2.2
G      initially T1, doubles up to T2     INVITE response retransmit (UDP only) §17.2.1
H      64*T1                              wait time for ACK receipt §17.2.1
I      T4 for UDP, 0 for TCP/TLS          wait time for ACK retransmits §17.2.1
J      64*T1 for UDP, 0 for TCP/TLS       wait time for non-INVITE request retransmits §17.2.2
K      T4 for UDP, 0 for TCP/TLS          wait time for response retransmits §17.1.2.2
L      64*T1                              RFC 6026 §8.4: accepted INVITE retransmits (server)
M      64*T1                              RFC 6026 §8.4: 2xx retransmits / other forks (client)
=====  =================================  ====================================================

``TRYING`` is not a lettered timer: §17.2.1 says the INVITE server transaction MUST send a
100 (Trying) unless it knows the TU will answer within 200 ms; we arm it for ``trying_delay``
(default 0.2 s, configurable, ``None`` means "send 100 at once", as a proxy does, §16.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TimerName(StrEnum):
    """The transaction timers this package runs (C belongs to the proxy core, §16.6)."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "TRYING"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """Timer base values; RFC 3261 defaults. All in seconds.

    ``timer_d`` is "at least 32 s" on unreliable transports (§17.1.1.2); the multiplier 64 for
    B, F, H and J is fixed by the RFC ("64*T1") and kept as ``timeout_factor`` so a lab can
    shorten it consistently with T1.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0
    timeout_factor: int = 64
    trying_delay: float | None = 0.2

    def __post_init__(self) -> None:
        if self.t1 <= 0 or self.t2 < self.t1 or self.t4 < 0 or self.timer_d < 0:
            raise ValueError("timer values must satisfy 0 < T1 <= T2, T4 >= 0, D >= 0")
        if self.timeout_factor < 1:
            raise ValueError("timeout_factor must be >= 1")
        if self.trying_delay is not None and self.trying_delay < 0:
            raise ValueError("trying_delay must be >= 0 or None")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, L, M, and J on UDP."""
        return self.timeout_factor * self.t1

    def initial(self, name: TimerName, *, reliable: bool) -> float | None:
        """First duration of ``name``; ``None`` when the timer is not started at all.

        On reliable transports A, E and G are never started (no retransmission, §17.1.1.2,
        §17.1.2.2, §17.2.1) and D, I, J, K are zero (§17.1.1.2, §17.2.1, §17.2.2, §17.1.2.2).
        """
        if name in (TimerName.A, TimerName.E, TimerName.G):
            return None if reliable else self.t1
        if name in (TimerName.B, TimerName.F, TimerName.H, TimerName.L, TimerName.M):
            return self.timeout
        if name is TimerName.D:
            return 0.0 if reliable else self.timer_d
        if name in (TimerName.I, TimerName.K):
            return 0.0 if reliable else self.t4
        if name is TimerName.J:
            return 0.0 if reliable else self.timeout
        # TRYING
        return self.trying_delay if self.trying_delay is not None else 0.0

    def backoff(self, name: TimerName, interval: float) -> float:
        """Next retransmit interval after one fired with ``interval``.

        A doubles without bound (its cap is timer B, §17.1.1.2); E and G double up to T2
        (§17.1.2.2, §17.2.1).
        """
        if name is TimerName.A:
            return 2 * interval
        if name in (TimerName.E, TimerName.G):
            return min(2 * interval, self.t2)
        raise ValueError(f"timer {name} does not back off")
