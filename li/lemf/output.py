"""Private output files for intercept data: directories 0700, files 0600, created that way.

Files are opened with ``os.open(..., 0o600)`` (and ``fchmod`` against a permissive umask) so
there is no window in which another user could open them.
"""

from __future__ import annotations

import json
import os
import wave
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


class PrivateWavWriter:
    """16-bit mono PCM WAV (8 kHz by default) in a 0600 file."""

    def __init__(self, path: Path, rate: int = 8000) -> None:
        self.path = path
        self._fh = open_private(path, "wb")
        self._wav = wave.open(self._fh, "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self.samples = 0

    def write(self, pcm16le: bytes) -> None:
        self._wav.writeframes(pcm16le)
        self.samples += len(pcm16le) // 2

    def flush(self) -> None:
        # wave updates the header sizes on close only; flushing the data is still useful.
        self._fh.flush()

    def close(self) -> None:
        self._wav.close()
        self._fh.close()
