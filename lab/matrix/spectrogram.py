"""A spectrogram of recovered audio as a PNG, in plain Python (no numpy on the lab machines).

Short-time Fourier transform: Hann window of ``n`` samples (a power of two), hop ``n``, radix-2
FFT, magnitude in dB clipped to a 60 dB range, rendered with frequency upward. The PNG encoder is
the minimum of RFC 2083 (8-bit greyscale, filter 0, one IDAT) so the HTML report stays
self-contained (base64 ``data:`` URI).
"""

from __future__ import annotations

import cmath
import math
import struct
import zlib
from array import array


def _fft(x: list[complex]) -> list[complex]:
    """Iterative radix-2 Cooley-Tukey; ``len(x)`` must be a power of two."""
    n = len(x)
    a = list(x)
    j = 0
    for i in range(1, n):  # bit-reversal permutation
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            a[i], a[j] = a[j], a[i]
    size = 2
    while size <= n:
        w_step = cmath.exp(-2j * math.pi / size)
        half = size // 2
        for start in range(0, n, size):
            w = 1 + 0j
            for k in range(start, start + half):
                t = w * a[k + half]
                a[k + half] = a[k] - t
                a[k] = a[k] + t
                w *= w_step
        size *= 2
    return a


def spectrogram(
    pcm16le: bytes, *, n: int = 256, max_frames: int = 400, overlap: bool = True
) -> list[list[float]]:
    """Frames x (n/2) magnitudes in dB of 16-bit little-endian mono PCM (hop n/2 by default)."""
    if n & (n - 1):
        raise ValueError("n must be a power of two")
    samples = array("h")
    samples.frombytes(pcm16le[: len(pcm16le) // 2 * 2])
    window = [0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1)) for i in range(n)]
    frames: list[list[float]] = []
    hop = n // 2 if overlap else n
    starts = range(0, max(0, len(samples) - n + 1), hop)
    step = max(1, math.ceil(len(starts) / max_frames))
    for start in starts[::step]:
        chunk = samples[start : start + n]
        spec = _fft([complex(chunk[i] * window[i]) for i in range(n)])
        frames.append([20 * math.log10(abs(c) + 1e-9) for c in spec[: n // 2]])
    return frames


def png_gray(rows: list[bytes], width: int) -> bytes:
    """An 8-bit greyscale PNG of ``rows`` (top first)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack("!I", len(data)) + body + struct.pack("!I", zlib.crc32(body))

    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack("!IIBBBBB", width, len(rows), 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def spectrogram_png(pcm16le: bytes, *, n: int = 256, scale: int = 2) -> bytes:
    """Spectrogram PNG: time to the right, 0..4 kHz upward, darker = louder (60 dB range)."""
    frames = spectrogram(pcm16le, n=n, overlap=scale > 1) or [[-180.0] * (n // 2)]
    top = max(max(f) for f in frames)
    rows: list[bytes] = []
    for b in range(n // 2 - 1, -1, -1):
        row = bytearray()
        for f in frames:
            level = max(0.0, min(1.0, (f[b] - (top - 60.0)) / 60.0))
            row += bytes([255 - int(level * 255)]) * (2 * scale)
        rows.extend([bytes(row)] * scale)
    return png_gray(rows, len(frames) * 2 * scale)


def peak_frequency(pcm16le: bytes, *, rate: int = 8000, n: int = 256) -> float:
    """Frequency (Hz) of the strongest bin averaged over all frames; 0.0 for no audio."""
    frames = spectrogram(pcm16le, n=n, overlap=False)
    if not frames:
        return 0.0
    power = [sum(10 ** (f[b] / 10) for f in frames) for b in range(n // 2)]
    best = max(range(1, n // 2), key=power.__getitem__)
    return best * rate / n
