"""The LEMF duplicate filter (li.lemf.dedup): proof-based, per sender, bounded, persistent."""

from __future__ import annotations

from pathlib import Path

from li.lemf.dedup import NAMESPACE, DuplicateFilter, Verdict, _encode, digest
from tests.store_backends import Backend


def test_only_identical_bytes_are_duplicates() -> None:
    f = DuplicateFilter(window=8)
    a, b = digest(b"pdu-a"), digest(b"pdu-b")
    assert f.check("s|x", 5, a).verdict is Verdict.NEW
    f.stored("s|x", 5, a)
    assert f.check("s|x", 5, a).verdict is Verdict.DUPLICATE
    assert f.check("s|x", 5, b).verdict is Verdict.CONFLICT
    assert f.check("other|x", 5, a).verdict is Verdict.NEW  # per sender
    seen = f.check("s|x", 9, b)
    assert seen.verdict is Verdict.NEW and seen.gap == (6, 9)
    f.stored("s|x", 1 << 30, b)  # a jump far ahead ...
    assert f.check("s|x", 6, a).verdict is Verdict.NEW  # ... never makes the stream "behind"
    f.stored("s|x", 6, a)
    # the window: slot 14 % 8 == 6 overwrites 6; 6 is then unknown, so stored again, not lost
    f.stored("s|x", 14, b)
    assert f.check("s|x", 6, a).verdict is Verdict.NEW


def test_bounded_streams_and_persistence(tmp_path: Path) -> None:
    f = DuplicateFilter(tmp_path / "d", window=16, max_streams=3)
    for i in range(10):
        f.stored(f"s{i}|x", 1, digest(b"x"))
    assert len(f) == 3 and f.evicted == 7
    f.save()
    assert f.store is not None and len(list(f.store.scan(NAMESPACE, 0.0))) == 3  # evicted: gone
    for p in (tmp_path / "d").iterdir():
        assert p.stat().st_mode & 0o077 == 0
    f.close()
    g = DuplicateFilter(tmp_path / "d", window=16, max_streams=3)
    assert g.check("s9|x", 1, digest(b"x")).verdict is Verdict.DUPLICATE
    assert g.check("s0|x", 1, digest(b"x")).verdict is Verdict.NEW  # evicted: stored again


def test_stream_files_of_the_earlier_format_are_imported(tmp_path: Path) -> None:
    """A LEMF restarted on this version still recognises PDUs stored before the upgrade."""
    old = tmp_path / "d"
    old.mkdir()
    f = DuplicateFilter(window=16)
    f.stored("tls:poi-a|x", 7, digest(b"pdu"))
    key = "tls:poi-a|x"
    (old / "0123.dedup").write_bytes(_encode(key, f._streams[key]))
    g = DuplicateFilter(old, window=16)
    assert g.check(key, 7, digest(b"pdu")).verdict is Verdict.DUPLICATE
    assert not list(old.glob("*.dedup"))  # moved into the store


def test_delivery_state_on_both_backends_survives_a_restart(backend: Backend) -> None:
    f = DuplicateFilter(backend.open(), window=16)
    f.stored("tls:poi-a|x", 1, digest(b"one"))
    f.stored("tls:poi-a|x", 2, digest(b"two"))
    f.save()
    backend.restart_server()
    g = DuplicateFilter(backend.open(), window=16)
    assert g.check("tls:poi-a|x", 2, digest(b"two")).verdict is Verdict.DUPLICATE
    assert g.check("tls:poi-a|x", 2, digest(b"forged")).verdict is Verdict.CONFLICT
    assert g.check("tls:poi-a|x", 5, digest(b"five")).gap == (3, 5)
