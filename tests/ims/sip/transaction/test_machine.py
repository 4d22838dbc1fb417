"""The four RFC 3261 §17 machines, exhaustively over (state, input), with injected time."""

from __future__ import annotations

import itertools
from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.sip.transaction.client_tables import (
    INVITE_CLIENT,
    NON_INVITE_CLIENT,
    InviteClientInput,
    InviteClientState,
    NonInviteClientInput,
    NonInviteClientState,
)
from ims.sip.transaction.machine import (
    OUTPUT_ACTIONS,
    Action,
    Machine,
    MachineSpec,
    TransactionProtocolError,
)
from ims.sip.transaction.server_tables import (
    INVITE_SERVER,
    NON_INVITE_SERVER,
    InviteServerInput,
    InviteServerState,
    NonInviteServerInput,
    NonInviteServerState,
)
from ims.sip.transaction.timers import TimerConfig, TimerName

SPECS = [INVITE_CLIENT, NON_INVITE_CLIENT, INVITE_SERVER, NON_INVITE_SERVER]
CFG = TimerConfig()


def _pairs() -> list[tuple[MachineSpec, Enum, Enum, bool]]:
    return [
        (spec, state, event, reliable)
        for spec in SPECS
        for state, event in itertools.product(spec.states, spec.inputs)
        for reliable in (False, True)
    ]


@pytest.mark.parametrize(
    ("spec", "state", "event", "reliable"),
    _pairs(),
    ids=lambda v: getattr(v, "name", str(v)) if not isinstance(v, MachineSpec) else v.name,
)
def test_every_state_input_pair(
    spec: MachineSpec, state: Enum, event: Enum, reliable: bool
) -> None:
    m = Machine(spec, config=CFG, reliable=reliable)
    m.state = state
    entry = spec.table.get((state, event))
    if entry is None:
        with pytest.raises(TransactionProtocolError) as info:
            m.fire(event, 10.0)
        assert info.value.state is state and info.value.event is event
        assert m.state is state  # a refused input changes nothing
        return
    actions, nxt = entry
    out = m.fire(event, 10.0)
    expected = [a for a in actions if a in OUTPUT_ACTIONS]
    assert out[: len(expected)] == expected
    zero_timer_entry = reliable and nxt in (
        InviteClientState.COMPLETED,
        NonInviteClientState.COMPLETED,
        InviteServerState.CONFIRMED,
        NonInviteServerState.COMPLETED,
    )
    if zero_timer_entry and nxt is not state:
        # D, K, I, J are zero on reliable transports: the machine passes straight through
        assert m.state is spec.terminated
    else:
        assert m.state is nxt
    # armed timers are always a subset of what the state keeps alive
    assert set(m.armed()) <= spec.live_timers[m.state]
    if m.terminated:
        assert m.get_timer() is None


def test_terminated_accepts_nothing() -> None:
    for spec in SPECS:
        for event in spec.inputs:
            assert (spec.terminated, event) not in spec.table


def test_every_table_entry_is_reachable_from_start() -> None:
    """Breadth-first over inputs from the initial state: every entry of every figure is used."""
    for spec in SPECS:
        seen_states = {spec.initial_state}
        frontier = [spec.initial_state]
        while frontier:
            s = frontier.pop()
            for (state, _event), (_a, nxt) in spec.table.items():
                if state is s and nxt not in seen_states:
                    seen_states.add(nxt)
                    frontier.append(nxt)
        assert seen_states == set(spec.states), spec.name


def _run_timers(m: Machine, until: float) -> list[tuple[float, Enum, list[Action]]]:
    log = []
    while (t := m.get_timer()) is not None and t <= until:
        for event, out in m.handle_timer(t):
            log.append((t, event, out))
    return log


def test_timer_a_doubles_without_cap_and_b_is_64_t1() -> None:
    m = Machine(INVITE_CLIENT, config=CFG, reliable=False)
    assert m.start(0.0) == [Action.SEND_REQUEST]
    assert m.armed() == {TimerName.A: 0.5, TimerName.B: 32.0}
    log = _run_timers(m, 100.0)
    resend = [t for t, e, out in log if e is InviteClientInput.TIMER_A]
    assert resend == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # 0.5 * (2^n - 1): A is not capped at T2
    assert log[-1] == (32.0, InviteClientInput.TIMER_B, [Action.INFORM_TIMEOUT])
    assert m.terminated


def test_timer_e_caps_at_t2_and_f_is_64_t1() -> None:
    m = Machine(NON_INVITE_CLIENT, config=CFG, reliable=False)
    assert m.start(0.0) == [Action.SEND_REQUEST]
    log = _run_timers(m, 100.0)
    resend = [t for t, e, _ in log if e is NonInviteClientInput.TIMER_E]
    assert resend == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert log[-1] == (32.0, NonInviteClientInput.TIMER_F, [Action.INFORM_TIMEOUT])


def test_timer_e_goes_to_t2_in_proceeding() -> None:
    m = Machine(NON_INVITE_CLIENT, config=CFG, reliable=False)
    m.start(0.0)
    m.handle_timer(0.5)  # E -> 1.0 interval, next at 1.5
    assert m.fire(NonInviteClientInput.PROVISIONAL, 0.7) == [Action.PASS_RESPONSE]
    assert m.armed() == {TimerName.E: 1.5, TimerName.F: 32.0}
    [(event, out)] = m.handle_timer(1.5)
    assert out == [Action.SEND_REQUEST]
    assert m.armed()[TimerName.E] == 1.5 + CFG.t2
    m.fire(NonInviteClientInput.FINAL, 2.0)
    assert m.armed() == {TimerName.K: 2.0 + CFG.t4}  # K = T4 on UDP, E and F cancelled


def test_timer_g_caps_at_t2_h_and_i() -> None:
    m = Machine(INVITE_SERVER, config=CFG, reliable=False)
    assert m.start(0.0) == []
    assert m.armed() == {TimerName.TRYING: 0.2}
    assert m.handle_timer(0.2) == [(InviteServerInput.TIMER_TRYING, [Action.SEND_TRYING])]
    assert m.fire(InviteServerInput.TU_FAILURE, 1.0) == [Action.SEND_RESPONSE]
    assert m.armed() == {TimerName.G: 1.5, TimerName.H: 33.0}
    log = _run_timers(m, 10.0)
    assert [t for t, *_ in log] == [1.5, 2.5, 4.5, 8.5]
    assert all(out == [Action.RESEND_RESPONSE] for *_, out in log)
    assert m.armed()[TimerName.G] == 12.5  # capped at T2 = 4
    assert m.fire(InviteServerInput.ACK, 10.0) == []
    assert m.armed() == {TimerName.I: 15.0}
    assert m.fire(InviteServerInput.ACK, 11.0) == []  # absorbed
    assert _run_timers(m, 15.0)[-1][1] is InviteServerInput.TIMER_I and m.terminated


def test_timer_h_without_ack() -> None:
    m = Machine(INVITE_SERVER, config=CFG, reliable=True)
    m.start(0.0)
    m.fire(InviteServerInput.TU_FAILURE, 0.0)
    assert m.armed() == {TimerName.H: 32.0}  # no G on reliable transports
    assert m.handle_timer(32.0) == [(InviteServerInput.TIMER_H, [Action.INFORM_TIMEOUT])]


def test_timer_d_udp_and_reliable() -> None:
    m = Machine(INVITE_CLIENT, config=CFG, reliable=False)
    m.start(0.0)
    out = m.fire(InviteClientInput.FAILURE, 1.0)
    assert out == [Action.SEND_ACK, Action.PASS_RESPONSE]
    assert m.armed() == {TimerName.D: 33.0}
    assert m.fire(InviteClientInput.FAILURE, 2.0) == [Action.SEND_ACK]  # retransmission
    _run_timers(m, 33.0)
    assert m.terminated
    r = Machine(INVITE_CLIENT, config=CFG, reliable=True)
    assert r.start(0.0) == [Action.SEND_REQUEST]
    assert r.armed() == {TimerName.B: 32.0}  # no A over TCP/TLS
    assert r.fire(InviteClientInput.FAILURE, 1.0) == [Action.SEND_ACK, Action.PASS_RESPONSE]
    assert r.terminated  # D = 0


def test_timer_j_and_k() -> None:
    s = Machine(NON_INVITE_SERVER, config=CFG, reliable=False)
    s.start(0.0)
    assert s.fire(NonInviteServerInput.REQUEST, 0.1) == []  # Trying discards retransmissions
    assert s.fire(NonInviteServerInput.TU_FINAL, 0.2) == [Action.SEND_RESPONSE]
    assert s.armed() == {TimerName.J: 32.2}
    assert s.fire(NonInviteServerInput.REQUEST, 1.0) == [Action.RESEND_RESPONSE]
    assert s.fire(NonInviteServerInput.TU_FINAL, 1.0) == []  # discarded, §17.2.2
    s.handle_timer(32.2)
    assert s.terminated
    r = Machine(NON_INVITE_SERVER, config=CFG, reliable=True)
    r.start(0.0)
    assert r.fire(NonInviteServerInput.TU_FINAL, 0.0) == [Action.SEND_RESPONSE]
    assert r.terminated  # J = 0
    c = Machine(NON_INVITE_CLIENT, config=CFG, reliable=True)
    c.start(0.0)
    assert c.armed() == {TimerName.F: 32.0}
    c.fire(NonInviteClientInput.FINAL, 0.0)
    assert c.terminated  # K = 0


def test_trying_timer_immediate_and_cancelled() -> None:
    m = Machine(INVITE_SERVER, config=TimerConfig(trying_delay=None), reliable=False)
    assert m.start(0.0) == [Action.SEND_TRYING]
    m2 = Machine(INVITE_SERVER, config=CFG, reliable=False)
    m2.start(0.0)
    assert m2.fire(InviteServerInput.TU_PROVISIONAL, 0.1) == [Action.SEND_RESPONSE]
    assert m2.get_timer() is None  # the TU answered within 200 ms: no 100 Trying


def test_custom_t1_scales_everything() -> None:
    cfg = TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=1.0)
    m = Machine(INVITE_CLIENT, config=cfg, reliable=False)
    m.start(100.0)
    assert m.armed() == {TimerName.A: 100.05, TimerName.B: 100.0 + 64 * 0.05}


def test_timer_config_validation() -> None:
    for bad in (dict(t1=0), dict(t1=5.0, t2=4.0), dict(timeout_factor=0), dict(trying_delay=-1)):
        with pytest.raises(ValueError):
            TimerConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CFG.backoff(TimerName.B, 1.0)


def test_late_handle_timer_fires_all_due_in_order() -> None:
    m = Machine(INVITE_CLIENT, config=CFG, reliable=False)
    m.start(0.0)
    fired = m.handle_timer(10.0)  # the loop was busy for 10 s
    assert [e for e, _ in fired] == [InviteClientInput.TIMER_A] * 4
    assert m.armed()[TimerName.A] == 15.5  # no drift: based on scheduled deadlines


@st.composite
def _scripts(draw: st.DrawFn) -> tuple[MachineSpec, bool, list[tuple[float, Enum | None]]]:
    spec = draw(st.sampled_from(SPECS))
    reliable = draw(st.booleans())
    steps = draw(
        st.lists(
            st.tuples(
                st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
                st.one_of(st.none(), st.sampled_from(list(spec.inputs))),
            ),
            max_size=40,
        )
    )
    return spec, reliable, steps


@settings(max_examples=400, deadline=None)
@given(_scripts())
def test_random_sequences_only_raise_protocol_error(
    script: tuple[MachineSpec, bool, list[tuple[float, Enum | None]]],
) -> None:
    spec, reliable, steps = script
    m = Machine(spec, config=CFG, reliable=reliable)
    now = 0.0
    m.start(now)
    for dt, event in steps:
        now += dt
        if event is None:
            m.handle_timer(now)
        else:
            try:
                m.fire(event, now)
            except TransactionProtocolError:
                assert (m.state, event) not in spec.table
        assert set(m.armed()) <= spec.live_timers[m.state]
        assert all(deadline >= 0 for deadline in m.armed().values())
        if m.terminated:
            assert m.get_timer() is None
    # every machine terminates by itself once its timers have run (no input needed),
    # except the INVITE client in Proceeding and the servers waiting for their TU (§17).
    _run_timers(m, now + 1000.0)
    waiting_for_peer_or_tu = {
        InviteClientState.PROCEEDING,
        NonInviteServerState.TRYING,
        NonInviteServerState.PROCEEDING,
        InviteServerState.PROCEEDING,
    }
    assert m.terminated or m.state in waiting_for_peer_or_tu


def test_inputs_enums_cover_the_figures() -> None:
    # each figure's inputs appear somewhere in its table (no dead input names)
    for spec in SPECS:
        used = {event for (_s, event) in spec.table}
        assert used == set(spec.inputs), spec.name
    assert NonInviteServerInput.TIMER_J in NON_INVITE_SERVER.timer_inputs.values()


def test_rfc6026_timers_l_and_m_also_on_reliable() -> None:
    for reliable in (False, True):
        c = Machine(INVITE_CLIENT, config=CFG, reliable=reliable)
        c.start(0.0)
        assert c.fire(InviteClientInput.SUCCESS, 1.0) == [Action.PASS_RESPONSE]
        assert c.state is InviteClientState.ACCEPTED and c.armed() == {TimerName.M: 33.0}
        assert c.fire(InviteClientInput.SUCCESS, 2.0) == [Action.PASS_RESPONSE]  # other fork
        with pytest.raises(TransactionProtocolError):
            c.fire(InviteClientInput.FAILURE, 2.0)
        assert c.handle_timer(33.0) == [(InviteClientInput.TIMER_M, [])] and c.terminated
        s = Machine(INVITE_SERVER, config=CFG, reliable=reliable)
        s.start(0.0)
        assert s.fire(InviteServerInput.TU_SUCCESS, 1.0) == [Action.SEND_RESPONSE]
        assert s.state is InviteServerState.ACCEPTED and s.armed() == {TimerName.L: 33.0}
        assert s.fire(InviteServerInput.REQUEST, 2.0) == []  # absorbed
        assert s.fire(InviteServerInput.ACK, 2.0) == [Action.PASS_ACK]
        assert s.fire(InviteServerInput.TU_SUCCESS, 3.0) == [Action.SEND_RESPONSE]
        s.handle_timer(33.0)
        assert s.terminated
