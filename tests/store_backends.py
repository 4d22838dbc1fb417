"""Both store backends, for one parametrised suite: SQLite on a file in WAL mode, and Redis on a
real ``redis-server`` this fixture starts (unix socket in the test's tmp dir, append-only file)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ims.store import Store, open_store
from lab.redisd import RedisServer


class Backend:
    """Opens stores on one location and restarts what holds the data."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.opened: list[Store] = []
        self.server: RedisServer | None = None
        if kind == "redis":
            if shutil.which("redis-server") is None:
                pytest.skip("redis-server is not installed (./dev.sh setup installs it)")
            self.server = RedisServer(tmp / "redis")
            self.server.start()
            self.url = self.server.url
        else:
            self.url = f"sqlite://{tmp / 'state' / 'store.db'}"

    def open(self) -> Store:
        store = open_store(self.url)
        self.opened.append(store)
        return store

    def restart_server(self) -> None:
        """Redis: restart the server (SIGTERM, start again); SQLite: nothing holds the data
        but the file."""
        if self.server is not None:
            self.server.restart()

    def crash_server(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.start()

    def close(self) -> None:
        for s in self.opened:
            try:
                s.close()
            except Exception:
                pass
        if self.server is not None:
            self.server.stop()


def backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path)
    yield b
    b.close()
