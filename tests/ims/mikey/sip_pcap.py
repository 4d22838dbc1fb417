"""Write MIKEY messages carried in SIP/SDP (RFC 4567, session-level a=key-mgmt) into a pcap.

A helper for the tshark cross-check: Ethernet/IPv4/UDP frames to port 5060, one SIP message
per frame (INVITE for I_MESSAGEs, 200 OK for responses and errors), loopback addresses in
127.0.5.0/24.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ims.mikey.sdp import key_mgmt_attribute


def sip_message(mikey: bytes, *, request: bool, index: int) -> bytes:
    sdp = (
        "v=0\r\n"
        f"o=alice {index} 1 IN IP4 127.0.5.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.5.1\r\n"
        "t=0 0\r\n"
        f"{key_mgmt_attribute(mikey)}\r\n"
        "m=audio 40000 RTP/SAVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
    ).encode()
    start = "INVITE sip:bob@ims.lab SIP/2.0" if request else "SIP/2.0 200 OK"
    to_tag = "" if request else ";tag=b1"
    headers = (
        f"{start}\r\n"
        f"Via: SIP/2.0/UDP 127.0.5.1:5060;branch=z9hG4bK{index:08d}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@ims.lab>;tag=a1\r\n"
        f"To: <sip:bob@ims.lab>{to_tag}\r\n"
        f"Call-ID: mikey-{index}@127.0.5.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:alice@127.0.5.1:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    return headers + sdp


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(payload: bytes, src: str, dst: str, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        0,
        0x4000,
        64,
        17,
        0,
        bytes(map(int, src.split("."))),
        bytes(map(int, dst.split("."))),
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path: Path, messages: list[tuple[bytes, bool]]) -> None:
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for n, (mikey, request) in enumerate(messages):
        sip = sip_message(mikey, request=request, index=n)
        src, dst = ("127.0.5.1", "127.0.5.2") if request else ("127.0.5.2", "127.0.5.1")
        frame = udp_frame(sip, src, dst, 5060, 5060)
        out += struct.pack("<IIII", 1_700_000_000 + n, 0, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
