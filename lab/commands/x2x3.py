"""``imslab x2x3 decode FILE...``: print the X2/X3 PDUs in FILE as JSON lines.

FILE is either a pcap (the TCP payloads of every flow are reassembled per flow, then framed)
or a raw byte stream of PDUs (e.g. a spool segment). Payloads are summarised (length, SIP
start line or RTP header), never dumped: key material in SDP stays out of the terminal
unless ``--payload`` is given.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from li.pcap import PcapError, parse_ip, read_pcap
from li.x2x3.framing import PduFramer
from li.x2x3.pdu import (
    DestinationAddress,
    DestinationPort,
    IPProtocol,
    MatchedTargetIdentifier,
    OpaqueAttribute,
    OtherTargetIdentifier,
    PayloadFormat,
    Pdu,
    SdpSessionDescription,
    SequenceNumber,
    SourceAddress,
    SourcePort,
    Timestamp,
    X2X3DecodeError,
)


def register(sub: Any) -> None:
    parser = sub.add_parser("x2x3", help="X2/X3 (ETSI TS 103 221-2) tools")
    xs = parser.add_subparsers(dest="x2x3_cmd", required=True, metavar="CMD")
    d = xs.add_parser("decode", help="decode PDUs from a pcap or a raw stream to JSON lines")
    d.add_argument("file", type=Path, nargs="+", help="pcap file(s) or raw PDU stream(s)")
    d.add_argument("--payload", action="store_true", help="include the payload (base64)")
    d.set_defaults(func=_decode)


def _attr(a: object) -> dict[str, object]:
    if isinstance(a, SequenceNumber):
        return {"sequence_number": a.value}
    if isinstance(a, Timestamp):
        return {"timestamp": a.as_float()}
    if isinstance(a, SourceAddress):
        return {"source_address": str(a.address)}
    if isinstance(a, DestinationAddress):
        return {"destination_address": str(a.address)}
    if isinstance(a, SourcePort):
        return {"source_port": a.port}
    if isinstance(a, DestinationPort):
        return {"destination_port": a.port}
    if isinstance(a, IPProtocol):
        return {"ip_protocol": a.protocol}
    if isinstance(a, MatchedTargetIdentifier):
        return {"matched_target": a.value}
    if isinstance(a, OtherTargetIdentifier):
        return {"other_target": a.value}
    if isinstance(a, SdpSessionDescription):
        return {"sdp_length": len(a.value)}
    assert isinstance(a, OpaqueAttribute)
    return {"type": a.type, "value": a.value.decode("utf-8", "backslashreplace")}


def pdu_json(pdu: Pdu, *, payload: bool = False) -> dict[str, object]:
    out: dict[str, object] = {
        "version": pdu.version,
        "pdu_type": pdu.pdu_type.name,
        "payload_format": getattr(pdu.payload_format, "name", int(pdu.payload_format)),
        "payload_direction": getattr(pdu.payload_direction, "name", int(pdu.payload_direction)),
        "xid": str(pdu.xid),
        "correlation_id": f"{pdu.correlation_id:016x}",
        "attributes": [_attr(a) for a in pdu.attributes],
        "payload_length": len(pdu.payload),
    }
    if pdu.payload_format == PayloadFormat.SIP_MESSAGE:
        out["sip_start_line"] = pdu.payload.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    elif pdu.payload_format == PayloadFormat.RTP_PACKET and len(pdu.payload) >= 12:
        p = pdu.payload
        out["rtp"] = {
            "payload_type": p[1] & 0x7F,
            "sequence_number": int.from_bytes(p[2:4], "big"),
            "ssrc": f"{int.from_bytes(p[8:12], 'big'):08x}",
        }
    if payload:
        out["payload"] = base64.b64encode(pdu.payload).decode()
    return out


def streams_from(path: Path) -> list[bytes]:
    """The byte streams in ``path``: one per TCP flow of a pcap, else the file itself."""
    try:
        flows: dict[tuple[str, int, str, int], bytearray] = {}
        for rec in read_pcap(path):
            seg = parse_ip(rec)
            if seg is None or seg.proto != 6 or not seg.payload:
                continue
            flows.setdefault((seg.src, seg.sport, seg.dst, seg.dport), bytearray()).extend(
                seg.payload
            )
        return [bytes(b) for b in flows.values()]
    except PcapError:
        return [path.read_bytes()]


def _decode(args: argparse.Namespace) -> int:
    rc = 0
    streams = [s for f in args.file for s in streams_from(f)]
    for stream in streams:
        framer = PduFramer()
        try:
            for pdu in framer.feed(stream):
                print(json.dumps(pdu_json(pdu, payload=args.payload)))
            if not framer.at_boundary():
                print(f"x2x3: {framer.buffered} trailing bytes of a truncated PDU", file=sys.stderr)
                rc = 1
        except X2X3DecodeError as exc:
            print(f"x2x3: decode error: {exc}", file=sys.stderr)
            rc = 1
    return rc
