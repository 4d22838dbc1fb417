"""Private output files for intercept data: directories 0700, files 0600, created that way.

Files are opened with ``os.open(..., 0o600)`` (and ``fchmod`` against a permissive umask) so
there is no window in which another user could open them.
"""

from __future__ import annotations

import json
import os
import struct
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


class PrivateWavWriter:
    """16-bit mono PCM WAV (8 kHz by default) in a 0600 file.

    The header's sizes are patched on :meth:`flush` and :meth:`close` (so a reader sees every
    flushed sample); ``append=True`` continues an existing WAV of the same format (a restarted
    or suspended LEMF call keeps one file per direction), judging its length by the file size,
    so a header left stale by a crash costs nothing.
    """

    def __init__(self, path: Path, rate: int = 8000, *, append: bool = False) -> None:
        self.path = path
        self.rate = rate
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

    def write(self, pcm16le: bytes) -> None:
        self._fh.write(pcm16le)
        self.samples += len(pcm16le) // 2

    def _patch(self) -> None:
        if self._patched == self.samples:
            return
        pos = self._fh.tell()
        self._fh.seek(0)
        self._fh.write(_wav_header(self.rate, self.samples * 2))
        self._fh.seek(pos)
        self._patched = self.samples

    def flush(self) -> None:
        self._patch()
        self._fh.flush()

    def close(self) -> None:
        self._patch()
        self._fh.close()
