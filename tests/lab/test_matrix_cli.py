"""``imslab matrix`` through the CLI dispatcher: listing, one real row, the report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main
from li.study import EXPECTATIONS


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXPECTATIONS)
    assert lines[0].startswith("sdes/home")


@pytest.mark.slow
def test_one_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    rc = main(
        [
            "matrix",
            "--method",
            "psk-public",
            "--scenario",
            "home",
            "--subnet-base",
            "120",
            "--rsa-bits",
            "1024",
            "--media-seconds",
            "0.8",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[1/1] psk-public/home: call ok" in out and "1/1 rows as in the study" in out
    doc = json.loads((tmp_path / "m" / "matrix.json").read_text())
    (row,) = doc["calls"]
    assert row["keys_recovered"] and row["audio_recovered"] and row["reproduced"]
    assert row["needs"] == ["nothing extra"] and row["rung"] == "own-pois"
    assert "<svg" in (tmp_path / "m" / "matrix.html").read_text()


@pytest.mark.slow
def test_a_mismatch_fails_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Withholding the other operators' help: pke-b disagrees with the study, exit 1."""
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    args = [
        "matrix",
        "--method",
        "pke-b",
        "--scenario",
        "home",
        "--withhold",
        "mitm-both",
        "--subnet-base",
        "121",
        "--rsa-bits",
        "1024",
        "--media-seconds",
        "0.8",
        "--out",
        str(tmp_path / "m"),
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "! pke-b/home: lowest rung: study mitm-both, observed none" in out
    assert main([*args, "--allow-mismatch"]) == 0
