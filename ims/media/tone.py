"""Tone detection with the Goertzel algorithm (one DFT bin per frequency of interest).

Tests use it to prove that audio crossed the network intact: a 440 Hz tone sent one way and a
1 kHz tone the other must show up, each clearly above the other's bin and the total energy.
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence


def _samples(pcm: bytes) -> array.array[int]:
    a = array.array("h")
    a.frombytes(pcm[: len(pcm) & ~1])
    return a


def goertzel_power(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """Normalised power of ``freq`` in 16-bit LE PCM (≈ amplitude²/4 for a pure tone)."""
    x = _samples(pcm)
    n = len(x)
    if n == 0:
        return 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power / (n * n)


def energy(pcm: bytes) -> float:
    """Mean square of the samples."""
    x = _samples(pcm)
    return sum(v * v for v in x) / len(x) if x else 0.0


def tone_ratio(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """Share of the signal energy in the ``freq`` bin (1.0 ≈ a pure tone)."""
    e = energy(pcm)
    return 0.0 if e == 0 else 2.0 * goertzel_power(pcm, freq, rate) / e


def detect_tone(pcm: bytes, freq: float, rate: int = 8000, *, min_ratio: float = 0.5) -> bool:
    """True when most of the energy of ``pcm`` sits at ``freq``."""
    return tone_ratio(pcm, freq, rate) >= min_ratio


def dominant_tone(pcm: bytes, candidates: Sequence[float], rate: int = 8000) -> float:
    """The candidate frequency with the most power."""
    return max(candidates, key=lambda f: goertzel_power(pcm, f, rate))
