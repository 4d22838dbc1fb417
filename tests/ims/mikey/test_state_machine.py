"""The exchange state table (modes/base.py) and misuse of the initiator/responder APIs.

Hypothesis drives random sequences of API calls and peer messages through every mode; the
machines only move along table entries and every refusal is a MikeyError/MikeyDecodeError.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ims.mikey.constants import DhGroup
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.modes.base import TRANSITIONS, Input, Machine, State
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder

from .conftest import NOW


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("inp", list(Input))
def test_table_is_the_only_way_to_move(state: State, inp: Input) -> None:
    m = Machine()
    m.state = state
    if (state, inp) in TRANSITIONS:
        m.fire(inp)
        assert m.state is TRANSITIONS[(state, inp)]
    else:
        with pytest.raises(MikeyError):
            m.fire(inp)
        assert m.state is state


@pytest.mark.parametrize(
    "make",
    [
        lambda: PskInitiator(psk=b"k" * 16),
        lambda: DhHmacInitiator(
            psk=b"k" * 16, group=DhGroup.OAKLEY_1, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"
        ),
    ],
)
def test_receive_before_initiate_is_refused(make: Any) -> None:
    with pytest.raises(MikeyError):
        make().receive(b"\x01\x01\x00\x00", NOW)


OPS = st.lists(st.sampled_from(["initiate", "answer", "garbage", "replayed"]), max_size=6)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(OPS, st.booleans())
def test_random_call_sequences(ops: list[str], dhhmac: bool) -> None:
    ini: Any = (
        DhHmacInitiator(
            psk=b"k" * 16, group=DhGroup.OAKLEY_1, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"
        )
        if dhhmac
        else PskInitiator(psk=b"k" * 16)
    )
    resp: Any = DhHmacResponder(psk=b"k" * 16) if dhhmac else PskResponder(psk=b"k" * 16)
    offer: bytes | None = None
    answer: bytes | None = None
    for op in ops:
        before = ini.machine.state
        try:
            if op == "initiate":
                offer = ini.initiate(NOW)
                reply = resp.receive(offer, NOW)
                answer = reply.message
            elif op == "answer" and answer is not None:
                ini.receive(answer, NOW)
            elif op == "garbage":
                ini.receive(b"\x01\x09\x00\x00garbage", NOW)
            elif op == "replayed" and offer is not None:
                assert not resp.receive(offer, NOW).ok  # same I_MESSAGE twice: refused
        except (MikeyError, MikeyDecodeError):
            assert ini.machine.state in (before, State.FAILED)
        else:
            assert ini.machine.state in {before} | {
                nxt for (st_, _), nxt in TRANSITIONS.items() if st_ is before
            }
