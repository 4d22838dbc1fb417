"""The study encoded as data (li/study.py): quotes from the seed, consistent with its table."""

from __future__ import annotations

import re

import pytest

from li.study import (
    EXPECTATIONS,
    LADDER,
    STUDY_TABLE,
    USER_LAYER_ROWS,
    Capability,
    Method,
    Need,
    Observed,
    Scenario,
    compare,
    expectation,
    table_row,
    ts33106_statement,
)
from tests.conftest import SHARED

SEED = next((SHARED / "seed").glob("*.txt"), None) if (SHARED / "seed").is_dir() else None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip()


def test_every_method_has_a_home_row() -> None:
    for m in Method:
        assert expectation(m, Scenario.HOME).method is m


def test_rows_are_unique() -> None:
    keys = [e.key for e in EXPECTATIONS]
    assert len(keys) == len(set(keys))


def test_rows_quote_their_seed_line() -> None:
    if SEED is None:
        pytest.skip(f"the study is not at {SHARED / 'seed'}")
    lines = SEED.read_text().splitlines()
    for e in EXPECTATIONS:
        assert e.section and len(e.quote) > 20, e.key
        assert _norm(e.quote) in _norm(lines[e.seed_line - 1]), (e.key, e.seed_line)


def test_expected_rung_and_needs_agree() -> None:
    for e in EXPECTATIONS:
        assert (e.rung is None) == (Need.NOT_POSSIBLE in e.needs), e.key
        assert e.keys_recoverable == e.audio_recoverable == (e.rung is not None), e.key
        assert e.rung is None or LADDER.index(e.rung) >= LADDER.index(e.first_rung), e.key
        assert e.rung not in e.withheld, e.key


def test_home_rows_agree_with_the_summary_table() -> None:
    """Clause 2.1's table: a YES in 'play MITM' means some case of that family needs the MITM."""
    assert [r.family for r in STUDY_TABLE] == [
        "SDES",
        "MIKEY / pre-shared key",
        "MIKEY / pk encryption",
        "MIKEY / DH",
    ]
    for row in STUDY_TABLE:
        # the table rates key management alone; a user's own extra layer (2.4) is outside it
        homes = [
            e
            for e in EXPECTATIONS
            if e.scenario is Scenario.HOME
            and table_row(e.method) is row
            and e not in USER_LAYER_ROWS
        ]
        assert homes
        assert row.mitm_signalling == any(Need.MITM_SIGNALLING in e.needs for e in homes)
        assert row.mitm_media == any(Need.MITM_MEDIA in e.needs for e in homes)
        # "overcome key-management security": some case where ordinary IMS LI gives nothing.
        assert row.overcome_key_management == any(Need.NOTHING not in e.needs for e in homes)
    # footnote 1: PK encryption's signalling MITM is case B.
    assert expectation(Method.PKE_B, Scenario.HOME).rung is Capability.MITM_BOTH
    assert Need.MITM_MEDIA not in expectation(Method.PKE_B, Scenario.HOME).needs


def test_the_issue_rows() -> None:
    # case A: no MITM, the call works, ciphertext only; the MITM attempt is a row of its own
    a = expectation(Method.PKE_A, Scenario.HOME)
    assert a.rung is None and a.call_succeeds and a.first_rung is Capability.OWN_POIS
    attempt = expectation(Method.PKE_A_MITM, Scenario.HOME)
    assert not attempt.call_succeeds and attempt.first_rung is Capability.MITM_BOTH
    # case C: the responder's operator's key; with the target as responder, its own operator
    c = expectation(Method.PKE_C, Scenario.HOME)
    assert c.needs == {Need.OTHER_NETWORK, Need.OPERATOR_KEY}
    assert expectation(Method.PKE_C, Scenario.HOME_TARGET_ANSWERS).needs == {Need.OPERATOR_KEY}
    # one operator: the same ladder without the other operators' help
    one = expectation(Method.PKE_B_ONE, Scenario.HOME)
    assert one.rung is None and one.withheld == {Capability.MITM_BOTH}
    # both providers acting on DH
    assert expectation(Method.DH_SIGN, Scenario.MEDIA_PROVIDER).rung is Capability.MITM_MEDIA
    assert expectation(Method.SDES, Scenario.ROAMING_HOME_PCSCF).rung is Capability.OTHER_POIS


def test_compare_flags_each_difference() -> None:
    exp = expectation(Method.SDES, Scenario.HOME)
    same = Observed(
        rung=Capability.OWN_POIS,
        needs=frozenset({Need.NOTHING}),
        keys_recovered=True,
        audio_recovered=True,
        call_succeeded=True,
    )
    assert compare(exp, same) == []
    other = Observed(
        rung=None,
        needs=frozenset({Need.NOT_POSSIBLE}),
        keys_recovered=False,
        audio_recovered=False,
        call_succeeded=False,
    )
    diffs = compare(exp, other)
    assert len(diffs) == 5
    assert diffs[0] == "lowest rung: study own-pois, observed none"
    assert "LI needs" in diffs[-1]


def test_ts33106_statement_follows_the_outcome() -> None:
    """Q7/Q8 and TS 33.106 as the study quotes them, one statement per observed outcome."""
    nothing = ts33106_statement(frozenset({Need.NOTHING}), user_applied=False)
    assert "possesses the keys" in nothing
    mitm = ts33106_statement(frozenset({Need.MITM_SIGNALLING}), user_applied=False)
    assert "not expected to provide this type of assistance" in mitm
    key = ts33106_statement(frozenset({Need.OPERATOR_KEY}), user_applied=False)
    assert "provides encryption keys" in key.replace("the encryption keys", "encryption keys")
    visited = ts33106_statement(frozenset({Need.OTHER_NETWORK}), user_applied=False)
    assert "cannot provide the keys" in visited
    # the keys that worked were the intercepting network's own; another carried the media
    home = ts33106_statement(frozenset({Need.OTHER_NETWORK}), user_applied=False, own_keys=True)
    assert "delivers the IRI and the keys it holds" in home and "cannot" not in home
    layered = ts33106_statement(
        frozenset({Need.NOT_POSSIBLE}), user_applied=True, outer_layer_only=True
    )
    assert "delivers the layer it encrypted" in layered and "encrypted by the user" in layered
    impossible = frozenset({Need.NOT_POSSIBLE})
    assert "encryption by the user" in ts33106_statement(impossible, user_applied=True)
    assert "encryption by the user" not in ts33106_statement(impossible, user_applied=False)
