"""A whole MIKEY message: HDR plus the payload chain (RFC 3830 §6, §6.1).

The HDR's *next payload* names the first payload; each payload's first byte names the one after
it, 0 meaning last (§6). SIGN (§6.5) carries no next-payload byte, so it must end the message.
The KEMAC encrypted data (§6.2) is a second chain whose first type is implicit: Key data in PSK
mode (§3.1), ID then Key data in public-key mode (§3.2) and RSA-R (RFC 4738 §3).

``decode_message`` consumes exactly all bytes and raises only
:class:`~ims.mikey.errors.MikeyDecodeError`; ``encode_message`` is its byte-exact inverse.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from ims.buffer import Buffer, BufferReadError
from ims.errors import EncodeError
from ims.mikey.constants import DataType, ErrorNo, PayloadType
from ims.mikey.errors import MikeyDecodeError
from ims.mikey.payloads import (
    DECODERS,
    HdrPayload,
    Payload,
    SignPayload,
    decode_hdr,
)

P = TypeVar("P")

#: Upper bound on payloads per chain: every payload takes at least 2 bytes, so this only
#: guards absurd inputs; decoding is linear in the input length anyway.
MAX_PAYLOADS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class MikeyMessage:
    """HDR plus payloads in wire order."""

    hdr: HdrPayload
    payloads: tuple[Payload, ...] = ()

    @property
    def data_type(self) -> DataType:
        return self.hdr.data_type

    def find(self, cls: type[P]) -> P | None:
        """The first payload of class ``cls``, or None."""
        for p in self.payloads:
            if isinstance(p, cls):
                return p
        return None

    def find_all(self, cls: type[P]) -> tuple[P, ...]:
        return tuple(p for p in self.payloads if isinstance(p, cls))

    def encode(self) -> bytes:
        return encode_message(self)


def _push_chain(buf: Buffer, payloads: Iterable[Payload]) -> None:
    items = list(payloads)
    for i, p in enumerate(items):
        nxt = items[i + 1].TYPE if i + 1 < len(items) else PayloadType.LAST
        if isinstance(p, SignPayload):
            if i != len(items) - 1:
                raise EncodeError("SIGN must be the last payload (RFC 3830 §6.5)")
        else:
            buf.push_uint8(nxt)
        p.encode_body(buf)


def encode_message(msg: MikeyMessage) -> bytes:
    """Encode a message to bytes (the exact inverse of :func:`decode_message`)."""
    buf = Buffer()
    first = msg.payloads[0].TYPE if msg.payloads else PayloadType.LAST
    msg.hdr.encode(buf, first)
    _push_chain(buf, msg.payloads)
    return buf.data()


def encode_subpayloads(payloads: Iterable[Payload]) -> bytes:
    """Encode a KEMAC sub-payload chain (plaintext of the KEMAC encr data)."""
    buf = Buffer()
    _push_chain(buf, payloads)
    return buf.data()


def _pull_chain(buf: Buffer, first: int, allowed: frozenset[int] | None) -> list[Payload]:
    out: list[Payload] = []
    nxt = first
    while nxt != PayloadType.LAST:
        if len(out) >= MAX_PAYLOADS:
            raise MikeyDecodeError("too many payloads", offset=buf.position)
        decoder = DECODERS.get(nxt)
        if decoder is None or (allowed is not None and nxt not in allowed):
            raise MikeyDecodeError(
                f"unknown or misplaced payload type {nxt}",
                offset=buf.position,
                mikey_error=ErrorNo.UNSPECIFIED,
            )
        if nxt == PayloadType.SIGN:
            out.append(decoder(buf))
            break
        nxt = buf.pull_uint8()
        out.append(decoder(buf))
    return out


def decode_message(data: bytes) -> MikeyMessage:
    """Decode a whole MIKEY message; every byte must be consumed."""
    buf = Buffer(data)
    try:
        hdr, first = decode_hdr(buf)
        payloads = _pull_chain(buf, first, None)
        buf.expect_end("MIKEY message")
    except MikeyDecodeError:
        raise
    except BufferReadError as exc:
        raise MikeyDecodeError(f"truncated MIKEY message: {exc}", offset=exc.offset) from None
    return MikeyMessage(hdr=hdr, payloads=tuple(payloads))


_SUB_ALLOWED = frozenset(
    {PayloadType.KEY_DATA, PayloadType.ID, PayloadType.CERT, PayloadType.GENERAL_EXT}
)


def decode_subpayloads(data: bytes, first: PayloadType) -> tuple[Payload, ...]:
    """Decode a (decrypted) KEMAC sub-payload chain whose first type is ``first``."""
    buf = Buffer(data)
    try:
        payloads = _pull_chain(buf, first, _SUB_ALLOWED)
        buf.expect_end("KEMAC sub-payloads")
    except MikeyDecodeError:
        raise
    except BufferReadError as exc:
        raise MikeyDecodeError(
            f"bad KEMAC sub-payloads: {exc}", offset=exc.offset, mikey_error=ErrorNo.INVALID_MAC
        ) from None
    return tuple(payloads)


def decode_base64(text: str | bytes) -> MikeyMessage:
    """Decode the base64 form used in SDP ``a=key-mgmt:mikey`` (RFC 4567 §3.1)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MikeyDecodeError(f"bad base64: {exc}") from None
    return decode_message(raw)
