"""An RTP/RTCP media session on asyncio (the adapter around the sans-I/O media cores).

- Binds an RTP/RTCP UDP port pair (RTP even port, RTCP = RTP + 1, RFC 3550 §11).
- Sends one G.711 frame per ``ptime`` (20 ms), scheduled against ``loop.time()`` from a fixed
  start (``start + n·ptime``), so timer jitter never accumulates into drift; if the loop
  stalls for more than a few frames the schedule is re-based (counted) instead of bursting.
- Plain RTP, or SRTP/SRTCP through :mod:`ims.media.srtp` (pylibsrtp fast path, explicit-ROC
  fallback); every failure is counted, never raised into the loop, never logged per packet.
- Receive: RFC 3550 statistics (loss, jitter), a small reorder buffer, G.711 decode into an
  optional sink (WAV writer, memory buffer for tone detection).
- RTCP: an SR every ``rtcp_interval`` seconds (plus SDES CNAME), SR/RR parsed on receipt,
  BYE on stop.
- Hook points (:mod:`ims.media.hooks`): ``add_hook`` sees and may rewrite/drop every packet on the
  wire (both directions, RTP and RTCP); ``add_observer`` sees received packets in clear.
- Event loop: uvloop when the caller runs it (``lab.aio.run``); on the default selector loop the
  datagram transport's per-read buffer (256 KiB by default) is cut to 2 KiB (``max_size``), which
  measured 30k → 50k pps on this machine (peers.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from ims.log import get_logger
from ims.media import g711
from ims.media.audio import FRAME_SAMPLES, AudioSink, AudioSource
from ims.media.dtmf import DtmfReceiver, event_payloads
from ims.media.hooks import (
    Direction,
    Hook,
    Observer,
    PacketEvent,
    PacketKind,
    run_hooks,
    run_observers,
)
from ims.media.keys import SrtpKeys
from ims.media.rtp import (
    ReportBlock,
    RtcpBye,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtcpSourceDescription,
    RtpError,
    RtpPacket,
    SdesChunk,
    SdesItem,
    decode_rtcp,
    decode_rtp,
    encode_rtcp,
    encode_rtp,
    is_rtcp,
)
from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.media.stats import ReceiverStats, ReorderBuffer

log = get_logger("ims.media.session")
NTP_EPOCH_OFFSET = 2208988800
SMALL_MAX_SIZE = 2048


def tune_transport(transport: asyncio.BaseTransport) -> None:
    """The default-loop fix: don't allocate 256 KiB per datagram read."""
    if hasattr(transport, "max_size"):
        transport.max_size = SMALL_MAX_SIZE


@dataclass(slots=True)
class MediaStats:
    sent: int = 0
    received: int = 0
    lost: int = 0
    jitter: float = 0.0  # timestamp units
    duplicates: int = 0
    late: int = 0
    auth_failures: int = 0
    replay_failures: int = 0
    decode_errors: int = 0
    dropped_by_hook: int = 0
    hook_errors: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    schedule_resets: int = 0
    resyncs: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        tune_transport(transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        pass


def set_rcvbuf(ep: UdpEndpoint, size: int) -> None:
    """Enlarge the socket receive buffer (absorbs scheduling hiccups of a busy relay)."""
    if ep.transport is None:
        return
    sock = ep.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


async def bind_pair(
    host: str, port: int = 0, *, attempts: int = 50
) -> tuple[UdpEndpoint, UdpEndpoint, int]:
    """Bind RTP on an even port and RTCP on port+1 (port 0: pick a free pair)."""
    loop = asyncio.get_running_loop()
    dummy: Callable[[bytes, tuple[str, int]], None] = lambda d, a: None  # noqa: E731
    for _ in range(attempts):
        rtp_port = port
        _, rtp = await loop.create_datagram_endpoint(
            lambda: UdpEndpoint(dummy), local_addr=(host, rtp_port)
        )
        assert rtp.transport is not None
        actual = rtp.transport.get_extra_info("sockname")[1]
        if port == 0 and actual % 2:
            rtp.transport.close()
            continue
        try:
            _, rtcp = await loop.create_datagram_endpoint(
                lambda: UdpEndpoint(dummy), local_addr=(host, actual + 1)
            )
        except OSError:
            rtp.transport.close()
            if port:
                raise
            continue
        return rtp, rtcp, actual
    raise OSError(f"no free RTP/RTCP port pair on {host}")


class MediaSession:
    """One audio stream: send from ``source``, receive into ``sink``."""

    def __init__(
        self,
        *,
        payload_type: int = 0,
        ssrc: int | None = None,
        tx_keys: SrtpKeys | None = None,
        rx_keys: SrtpKeys | None = None,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        ptime: float = 0.02,
        rtcp_interval: float = 5.0,
        cname: str = "imslab",
        reorder_depth: int = 3,
        telephone_event: int | None = 101,
    ) -> None:
        if payload_type not in g711.PAYLOAD_TYPES:
            raise ValueError(f"payload type {payload_type} is not G.711 (0 or 8)")
        self.payload_type = payload_type
        self.codec = g711.PAYLOAD_TYPES[payload_type]
        self._encode = g711.ENCODERS[self.codec]
        self._decode = g711.DECODERS[self.codec]
        self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
        self.sender = SrtpSender(tx_keys) if tx_keys else None
        self.receiver = SrtpReceiver(rx_keys) if rx_keys else None
        self.source = source
        self.sink = sink
        self.ptime = ptime
        self.rtcp_interval = rtcp_interval
        self.cname = cname.encode()
        self.stats = MediaStats()
        self.rx = ReceiverStats()
        self.reorder = ReorderBuffer(depth=reorder_depth)
        self.remote_rtp: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.hooks: list[Hook] = []
        self.observers: list[Observer] = []
        self.last_sr: RtcpSenderReport | None = None
        self.last_sr_arrival = 0.0
        self.remote_reports: list[ReportBlock] = []  # report blocks about our stream
        self._expected_prior = 0
        self._received_prior = 0
        self.remote_ssrcs: set[int] = set()
        self.telephone_event = telephone_event
        self.dtmf = DtmfReceiver()
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._octets = 0
        self._rtp: UdpEndpoint | None = None
        self._rtcp: UdpEndpoint | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._hook_errors = [0]
        self.local_port = 0
        self.local_host = ""

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    async def create(
        cls, local_host: str = "127.0.0.1", local_port: int = 0, **kwargs: Any
    ) -> MediaSession:
        self = cls(**kwargs)
        rtp, rtcp, port = await bind_pair(local_host, local_port)
        rtp.on_datagram = self._on_rtp
        rtcp.on_datagram = self._on_rtcp
        self._rtp, self._rtcp = rtp, rtcp
        self.local_host, self.local_port = local_host, port
        return self

    @property
    def local_rtp_addr(self) -> tuple[str, int]:
        return (self.local_host, self.local_port)

    @property
    def local_rtcp_addr(self) -> tuple[str, int]:
        return (self.local_host, self.local_port + 1)

    def set_remote(self, host: str, rtp_port: int, rtcp_port: int | None = None) -> None:
        self.remote_rtp = (host, rtp_port)
        self.remote_rtcp = (host, rtcp_port if rtcp_port is not None else rtp_port + 1)

    def set_keys(self, tx_keys: SrtpKeys | None, rx_keys: SrtpKeys | None) -> None:
        """Attach (or replace, on re-keying) SRTP keys once offer/answer is done.

        A UE must put its port in the offer before the keys are agreed, so sessions are often
        created plain and keyed here. ``None`` for a direction means plain RTP that way.
        """
        self.sender = SrtpSender(tx_keys) if tx_keys else None
        self.receiver = SrtpReceiver(rx_keys) if rx_keys else None

    def add_hook(self, hook: Hook) -> None:
        self.hooks.append(hook)

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def start(self, *, frames: int | None = None) -> None:
        """Start sending (when a source is set) and RTCP; ``frames`` bounds the send loop."""
        if self.source is not None:
            self._tasks.append(asyncio.ensure_future(self._send_loop(frames)))
        if self.rtcp_interval > 0:
            self._tasks.append(asyncio.ensure_future(self._rtcp_loop()))

    async def wait_sent(self) -> None:
        """Wait until a bounded send loop (``start(frames=n)``) is done."""
        if self._tasks:
            await asyncio.shield(self._tasks[0])

    async def stop(self, *, bye: bool = True) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        if bye and self.remote_rtcp is not None and self._rtcp is not None:
            self._send_rtcp(
                [self._report(), RtcpBye(ssrcs=(self.ssrc,), reason=b"session stopped")]
            )
        for frame in self.reorder.flush():
            self._play(frame)
        for ep in (self._rtp, self._rtcp):
            if ep is not None and ep.transport is not None:
                ep.transport.close()
                ep.transport = None  # stop() is idempotent; late sends become no-ops
        self._sync_stats()

    # -- sending --------------------------------------------------------------------------
    async def send_dtmf(self, digits: str, *, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Send digits as RFC 4733 telephone-events (needs a negotiated telephone-event PT)."""
        if self.telephone_event is None:
            raise ValueError("no telephone-event payload type negotiated")
        for digit in digits:
            ts = self._ts
            for marker, payload in event_payloads(digit, duration_ms=duration_ms):
                pkt = RtpPacket(
                    payload_type=self.telephone_event,
                    sequence_number=self._seq,
                    timestamp=ts,
                    ssrc=self.ssrc,
                    marker=marker,
                    payload=payload,
                )
                self._seq = (self._seq + 1) & 0xFFFF
                self.send_rtp(encode_rtp(pkt))
                await asyncio.sleep(self.ptime)
            # The event occupied its duration and the gap: move the media clock past it (audio
            # running alongside has usually done so already; never move it backwards).
            end = (ts + 8 * (duration_ms + gap_ms)) & 0xFFFFFFFF
            if (end - self._ts) & 0xFFFFFFFF < 0x80000000:
                self._ts = end
            await asyncio.sleep(gap_ms / 1000)

    def send_frame(self, pcm: bytes, *, marker: bool = False) -> None:
        """Encode, packetise, protect and send one frame now."""
        pkt = RtpPacket(
            payload_type=self.payload_type,
            sequence_number=self._seq,
            timestamp=self._ts,
            ssrc=self.ssrc,
            marker=marker,
            payload=self._encode(pcm),
        )
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + len(pcm) // 2) & 0xFFFFFFFF
        self.send_rtp(encode_rtp(pkt))

    def send_rtp(self, plain: bytes) -> None:
        if self.remote_rtp is None or self._rtp is None or self._rtp.transport is None:
            return
        wire = plain
        if self.sender is not None:
            protected = self.sender.protect(plain)
            if protected is None:
                return
            wire = protected
        if self.hooks:
            ev = PacketEvent(
                Direction.OUT, PacketKind.RTP, wire, plain, self.remote_rtp, self._now()
            )
            hooked = run_hooks(self.hooks, ev, self._hook_errors)
            if hooked is None:
                self.stats.dropped_by_hook += 1
                return
            wire = hooked
        self._rtp.transport.sendto(wire, self.remote_rtp)
        self.stats.sent += 1
        self._octets += len(plain) - 12

    async def _send_loop(self, frames: int | None) -> None:
        loop = asyncio.get_running_loop()
        assert self.source is not None
        start = loop.time()
        n = 0
        while frames is None or n < frames:
            self.send_frame(self.source.read(FRAME_SAMPLES), marker=(n == 0))
            n += 1
            due = start + n * self.ptime
            delay = due - loop.time()
            if delay < -5 * self.ptime:  # stalled loop: re-base instead of bursting
                self.stats.schedule_resets += 1
                start = loop.time() - n * self.ptime
                delay = 0
            if delay > 0:
                await asyncio.sleep(delay)

    # -- RTCP -----------------------------------------------------------------------------
    def _report_blocks(self) -> tuple[ReportBlock, ...]:
        """RFC 3550 §6.4.1 reception report about the (first) remote source, if any."""
        if not self.remote_ssrcs or self.rx.base_seq < 0:
            return ()
        expected, received = self.rx.expected, self.rx.received
        exp_int = expected - self._expected_prior
        rcv_int = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_int = exp_int - rcv_int
        fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
        lsr = dlsr = 0
        if self.last_sr is not None:
            lsr = (self.last_sr.ntp_timestamp >> 16) & 0xFFFFFFFF
            dlsr = int((self._now() - self.last_sr_arrival) * 65536) & 0xFFFFFFFF
        lost = max(min(expected - received, 0x7FFFFF), -0x800000)
        return (
            ReportBlock(
                ssrc=min(self.remote_ssrcs),
                fraction_lost=min(fraction, 255),
                packets_lost=lost,
                highest_sequence=self.rx.extended_max & 0xFFFFFFFF,
                jitter=int(self.rx.jitter) & 0xFFFFFFFF,
                lsr=lsr,
                dlsr=dlsr,
            ),
        )

    def _report(self) -> RtcpSenderReport | RtcpReceiverReport:
        """An SR when we have sent media, else an RR (RFC 3550 §6.4)."""
        blocks = self._report_blocks()
        if self.stats.sent == 0:
            return RtcpReceiverReport(ssrc=self.ssrc, reports=blocks)
        now = time.time() + NTP_EPOCH_OFFSET
        ntp = (int(now) << 32) | int((now % 1) * (1 << 32))
        return RtcpSenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp,
            rtp_timestamp=self._ts,
            packet_count=self.stats.sent & 0xFFFFFFFF,
            octet_count=self._octets & 0xFFFFFFFF,
            reports=blocks,
        )

    def _send_rtcp(self, packets: list[Any]) -> None:
        if self.remote_rtcp is None or self._rtcp is None or self._rtcp.transport is None:
            return
        plain = encode_rtcp(packets)
        wire = plain
        if self.sender is not None:
            protected = self.sender.protect_rtcp(plain)
            if protected is None:
                return
            wire = protected
        if self.hooks:
            ev = PacketEvent(
                Direction.OUT, PacketKind.RTCP, wire, plain, self.remote_rtcp, self._now()
            )
            hooked = run_hooks(self.hooks, ev, self._hook_errors)
            if hooked is None:
                self.stats.dropped_by_hook += 1
                return
            wire = hooked
        self._rtcp.transport.sendto(wire, self.remote_rtcp)
        self.stats.rtcp_sent += 1

    async def _rtcp_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rtcp_interval)
            sdes = RtcpSourceDescription(
                chunks=(SdesChunk(ssrc=self.ssrc, items=((SdesItem.CNAME, self.cname),)),)
            )
            self._send_rtcp([self._report(), sdes])

    # -- receiving ------------------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):  # RFC 5761 mux on the RTP port
            self._on_rtcp(data, addr)
            return
        now = self._now()
        wire = data
        if self.hooks:
            ev = PacketEvent(Direction.IN, PacketKind.RTP, data, None, addr, now)
            hooked = run_hooks(self.hooks, ev, self._hook_errors)
            if hooked is None:
                self.stats.dropped_by_hook += 1
                return
            wire = hooked
        plain = wire if self.receiver is None else self.receiver.unprotect(wire)
        if plain is None:
            self._sync_stats()
            return
        try:
            pkt = decode_rtp(plain)
        except RtpError:
            self.stats.decode_errors += 1
            return
        if self.observers:
            ev = PacketEvent(Direction.IN, PacketKind.RTP, wire, plain, addr, now)
            run_observers(self.observers, ev, self._hook_errors)
        self.remote_ssrcs.add(pkt.ssrc)
        if not self.rx.update(pkt.sequence_number, pkt.timestamp, now):
            self.stats.duplicates += 1
            return
        self.stats.received += 1
        if pkt.payload_type != self.payload_type:
            if pkt.payload_type == self.telephone_event:
                try:
                    self.dtmf.push(pkt.timestamp, pkt.payload)
                except RtpError:
                    self.stats.decode_errors += 1
            return  # another codec: counted, not played
        for frame in self.reorder.push(pkt.sequence_number, pkt.payload):
            self._play(frame)

    def _play(self, frame: bytes | None) -> None:
        if self.sink is None:
            return
        if frame is None:
            self.sink.write(bytes(2 * FRAME_SAMPLES))  # lost frame: silence keeps the timing
        else:
            self.sink.write(self._decode(frame))

    def _on_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        now = self._now()
        wire = data
        if self.hooks:
            ev = PacketEvent(Direction.IN, PacketKind.RTCP, data, None, addr, now)
            hooked = run_hooks(self.hooks, ev, self._hook_errors)
            if hooked is None:
                self.stats.dropped_by_hook += 1
                return
            wire = hooked
        plain = wire if self.receiver is None else self.receiver.unprotect_rtcp(wire)
        if plain is None:
            self._sync_stats()
            return
        try:
            packets = decode_rtcp(plain)
        except RtpError:
            self.stats.decode_errors += 1
            return
        self.stats.rtcp_received += 1
        if self.observers:
            ev = PacketEvent(Direction.IN, PacketKind.RTCP, wire, plain, addr, now)
            run_observers(self.observers, ev, self._hook_errors)
        for p in packets:
            if isinstance(p, RtcpSenderReport):
                self.last_sr = p
                self.last_sr_arrival = now
            if isinstance(p, RtcpSenderReport | RtcpReceiverReport):
                self.remote_reports.extend(r for r in p.reports if r.ssrc == self.ssrc)
                del self.remote_reports[:-16]

    def _sync_stats(self) -> MediaStats:
        s = self.stats
        s.lost = self.rx.lost
        s.jitter = self.rx.jitter
        s.late = self.reorder.late
        s.hook_errors = self._hook_errors[0]
        if self.receiver is not None:
            r = self.receiver.stats
            s.auth_failures = r.auth_failures
            s.replay_failures = r.replay_failures
            s.resyncs = r.resyncs
            s.decode_errors = max(s.decode_errors, r.format_errors)
        return s

    def snapshot(self) -> MediaStats:
        """Current statistics (also refreshed on stop)."""
        return self._sync_stats()
