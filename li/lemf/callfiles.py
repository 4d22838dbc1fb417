"""What a call's files hold, and a name for the call a person can read.

* :class:`FileRecords` counts the records in each of the call's files (lines of the JSONL
  files, packets of the pcaps) for ``summary.json``, so the summary's numbers are the files'
  numbers, also across a LEMF restart (the first count reads the files from the start; later
  counts read only what was appended since, after the writers were flushed).
* :func:`link_call` gives the call folder ``OUT/<xid>/<correlation-id>`` a readable name
  beside it: ``OUT/<UTC start>_<target>_<correlation-id>`` (a relative symlink), so ``ls OUT``
  lists the intercepted calls by time and target next to the XID folders. The ids stay the
  folder's real name: they are what the X2/X3 PDUs carry (TS 103 221-2 clause 5.2). The link
  sits at the top level on purpose: a link one level deeper would make every
  ``OUT/*/*/summary.json`` glob see each call twice.
"""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

JSONL_FILES = ("iri.jsonl", "keys.jsonl")
PCAP_FILES = ("x2x3.pcap", "cc-encrypted.pcap", "cc.pcap", "hi2.pcap")
_PCAP_GLOBAL = 24
_PCAP_RECORD = struct.Struct("=IIII")  # as li.pcap.PcapWriter writes it (native order)


class FileRecords:
    """Incremental record counts of one call directory's files (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._seen: dict[str, tuple[int, int]] = {}  # name -> (bytes counted, records)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in (*JSONL_FILES, *PCAP_FILES):
            path = self.dir / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            offset, records = self._seen.get(name, (0, 0))
            if size < offset:  # replaced or truncated: count again
                offset, records = 0, 0
            if size > offset:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    data = fh.read(size - offset)
                if name in JSONL_FILES:
                    used = data.rfind(b"\n") + 1  # a line being written is not a record yet
                    offset, records = offset + used, records + data[:used].count(b"\n")
                else:
                    offset, records = _count_pcap(data, offset, records)
            self._seen[name] = (offset, records)
            out[name] = records
        return out


def _count_pcap(data: bytes, offset: int, records: int) -> tuple[int, int]:
    pos = 0
    if offset == 0:
        if len(data) < _PCAP_GLOBAL:
            return 0, 0
        pos = _PCAP_GLOBAL
    while pos + _PCAP_RECORD.size <= len(data):
        incl = _PCAP_RECORD.unpack_from(data, pos)[2]
        end = pos + _PCAP_RECORD.size + incl
        if end > len(data):
            break  # a record still being written
        pos, records = end, records + 1
    return offset + pos, records


_UNSAFE = re.compile(r"[^A-Za-z0-9@.+_-]+")


def call_name(target: str | None, start: float, correlation_id: int) -> str:
    """``2026-12-07T22-40-12Z_alice@ims-a.test_55f38f446571d215``: sortable, shell-safe."""
    when = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime(start))
    who = _UNSAFE.sub("_", (target or "unknown").removeprefix("sip:").removeprefix("tel:"))
    return f"{when}_{who[:64]}_{correlation_id:016x}"


def link_call(
    out: Path, xid: str, correlation_id: int, target: str | None, start: float
) -> str | None:
    """Create ``OUT/NAME -> XID/CID`` once per call; returns NAME (None if the file system
    has no symlinks). A call that already has a link keeps it (restart)."""
    calls = out
    cid = f"{correlation_id:016x}"
    rel = Path(xid) / cid
    for existing in calls.glob(f"*_{cid}"):
        if existing.is_symlink() and os.readlink(existing) == str(rel):
            return existing.name
    name = call_name(target, start, correlation_id)
    try:
        (calls / name).symlink_to(rel, target_is_directory=True)
    except FileExistsError:
        pass
    except OSError:
        return None
    return name
