"""The study encoded as data (li/study.py) is consistent with the study's own table."""

from __future__ import annotations

from li.study import (
    EXPECTATIONS,
    STUDY_TABLE,
    Method,
    Need,
    Observed,
    Scenario,
    compare,
    expectation,
    table_row,
    ts33106_outcome,
)


def test_every_method_has_a_home_row() -> None:
    for m in Method:
        assert expectation(m, Scenario.HOME).method is m


def test_rows_are_unique_and_cite_the_study() -> None:
    keys = [e.key for e in EXPECTATIONS]
    assert len(keys) == len(set(keys))
    assert all(e.section and len(e.quote) > 20 for e in EXPECTATIONS)


def test_home_rows_agree_with_the_summary_table() -> None:
    """Clause 2.1's table: a YES in 'play MITM' means some case of that family needs the MITM."""
    assert [r.family for r in STUDY_TABLE] == [
        "SDES",
        "MIKEY / pre-shared key",
        "MIKEY / pk encryption",
        "MIKEY / DH",
    ]
    for row in STUDY_TABLE:
        homes = [
            e for e in EXPECTATIONS if e.scenario is Scenario.HOME and table_row(e.method) is row
        ]
        assert homes
        assert row.mitm_signalling == any(Need.MITM_SIGNALLING in e.needs for e in homes)
        assert row.mitm_media == any(Need.MITM_MEDIA in e.needs for e in homes)
        # "overcome key-management security": some case where nothing ordinary gives keys.
        assert row.overcome_key_management == any(Need.NOTHING not in e.needs for e in homes)
    # footnote 1: PK encryption's signalling MITM is case B.
    assert Need.MITM_SIGNALLING in expectation(Method.PKE_B, Scenario.HOME).needs
    assert Need.MITM_MEDIA not in expectation(Method.PKE_B, Scenario.HOME).needs


def test_one_operator_case_b_and_visited_network() -> None:
    one = expectation(Method.PKE_B_ONE, "home")
    assert not one.keys_recoverable and Need.BOTH_OPERATORS in one.needs
    visited = expectation(Method.SDES, Scenario.ROAMING_HOME_PCSCF)
    assert not visited.keys_recoverable
    assert expectation(Method.SDES, Scenario.ROAMING_VISITED_PCSCF).keys_recoverable


def test_compare_flags_each_difference() -> None:
    exp = expectation(Method.SDES, Scenario.HOME)
    same = Observed(
        needs=frozenset({Need.NOTHING}),
        keys_recovered=True,
        audio_recovered=True,
        call_succeeded=True,
    )
    assert compare(exp, same) == []
    other = Observed(
        needs=frozenset({Need.MITM_SIGNALLING}),
        keys_recovered=False,
        audio_recovered=False,
        call_succeeded=False,
    )
    diffs = compare(exp, other)
    assert len(diffs) == 4
    assert "LI needs" in diffs[-1]


def test_ts33106_outcome() -> None:
    assert "decrypted" in ts33106_outcome(Method.SDES, True)
    assert "notice" in ts33106_outcome(Method.PSK_E2E, False)
