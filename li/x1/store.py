"""Persistence of an NE's X1 state (tasks and destinations) in the element store (ims.store).

Tasks and destinations are stored as their X1 XML (``taskDetails`` / ``destinationDetails``),
so everything the ADMF sent — including the imslab extension and its secrets — survives an NE
restart exactly. Each NE has its own two namespaces (``x1-tasks.<ne>``, ``x1-dests.<ne>``),
on either backend: its own SQLite file (0600: it may hold MIKEY secrets lent to the task; the
default, ``X1Store(path)``) or the lab's shared store (``X1Store(store, ne=...)``, e.g. Redis).
A modification is one atomic update (the count cannot be lost between two writers).
``":memory:"`` gives a throw-away store for tests.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import msgspec

from ims.store import Store, Write
from ims.store.sqlite import SqliteStore
from li.x1.model import DestinationDetails, TaskDetails, TaskStatus
from li.x1.xml import (
    decode_destination_details,
    decode_task_details,
    encode_destination_details,
    encode_task_details,
)

#: LI records never expire; a read at -inf sees every record whatever the clock says
_ALWAYS = -math.inf


class _TaskRecord(msgspec.Struct, frozen=True):
    details: str
    modifications: int = 0
    last_modified: str | None = None


class X1Store:
    def __init__(self, store: Store | str | Path = ":memory:", *, ne: str = "ne") -> None:
        self._owned = not isinstance(store, Store)
        self.store: Store = store if isinstance(store, Store) else SqliteStore(store)
        safe = ne.replace(":", "_")
        self._tasks = f"x1-tasks.{safe}"
        self._dests = f"x1-dests.{safe}"
        if isinstance(self.store, SqliteStore):
            self._import_legacy(self.store)

    def _import_legacy(self, sqlite: SqliteStore) -> None:
        """An NE file written before the element store (tables ``tasks``/``destinations``):
        its tasks move into the store once, so none is lost on upgrade."""
        db = sqlite.db
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "tasks" not in names or "destinations" not in names:
            return
        for xid, details, mods, last in db.execute(
            "SELECT xid, details, modifications, last_modified FROM tasks"
        ).fetchall():
            rec = _TaskRecord(
                details=bytes(details).decode(), modifications=mods, last_modified=last
            )
            self.store.put(self._tasks, str(xid), msgspec.json.encode(rec))
        for did, details in db.execute("SELECT did, details FROM destinations").fetchall():
            self.store.put(self._dests, str(did), bytes(details))
        db.execute("DROP TABLE tasks")
        db.execute("DROP TABLE destinations")

    def close(self) -> None:
        if self._owned:
            self.store.close()

    # -- tasks ---------------------------------------------------------------------------
    def get_task(self, xid: uuid.UUID) -> tuple[TaskDetails, TaskStatus] | None:
        raw = self.store.get(self._tasks, str(xid), _ALWAYS)
        if raw is None:
            return None
        rec = msgspec.json.decode(raw, type=_TaskRecord)
        return decode_task_details(rec.details.encode()), TaskStatus(
            number_of_modifications=rec.modifications, time_of_last_modification=rec.last_modified
        )

    def put_task(self, task: TaskDetails, *, modified_at: str, modification: bool) -> None:
        details = encode_task_details(task).decode()

        def change(raw: bytes | None) -> tuple[Write, None]:
            count = 0
            if modification and raw is not None:
                count = msgspec.json.decode(raw, type=_TaskRecord).modifications + 1
            rec = _TaskRecord(details=details, modifications=count, last_modified=modified_at)
            return Write(msgspec.json.encode(rec)), None

        self.store.update(self._tasks, str(task.xid), _ALWAYS, change)

    def delete_task(self, xid: uuid.UUID) -> bool:
        return self.store.delete(self._tasks, str(xid))

    def delete_all_tasks(self) -> list[uuid.UUID]:
        xids = self.task_ids()
        for xid in xids:
            self.store.delete(self._tasks, str(xid))
        return xids

    def count(self, table: str) -> int:
        """Rows in ``tasks`` or ``destinations``."""
        if table not in ("tasks", "destinations"):
            raise ValueError(table)
        ns = self._tasks if table == "tasks" else self._dests
        return sum(1 for _ in self.store.scan(ns, _ALWAYS))

    def task_ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(k) for k, _ in self.store.scan(self._tasks, _ALWAYS)]

    def tasks(self) -> list[tuple[TaskDetails, TaskStatus]]:
        out = []
        for xid in self.task_ids():
            t = self.get_task(xid)
            if t is not None:
                out.append(t)
        return out

    # -- destinations --------------------------------------------------------------------
    def get_destination(self, did: uuid.UUID) -> DestinationDetails | None:
        raw = self.store.get(self._dests, str(did), _ALWAYS)
        return None if raw is None else decode_destination_details(raw)

    def put_destination(self, dest: DestinationDetails) -> None:
        self.store.put(self._dests, str(dest.did), encode_destination_details(dest))

    def delete_destination(self, did: uuid.UUID) -> bool:
        return self.store.delete(self._dests, str(did))

    def destination_ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(k) for k, _ in self.store.scan(self._dests, _ALWAYS)]

    def destinations(self) -> list[DestinationDetails]:
        out = []
        for did in self.destination_ids():
            d = self.get_destination(did)
            if d is not None:
                out.append(d)
        return out

    def tasks_using(self, did: uuid.UUID) -> list[uuid.UUID]:
        return [t.xid for t, _ in self.tasks() if did in t.dids]
