"""One suite, both backends (SQLite WAL file, real redis-server): expiry, atomic updates,
restart semantics and namespace isolation must mean the same on each (ims.store)."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from ims.store import Store, StoreError, Write, keep, open_store
from tests.store_backends import Backend

#: wall-clock origin: the Redis backend also asks the server to reclaim records at expires_at
NOW = time.time()


@pytest.fixture(autouse=True)
def _wall_clock_now() -> None:
    """``now`` near the real clock for each test: the Redis server reclaims records at their
    wall-clock ``expires_at``, so a time taken at import would be stale by the later tests."""
    global NOW
    NOW = time.time()


def test_put_get_delete(store: Store) -> None:
    assert store.get("ns", "k", NOW) is None
    store.put("ns", "k", b"\x00value\xff")
    assert store.get("ns", "k", NOW) == b"\x00value\xff"
    store.put("ns", "k", b"second")
    assert store.get("ns", "k", NOW) == b"second"
    assert store.delete("ns", "k") is True
    assert store.delete("ns", "k") is False
    assert store.get("ns", "k", NOW) is None


def test_namespaces_are_isolated(store: Store) -> None:
    store.put("a", "k", b"in a")
    store.put("b", "k", b"in b")
    store.put("ab", "k", b"in ab")
    assert store.get("a", "k", NOW) == b"in a"
    assert [k for k, _ in store.scan("a", NOW)] == ["k"]
    assert store.clear("a") == 1
    assert store.get("b", "k", NOW) == b"in b"
    assert store.get("ab", "k", NOW) == b"in ab"


def test_keys_with_glob_and_separator_characters(store: Store) -> None:
    keys = ["sip:alice@ims.example", "*", "a[1]?", "back\\slash", "ünï"]
    for i, k in enumerate(keys):
        store.put("loc", k, str(i).encode())
    assert dict(store.scan("loc", NOW)) == {k: str(i).encode() for i, k in enumerate(keys)}
    assert [k for k, _ in store.scan("loc", NOW)] == sorted(keys)


def test_bad_namespace_and_long_key_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.put("a:b", "k", b"")
    with pytest.raises(StoreError):
        store.put("", "k", b"")
    with pytest.raises(StoreError):
        store.get("ns", "x" * 5000, NOW)


def test_expiry_is_exact_at_now(store: Store) -> None:
    store.put("ns", "short", b"s", expires_at=NOW + 10)
    store.put("ns", "long", b"l", expires_at=NOW + 100)
    store.put("ns", "never", b"n")
    assert store.get("ns", "short", NOW + 9.999) == b"s"
    assert store.get("ns", "short", NOW + 10) is None  # absent at expires_at, not after
    assert [k for k, _ in store.scan("ns", NOW + 10)] == ["long", "never"]
    assert store.purge("ns", NOW + 10) == 1
    assert store.purge("ns", NOW + 10) == 0
    assert [k for k, _ in store.scan("ns", NOW + 1000)] == ["never"]


def test_server_reclaims_records_at_their_wall_clock_expiry(store: Store) -> None:
    """Both backends hide an expired record from every reader, whatever ``now`` it passes
    afterwards with the real clock (Redis deletes it; SQLite filters it)."""
    store.put("ns", "k", b"v", expires_at=time.time() + 0.2)
    time.sleep(0.4)
    assert store.get("ns", "k", time.time()) is None
    assert list(store.scan("ns", time.time())) == []


def test_update_creates_changes_and_deletes(store: Store) -> None:
    def incr(raw: bytes | None) -> tuple[Write, int]:
        n = 0 if raw is None else int(raw)
        return Write(str(n + 1).encode(), NOW + 50), n + 1

    assert store.update("ctr", "x", NOW, incr) == 1
    assert store.update("ctr", "x", NOW, incr) == 2
    assert store.get("ctr", "x", NOW) == b"2"
    # the update's read honours expiry: an expired record reads as absent
    assert store.update("ctr", "x", NOW + 50, incr) == 1
    assert store.update("ctr", "x", NOW, lambda raw: (Write(None), raw)) == b"1"
    assert store.get("ctr", "x", NOW) is None


def test_update_keep_and_raise_change_nothing(store: Store) -> None:
    store.put("ns", "k", b"orig", expires_at=NOW + 30)
    assert store.update("ns", "k", NOW, lambda raw: (keep, raw)) == b"orig"
    assert store.get("ns", "k", NOW + 29) == b"orig"  # keep also keeps the expiry

    def refuse(raw: bytes | None) -> tuple[Write, None]:
        raise ValueError("checked before anything changes")

    with pytest.raises(ValueError):
        store.update("ns", "k", NOW, refuse)
    assert store.get("ns", "k", NOW) == b"orig"
    # and the store is usable after the aborted transaction
    store.update("ns", "k", NOW, lambda raw: (Write(b"new"), None))
    assert store.get("ns", "k", NOW) == b"new"


def test_concurrent_updates_from_two_connections_lose_nothing(backend: Backend) -> None:
    """Two instances (two connections) incrementing one counter: every increment lands."""
    stores = [backend.open(), backend.open()]
    rounds = 150

    def incr(raw: bytes | None) -> tuple[Write, None]:
        return Write(str((0 if raw is None else int(raw)) + 1).encode()), None

    def worker(s: Store) -> None:
        for _ in range(rounds):
            s.update("ctr", "shared", NOW, incr)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert stores[0].get("ctr", "shared", NOW) == str(2 * rounds).encode()


def test_records_survive_a_reopen_and_a_server_restart(backend: Backend) -> None:
    s = backend.open()
    s.put("tasks", "t1", b"task one")
    s.put("loc", "a", b"binding", expires_at=NOW + 3600)
    s.put("loc", "gone", b"x", expires_at=NOW + 1)
    s.close()
    backend.restart_server()
    again = backend.open()
    assert again.get("tasks", "t1", NOW) == b"task one"
    assert again.get("loc", "a", NOW + 3599) == b"binding"
    assert again.get("loc", "a", NOW + 3600) is None  # the expiry survived too
    assert again.get("loc", "gone", NOW + 1) is None


def test_a_committed_update_survives_a_server_crash(backend: Backend) -> None:
    s = backend.open()
    s.update("lemf", "sender", NOW, lambda raw: (Write(b"seq=41"), None))
    backend.crash_server()  # Redis: SIGKILL; the append-only file was fsynced per write
    assert backend.open().get("lemf", "sender", NOW) == b"seq=41"


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "d" / "s.db"
    s = open_store(f"sqlite://{path}")
    s.put("ns", "k", b"v")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # type: ignore[attr-defined]
    s.close()


def test_open_store_refuses_unknown_and_relative_urls() -> None:
    with pytest.raises(StoreError):
        open_store("mysql://x")
    with pytest.raises(StoreError):
        open_store("sqlite://relative.db")


def test_unreachable_redis_is_a_store_error(tmp_path: object) -> None:
    with pytest.raises(StoreError):
        open_store(f"unix://{tmp_path}/nobody.sock")


def test_update_that_always_conflicts_gives_up(backend: Backend) -> None:
    """Bounded: on Redis an update whose record another writer changes on every attempt fails
    with a StoreError after a counted number of optimistic retries, instead of spinning. (SQLite
    has no such case: its update holds the write lock, another writer waits for it.)"""
    if backend.kind != "redis":
        pytest.skip("SQLite serialises writers with its lock: nothing to retry")
    s, other = backend.open(), backend.open()
    s.put("ns", "hot", b"0")

    def meddle(raw: bytes | None) -> tuple[Write, None]:
        other.put("ns", "hot", str(time.perf_counter_ns()).encode())  # wins every time
        return Write(b"mine"), None

    with pytest.raises(StoreError):
        s.update("ns", "hot", NOW, meddle)
    assert s.get("ns", "hot", NOW) != b"mine"
