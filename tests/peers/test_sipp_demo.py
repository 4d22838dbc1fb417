"""`imslab demo sipp-proxy` runs end to end: SIPp calls through the in-process proxy, PASS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import require_tool

pytestmark = [pytest.mark.peer]


def test_demo_sipp_proxy_passes() -> None:
    require_tool("sipp")
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from lab.cli import main; sys.exit(main())",
         "demo", "sipp-proxy", "--sipp-calls", "50", "--sipp-rate", "50"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "UAC: 50 calls completed, 0 failed" in out.stdout
    assert out.stdout.rstrip().endswith("PASS")
