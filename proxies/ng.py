"""rtpengine's ng control protocol, sans-I/O: bencode and the cookie framing.

An ng message is ``COOKIE SP BENCODED-DICT`` over UDP; the reply echoes the cookie, which is how
a client matches replies to requests and drops strays (rtpengine's docs/ng_control_protocol.md).
The dictionary is BitTorrent bencode (BEP 3): integers ``i<n>e``, byte strings ``<len>:<bytes>``,
lists ``l...e``, dictionaries ``d...e`` with byte-string keys in sorted order.

Replies come from the network: :func:`decode_reply` refuses anything that is not exactly one
well-formed dictionary (no trailing bytes, declared lengths within the datagram, bounded
nesting) with :class:`NgDecodeError`.
"""

from __future__ import annotations

from ims.errors import DecodeError

BValue = int | bytes | list["BValue"] | dict[str, "BValue"]

MAX_DEPTH = 32
"""Nesting refused beyond this (a reply of rtpengine's ``query`` nests 8 deep)."""


class NgDecodeError(DecodeError):
    """Bytes that are not a bencoded ng message."""


def bencode(value: object) -> bytes:
    """Encode ints, str/bytes (str as UTF-8), lists and dicts with str/bytes keys."""
    if isinstance(value, bool) or not isinstance(value, int | str | bytes | list | tuple | dict):
        raise TypeError(f"not bencodable: {type(value).__name__}")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    items = sorted((k.encode() if isinstance(k, str) else bytes(k), v) for k, v in value.items())
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"


def bdecode(data: bytes) -> BValue:
    """Decode exactly one bencoded value (dict keys become str)."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise NgDecodeError(f"trailing bytes after the value at offset {end}")
    return value


def _decode(b: bytes, i: int, depth: int) -> tuple[BValue, int]:
    if depth > MAX_DEPTH:
        raise NgDecodeError("nested too deep")
    c = b[i : i + 1]
    if not c:
        raise NgDecodeError(f"truncated at offset {i}")
    if c == b"i":
        j = b.find(b"e", i)
        if j < 0:
            raise NgDecodeError("unterminated integer")
        try:
            return int(b[i + 1 : j]), j + 1
        except ValueError:
            raise NgDecodeError(f"bad integer at offset {i}") from None
    if c in (b"l", b"d"):
        i += 1
        items: list[BValue] = []
        while b[i : i + 1] != b"e":
            if i >= len(b):
                raise NgDecodeError("unterminated list or dictionary")
            v, i = _decode(b, i, depth + 1)
            items.append(v)
        if c == b"l":
            return items, i + 1
        if len(items) % 2:
            raise NgDecodeError("dictionary with a key and no value")
        out: dict[str, BValue] = {}
        for k, v in zip(items[0::2], items[1::2], strict=True):
            if not isinstance(k, bytes):
                raise NgDecodeError("dictionary key is not a string")
            out[k.decode("utf-8", "replace")] = v
        return out, i + 1
    if not c.isdigit():
        raise NgDecodeError(f"unexpected byte {c!r} at offset {i}")
    j = b.find(b":", i)
    if j < 0 or not b[i:j].isdigit():
        raise NgDecodeError(f"bad string length at offset {i}")
    n = int(b[i:j])
    if j + 1 + n > len(b):
        raise NgDecodeError("string runs past the end")
    return b[j + 1 : j + 1 + n], j + 1 + n


def encode_request(cookie: bytes, command: str, args: dict[str, object]) -> bytes:
    """``cookie`` + space + the bencoded ``{"command": command, **args}``."""
    if not cookie or b" " in cookie:
        raise ValueError("an ng cookie is a non-empty token without spaces")
    return cookie + b" " + bencode({"command": command, **args})


def decode_reply(data: bytes) -> tuple[bytes, dict[str, BValue]]:
    """(cookie, reply dictionary) of one ng reply datagram."""
    cookie, sep, body = data.partition(b" ")
    if not sep or not cookie:
        raise NgDecodeError("no cookie")
    value = bdecode(body)
    if not isinstance(value, dict):
        raise NgDecodeError("reply is not a dictionary")
    return cookie, value
