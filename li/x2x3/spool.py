"""On-disk, per-destination spool of encoded X2/X3 PDUs with delivery checkpoints.

TS 103 221-2 has no application-level acknowledgement of X2/X3 data, and TCP gives none
either: bytes written to a socket whose peer then dies are simply lost. imslab uses the
standard Keepalive/Keepalive-Ack exchange as a delivery checkpoint instead: after each chunk
of PDUs the exporter sends a Keepalive; the receiver processes its stream in order, so the
Keepalive-Ack echoing that sequence number proves every PDU before it was received. Only
then does the spool discard those bytes (:meth:`Spool.ack`). After a reconnect everything not
yet acknowledged is sent again, in order; the receiver drops the duplicates by the per-task
sequence number (see :mod:`li.lemf.receiver`).

Layout: ``DIR/<start-offset:020d>.seg`` segment files holding whole PDUs back to back, and
``DIR/acked`` with the acknowledged global byte offset. Offsets are global and monotonic, so
a segment's name says where it starts. A segment is deleted once fully acknowledged, and the
acknowledged part of a segment still in use is overwritten with zeros at once: intercepted
SDP carries SRTP keys (a=crypto), which must not outlive their delivery on the POI's disk
(issue 11). On open, a torn last PDU (crash in the middle of a write) is truncated away; the
walk over whole PDUs starts at the acknowledged offset, after the zeros.

The spool is bounded by ``max_bytes`` of unacknowledged data: :meth:`append` then raises
:class:`SpoolFullError`; the caller raises an alarm. Nothing is dropped silently.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import BinaryIO

from ims.errors import ImsError
from li.x2x3.pdu import HEADER_LENGTH, X2X3DecodeError, pdu_lengths

DEFAULT_SEGMENT_BYTES = 8 << 20


class SpoolFullError(ImsError):
    """The destination's spool holds ``max_bytes`` of undelivered data: the PDU is refused."""


def _walk(data: bytes) -> int:
    """Length of the longest prefix of ``data`` made of whole PDUs."""
    pos = 0
    while len(data) - pos >= HEADER_LENGTH:
        try:
            total = pdu_lengths(data, pos)[1]
        except X2X3DecodeError:
            break
        if pos + total > len(data):
            break
        pos += total
    return pos


class Spool:
    """Append-only PDU log with an acknowledged offset (see module docstring)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 256 << 20,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: list[int] = []  # start offsets, ascending
        self._end = 0
        self._acked = 0
        self._writer: BinaryIO | None = None
        self._writer_start = -1
        self._reader: BinaryIO | None = None
        self._reader_start = -1
        self._ack_fd: int | None = None
        self._recover()

    # -- state ---------------------------------------------------------------------------
    @property
    def end(self) -> int:
        """Global offset one past the last byte appended."""
        return self._end

    @property
    def acked(self) -> int:
        """Global offset up to which delivery is confirmed."""
        return self._acked

    @property
    def pending_bytes(self) -> int:
        return self._end - self._acked

    def _seg_path(self, start: int) -> Path:
        return self.dir / f"{start:020d}.seg"

    def _recover(self) -> None:
        starts = sorted(int(p.stem) for p in self.dir.glob("*.seg") if p.stem.isdigit())
        ack_file = self.dir / "acked"
        acked = int(ack_file.read_text().strip() or 0) if ack_file.exists() else None
        if not starts:
            self._end = self._acked = acked or 0
            return
        self._segments = starts
        last = starts[-1]
        path = self._seg_path(last)
        data = path.read_bytes()
        # the acknowledged (scrubbed) head of the segment is not PDUs any more: walk after it
        begin = acked - last if acked is not None and last <= acked <= last + len(data) else 0
        good = begin + _walk(data[begin:])
        if good != len(data):  # torn write: keep whole PDUs only
            with open(path, "r+b") as fh:
                fh.truncate(good)
        self._end = last + good
        self._acked = starts[0] if acked is None else max(acked, starts[0])
        self._acked = min(self._acked, self._end)

    # -- writing -------------------------------------------------------------------------
    def check_room(self, n: int) -> None:
        if self.pending_bytes + n > self.max_bytes:
            raise SpoolFullError(
                f"spool {self.dir} full: {self.pending_bytes} undelivered bytes, limit "
                f"{self.max_bytes}"
            )

    def append(self, raw: bytes) -> None:
        """Append one whole encoded PDU (or several, back to back); raise
        :class:`SpoolFullError` when over the bound."""
        n = len(raw)
        if self._end - self._acked + n > self.max_bytes:
            self.check_room(n)
        if self._writer is None or self._end - self._segments[-1] >= self.segment_bytes:
            self._roll()
        assert self._writer is not None
        self._writer.write(raw)
        self._end += n

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if not self._segments or self._end - self._segments[-1] >= self.segment_bytes:
            self._segments.append(self._end)
        start = self._segments[-1]
        fd = os.open(self._seg_path(start), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._writer = os.fdopen(fd, "ab", buffering=256 << 10)
        self._writer_start = start

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    # -- reading -------------------------------------------------------------------------
    def read(self, pos: int, max_bytes: int) -> bytes:
        """Whole PDUs from global offset ``pos`` (at a PDU boundary), about ``max_bytes``.

        Returns at least one whole PDU when ``pos < end`` (even a PDU larger than
        ``max_bytes``), never a partial one, and never crosses a segment end.
        """
        if pos >= self._end:
            return b""
        if pos < self._acked:
            raise ValueError(f"offset {pos} is before the acknowledged offset {self._acked}")
        i = bisect.bisect_right(self._segments, pos) - 1
        seg = self._segments[i]
        seg_end = self._segments[i + 1] if i + 1 < len(self._segments) else self._end
        if seg == self._writer_start:
            self.flush()
        if self._reader is None or self._reader_start != seg:
            if self._reader is not None:
                self._reader.close()
            self._reader = open(self._seg_path(seg), "rb")  # noqa: SIM115 - kept open
            self._reader_start = seg
        self._reader.seek(pos - seg)
        if seg_end - pos <= max_bytes:
            # the rest of the segment: it ends at a PDU boundary (whole PDUs are appended,
            # a torn tail is cut on open), so no walk over the PDUs is needed
            data = self._reader.read(seg_end - pos)
            if len(data) == seg_end - pos:
                return data
        else:
            data = self._reader.read(max(max_bytes, HEADER_LENGTH))
        good = _walk(data)
        if good == 0 and data:
            total = pdu_lengths(data)[1]
            data += self._reader.read(total - len(data))
            good = _walk(data)
        return data[:good]

    # -- acknowledging -------------------------------------------------------------------
    def ack(self, pos: int) -> None:
        """Delivery confirmed up to ``pos``: persist it and delete fully delivered segments."""
        if pos <= self._acked:
            return
        old = self._acked
        self._acked = min(pos, self._end)
        # A fixed-width record rewritten in place: one small write, no rename per checkpoint.
        if self._ack_fd is None:
            self._ack_fd = os.open(self.dir / "acked", os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self._ack_fd, f"{self._acked:020d}\n".encode(), 0)
        while len(self._segments) > 1 and self._segments[1] <= self._acked:
            start = self._segments.pop(0)
            if self._reader_start == start and self._reader is not None:
                self._reader.close()
                self._reader, self._reader_start = None, -1
            self._seg_path(start).unlink(missing_ok=True)
        self._scrub(max(old, self._segments[0]) if self._segments else old, self._acked)

    def _scrub(self, start: int, end: int) -> None:
        """Zero the acknowledged bytes [start, end) of the first segment (what was sent was
        flushed to the file before, see :meth:`read`, so this never races the writer)."""
        if not self._segments or end <= start:
            return
        seg = self._segments[0]
        if start < seg:
            start = seg
        if end <= start:
            return
        if seg == self._writer_start:
            self.flush()
        fd = os.open(self._seg_path(seg), os.O_WRONLY)
        try:
            pos, zeros = start, bytes(min(end - start, 1 << 20))
            while pos < end:
                n = min(end - pos, len(zeros))
                os.pwrite(fd, zeros[:n], pos - seg)
                pos += n
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._ack_fd is not None:
            os.close(self._ack_fd)
            self._ack_fd = None
        for fh in (self._writer, self._reader):
            if fh is not None:
                fh.close()
        self._writer = self._reader = None
        self._writer_start = self._reader_start = -1
