"""G.711 µ-law (PCMU) and A-law (PCMA) by lookup table (ITU-T G.711; the classic
Sun ``g711.c`` segment algorithm computes the tables once at import).

PCM is 16-bit signed little-endian mono, the format of :mod:`ims.media.audio`. Encoding goes
through a 65536-entry table indexed by the unsigned 16-bit sample, decoding through a 256-entry
table, so both directions are one ``bytes.translate``-style lookup per sample.
"""

from __future__ import annotations

import array
import sys

_BIAS = 0x84


def _linear_to_ulaw(sample: int) -> int:
    pcm = sample >> 2  # µ-law works on 14-bit values
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + (_BIAS >> 2)
    seg = 0
    ends = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
    while seg < 8 and pcm > ends[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask


def _ulaw_to_linear(u: int) -> int:
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t <<= (u & 0x70) >> 4
    return (_BIAS - t) if u & 0x80 else (t - _BIAS)


def _linear_to_alaw(sample: int) -> int:
    pcm = sample >> 3  # A-law works on 13-bit magnitudes
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = 0
    ends = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
    while seg < 8 and pcm > ends[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def _alaw_to_linear(a: int) -> int:
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if a & 0x80 else -t


def _sample(i: int) -> int:
    return i - 65536 if i >= 32768 else i


_ULAW_ENC = bytes(_linear_to_ulaw(_sample(i)) for i in range(65536))
_ALAW_ENC = bytes(_linear_to_alaw(_sample(i)) for i in range(65536))
_ULAW_DEC = array.array("h", (_ulaw_to_linear(u) for u in range(256)))
_ALAW_DEC = array.array("h", (_alaw_to_linear(a) for a in range(256)))
_BIG = sys.byteorder == "big"


def _samples_u16(pcm: bytes) -> array.array[int]:
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of bytes")
    a = array.array("H")
    a.frombytes(pcm)
    if _BIG:  # pragma: no cover - little-endian hosts
        a.byteswap()
    return a


def _encode(pcm: bytes, table: bytes) -> bytes:
    return bytes(table[s] for s in _samples_u16(pcm))


def _sample_planes(table: array.array[int]) -> tuple[bytes, bytes]:
    """Two ``bytes.translate`` tables: each code's low and high byte of its 16-bit
    little-endian sample. Decoding is then two translates and two slice assignments
    into the output (all in C), ~8x faster than a ``join`` of per-code byte strings
    (the LEMF decodes every intercepted packet, issue 19)."""
    out = array.array("h", table)
    if _BIG:  # pragma: no cover - little-endian hosts
        out.byteswap()
    raw = out.tobytes()
    return raw[0::2], raw[1::2]


_ULAW_PLANES = _sample_planes(_ULAW_DEC)
_ALAW_PLANES = _sample_planes(_ALAW_DEC)


def _decode(data: bytes, planes: tuple[bytes, bytes]) -> bytes:
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(planes[0])
    out[1::2] = data.translate(planes[1])
    return bytes(out)


def ulaw_encode(pcm: bytes) -> bytes:
    return _encode(pcm, _ULAW_ENC)


def ulaw_decode(data: bytes) -> bytes:
    return _decode(data, _ULAW_PLANES)


def alaw_encode(pcm: bytes) -> bytes:
    return _encode(pcm, _ALAW_ENC)


def alaw_decode(data: bytes) -> bytes:
    return _decode(data, _ALAW_PLANES)


ENCODERS = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
PAYLOAD_TYPES = {0: "PCMU", 8: "PCMA"}
