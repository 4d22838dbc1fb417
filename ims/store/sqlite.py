"""The embedded backend: one SQLite database file in WAL mode.

What ``imslab demo`` and ``imslab up`` use with no set-up. Several processes on one host may
open the same file (WAL: readers never block the writer); :meth:`SqliteStore.update` takes the
write lock first (``BEGIN IMMEDIATE``), so two instances updating one record run one after the
other, never interleaved. The file is created 0600 in a 0700 directory: it holds LI tasks and
the secrets lent to them. ``":memory:"`` is a private, throw-away database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ims.store.base import Store, StoreError, Write, check_key, keep

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires_at REAL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
"""

#: how long a writer waits for another process's write lock before failing
BUSY_TIMEOUT_MS = 5000


class SqliteStore(Store):
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).resolve())
        self.url = f"sqlite://{self.path}"
        if self.path != ":memory:":
            p = Path(self.path)
            if not p.parent.exists():
                p.parent.mkdir(parents=True, mode=0o700)
            fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
        # one connection per store, shared by threads (the X1 server's worker and the event
        # loop) under a lock; autocommit, with explicit transactions where atomicity matters
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(
                self.path,
                check_same_thread=False,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode = WAL")
                # WAL + NORMAL: a committed update survives a process crash; only a power loss
                # may drop the last transactions (the record is then as before, never torn)
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc

    def get(self, ns: str, key: str, now: float) -> bytes | None:
        check_key(ns, key)
        with self._lock:
            row = self.db.execute(
                "SELECT value FROM records WHERE ns = ? AND key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (ns, key, now),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, ns: str, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        check_key(ns, key)
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO records (ns, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (ns, key, value, expires_at),
            )

    def delete(self, ns: str, key: str) -> bool:
        check_key(ns, key)
        with self._lock:
            cur = self.db.execute("DELETE FROM records WHERE ns = ? AND key = ?", (ns, key))
        return cur.rowcount > 0

    def update(
        self, ns: str, key: str, now: float, fn: Callable[[bytes | None], tuple[Write, T]]
    ) -> T:
        check_key(ns, key)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute(
                    "SELECT value FROM records WHERE ns = ? AND key = ? "
                    "AND (expires_at IS NULL OR expires_at > ?)",
                    (ns, key, now),
                ).fetchone()
                write, result = fn(None if row is None else bytes(row[0]))
                if write is not keep:
                    self._apply(ns, key, write)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return result

    def _apply(self, ns: str, key: str, write: Write) -> None:
        if write.value is None:
            self.db.execute("DELETE FROM records WHERE ns = ? AND key = ?", (ns, key))
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO records (ns, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (ns, key, write.value, write.expires_at),
            )

    def scan(self, ns: str, now: float) -> Iterator[tuple[str, bytes]]:
        check_key(ns, "")
        with self._lock:
            rows = self.db.execute(
                "SELECT key, value FROM records WHERE ns = ? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
                (ns, now),
            ).fetchall()
        return iter([(str(k), bytes(v)) for k, v in rows])

    def purge(self, ns: str, now: float) -> int:
        check_key(ns, "")
        with self._lock:
            cur = self.db.execute(
                "DELETE FROM records WHERE ns = ? AND expires_at IS NOT NULL AND expires_at <= ?",
                (ns, now),
            )
        return cur.rowcount

    def clear(self, ns: str) -> int:
        check_key(ns, "")
        with self._lock:
            cur = self.db.execute("DELETE FROM records WHERE ns = ?", (ns,))
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self.db.close()
