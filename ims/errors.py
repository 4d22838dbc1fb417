"""Root of the imslab exception tree (STYLE.md §5).

Codecs only raise; the layer above maps an error to a SIP response, a MIKEY Error message,
a closed connection, or (media) a counted drop.
"""

from __future__ import annotations


class ImsError(Exception):
    """Root of every error raised by imslab."""


class DecodeError(ImsError, ValueError):
    """A wire format could not be decoded.

    ``offset`` says where decoding failed, when known, so a log line can point at the byte.
    Per-codec subclasses add what the layer above needs (a SIP status, a MIKEY error number).
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset

    def __str__(self) -> str:
        base = super().__str__()
        return base if self.offset is None else f"{base} (at offset {self.offset})"


class EncodeError(ImsError, ValueError):
    """A value cannot be represented on the wire (out of range, too long...)."""
