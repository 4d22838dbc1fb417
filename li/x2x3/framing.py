"""Sans-I/O stream framing for X2/X3 over TCP/TLS (TS 103 221-2 clause 5: length-delimited).

PDUs are self-delimiting: read the 40-byte header, then ``header_length + payload_length``
bytes in total. The framer takes bytes as they arrive (any split, several PDUs per read) and
returns whole decoded PDUs. A PDU larger than ``max_pdu_size`` or any malformed header raises
:class:`~li.x2x3.pdu.X2X3DecodeError` at once, before waiting for (or buffering) the bytes it
claims, so a lying length can neither hang the reader nor exhaust memory. After an error the
framer is unusable: the stream has lost sync and the connection must be closed.
"""

from __future__ import annotations

from li.x2x3.pdu import HEADER_LENGTH, Pdu, X2X3DecodeError, decode_pdu, pdu_lengths

DEFAULT_MAX_PDU_SIZE = 1 << 20


class PduFramer:
    """Accumulate stream bytes; yield complete PDUs (decoded, or raw with ``raw=True``)."""

    def __init__(self, *, max_pdu_size: int = DEFAULT_MAX_PDU_SIZE) -> None:
        self.max_pdu_size = max_pdu_size
        self._buf = bytearray()
        self._need: int | None = None  # total length of the PDU at the front, once known
        self._failed: X2X3DecodeError | None = None
        self.bytes_in = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed_raw(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the raw bytes of every PDU now complete (not yet decoded)."""
        if self._failed is not None:
            raise self._failed
        self._buf += data
        self.bytes_in += len(data)
        out: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < HEADER_LENGTH:
                    break
                try:
                    _, total = pdu_lengths(self._buf)
                    if total > self.max_pdu_size:
                        raise X2X3DecodeError(
                            f"PDU of {total} bytes exceeds the limit of {self.max_pdu_size}"
                        )
                except X2X3DecodeError as exc:
                    self._failed = exc
                    raise
                self._need = total
            if len(self._buf) < self._need:
                break
            out.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None
        return out

    def feed(self, data: bytes) -> list[Pdu]:
        """Add ``data``; return every PDU now complete, decoded."""
        out = []
        for raw in self.feed_raw(data):
            try:
                out.append(decode_pdu(raw))
            except X2X3DecodeError as exc:
                self._failed = exc
                raise
        return out

    def at_boundary(self) -> bool:
        """True when no partial PDU is buffered (a clean place for the stream to end)."""
        return not self._buf


def split_pdus(data: bytes, *, max_pdu_size: int = DEFAULT_MAX_PDU_SIZE) -> list[Pdu]:
    """Decode a complete byte stream of PDUs; trailing partial bytes are an error."""
    framer = PduFramer(max_pdu_size=max_pdu_size)
    pdus = framer.feed(data)
    if not framer.at_boundary():
        raise X2X3DecodeError(f"{framer.buffered} bytes of a truncated PDU at end of stream")
    return pdus
