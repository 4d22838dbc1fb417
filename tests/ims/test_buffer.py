from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ims.buffer import Buffer, BufferReadError
from ims.errors import DecodeError, EncodeError


def test_round_trip_all_widths() -> None:
    out = Buffer()
    out.push_uint8(0xAB)
    out.push_uint16(0xBEEF)
    out.push_uint24(0x123456)
    out.push_uint32(0xDEADBEEF)
    out.push_uint64(0x0102030405060708)
    out.push_bytes(b"xyz")
    data = out.data()
    assert len(data) == 1 + 2 + 3 + 4 + 8 + 3
    buf = Buffer(data)
    assert buf.pull_uint8() == 0xAB
    assert buf.pull_uint16() == 0xBEEF
    assert buf.pull_uint24() == 0x123456
    assert buf.pull_uint32() == 0xDEADBEEF
    assert buf.pull_uint64() == 0x0102030405060708
    assert buf.pull_bytes(3) == b"xyz"
    buf.expect_end()


def test_truncated_read_is_decode_error_with_offset() -> None:
    buf = Buffer(b"\x00\x01\x02")
    buf.pull_uint16()
    with pytest.raises(BufferReadError) as exc:
        buf.pull_uint16()
    assert isinstance(exc.value, DecodeError)
    assert exc.value.offset == 2


def test_trailing_bytes_rejected() -> None:
    buf = Buffer(b"\x00\x01")
    buf.pull_uint8()
    with pytest.raises(BufferReadError):
        buf.expect_end()


def test_push_out_of_range() -> None:
    with pytest.raises(EncodeError):
        Buffer().push_uint8(256)
    with pytest.raises(EncodeError):
        Buffer().push_uint16(-1)


@given(st.binary(max_size=64), st.lists(st.integers(0, 9), max_size=20))
def test_reads_never_raise_anything_but_buffer_error(data: bytes, ops: list[int]) -> None:
    buf = Buffer(data)
    readers = [buf.pull_uint8, buf.pull_uint16, buf.pull_uint24, buf.pull_uint32, buf.pull_uint64]
    try:
        for op in ops:
            if op < 5:
                readers[op]()
            else:
                buf.pull_bytes(op)
    except BufferReadError:
        pass
