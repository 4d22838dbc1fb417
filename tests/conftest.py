"""Suite-wide fixtures: paths to the shared conformance vectors and peer-availability checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ims.store import Store
from tests import store_backends

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


# ims.store's two backends (SQLite file, a real redis-server), for every suite that must hold
# on both: ``backend`` opens stores on one location and restarts what holds the data
backend = pytest.fixture(params=["sqlite", "redis"])(store_backends.backend_fixture)


@pytest.fixture
def store(backend: store_backends.Backend) -> Store:
    return backend.open()
