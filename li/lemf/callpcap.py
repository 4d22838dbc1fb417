"""``call.pcap``: one intercepted call as the tools LI analysts use see a call.

``x2x3.pcap`` keeps the handover as delivered (X2/X3 PDUs over TCP, TS 103 221-2) and
``cc.pcap`` the decrypted media; neither is a *call* to sngrep or Wireshark's VoIP Calls: the
SIP sits inside X2 PDUs, and the RTP has no signalling next to it. This file joins them:

* every intercepted SIP message (X2 payload format 5, "SIP message") as a plain SIP/UDP packet
  between the addresses the POI saw (the X2 PDU's source/destination address and port
  attributes, TS 103 221-2 clause 5.3.x); without them, from the message itself (the top
  Via's sent-by, RFC 3261 §18.2.2) and the documentation address 192.0.2.1 (RFC 5737) for the
  side the message does not name;
* every RTP and RTCP packet the LEMF could decrypt (or that was never encrypted), between the
  media addresses the CC-POI saw;

in time order (the PDUs' timestamps). SDES keys are blanked in the SIP copies (``inline:``
key-salt replaced by as many ``X``: same length, so Content-Length stays right): the media
here is already decrypted, and the keys stay where they are needed (``keys.jsonl``, and the
delivered record ``x2x3.pcap``). Packets arrive out of order (X2 and X3 come from different
POIs over different connections, and SRTP waiting for its key is replayed late),
so the packets are kept and the file is rewritten, sorted, atomically (temp file + rename,
mode 0600) when the call's files are flushed. SIP reported by several POIs (P-CSCF and S-CSCF
both intercept the INVITE) appears once per hop, as in a capture taken on every hop: sngrep
and Wireshark group them by Call-ID into one call. With the SDP's addresses the RTP matches
(Wireshark's RTP conversation set-up from SDP), so VoIP Calls / RTP Player tie the audio to it.

Memory is bounded: past ``max_packets`` packets the file stops growing and the summary says
how many were left out (``cc.pcap`` and ``x2x3.pcap`` still hold everything). A suspended call
(:meth:`release`) drops its packets from memory and reloads them from the file when it resumes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from li.pcap import PcapError, PcapWriter, read_pcap, udp_packet
from li.x2x3.pdu import DestinationAddress, DestinationPort, Pdu, SourceAddress, SourcePort

MAX_PACKETS = 200_000  # ~30 min of two-way 20 ms audio plus its signalling
UNKNOWN_HOST = "192.0.2.1"  # RFC 5737 TEST-NET-1: a side the message does not name
SIP_PORT = 5060

_VIA = re.compile(
    rb"^(?:Via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*\w+[ \t]+"
    rb"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:;,]+)(?::(?P<port>\d+))?",
    re.I | re.M,
)


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


_INLINE = re.compile(rb"(a=crypto:[^\r\n]*?inline:)([A-Za-z0-9+/=]+)")


def blank_sdes_keys(message: bytes) -> bytes:
    """``a=crypto:... inline:KEY`` -> ``inline:XXX...`` (RFC 4568 §6.1 key-salt), same length."""
    return _INLINE.sub(lambda m: m.group(1) + b"X" * len(m.group(2)), message)


def via_sent_by(message: bytes) -> tuple[str, int] | None:
    """The top Via's sent-by as (IP, port), when it is an IP address (RFC 3261 §18.2.2)."""
    head = message.split(b"\r\n\r\n", 1)[0]
    m = _VIA.search(head)
    if m is None:
        return None
    host = _ip(m.group("host").decode("ascii", "replace"))
    if host is None:
        return None
    return host, int(m.group("port") or SIP_PORT)


def sip_addresses(pdu: Pdu) -> tuple[tuple[str, int], tuple[str, int]]:
    """(source, destination) of the SIP message in an X2 PDU (see the module docstring)."""
    sa, da = pdu.find(SourceAddress), pdu.find(DestinationAddress)
    sp, dp = pdu.find(SourcePort), pdu.find(DestinationPort)
    if sa is not None and da is not None:
        return (
            (str(sa.address), sp.port if sp else SIP_PORT),
            (str(da.address), dp.port if dp else SIP_PORT),
        )
    sent_by = via_sent_by(pdu.payload) or (UNKNOWN_HOST, SIP_PORT)
    other = (UNKNOWN_HOST if sent_by[0] != UNKNOWN_HOST else "192.0.2.2", SIP_PORT)
    is_request = not pdu.payload.startswith(b"SIP/2.0")
    return (sent_by, other) if is_request else (other, sent_by)


@dataclass(slots=True)
class CallPcap:
    """The packets of ``call.pcap`` and the file (see the module docstring)."""

    path: Path
    max_packets: int = MAX_PACKETS
    sip: int = 0  # SIP messages in the file (as of the last write)
    media: int = 0  # RTP/RTCP packets in the file
    dropped: int = 0  # left out past max_packets
    _packets: list[tuple[float, int, bool, bytes]] = field(default_factory=list)
    _order: int = 0  # arrival order: equal timestamps keep it
    _dirty: bool = False
    _loaded: bool = True  # False after release(): reload the file before adding

    def __post_init__(self) -> None:
        if self.path.exists():
            self._loaded = False  # a restarted LEMF: continue the file, not replace it
            self._load()

    @property
    def packets(self) -> int:
        return self.sip + self.media

    def add_sip(self, pdu: Pdu, ts: float) -> None:
        """An X2 PDU carrying a SIP message."""
        src, dst = sip_addresses(pdu)
        try:
            packet = udp_packet(src[0], src[1], dst[0], dst[1], blank_sdes_keys(pdu.payload))
        except ValueError:  # mixed IPv4/IPv6 or an oversized message: not a UDP packet
            self.dropped += 1
            return
        self._add(ts, True, packet)

    def add_media(self, rtp: bytes, ts: float, addr: tuple[str, int, str, int]) -> None:
        """A decrypted (or plain) RTP/RTCP packet between ``addr``'s endpoints."""
        try:
            packet = udp_packet(addr[0], addr[1], addr[2], addr[3], rtp)
        except ValueError:
            self.dropped += 1
            return
        self._add(ts, False, packet)

    def add_packet(self, ip_packet: bytes, ts: float) -> None:
        """A decrypted media packet already built as IP/UDP (what ``cc.pcap`` got)."""
        self._add(ts, False, ip_packet)

    def _add(self, ts: float, is_sip: bool, packet: bytes) -> None:
        if not self._loaded:
            self._load()
        if len(self._packets) >= self.max_packets:
            self.dropped += 1
            return
        self._order += 1
        self._packets.append((ts, self._order, is_sip, packet))
        self._dirty = True

    def write(self) -> None:
        """Rewrite the file, time-ordered, if anything was added since the last write."""
        if not self._dirty:
            return
        self._packets.sort(key=lambda p: (p[0], p[1]))
        tmp = self.path.with_name(self.path.name + ".tmp")
        with PcapWriter(tmp) as w:
            for ts, _, _, packet in self._packets:
                w.write(packet, ts)
        os.replace(tmp, self.path)
        self.sip = sum(1 for p in self._packets if p[2])
        self.media = len(self._packets) - self.sip
        self._dirty = False

    def release(self) -> None:
        """Write, then free the memory (a suspended call); the next add reloads the file."""
        self.write()
        self._packets = []
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        if not self.path.exists():
            return
        try:
            loaded = [
                (rec.ts, i, _is_sip(rec.data), rec.data)
                for i, rec in enumerate(read_pcap(self.path))
            ]
        except PcapError:
            loaded = []  # a torn file (killed mid-rename cannot happen; a foreign one can)
        self._packets = loaded + self._packets
        self._order = max(self._order, len(loaded))
        self.sip = sum(1 for p in loaded if p[2])
        self.media = len(loaded) - self.sip

    def summary(self) -> dict[str, int]:
        return {"sip_messages": self.sip, "media_packets": self.media, "left_out": self.dropped}


def _is_sip(ip_packet: bytes) -> bool:
    """Whether a packet of call.pcap carries SIP (start line) rather than RTP/RTCP."""
    header = (ip_packet[0] & 0x0F) * 4 if ip_packet[:1] and ip_packet[0] >> 4 == 4 else 40
    payload = ip_packet[header + 8 :]
    return payload.startswith(b"SIP/2.0 ") or bool(re.match(rb"[A-Z]+ \S+ SIP/2\.0\r?\n", payload))
