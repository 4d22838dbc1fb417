"""Admission of unauthenticated REGISTERs at an element that faces users directly, sans-I/O.

Issue 11, finding 9: a REGISTER without credentials costs a challenge and a server transaction
that lives out Timer J (64*T1 = 32 s on UDP, RFC 3261 §17.2.2) whether or not anybody answers
it. A flood of them from a few addresses must not take the element's memory, nor lock out
other users. So an element that authenticates users itself (the Internet proxy's registrar)
keeps, per source address, the REGISTER challenges nobody has followed up yet:

* at most ``per_source`` live ones per source address and ``total`` in all; beyond either the
  REGISTER is answered ``503 Service Unavailable`` with ``Retry-After`` (RFC 3261 §21.5.4:
  "The server MAY indicate when the client should retry the request in a Retry-After header
  field"), before any digest work;
* a challenge stops counting when it is answered (a REGISTER with credentials from the same
  source and Call-ID, as a UE re-registering does) or after ``lifetime`` (Timer J): a UE that
  registers forty times in a row from one address is never a flood.

Time is the ``now`` argument (the proxy core's clock); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: live unanswered REGISTER challenges one source address may hold (issue 11, finding 9)
UNAUTH_REGISTERS_PER_SOURCE = 16
#: and all sources together
UNAUTH_REGISTERS_TOTAL = 1024
#: how long an unanswered challenge counts: its server transaction's life (Timer J, 64*T1)
CHALLENGE_LIFETIME = 64 * 0.5


@dataclass(slots=True)
class UnauthenticatedRegisters:
    """Unanswered REGISTER challenges, by source address and Call-ID, with their expiry."""

    per_source: int = UNAUTH_REGISTERS_PER_SOURCE
    total: int = UNAUTH_REGISTERS_TOTAL
    lifetime: float = CHALLENGE_LIFETIME
    retry_after: int = 5
    refused: int = 0  # REGISTERs answered 503
    _live: dict[tuple[str, str], float] = field(default_factory=dict)  # (ip, call-id) -> until
    _by_source: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._live)

    def admit(self, source: str, call_id: str, now: float) -> bool:
        """May a REGISTER without credentials from ``source`` be challenged now? When it may,
        it is counted until answered or expired."""
        self._expire(now)
        key = (source, call_id)
        if key in self._live:
            del self._live[key]  # a new CSeq of the same registration: to the end (expiry order)
            self._live[key] = now + self.lifetime
            return True
        if len(self._live) >= self.total or self._by_source.get(source, 0) >= self.per_source:
            self.refused += 1
            return False
        self._live[key] = now + self.lifetime
        self._by_source[source] = self._by_source.get(source, 0) + 1
        return True

    def answered(self, source: str, call_id: str) -> None:
        """A REGISTER with credentials arrived from ``source`` on ``call_id``: its challenge
        served its purpose and no longer counts."""
        if self._live.pop((source, call_id), None) is not None:
            self._drop_source(source)

    def _expire(self, now: float) -> None:
        # insertion order is expiry order (a refresh moves its key to the end)
        for key, until in list(self._live.items()):
            if until > now:
                break
            del self._live[key]
            self._drop_source(key[0])

    def _drop_source(self, source: str) -> None:
        n = self._by_source.get(source, 0) - 1
        if n > 0:
            self._by_source[source] = n
        else:
            self._by_source.pop(source, None)
