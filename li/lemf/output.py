"""Private output files for intercept data: directories 0700, files 0600, created that way.

Files are opened with ``os.open(..., 0o600)`` (and ``fchmod`` against a permissive umask) so
there is no window in which another user could open them.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def open_private(path: Path, mode: str = "wb", *, buffering: int = -1) -> IO[Any]:
    """Open ``path`` for writing (truncate) or appending (``"ab"``/``"a"``) as 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, buffering=buffering)


def write_json_private(path: Path, obj: object) -> None:
    """Atomically replace ``path`` with ``obj`` as pretty JSON (0600)."""
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)


class JsonlWriter:
    """Append JSON objects one per line to a 0600 file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open_private(path, "a")
        self.count = 0

    def write(self, obj: object) -> None:
        self._fh.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
        self.count += 1

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


_WAV_HEADER = 44  # RIFF/WAVE, a 16-byte PCM fmt chunk, then the data chunk


def _wav_header(rate: int, data_bytes: int) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def wav_appendable(path: Path, rate: int = 8000) -> bool:
    """True when ``path`` is a WAV this writer made (16-bit mono PCM at ``rate``, canonical
    44-byte header), so :class:`PrivateWavWriter` can continue it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_WAV_HEADER)
    except OSError:
        return False
    return (
        len(head) == _WAV_HEADER
        and head[:4] == b"RIFF"
        and head[8:40] == _wav_header(rate, 0)[8:40]
    )


def repair_wav(path: Path) -> bool:
    """Make the header of a WAV this writer made agree with the file's length (a crash, or a
    LEMF killed between two header patches, leaves it short). True when it was changed."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size < _WAV_HEADER:
        return False
    rate = 8000
    with open(path, "rb") as fh:
        head = fh.read(_WAV_HEADER)
    if head[:4] != b"RIFF" or head[8:16] != b"WAVEfmt ":
        return False
    rate = struct.unpack("<I", head[24:28])[0]
    if not wav_appendable(path, rate):
        return False
    data = (size - _WAV_HEADER) & ~1
    want = _wav_header(rate, data)
    if head == want:
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, want, 0)
    finally:
        os.close(fd)
    return True


def repair_wavs(directory: Path) -> int:
    """:func:`repair_wav` on every ``*.wav`` below ``directory``; how many were repaired."""
    return sum(repair_wav(p) for p in directory.rglob("*.wav") if p.is_file())


HEADER_PATCH_INTERVAL = 1.0  # seconds: the longest a player may see a stale header


class PrivateWavWriter:
    """16-bit mono PCM WAV (8 kHz by default) in a 0600 file.

    The file is valid at all times (issue 11): the header's sizes are patched -- and the
    data flushed to the file -- at least every ``HEADER_PATCH_INTERVAL`` while audio flows
    (:meth:`write`), on :meth:`idle` (the LEMF calls it once a second), :meth:`flush` and
    :meth:`close`; a header left stale by a crash is repaired when a LEMF starts
    (:func:`repair_wavs`). ``append=True`` continues an existing WAV of the same format (a
    restarted or suspended LEMF call keeps one file per direction), judging its length by the
    file size.
    """

    def __init__(
        self,
        path: Path,
        rate: int = 8000,
        *,
        append: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.rate = rate
        self.monotonic = monotonic
        if append and wav_appendable(path, rate):
            fd = os.open(path, os.O_RDWR)
            os.fchmod(fd, 0o600)
            self._fh: IO[bytes] = os.fdopen(fd, "r+b")
            size = self._fh.seek(0, os.SEEK_END)
            data = (size - _WAV_HEADER) & ~1
            self._fh.truncate(_WAV_HEADER + data)
            self._fh.seek(_WAV_HEADER + data)
            self.samples = data // 2
        else:
            self._fh = open_private(path, "wb")
            self._fh.write(_wav_header(rate, 0))
            self.samples = 0
        self._patched = -1
        self._patched_at = monotonic()

    def write(self, pcm16le: bytes) -> None:
        self._fh.write(pcm16le)
        self.samples += len(pcm16le) // 2
        if self.monotonic() - self._patched_at >= HEADER_PATCH_INTERVAL:
            self.flush()

    def idle(self) -> None:
        """Audio may have paused: make the header and the file agree now."""
        if self._patched != self.samples:
            self.flush()

    def _patch(self) -> None:
        if self._patched == self.samples:
            return
        pos = self._fh.tell()
        self._fh.seek(0)
        self._fh.write(_wav_header(self.rate, self.samples * 2))
        self._fh.seek(pos)
        self._patched = self.samples
        self._patched_at = self.monotonic()

    def flush(self) -> None:
        self._patch()
        self._fh.flush()

    def close(self) -> None:
        self._patch()
        self._fh.close()
