"""The NE's X1 store on both element-store backends (ims.store): tasks and destinations, with
their secrets, survive a restart; a modification is counted once per ModifyTask even from two
writers; NEs on one shared store never see each other's tasks; an NE file from before the
element store has its tasks imported, not lost."""

from __future__ import annotations

import sqlite3
import stat
import threading
import uuid
from pathlib import Path

from li.x1.handler import DestinationCreated, TaskActivated, X1Event, X1Handler
from li.x1.store import X1Store
from li.x1.xml import encode_destination_details, encode_task_details
from tests.li.x1.test_x1 import DID, XID, dest, task
from tests.store_backends import Backend


def test_tasks_and_destinations_survive_a_restart(backend: Backend) -> None:
    s = X1Store(backend.open(), ne="pcscf-a")
    s.put_destination(dest())
    s.put_task(task(), modified_at="2026-01-01T00:00:00Z", modification=False)
    backend.restart_server()
    again = X1Store(backend.open(), ne="pcscf-a")
    got = again.get_task(XID)
    assert got is not None
    details, status = got
    assert details == task()  # every field, the imslab extension and its secrets included
    assert status.number_of_modifications == 0
    assert again.destinations() == [dest()]
    assert again.tasks_using(DID) == [XID]
    events: list[X1Event] = []
    X1Handler(again, ne_id="pcscf-a", listener=events.append).replay()
    assert [type(e) for e in events] == [DestinationCreated, TaskActivated]


def test_nes_on_one_store_are_separate(backend: Backend) -> None:
    shared = backend.open()
    a, b = X1Store(shared, ne="scscf-a"), X1Store(shared, ne="scscf-b")
    a.put_task(task(), modified_at="t0", modification=False)
    assert b.task_ids() == [] and b.count("tasks") == 0
    assert a.count("tasks") == 1
    assert b.delete_all_tasks() == []
    assert a.task_ids() == [XID]


def test_modifications_from_two_writers_are_all_counted(backend: Backend) -> None:
    X1Store(backend.open(), ne="ne").put_task(task(), modified_at="t0", modification=False)
    writers = [X1Store(backend.open(), ne="ne") for _ in range(2)]
    rounds = 40

    def modify(s: X1Store) -> None:
        for i in range(rounds):
            s.put_task(task(), modified_at=f"t{i}", modification=True)

    threads = [threading.Thread(target=modify, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    got = writers[0].get_task(XID)
    assert got is not None and got[1].number_of_modifications == 2 * rounds


def test_an_ne_file_from_before_the_element_store_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "ne" / "x1.sqlite"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE tasks (xid TEXT PRIMARY KEY, details BLOB NOT NULL,"
        " modifications INTEGER NOT NULL DEFAULT 0, last_modified TEXT);"
        "CREATE TABLE destinations (did TEXT PRIMARY KEY, details BLOB NOT NULL);"
    )
    db.execute(
        "INSERT INTO tasks VALUES (?, ?, 3, 'then')", (str(XID), encode_task_details(task()))
    )
    db.execute(
        "INSERT INTO destinations VALUES (?, ?)", (str(DID), encode_destination_details(dest()))
    )
    db.commit()
    db.close()
    s = X1Store(path, ne="pcscf-a")
    got = s.get_task(XID)
    assert got is not None and got[0] == task() and got[1].number_of_modifications == 3
    assert s.get_destination(DID) == dest()
    s.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # imported once: the legacy tables are gone, the records stay
    again = X1Store(path, ne="pcscf-a")
    assert again.task_ids() == [XID]
    assert again.get_task(uuid.UUID(int=1)) is None
