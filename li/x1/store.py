"""Persistence of an NE's X1 state (tasks and destinations) in SQLite.

Tasks and destinations are stored as their X1 XML (``taskDetails`` / ``destinationDetails``),
so everything the ADMF sent — including the imslab extension and its secrets — survives an NE
restart exactly. The database file is created 0600: it may hold MIKEY secrets lent to the
task. ``":memory:"`` gives a throw-away store for tests.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

from li.x1.model import DestinationDetails, TaskDetails, TaskStatus
from li.x1.xml import (
    decode_destination_details,
    decode_task_details,
    encode_destination_details,
    encode_task_details,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    xid TEXT PRIMARY KEY,
    details BLOB NOT NULL,
    modifications INTEGER NOT NULL DEFAULT 0,
    last_modified TEXT
);
CREATE TABLE IF NOT EXISTS destinations (
    did TEXT PRIMARY KEY,
    details BLOB NOT NULL
);
"""


class X1Store:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
        # used from the X1 server's single worker thread and, at start-up and close, from the
        # event loop's thread -- never at the same time (li.x1.server serialises requests)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    # -- tasks ---------------------------------------------------------------------------
    def get_task(self, xid: uuid.UUID) -> tuple[TaskDetails, TaskStatus] | None:
        row = self.db.execute(
            "SELECT details, modifications, last_modified FROM tasks WHERE xid = ?", (str(xid),)
        ).fetchone()
        if row is None:
            return None
        return decode_task_details(row[0]), TaskStatus(
            number_of_modifications=row[1], time_of_last_modification=row[2]
        )

    def put_task(self, task: TaskDetails, *, modified_at: str, modification: bool) -> None:
        with self.db:
            if modification:
                self.db.execute(
                    "UPDATE tasks SET details = ?, modifications = modifications + 1, "
                    "last_modified = ? WHERE xid = ?",
                    (encode_task_details(task), modified_at, str(task.xid)),
                )
            else:
                self.db.execute(
                    "INSERT INTO tasks (xid, details, modifications, last_modified) "
                    "VALUES (?, ?, 0, ?)",
                    (str(task.xid), encode_task_details(task), modified_at),
                )

    def delete_task(self, xid: uuid.UUID) -> bool:
        with self.db:
            cur = self.db.execute("DELETE FROM tasks WHERE xid = ?", (str(xid),))
        return cur.rowcount > 0

    def delete_all_tasks(self) -> list[uuid.UUID]:
        xids = self.task_ids()
        with self.db:
            self.db.execute("DELETE FROM tasks")
        return xids

    def count(self, table: str) -> int:
        """Rows in ``tasks`` or ``destinations``."""
        if table not in ("tasks", "destinations"):
            raise ValueError(table)
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def task_ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(r[0]) for r in self.db.execute("SELECT xid FROM tasks ORDER BY xid")]

    def tasks(self) -> list[tuple[TaskDetails, TaskStatus]]:
        out = []
        for xid in self.task_ids():
            t = self.get_task(xid)
            if t is not None:
                out.append(t)
        return out

    # -- destinations --------------------------------------------------------------------
    def get_destination(self, did: uuid.UUID) -> DestinationDetails | None:
        row = self.db.execute(
            "SELECT details FROM destinations WHERE did = ?", (str(did),)
        ).fetchone()
        return None if row is None else decode_destination_details(row[0])

    def put_destination(self, dest: DestinationDetails) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO destinations (did, details) VALUES (?, ?)",
                (str(dest.did), encode_destination_details(dest)),
            )

    def delete_destination(self, did: uuid.UUID) -> bool:
        with self.db:
            cur = self.db.execute("DELETE FROM destinations WHERE did = ?", (str(did),))
        return cur.rowcount > 0

    def destination_ids(self) -> list[uuid.UUID]:
        return [
            uuid.UUID(r[0]) for r in self.db.execute("SELECT did FROM destinations ORDER BY did")
        ]

    def destinations(self) -> list[DestinationDetails]:
        out = []
        for did in self.destination_ids():
            d = self.get_destination(did)
            if d is not None:
                out.append(d)
        return out

    def tasks_using(self, did: uuid.UUID) -> list[uuid.UUID]:
        return [t.xid for t, _ in self.tasks() if did in t.dids]
