"""RTP and RTCP packet codecs (RFC 3550 §5.1, §6.4–6.6; RFC 5761 §4 demultiplexing).

RTP: version 2 header, CSRC list, one header extension (profile id + 32-bit words), padding
(the last byte counts the padding octets, RFC 3550 §5.1 P bit). RTCP: compound packets of
SR (200), RR (201), SDES (202), BYE (203); other types are kept as :class:`RtcpUnknown` so a
relay can pass them through untouched. Decoders consume exactly the bytes they are given and
raise :class:`RtpError` (a ``DecodeError``) on anything malformed; they never raise otherwise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ims.buffer import Buffer
from ims.errors import DecodeError

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")


class RtpError(DecodeError):
    """A malformed RTP or RTCP packet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpExtension:
    profile: int  # 16-bit "defined by profile"
    data: bytes  # length is a multiple of 4

    def __post_init__(self) -> None:
        if len(self.data) % 4:
            raise ValueError("RTP header extension data must be a multiple of 4 bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0  # number of padding octets (incl. the count byte); 0 = P bit clear


def decode_rtp(data: bytes) -> RtpPacket:
    if len(data) < 12:
        raise RtpError(f"RTP packet of {len(data)} bytes is shorter than the 12-byte header")
    b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6} is not 2")
    cc = b0 & 0x0F
    buf = Buffer(data)
    buf.pull_bytes(12)
    try:
        csrcs = tuple(buf.pull_uint32() for _ in range(cc))
        ext = None
        if b0 & 0x10:
            profile = buf.pull_uint16()
            words = buf.pull_uint16()
            ext = RtpExtension(profile=profile, data=buf.pull_bytes(4 * words))
    except DecodeError as exc:
        raise RtpError(f"truncated RTP header: {exc}") from None
    body = buf.pull_rest()
    padding = 0
    if b0 & 0x20:
        if not body:
            raise RtpError("P bit set but no padding count byte")
        padding = body[-1]
        if padding == 0 or padding > len(body):
            raise RtpError(f"bad RTP padding count {padding}")
        body = body[:-padding]
    return RtpPacket(
        payload_type=b1 & 0x7F,
        marker=bool(b1 & 0x80),
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        csrcs=csrcs,
        extension=ext,
        payload=body,
        padding=padding,
    )


def encode_rtp(pkt: RtpPacket) -> bytes:
    if len(pkt.csrcs) > 15:
        raise ValueError("at most 15 CSRCs")
    b0 = (RTP_VERSION << 6) | len(pkt.csrcs)
    if pkt.padding:
        b0 |= 0x20
    if pkt.extension is not None:
        b0 |= 0x10
    out = bytearray(
        RTP_HEADER.pack(
            b0,
            (0x80 if pkt.marker else 0) | (pkt.payload_type & 0x7F),
            pkt.sequence_number & 0xFFFF,
            pkt.timestamp & 0xFFFFFFFF,
            pkt.ssrc & 0xFFFFFFFF,
        )
    )
    for c in pkt.csrcs:
        out += struct.pack("!I", c)
    if pkt.extension is not None:
        out += struct.pack("!HH", pkt.extension.profile, len(pkt.extension.data) // 4)
        out += pkt.extension.data
    out += pkt.payload
    if pkt.padding:
        if not 1 <= pkt.padding <= 255:
            raise ValueError("padding must be 1..255")
        out += bytes(pkt.padding - 1) + bytes([pkt.padding])
    return bytes(out)


def header_length(data: bytes) -> int:
    """Length of the RTP header incl. CSRCs and extension (the SRTP authenticated-clear part)."""
    if len(data) < 12:
        raise RtpError("short RTP packet")
    n = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < n + 4:
            raise RtpError("truncated RTP header extension")
        n += 4 + 4 * int.from_bytes(data[n + 2 : n + 4], "big")
    if len(data) < n:
        raise RtpError("truncated RTP header")
    return n


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: payload types 192..223 in the second byte mean RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# ---- RTCP -------------------------------------------------------------------------------


class RtcpType:
    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 8-bit fixed point
    packets_lost: int  # signed 24-bit cumulative
    highest_sequence: int  # extended highest sequence number received
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def encode(self) -> bytes:
        lost = self.packets_lost & 0xFFFFFF
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            (self.fraction_lost << 24) | lost,
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def decode(cls, buf: Buffer) -> ReportBlock:
        ssrc = buf.pull_uint32()
        word = buf.pull_uint32()
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(
            ssrc=ssrc,
            fraction_lost=word >> 24,
            packets_lost=lost,
            highest_sequence=buf.pull_uint32(),
            jitter=buf.pull_uint32(),
            lsr=buf.pull_uint32(),
            dlsr=buf.pull_uint32(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpSenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


class SdesItem:
    END = 0
    CNAME = 1
    NAME = 2
    TOOL = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpSourceDescription:
    chunks: tuple[SdesChunk, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpBye:
    ssrcs: tuple[int, ...]
    reason: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpUnknown:
    packet_type: int
    count: int
    body: bytes


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSourceDescription | RtcpBye | RtcpUnknown


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _encode_one(p: RtcpPacket) -> bytes:
    if isinstance(p, RtcpSenderReport):
        count, pt = len(p.reports), RtcpType.SR
        body = struct.pack(
            "!IQIII", p.ssrc, p.ntp_timestamp, p.rtp_timestamp, p.packet_count, p.octet_count
        ) + b"".join(r.encode() for r in p.reports)
    elif isinstance(p, RtcpReceiverReport):
        count, pt = len(p.reports), RtcpType.RR
        body = struct.pack("!I", p.ssrc) + b"".join(r.encode() for r in p.reports)
    elif isinstance(p, RtcpSourceDescription):
        count, pt = len(p.chunks), RtcpType.SDES
        chunks = bytearray()
        for ch in p.chunks:
            c = bytearray(struct.pack("!I", ch.ssrc))
            for t, v in ch.items:
                if len(v) > 255:
                    raise ValueError("SDES item longer than 255 bytes")
                c += bytes([t, len(v)]) + v
            c += b"\x00"  # END item, then pad the chunk to 32 bits
            chunks += _pad4(bytes(c))
        body = bytes(chunks)
    elif isinstance(p, RtcpBye):
        count, pt = len(p.ssrcs), RtcpType.BYE
        body = b"".join(struct.pack("!I", s) for s in p.ssrcs)
        if p.reason is not None:
            body = _pad4(body + bytes([len(p.reason)]) + p.reason)
    else:
        count, pt, body = p.count, p.packet_type, _pad4(p.body)
    if count > 31:
        raise ValueError("RTCP count field is 5 bits")
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


def encode_rtcp(packets: RtcpPacket | tuple[RtcpPacket, ...] | list[RtcpPacket]) -> bytes:
    if not isinstance(packets, tuple | list):
        packets = (packets,)
    return b"".join(_encode_one(p) for p in packets)


def _decode_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    buf = Buffer(body)
    if pt == RtcpType.SR:
        ssrc = buf.pull_uint32()
        ntp = buf.pull_uint64()
        rtp_ts, pc, oc = buf.pull_uint32(), buf.pull_uint32(), buf.pull_uint32()
        reports = tuple(ReportBlock.decode(buf) for _ in range(count))
        buf.pull_rest()  # profile-specific extensions are allowed after the blocks
        return RtcpSenderReport(
            ssrc=ssrc,
            ntp_timestamp=ntp,
            rtp_timestamp=rtp_ts,
            packet_count=pc,
            octet_count=oc,
            reports=reports,
        )
    if pt == RtcpType.RR:
        ssrc = buf.pull_uint32()
        reports = tuple(ReportBlock.decode(buf) for _ in range(count))
        buf.pull_rest()
        return RtcpReceiverReport(ssrc=ssrc, reports=reports)
    if pt == RtcpType.SDES:
        chunks = []
        for _ in range(count):
            start = buf.position
            ssrc = buf.pull_uint32()
            items = []
            while True:
                t = buf.pull_uint8()
                if t == SdesItem.END:
                    break
                n = buf.pull_uint8()
                items.append((t, buf.pull_bytes(n)))
            used = buf.position - start
            buf.pull_bytes(-used % 4)
            chunks.append(SdesChunk(ssrc=ssrc, items=tuple(items)))
        return RtcpSourceDescription(chunks=tuple(chunks))
    if pt == RtcpType.BYE:
        ssrcs = tuple(buf.pull_uint32() for _ in range(count))
        reason = None
        if not buf.eof():
            n = buf.pull_uint8()
            reason = buf.pull_bytes(n)
        return RtcpBye(ssrcs=ssrcs, reason=reason)
    return RtcpUnknown(packet_type=pt, count=count, body=body)


def decode_rtcp(data: bytes) -> tuple[RtcpPacket, ...]:
    """Decode a compound RTCP packet (every sub-packet must be complete)."""
    out: list[RtcpPacket] = []
    buf = Buffer(data)
    if not data:
        raise RtpError("empty RTCP packet")
    try:
        while not buf.eof():
            b0 = buf.pull_uint8()
            pt = buf.pull_uint8()
            words = buf.pull_uint16()
            if b0 >> 6 != RTP_VERSION:
                raise RtpError(f"RTCP version {b0 >> 6} is not 2")
            body = buf.pull_bytes(4 * words)
            if b0 & 0x20:  # padding: only legal on the last packet of a compound
                if not body or body[-1] == 0 or body[-1] > len(body) or not buf.eof():
                    raise RtpError("bad RTCP padding")
                body = body[: -body[-1]]
            out.append(_decode_one(pt, b0 & 0x1F, body))
    except RtpError:
        raise
    except DecodeError as exc:
        raise RtpError(f"truncated RTCP packet: {exc}") from None
    return tuple(out)
