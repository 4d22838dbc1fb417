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
delivered record ``x2x3.pcap``). SIP reported by several POIs (P-CSCF and S-CSCF both
intercept the INVITE) appears once per hop, as in a capture taken on every hop: sngrep and
Wireshark group them by Call-ID into one call. With the SDP's addresses the RTP matches
(Wireshark's RTP conversation set-up from SDP), so VoIP Calls / RTP Player tie the audio to it.

Order and cost: packets arrive out of order (X2 and X3 come from different POIs over
different connections; SRTP waiting for its key is replayed late). Packets are held back
``HOLDBACK`` seconds (of PDU time) and then *appended* in time order, so a long call costs one
write per packet; a packet older than what the file already holds (a replay after a late
key) makes one rewrite of the file, merged and sorted (temp file + rename, 0600). At the end
of the call and on every explicit flush, suspend or close, everything held back is written.
Memory holds only the held-back packets.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from li.pcap import PcapError, PcapRecord, PcapWriter, read_pcap, udp_packet
from li.x2x3.pdu import DestinationAddress, DestinationPort, Pdu, SourceAddress, SourcePort

HOLDBACK = 2.0  # seconds of PDU time a packet waits for earlier ones from slower POIs
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
    holdback: float = HOLDBACK
    sip: int = 0  # SIP messages in the file
    media: int = 0  # RTP/RTCP packets in the file
    dropped: int = 0  # not representable as UDP/IP (mixed address families, oversized)
    rewrites: int = 0  # times a late packet made the file be rewritten
    # (time, arrival order, IP packet, is SIP): what each packet is is known when it is added
    _pending: list[tuple[float, int, bytes, bool]] = field(default_factory=list)
    _order: int = 0  # arrival order: equal timestamps keep it
    _latest: float = float("-inf")  # newest PDU time seen
    _written: float = float("-inf")  # newest time in the file

    def __post_init__(self) -> None:
        if self.path.exists():  # a restarted LEMF continues the file
            for rec in _records(self.path):
                self._count(rec.data)
                self._written = max(self._written, rec.ts)

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
        self._add(ts, packet, True)

    def add_media(self, rtp: bytes, ts: float, addr: tuple[str, int, str, int]) -> None:
        """A decrypted (or plain) RTP/RTCP packet between ``addr``'s endpoints."""
        try:
            packet = udp_packet(addr[0], addr[1], addr[2], addr[3], rtp)
        except ValueError:
            self.dropped += 1
            return
        self._add(ts, packet, False)

    def add_packet(self, ip_packet: bytes, ts: float) -> None:
        """A decrypted media packet already built as IP/UDP (what ``cc.pcap`` got)."""
        self._add(ts, ip_packet, False)

    def _add(self, ts: float, packet: bytes, sip: bool) -> None:
        self._order += 1
        self._pending.append((ts, self._order, packet, sip))
        if ts > self._latest:
            self._latest = ts

    def write(self, *, final: bool = False) -> None:
        """Write what is older than the hold-back window (everything when ``final``)."""
        if not self._pending:
            return
        cutoff = float("inf") if final else self._latest - self.holdback
        ready = [p for p in self._pending if p[0] <= cutoff]
        if not ready:
            return
        self._pending = [p for p in self._pending if p[0] > cutoff]
        ready.sort(key=lambda p: (p[0], p[1]))
        if ready[0][0] < self._written:
            self._rewrite(ready)
        else:
            with PcapWriter(self.path, append=True) as w:
                for ts, _, packet, sip in ready:
                    w.write(packet, ts)
                    if sip:
                        self.sip += 1
                    else:
                        self.media += 1
        self._written = max(self._written, ready[-1][0])

    def _rewrite(self, ready: list[tuple[float, int, bytes, bool]]) -> None:
        """A packet older than the file's newest: merge the file and ``ready``, in order."""
        self.rewrites += 1
        old = [(rec.ts, i, rec.data) for i, rec in enumerate(_records(self.path))]
        new = [(ts, order, packet) for ts, order, packet, _ in ready]
        merged = sorted(old + new, key=lambda p: p[0])  # stable: the file's order first
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.sip = self.media = 0
        with PcapWriter(tmp) as w:
            for ts, _, packet in merged:
                w.write(packet, ts)
                self._count(packet)
        os.replace(tmp, self.path)

    def _count(self, ip_packet: bytes) -> None:
        if _is_sip(ip_packet):
            self.sip += 1
        else:
            self.media += 1

    def release(self) -> None:
        """Write everything held back (a suspended or closed call)."""
        self.write(final=True)

    def summary(self) -> dict[str, int]:
        return {
            "sip_messages": self.sip,
            "media_packets": self.media,
            "held_back": len(self._pending),
            "not_representable": self.dropped,
            "rewrites": self.rewrites,
        }


def _records(path: Path) -> list[PcapRecord]:
    if not path.exists():
        return []
    try:
        return list(read_pcap(path))
    except PcapError:
        return []  # not ours (a torn temp file is never renamed over it)


def _is_sip(ip_packet: bytes) -> bool:
    """Whether a packet of call.pcap carries SIP (start line) rather than RTP/RTCP."""
    header = (ip_packet[0] & 0x0F) * 4 if ip_packet[:1] and ip_packet[0] >> 4 == 4 else 40
    payload = ip_packet[header + 8 :]
    return payload.startswith(b"SIP/2.0 ") or bool(re.match(rb"[A-Z]+ \S+ SIP/2\.0\r?\n", payload))
