"""The SRTP relay benchmark still runs (tiny rates, so it is a smoke test, not a measurement)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_bench_srtp_relay_smoke() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_srtp_relay.py"),
            "--rates",
            "2000",
            "--seconds",
            "0.5",
            "--repeat",
            "1",
            "--modes",
            "protect",
            "unprotect",
            "--no-micro",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("uvloop")]
    assert [r[1] for r in rows] == ["protect", "unprotect"]
    for r in rows:
        assert int(r[5]) >= 990  # (nearly) all 1000 packets (2000 pps x 0.5 s) got through
