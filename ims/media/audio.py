"""Audio sources and sinks for 8 kHz G.711 media: 16-bit signed little-endian mono PCM.

Sources hand out fixed-size frames (160 samples = 20 ms at 8 kHz) with ``read(samples)``;
sinks take decoded frames with ``write(pcm)``. The tone generator keeps its phase across
frames so a 440 Hz tone stays clean over packet boundaries (the Goertzel detector in
:mod:`ims.media.tone` relies on it). WAV files go through the stdlib ``wave`` module.
"""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path
from types import TracebackType
from typing import Protocol

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms


class AudioSource(Protocol):
    def read(self, samples: int = FRAME_SAMPLES) -> bytes: ...


class AudioSink(Protocol):
    def write(self, pcm: bytes) -> None: ...


class SilenceSource:
    def read(self, samples: int = FRAME_SAMPLES) -> bytes:
        return bytes(2 * samples)


class ToneSource:
    """A sine tone, phase-continuous across reads."""

    def __init__(self, freq_hz: float, *, amplitude: int = 8000, rate: int = RATE) -> None:
        if not 0 < amplitude <= 32767:
            raise ValueError("amplitude must be 1..32767")
        self.freq = freq_hz
        self.amplitude = amplitude
        self.rate = rate
        self._n = 0

    def read(self, samples: int = FRAME_SAMPLES) -> bytes:
        w = 2 * math.pi * self.freq / self.rate
        start = self._n
        self._n += samples
        out = array.array(
            "h", (int(self.amplitude * math.sin(w * (start + i))) for i in range(samples))
        )
        return out.tobytes()


def read_wav(path: str | Path) -> tuple[int, bytes]:
    """(sample rate, 16-bit LE mono PCM) of a WAV file; only 16-bit mono is accepted."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono WAV")
        return w.getframerate(), w.readframes(w.getnframes())


class WavSource:
    """Frames from an 8 kHz 16-bit mono WAV file; silence (or a loop) after the end."""

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        rate, pcm = read_wav(path)
        if rate != RATE:
            raise ValueError(f"{path}: sample rate {rate}, need {RATE}")
        self.pcm = pcm
        self.loop = loop
        self._pos = 0

    def read(self, samples: int = FRAME_SAMPLES) -> bytes:
        want = 2 * samples
        out = self.pcm[self._pos : self._pos + want]
        self._pos += len(out)
        while len(out) < want:
            if self.loop and self.pcm:
                self._pos = 0
                chunk = self.pcm[: want - len(out)]
                self._pos = len(chunk)
                out += chunk
            else:
                out += bytes(want - len(out))
        return out


class WavWriter:
    """Write 16-bit mono PCM frames to a WAV file (a context manager)."""

    def __init__(self, path: str | Path, *, rate: int = RATE) -> None:
        self._w = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(rate)
        self.samples = 0

    def write(self, pcm: bytes) -> None:
        self._w.writeframes(pcm)
        self.samples += len(pcm) // 2

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BufferSink:
    """Keeps every written frame in memory (tests, tone detection)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, pcm: bytes) -> None:
        self.chunks.append(pcm)

    @property
    def pcm(self) -> bytes:
        return b"".join(self.chunks)
