"""A bounds-checked big-endian byte buffer shared by the binary codecs (MIKEY, RTP, X2/X3).

Modelled on aioquic's ``Buffer``: ``pull_*`` read and advance, ``push_*`` append. Every read
checks that the bytes are present and raises :class:`BufferReadError` (a ``DecodeError``)
otherwise, so a truncated or lying length field can never read past the data.
"""

from __future__ import annotations

import struct

from ims.errors import DecodeError, EncodeError

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class BufferReadError(DecodeError):
    """A read past the end of the buffer: the input is truncated or a length lies."""


class Buffer:
    """Read from ``data`` or write into a growing buffer (when ``data`` is omitted)."""

    __slots__ = ("_data", "_pos", "_out")

    def __init__(self, data: bytes | None = None) -> None:
        self._data = b"" if data is None else bytes(data)
        self._pos = 0
        self._out = bytearray()

    # -- reading -------------------------------------------------------------------------
    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def eof(self) -> bool:
        return self._pos >= len(self._data)

    def _take(self, n: int) -> bytes:
        if n < 0:
            raise BufferReadError(f"negative length {n}", offset=self._pos)
        end = self._pos + n
        if end > len(self._data):
            raise BufferReadError(
                f"need {n} bytes, {len(self._data) - self._pos} left", offset=self._pos
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def pull_bytes(self, n: int) -> bytes:
        return self._take(n)

    def pull_uint8(self) -> int:
        return self._take(1)[0]

    def pull_uint16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def pull_uint24(self) -> int:
        return int.from_bytes(self._take(3), "big")

    def pull_uint32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def pull_uint64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def pull_rest(self) -> bytes:
        return self._take(self.remaining)

    def peek_uint8(self) -> int:
        if self._pos >= len(self._data):
            raise BufferReadError("need 1 byte, 0 left", offset=self._pos)
        return self._data[self._pos]

    def expect_end(self, what: str = "message") -> None:
        """Raise unless every byte was consumed (decoders must consume exactly all bytes)."""
        if not self.eof():
            raise BufferReadError(f"{self.remaining} trailing bytes after {what}", offset=self._pos)

    # -- writing -------------------------------------------------------------------------
    def push_bytes(self, value: bytes) -> None:
        self._out += value

    def _push_int(self, value: int, width: int) -> None:
        if not 0 <= value < (1 << (8 * width)):
            raise EncodeError(f"{value} does not fit in {width} bytes")
        self._out += value.to_bytes(width, "big")

    def push_uint8(self, value: int) -> None:
        self._push_int(value, 1)

    def push_uint16(self, value: int) -> None:
        self._push_int(value, 2)

    def push_uint24(self, value: int) -> None:
        self._push_int(value, 3)

    def push_uint32(self, value: int) -> None:
        self._push_int(value, 4)

    def push_uint64(self, value: int) -> None:
        self._push_int(value, 8)

    def data(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._out)

    def __len__(self) -> int:
        return len(self._out)
