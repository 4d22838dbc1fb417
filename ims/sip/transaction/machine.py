"""Table-driven engine shared by the four RFC 3261 §17 transaction state machines.

Each machine is data (STYLE.md §3, after h2's ``stream.py``): an ``Enum`` of states, an ``Enum``
of inputs, and a table ``(state, input) -> (actions, next state)`` transcribing one figure of
RFC 3261 §17 (figures 5-8, in :mod:`.client` and :mod:`.server`).  A pair missing from the
table is a :class:`TransactionProtocolError`, never a silent pass; the transaction layer decides
whether that error is a programmer error (the TU answered twice) or a network oddity to log and
drop (a 1xx after the final response).

Timers are part of the data as well: actions such as ``START_A`` or ``BACKOFF_E`` arm them, and
``live_timers`` lists the timers that survive in each state, so entering a state cancels the rest
(entering "Proceeding" of the INVITE client stops A and B, §17.1.1.2).  A timer whose duration is
zero (D, I, J, K on reliable transports) fires at once, inside the same call, which is how the
RFC's "0 for TCP" values behave.  Time is the ``now`` argument; nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from ims.errors import ImsError

from .timers import TimerConfig, TimerName


class TransactionProtocolError(ImsError):
    """An input arrived in a state whose RFC figure has no transition for it."""

    def __init__(self, machine: str, state: Enum, event: Enum) -> None:
        super().__init__(f"{machine}: no transition for {event.name} in state {state.name}")
        self.machine = machine
        self.state = state
        self.event = event


class Action(Enum):
    """What a transition does. Output actions are returned; timer actions are run inside."""

    # outputs (returned to the transaction object, which turns them into messages/events)
    SEND_REQUEST = auto()  # (re)transmit the request
    SEND_ACK = auto()  # ACK for a 300-699 (§17.1.1.3), built by the client transaction
    PASS_RESPONSE = auto()  # response to the TU
    SEND_RESPONSE = auto()  # the response the TU just gave
    RESEND_RESPONSE = auto()  # the last response sent (absorbing a retransmission, timer G)
    SEND_TRYING = auto()  # 100 (Trying) built by the server transaction (§17.2.1)
    PASS_ACK = auto()  # RFC 6026 Accepted: an ACK matching the transaction goes to the TU
    INFORM_TIMEOUT = auto()  # tell the TU the transaction timed out (timer B, F, H)
    INFORM_TRANSPORT_ERROR = auto()  # tell the TU the transport failed (§17.1.4, §17.2.4)
    # timer operations (executed by the engine)
    START_A = auto()
    BACKOFF_A = auto()
    START_B = auto()
    START_D = auto()
    START_E = auto()
    BACKOFF_E = auto()
    E_T2 = auto()  # §17.1.2.2: in Proceeding, E is reset to T2
    START_F = auto()
    START_G = auto()
    BACKOFF_G = auto()
    START_H = auto()
    START_I = auto()
    START_J = auto()
    START_K = auto()
    START_L = auto()
    START_M = auto()
    START_TRYING = auto()
    STOP_TRYING = auto()


OUTPUT_ACTIONS = frozenset(
    {
        Action.SEND_REQUEST,
        Action.SEND_ACK,
        Action.PASS_RESPONSE,
        Action.SEND_RESPONSE,
        Action.RESEND_RESPONSE,
        Action.SEND_TRYING,
        Action.PASS_ACK,
        Action.INFORM_TIMEOUT,
        Action.INFORM_TRANSPORT_ERROR,
    }
)

_START = {
    Action.START_A: TimerName.A,
    Action.START_B: TimerName.B,
    Action.START_D: TimerName.D,
    Action.START_E: TimerName.E,
    Action.START_F: TimerName.F,
    Action.START_G: TimerName.G,
    Action.START_H: TimerName.H,
    Action.START_I: TimerName.I,
    Action.START_J: TimerName.J,
    Action.START_K: TimerName.K,
    Action.START_L: TimerName.L,
    Action.START_M: TimerName.M,
    Action.START_TRYING: TimerName.TRYING,
}
_BACKOFF = {
    Action.BACKOFF_A: TimerName.A,
    Action.BACKOFF_E: TimerName.E,
    Action.BACKOFF_G: TimerName.G,
}

Transition = tuple[tuple[Action, ...], Enum]


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineSpec:
    """One RFC figure as data."""

    name: str
    figure: str
    states: type[Enum]
    inputs: type[Enum]
    initial_state: Enum
    initial_actions: tuple[Action, ...]
    terminated: Enum
    table: Mapping[tuple[Enum, Enum], Transition]
    live_timers: Mapping[Enum, frozenset[TimerName]]
    timer_inputs: Mapping[TimerName, Enum]
    input_timers: Mapping[Enum, TimerName] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_timers", {v: k for k, v in self.timer_inputs.items()})
        for (state, event), (_actions, nxt) in self.table.items():
            assert isinstance(state, self.states) and isinstance(event, self.inputs)
            assert isinstance(nxt, self.states)
        assert set(self.live_timers) == set(self.states)


class Machine:
    """Runs one :class:`MachineSpec`: current state, armed timers, outputs per input."""

    __slots__ = ("_intervals", "_timers", "config", "history", "reliable", "spec", "state")

    def __init__(self, spec: MachineSpec, *, config: TimerConfig, reliable: bool) -> None:
        self.spec = spec
        self.config = config
        self.reliable = reliable
        self.state: Any = spec.initial_state
        self._timers: dict[TimerName, float] = {}  # armed timer -> deadline
        self._intervals: dict[TimerName, float] = {}  # last interval of A/E/G, for back-off
        self.history: list[tuple[Enum, Enum, Enum]] = []  # (state, input, next) for debugging

    # -- driving -----------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        """Run the figure's entry arrow (e.g. "INVITE from TU / INVITE sent")."""
        zero: list[TimerName] = []
        out = self._run(self.spec.initial_actions, now, now, zero)
        return out + self._fire_zero(zero, now)

    def accepts(self, event: Enum) -> bool:
        return (self.state, event) in self.spec.table

    def fire(self, event: Enum, now: float) -> list[Action]:
        """Apply ``event``; return the output actions in order. Raises on a missing entry."""
        return self._fire(event, now, now)

    def get_timer(self) -> float | None:
        """Earliest armed deadline, or ``None``."""
        if not self._timers:
            return None
        return min(self._timers.values())

    def armed(self) -> dict[TimerName, float]:
        """Armed timers and their deadlines (for tests and introspection)."""
        return dict(self._timers)

    def handle_timer(self, now: float) -> list[tuple[Enum, list[Action]]]:
        """Fire every timer due at ``now``, earliest first; returns (input, outputs) pairs."""
        fired: list[tuple[Enum, list[Action]]] = []
        while self._timers:
            name, deadline = min(self._timers.items(), key=lambda kv: kv[1])
            if deadline > now:
                break
            del self._timers[name]
            event = self.spec.timer_inputs[name]
            # base = the scheduled deadline, so back-off intervals do not drift when we are late
            fired.append((event, self._fire(event, now, deadline)))
        return fired

    @property
    def terminated(self) -> bool:
        return bool(self.state is self.spec.terminated)

    # -- internals ---------------------------------------------------------------------------
    def _fire(self, event: Enum, now: float, base: float) -> list[Action]:
        try:
            actions, nxt = self.spec.table[(self.state, event)]
        except KeyError:
            raise TransactionProtocolError(self.spec.name, self.state, event) from None
        self.history.append((self.state, event, nxt))
        timer = self.spec.input_timers.get(event)
        if timer is not None:
            self._timers.pop(timer, None)
        if nxt is not self.state:
            live = self.spec.live_timers[nxt]
            for name in [n for n in self._timers if n not in live]:
                del self._timers[name]
            self.state = nxt
        zero: list[TimerName] = []
        out = self._run(actions, now, base, zero)
        return out + self._fire_zero(zero, now)

    def _run(
        self, actions: tuple[Action, ...], now: float, base: float, zero: list[TimerName]
    ) -> list[Action]:
        out: list[Action] = []
        for action in actions:
            if action in OUTPUT_ACTIONS:
                out.append(action)
            elif action in _START:
                name = _START[action]
                duration = self.config.initial(name, reliable=self.reliable)
                if duration is None:
                    continue  # A/E/G are not started on reliable transports
                if duration == 0:
                    zero.append(name)
                else:
                    self._timers[name] = now + duration
                self._intervals[name] = duration
            elif action in _BACKOFF:
                name = _BACKOFF[action]
                interval = self.config.backoff(name, self._intervals.get(name, self.config.t1))
                self._timers[name] = base + interval
                self._intervals[name] = interval
            elif action is Action.E_T2:
                self._timers[TimerName.E] = base + self.config.t2
                self._intervals[TimerName.E] = self.config.t2
            elif action is Action.STOP_TRYING:
                self._timers.pop(TimerName.TRYING, None)
            else:  # pragma: no cover - every Action is handled above
                raise AssertionError(action)
        if self.state is self.spec.terminated:
            self._timers.clear()
        return out

    def _fire_zero(self, zero: list[TimerName], now: float) -> list[Action]:
        out: list[Action] = []
        for name in zero:
            event = self.spec.timer_inputs[name]
            if self.accepts(event):
                out.extend(self._fire(event, now, now))
        return out
