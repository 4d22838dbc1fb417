"""Suite-wide fixtures: paths to the shared conformance vectors and peer-availability checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONFORMANCE = SHARED / "conformance"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip(f"shared conformance vectors not found at {CONFORMANCE}")
    return CONFORMANCE


def require_tool(name: str) -> str:
    """Path of an external peer program; skip the test (with the reason) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (./dev.sh setup installs it)")
    return path
