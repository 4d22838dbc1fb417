"""The capability ladder's pieces: what each rung grants, "LI needed" from a rung's evidence,
and the per-direction tone check (a swapped or duplicated direction fails)."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from lab.matrix.combine import direction_tones
from lab.matrix.ladder import Evidence, Grants, grants, needs_from_evidence
from li.study import Capability, Need

EXPECTED = {"from-target": 440.0, "to-target": 1000.0}


def test_grants_are_cumulative_and_withheld_rungs_stay_out() -> None:
    assert grants(Capability.OWN_POIS) == Grants()
    top = grants(Capability.MITM_MEDIA)
    assert top == Grants(
        other_pois=True,
        operator_keys=True,
        mitm_signalling=True,
        others_assist=True,
        mitm_media=True,
    )
    without = grants(Capability.MITM_MEDIA, frozenset({Capability.MITM_BOTH}))
    assert not without.others_assist and without.mitm_media and without.mitm_signalling
    assert grants(Capability.MITM_ONE).describe()[-1].startswith("MITM signalling")


def _ev(**kw: object) -> Evidence:
    base: dict[str, object] = {
        "intercepting_operator": "a",
        "keys_from": frozenset({"a"}),
        "media_from": frozenset({"a"}),
        "key_sources": frozenset({"sdes"}),
        "substitutes_from": frozenset(),
        "media_rekeyed": 0,
    }
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


def test_needs_come_from_the_evidence() -> None:
    assert needs_from_evidence(None) == {Need.NOT_POSSIBLE}
    assert needs_from_evidence(_ev()) == {Need.NOTHING}
    assert needs_from_evidence(_ev(media_from=frozenset({"m"}))) == {Need.OTHER_NETWORK}
    assert needs_from_evidence(
        _ev(keys_from=frozenset({"b"}), key_sources=frozenset({"mikey-pke-escrow"}))
    ) == {Need.OTHER_NETWORK, Need.OPERATOR_KEY}
    # a MITM with substitutes only from its own operator's CA (or self-signed): one operator
    assert needs_from_evidence(
        _ev(key_sources=frozenset({"mitm"}), substitutes_from=frozenset({"a"}))
    ) == {Need.MITM_SIGNALLING}
    assert needs_from_evidence(
        _ev(key_sources=frozenset({"mitm"}), substitutes_from=frozenset({"a", "b"}))
    ) == {Need.MITM_SIGNALLING, Need.BOTH_OPERATORS}
    assert needs_from_evidence(_ev(key_sources=frozenset({"mitm"}), media_rekeyed=40)) == {
        Need.MITM_SIGNALLING,
        Need.MITM_MEDIA,
    }


def _wav(path: Path, *freqs: float, seconds: float = 1.0) -> None:
    n = int(seconds * 8000)
    samples = [
        int(sum(6000 * math.sin(2 * math.pi * f * i / 8000) for f in freqs) / max(1, len(freqs)))
        for i in range(n)
    ]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack(f"<{n}h", *samples))


def _dir(tmp_path: Path, name: str, from_target: float, to_target: float) -> Path:
    d = tmp_path / name
    d.mkdir()
    _wav(d / "audio-from-target.wav", from_target)
    _wav(d / "audio-to-target.wav", to_target)
    return d


def test_each_direction_holds_its_own_tone(tmp_path: Path) -> None:
    good = direction_tones(_dir(tmp_path, "good", 440, 1000), EXPECTED)
    assert all(v["ok"] for v in good.values()), good
    assert abs(good["to-target"]["peak_hz"] - 1000) < 40


@pytest.mark.parametrize(
    ("name", "from_target", "to_target"),
    [("swapped", 1000, 440), ("both-caller", 440, 440), ("both-callee", 1000, 1000)],
)
def test_swapped_or_duplicated_direction_fails(
    tmp_path: Path, name: str, from_target: float, to_target: float
) -> None:
    tones = direction_tones(_dir(tmp_path, name, from_target, to_target), EXPECTED)
    assert not all(v["ok"] for v in tones.values()), tones


def test_a_missing_direction_is_no_audio(tmp_path: Path) -> None:
    d = tmp_path / "one"
    d.mkdir()
    _wav(d / "audio-from-target.wav", 440)
    tones = direction_tones(d, EXPECTED)
    assert set(tones) == {"from-target"}  # the caller decides: both directions are required


def test_one_tone_for_both_directions_cannot_be_checked(tmp_path: Path) -> None:
    tones = direction_tones(
        _dir(tmp_path, "same", 440, 440), {"from-target": 440, "to-target": 440}
    )
    assert not any(v["ok"] for v in tones.values())


def test_a_one_direction_interception_is_a_lab_glitch_not_a_result() -> None:
    """The parties heard each other but the LEMF holds one direction: the media bypassed the
    POI (a loaded lab), so the rung is placed again; a real refusal is not repeated."""
    from lab.matrix.report import RungOutcome
    from lab.matrix.runner import _lab_glitch

    ok = {"expected_hz": 440.0, "peak_hz": 437.5, "ok": True}
    bad = {"expected_hz": 1000.0, "peak_hz": 0.0, "ok": False}
    one = RungOutcome(rung="own-pois", call_ok=True, audio={"from-target": ok, "to-target": bad})
    assert "only from-target intercepted" in _lab_glitch(one)
    both = RungOutcome(rung="own-pois", call_ok=True, audio={"from-target": ok, "to-target": ok})
    assert _lab_glitch(both) == ""
    nothing = RungOutcome(rung="own-pois", call_ok=True, audio={})  # ciphertext only: a result
    assert _lab_glitch(nothing) == ""
    refused = RungOutcome(rung="mitm-both", failure="the caller's UE gave up before anything")
    assert _lab_glitch(refused) == ""
    relay = RungOutcome(
        rung="mitm-media", failure="media: callee hears the caller: no", media_rekeyed=60
    )
    assert _lab_glitch(relay) != ""
