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
            "--subnet",
            "127.0.8",
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
    assert "[1/1] psk-public/home ..." in out and "1/1 rows as in the study" in out
    doc = json.loads((tmp_path / "m" / "matrix.json").read_text())
    (row,) = doc["calls"]
    assert row["keys_recovered"] and row["audio_recovered"] and row["reproduced"]
    assert row["needs"] == ["nothing extra"]
    assert "<svg" in (tmp_path / "m" / "matrix.html").read_text()
