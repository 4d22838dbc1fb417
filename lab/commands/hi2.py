"""``imslab hi2 decode FILE``: the HI2 IRI records of a call (``hi2.ber`` or ``hi2.pcap``).

Prints one JSON object per record: record type, LIID, time, reporting element, parties, IMS
event, correlation and the SIP message's start line (the whole message with ``--sip``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from li.hi2 import codec
from li.hi2.writer import exported_pdu_header
from li.pcap import PcapError, read_pcap


def register(sub: Any) -> None:
    parser = sub.add_parser("hi2", help="HI2 (ETSI TS 101 671 / 3GPP TS 33.108) tools")
    hs = parser.add_subparsers(dest="hi2_cmd", required=True, metavar="CMD")
    d = hs.add_parser("decode", help="print the IRI records of hi2.ber or hi2.pcap as JSON lines")
    d.add_argument("file", type=Path, help="a call's hi2.ber (BER stream) or hi2.pcap")
    d.add_argument("--sip", action="store_true", help="include the whole SIP message")
    d.set_defaults(func=_decode)


def ber_values(data: bytes) -> list[bytes]:
    """Split a stream of BER values (definite lengths) into the values."""
    out = []
    while data:
        if len(data) < 2:
            raise codec.Hi2DecodeError("a truncated BER value at the end of the stream")
        length, header = data[1], 2
        if length & 0x80:
            n = length & 0x7F
            length, header = int.from_bytes(data[2 : 2 + n], "big"), 2 + n
        if header + length > len(data):
            raise codec.Hi2DecodeError("a truncated BER value at the end of the stream")
        out.append(data[: header + length])
        data = data[header + length :]
    return out


def _values(path: Path) -> list[bytes]:
    try:
        skip = len(exported_pdu_header())
        return [rec.data[skip:] for rec in read_pcap(path)]
    except PcapError:
        return ber_values(path.read_bytes())


def _decode(args: argparse.Namespace) -> int:
    for value in _values(args.file):
        rec = codec.decode(value)
        sip = rec.sip or b""
        doc = {
            "record": rec.record_type.name,
            "liid": rec.liid,
            "time": rec.time,
            "element": rec.element,
            "communication_id": rec.communication_id,
            "correlation_id": f"{rec.correlation_id:016x}",
            "direction": rec.direction.name,
            "call_state": rec.call_state.value if rec.call_state else None,
            "originating": rec.originating,
            "terminating": rec.terminating,
            "ims_event": rec.ims_event.value if rec.ims_event else None,
            "sip": sip.decode("utf-8", "replace")
            if args.sip
            else sip.split(b"\r\n", 1)[0].decode("utf-8", "replace"),
        }
        print(json.dumps(doc))
    return 0
