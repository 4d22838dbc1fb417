"""Responders never raise on hostile input; initiators raise only MIKEY errors.

Hypothesis mutates valid I_MESSAGEs (one to three bytes, or truncation) and feeds them to each
responder: the answer is always a ResponderReply (keys or an Error message), never an
exception; an initiator fed mutated R_MESSAGEs raises only MikeyError / MikeyDecodeError.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ims.mikey.constants import DataType, DhGroup, EncrAlg
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import decode_message
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.replay import ReplayCache

from .conftest import NOW, Pki

mutation = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[: cut % (len(b) + 1)] if cut is not None else b)


def _pairs(pki: Pki) -> dict[str, tuple[Any, Any]]:
    return {
        "psk": (
            lambda: PskInitiator(psk=b"k" * 16, encr_alg=EncrAlg.AES_KW_128),
            lambda: PskResponder(psk=b"k" * 16, replay=ReplayCache()),
        ),
        "pke": (
            lambda: PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate),
            lambda: PkeResponder(credentials=pki.bob, trust=pki.trust),
        ),
        "dh": (
            lambda: DhInitiator(credentials=pki.alice, trust=pki.trust, group=DhGroup.OAKLEY_1),
            lambda: DhResponder(credentials=pki.bob, trust=pki.trust),
        ),
        "dhhmac": (
            lambda: DhHmacInitiator(
                psk=b"k" * 16,
                group=DhGroup.OAKLEY_1,
                idr="sip:bob@ims.lab",
                idi="sip:alice@ims.lab",
            ),
            lambda: DhHmacResponder(psk=b"k" * 16),
        ),
        "rsa-r": (
            lambda: RsaRInitiator(credentials=pki.alice, trust=pki.trust),
            lambda: RsaRResponder(credentials=pki.bob, trust=pki.trust),
        ),
    }


@pytest.mark.parametrize("mode", ["psk", "pke", "dh", "dhhmac", "rsa-r"])
def test_mutated_offers_and_answers(pki: Pki, mode: str) -> None:
    make_i, make_r = _pairs(pki)[mode]
    ini = make_i()
    offer = ini.initiate(NOW)
    good = make_r().receive(offer, NOW)
    assert good.ok and good.message is not None

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutation, st.one_of(st.none(), st.integers(0, 10_000)))
    def offers(edits: list[tuple[int, int]], cut: int | None) -> None:
        data = _mutate(offer, edits, cut)
        reply = make_r().receive(data, NOW)
        if data != offer:
            if reply.ok:  # only bytes no check covers may change (e.g. unused map ROC)
                return
            assert reply.message is not None
            assert decode_message(reply.message).data_type is DataType.ERROR

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutation, st.one_of(st.none(), st.integers(0, 10_000)))
    def answers(edits: list[tuple[int, int]], cut: int | None) -> None:
        fresh = make_i()
        for attr in ("csb_id", "rand", "tgk", "env_key", "dh_key"):
            if hasattr(ini, attr) and hasattr(fresh, attr):
                setattr(fresh, attr, getattr(ini, attr))
        fresh.initiate(NOW)
        try:
            fresh.receive(_mutate(good.message, edits, cut), NOW)
        except (MikeyError, MikeyDecodeError):
            pass

    offers()
    answers()
