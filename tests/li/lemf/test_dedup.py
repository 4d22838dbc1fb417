"""The LEMF duplicate filter (li.lemf.dedup): proof-based, per sender, bounded, persistent."""

from __future__ import annotations

from pathlib import Path

from li.lemf.dedup import DuplicateFilter, Verdict, digest


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
    assert len(list((tmp_path / "d").glob("*.dedup"))) <= 3
    for p in (tmp_path / "d").iterdir():
        assert p.stat().st_mode & 0o077 == 0
    g = DuplicateFilter(tmp_path / "d", window=16, max_streams=3)
    assert g.check("s9|x", 1, digest(b"x")).verdict is Verdict.DUPLICATE
    assert g.check("s0|x", 1, digest(b"x")).verdict is Verdict.NEW  # evicted: stored again
