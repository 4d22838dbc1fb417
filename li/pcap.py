"""Classic libpcap files: a writer for synthesized IPv4/IPv6 UDP and TCP packets, and a reader.

The LEMF writes intercepted traffic as pcap so Wireshark/tshark can show it: X2/X3 PDUs as TCP
segments (``tshark -d tcp.port==PORT,5gli``), content as UDP datagrams. Packets are built from
scratch (IP header + UDP/TCP header with real checksums) and written with link type
``LINKTYPE_RAW`` (101: each record starts with an IPv4 or IPv6 header), so no fake Ethernet
addresses are invented.

Format: the "libpcap file format" (draft-ietf-opsawg-pcap): 24-byte global header
(magic ``a1b2c3d4`` for microsecond timestamps), then per packet a 16-byte record header
(seconds, microseconds, captured length, original length) and the bytes.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ims.errors import DecodeError

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_GLOBAL = struct.Struct("=IHHiIII")
_RECORD = struct.Struct("=IIII")
_SNAPLEN = 262144

IPPROTO_TCP = 6
IPPROTO_UDP = 17

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PcapError(DecodeError):
    """A pcap file could not be read."""


def _ones_sum(data: bytes) -> int:
    """The 16-bit one's complement sum of ``data`` (RFC 1071), 0 only for all-zero data.

    Why not a loop over 16-bit words: 2^16 = 1 (mod 2^16 - 1), so the number the bytes spell
    (big-endian, odd length padded with a zero byte) is congruent to the sum of its 16-bit
    words, and the end-around carry of RFC 1071 §2(1) is exactly reduction mod 0xFFFF; with
    0xFFFF ("negative zero") standing for a multiple of 0xFFFF that is not 0. One C-level
    conversion and one modulo per packet instead of a word-by-word fold: the LEMF checksums
    three packets per intercepted media packet (issue 19)."""
    n = int.from_bytes(data + b"\x00" if len(data) & 1 else data, "big")
    s = n % 0xFFFF
    return s if s or not n else 0xFFFF


def _checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071): the one's complement of the one's complement sum."""
    return _ones_sum(data) ^ 0xFFFF


@functools.lru_cache(maxsize=1024)
def _parse_addr(value: str) -> IPAddress:
    return ipaddress.ip_address(value)


def _addr(value: str | IPAddress) -> IPAddress:
    return value if not isinstance(value, str) else _parse_addr(value)


@functools.lru_cache(maxsize=4096)
def _route(src: str | IPAddress, dst: str | IPAddress) -> tuple[int, bytes]:
    """IP version and packed source + destination of a packet between two addresses (cached:
    a call's packets keep their addresses, and parsing them is most of building a header)."""
    s, d = _addr(src), _addr(dst)
    if s.version != d.version:
        raise ValueError("source and destination address families differ")
    return s.version, s.packed + d.packed


_PSEUDO4 = struct.Struct("!BBH")
_PSEUDO6 = struct.Struct("!IxxxB")
_IP4 = struct.Struct("!BBHHHBBH8s")
_IP6 = struct.Struct("!IHBB32s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")


def _pseudo_header(version: int, addrs: bytes, proto: int, length: int) -> bytes:
    if version == 4:
        return addrs + _PSEUDO4.pack(0, proto, length)
    return addrs + _PSEUDO6.pack(length, proto)


def _ip_header(version: int, addrs: bytes, proto: int, length: int, ident: int) -> bytes:
    """The IP header in front of a ``length``-byte segment."""
    if version == 4:
        total = 20 + length
        if total > 0xFFFF:
            raise ValueError(f"IPv4 packet too long ({total} bytes)")
        # DF: synthesized packets are never fragmented
        unsummed = _IP4.pack(0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0, addrs)
        return _IP4.pack(
            0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, _checksum(unsummed), addrs
        )
    if length > 0xFFFF:
        raise ValueError(f"IPv6 payload too long ({length} bytes)")
    return _IP6.pack(0x60000000, length, proto, 64, addrs)


def udp_packet(
    src: str | IPAddress,
    sport: int,
    dst: str | IPAddress,
    dport: int,
    payload: bytes,
    ident: int = 0,
) -> bytes:
    """An IPv4/IPv6 + UDP packet carrying ``payload`` with a correct UDP checksum."""
    version, addrs = _route(src, dst)
    length = 8 + len(payload)
    ip = _ip_header(version, addrs, IPPROTO_UDP, length, ident)
    header = _UDP.pack(sport, dport, length, 0)
    # RFC 768: a computed checksum of zero is transmitted as all ones
    csum = _checksum(_pseudo_header(version, addrs, IPPROTO_UDP, length) + header + payload)
    return b"".join((ip, _UDP.pack(sport, dport, length, csum or 0xFFFF), payload))


def tcp_packet(
    src: str | IPAddress,
    sport: int,
    dst: str | IPAddress,
    dport: int,
    payload: bytes,
    *,
    seq: int,
    ack: int = 0,
    flags: int = 0x18,
    ident: int = 0,
) -> bytes:
    """An IPv4/IPv6 + TCP segment (default flags PSH|ACK) with a correct TCP checksum."""
    version, addrs = _route(src, dst)
    return _tcp_segment(version, addrs, sport, dport, payload, seq, ack, flags, ident)


def _tcp_segment(
    version: int,
    addrs: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    seq: int,
    ack: int,
    flags: int,
    ident: int,
) -> bytes:
    length = 20 + len(payload)
    ip = _ip_header(version, addrs, IPPROTO_TCP, length, ident)
    seq &= 0xFFFFFFFF
    ack &= 0xFFFFFFFF
    header = _TCP.pack(sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    csum = _checksum(_pseudo_header(version, addrs, IPPROTO_TCP, length) + header + payload)
    header = _TCP.pack(sport, dport, seq, ack, 5 << 4, flags, 65535, csum, 0)
    return b"".join((ip, header, payload))


class PcapWriter:
    """Append packets to a pcap file (link type RAW by default).

    The file is created with mode ``0600`` (intercept output is sensitive); with ``append``
    an existing file is continued (a restarted LEMF keeps one file per call). Timestamps are
    floats in seconds since the epoch, given by the caller.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        linktype: int = LINKTYPE_RAW,
        mode: int = 0o600,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        resume = append and self.path.exists() and self.path.stat().st_size >= _GLOBAL.size
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if resume else os.O_TRUNC)
        fd = os.open(self.path, flags, mode)
        os.fchmod(fd, mode)
        self._fh: BinaryIO = os.fdopen(fd, "ab" if resume else "wb")
        if not resume:
            self._fh.write(_GLOBAL.pack(_MAGIC_US, 2, 4, 0, 0, _SNAPLEN, linktype))
        self.count = 0

    def write(self, packet: bytes, ts: float) -> None:
        sec = int(ts)
        usec = int(round((ts - sec) * 1_000_000))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        n = len(packet)
        self._fh.write(_RECORD.pack(sec, usec, n, n) + packet)
        self.count += 1

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpFlowWriter:
    """Write a unidirectional synthetic TCP flow (one segment per ``write``) into a pcap.

    Sequence numbers advance by the payload size, so Wireshark sees a clean stream. Each
    ``write`` becomes exactly one segment: tshark 4.0's 5GLI dissector does not reassemble
    PDUs split across segments, so callers write one whole PDU per call.
    """

    def __init__(
        self, pcap: PcapWriter, src: str, sport: int, dst: str, dport: int, *, isn: int = 1
    ) -> None:
        self.pcap = pcap
        self.src, self.sport, self.dst, self.dport = _addr(src), sport, _addr(dst), dport
        self._version, self._addrs = _route(self.src, self.dst)  # once per flow, not per PDU
        self.seq = isn
        self._ident = 0

    def write(self, payload: bytes, ts: float) -> None:
        self._ident += 1
        pkt = _tcp_segment(
            self._version,
            self._addrs,
            self.sport,
            self.dport,
            payload,
            self.seq,
            0,
            0x18,
            self._ident,
        )
        self.pcap.write(pkt, ts)
        self.seq = (self.seq + len(payload)) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class PcapRecord:
    """One packet from a pcap file: timestamp, link type and the raw bytes."""

    ts: float
    linktype: int
    data: bytes


def read_pcap(path: str | Path) -> Iterator[PcapRecord]:
    """Iterate over the packets of a classic pcap file (either byte order, us or ns)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
        if len(head) < 24:
            raise PcapError("file shorter than a pcap global header")
        magic_le = struct.unpack("<I", head[:4])[0]
        if magic_le in (_MAGIC_US, _MAGIC_NS):
            endian = "<"
        elif struct.unpack(">I", head[:4])[0] in (_MAGIC_US, _MAGIC_NS):
            endian = ">"
        else:
            raise PcapError("not a pcap file (bad magic)")
        magic, _, _, _, _, _, linktype = struct.unpack(endian + "IHHiIII", head)
        scale = 1e-9 if magic == _MAGIC_NS else 1e-6
        rec = struct.Struct(endian + "IIII")
        while True:
            hdr = fh.read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                raise PcapError("truncated pcap record header")
            sec, frac, caplen, _ = rec.unpack(hdr)
            data = fh.read(caplen)
            if len(data) < caplen:
                raise PcapError("truncated pcap record")
            yield PcapRecord(ts=sec + frac * scale, linktype=linktype, data=data)


@dataclass(frozen=True, slots=True, kw_only=True)
class IpSegment:
    """The transport payload of one IP packet, with its addressing."""

    src: str
    dst: str
    proto: int
    sport: int
    dport: int
    seq: int
    payload: bytes


def parse_ip(record: PcapRecord) -> IpSegment | None:
    """Extract the TCP/UDP payload of an Ethernet or RAW record; ``None`` for anything else."""
    data = record.data
    if record.linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        etype = struct.unpack("!H", data[12:14])[0]
        data = data[14:]
        if etype not in (0x0800, 0x86DD):
            return None
    elif record.linktype not in (LINKTYPE_RAW, 228, 229):
        return None
    if not data:
        return None
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            return None
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack("!H", data[2:4])[0]
        proto = data[9]
        src = str(ipaddress.IPv4Address(data[12:16]))
        dst = str(ipaddress.IPv4Address(data[16:20]))
        body = data[ihl:total]
    elif version == 6:
        if len(data) < 40:
            return None
        plen = struct.unpack("!H", data[4:6])[0]
        proto = data[6]
        src = str(ipaddress.IPv6Address(data[8:24]))
        dst = str(ipaddress.IPv6Address(data[24:40]))
        body = data[40 : 40 + plen]
    else:
        return None
    if proto == IPPROTO_UDP and len(body) >= 8:
        sport, dport = struct.unpack("!HH", body[:4])
        return IpSegment(
            src=src, dst=dst, proto=proto, sport=sport, dport=dport, seq=0, payload=body[8:]
        )
    if proto == IPPROTO_TCP and len(body) >= 20:
        sport, dport, seq = struct.unpack("!HHI", body[:8])
        off = (body[12] >> 4) * 4
        return IpSegment(
            src=src, dst=dst, proto=proto, sport=sport, dport=dport, seq=seq, payload=body[off:]
        )
    return None
