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

**Shedding must cost next to nothing** (measured: a 503 sent through a server transaction,
after a full parse, cost about a quarter of a whole call, and at twice the capacity the 503s
alone ate the capacity; docs/benchmarks.md). So a UDP datagram meets :class:`OverloadGate`
before the parser and the transaction layer (as Kamailio's ``sl_send_reply`` comes before
``t_relay``): while ``p > 0``, a request is *peeked* at (start line and the To header's tag
only); a new out-of-dialog request that is not admitted gets a **stateless** 503 built from
its own Via/From/To/Call-ID/CSeq lines (§8.2.6.2, §16.7: a proxy may answer statelessly; the
To tag is the gate's own), and the ACK for such a 503 (RFC 3261 §17.1.1.3: sent hop by hop,
with our To tag) is recognised by that tag and absorbed. Nothing is parsed and no state is
kept for a shed request. Anything the peek cannot read is passed on to the full parser, which
gives it the right answer.
"""

from __future__ import annotations

import math
import re
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
    _previous_min: float = math.inf

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
        previous, self._previous_min = self._previous_min, low
        if low > cfg.target:
            # the backlog of the last windows keeps the delay high for a while after p is
            # right: while the standing delay falls, p holds (raising it further would shed
            # far past the capacity: measured, 2R gave 42 % goodput with 73 % shed); only a
            # queue that is not draining raises p, by at most two steps a window
            if low < previous:
                self._window_min = math.inf
                self._window_end = now + cfg.window
                return
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


# --------------------------------------------------------------------------- the stateless gate
# RFC 3261 §7.3.1 / §25.1: header names are case-insensitive, a colon may follow whitespace,
# and compact forms exist (§7.3.3: v Via, f From, t To, i Call-ID); the peek reads only lines
# of the head, each up to its CRLF (the obsolete line folding of §7.3.1 makes it give up)
_HEADER = re.compile(rb"([A-Za-z-]+)[ \t]*:[ \t]*(.*)")
_TAG = re.compile(rb";[ \t]*tag[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)
_BRANCH = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)
_SENT_BY_PORT = re.compile(
    rb"^SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*UDP[ \t]+[^:;, \t]+(?::(\d+))?", re.I
)
_NAMES = {
    b"via": b"Via",
    b"v": b"Via",
    b"from": b"From",
    b"f": b"From",
    b"to": b"To",
    b"t": b"To",
    b"call-id": b"Call-ID",
    b"i": b"Call-ID",
    b"cseq": b"CSeq",
}


@dataclass(frozen=True, slots=True)
class Shed:
    """Send ``response`` (a stateless 503) to ``to``; the request is dropped."""

    response: bytes
    to: tuple[str, int]


#: the ACK for one of the gate's 503s: nothing to do (RFC 3261 §17.1.1.3)
ABSORBED = object()


class OverloadGate:
    """Sheds new UDP requests before they are parsed (see the module docstring).

    :meth:`screen` returns None (pass the datagram on), :data:`ABSORBED` (drop it) or a
    :class:`Shed`. While ``control.reject`` is 0, and 64*T1 after its last 503 (the ACKs
    to absorb: a client retransmits a lost 503's INVITE for that long, §17.1.1.2), it does
    nothing but two comparisons.
    """

    #: 64*T1 (RFC 3261 §17.1.1.2, Timer B): the longest an ACK for a 503 may still come
    ABSORB_FOR = 32.0
    #: verdicts remembered (top Via branch -> admitted?), oldest forgotten first
    REMEMBER = 65_536

    def __init__(self, control: OverloadControl, tag: str) -> None:
        self.control = control
        self.tag = tag.encode()
        self._retry = f"Retry-After: {control.config.retry_after}\r\n".encode()
        self._absorb_until = -math.inf
        # a retransmitted request gets the verdict its first copy got: an admitted INVITE
        # whose copy is then shed would see a 503 *and* the callee's 200 (a broken call); a
        # shed one whose 503 was lost gets the 503 again (§17.2.1: the same response)
        self._verdicts: dict[bytes, bool] = {}
        self.shed = 0
        self.absorbed = 0

    def screen(self, data: bytes, source: tuple[str, int], now: float) -> Shed | object | None:
        control = self.control
        if control.reject <= 0.0 and now > self._absorb_until:
            return None
        if data[:4] == b"SIP/":
            return None  # a response: always served
        end = data.find(b"\r\n\r\n")
        head = data if end < 0 else data[:end]
        lines = head.split(b"\r\n")
        sp = lines[0].find(b" ")
        if sp <= 0:
            return None
        method = lines[0][:sp]
        if method == b"CANCEL":
            return None
        kept: list[bytes] = []
        to_value = b""
        top_via = b""
        for line in lines[1:]:
            if not line or line[0] in b" \t":
                return None  # folded line: leave it to the parser
            m = _HEADER.match(line)
            if m is None:
                return None
            name = _NAMES.get(m.group(1).lower())
            if name is None:
                continue
            value = m.group(2)
            if name == b"To":
                to_value = value
            elif name == b"Via" and not top_via:
                top_via = value
            kept.append(name + b": " + value)
        if not to_value or not top_via:
            return None
        angle = to_value.rfind(b">")
        tag = _TAG.search(to_value, angle + 1 if angle >= 0 else 0)
        if method == b"ACK":
            if tag is not None and tag.group(1) == self.tag:
                self.absorbed += 1
                return ABSORBED
            return None
        if tag is not None:
            return None  # in-dialog: accepted work
        branch = _BRANCH.search(top_via.split(b",", 1)[0])
        key = b"" if branch is None else branch.group(1) + b" " + method
        verdict = self._verdicts.get(key) if key else None
        if verdict is None:
            verdict = control.reject <= 0.0 or control.admit()
            if key:
                if len(self._verdicts) >= self.REMEMBER:
                    del self._verdicts[next(iter(self._verdicts))]
                self._verdicts[key] = verdict
        if verdict:
            return None  # admitted: the full path
        shed = self._shed(kept, top_via, source)
        if shed is not None:
            self._absorb_until = now + self.ABSORB_FOR
        return shed

    def _shed(self, kept: list[bytes], top_via: bytes, source: tuple[str, int]) -> Shed | None:
        first = top_via.split(b",", 1)[0]
        if b"maddr" in first.lower():
            return None  # §18.2.2's maddr rule: the full path
        m = _SENT_BY_PORT.match(first)
        if m is None:
            return None
        # §18.2.2 with RFC 3581: the source address, at the sent-by port (the source port
        # with rport)
        port = source[1] if b"rport" in first.lower() else int(m.group(1) or 5060)
        out = [b"SIP/2.0 503 Service Unavailable"]
        for line in kept:
            if line.startswith(b"To: "):
                line += b";tag=" + self.tag
            out.append(line)
        self.shed += 1
        return Shed(
            b"\r\n".join(out) + b"\r\n" + self._retry + b"Content-Length: 0\r\n\r\n",
            (source[0], port),
        )
