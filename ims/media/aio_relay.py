"""The RTP/RTCP relay: the one packet path of the lab's media anchor, and an SRTP-terminating relay.

A relay session has two legs; a leg is an RTP socket and an RTCP socket (even port, port + 1).
A packet arriving on one leg's socket leaves from the *other* leg's socket of the same kind
(:attr:`RelaySocket.peer`) to that socket's :attr:`~RelaySocket.remote`: the far end of the
other leg, from SDP (:meth:`RelayLeg.set_remote`) or latched from the first packet received
(symmetric RTP, RFC 4961 §3: "the same port for sending and receiving").

:class:`RelaySocket` is the hot path, and it is written for it (issue 19, measured by
``benchmarks/bench_media_pipeline.py``): one ``datagram_received`` that does two attribute
reads, one ``sendto`` and two counter updates per packet, no allocation of its own, no
per-packet closure or dict look-up. Anything more (hooks, SRTP) is a *filter* the owner
installs, called only while the owner's ``gate`` (a list: the hook list itself) is non-empty,
so an anchor without taps pays one truth test for them.

Users:

* :mod:`proxies.media_anchor`: SRTP passes through untouched (end-to-end keys stay end to
  end); its media hooks (the CC-POI, a media MITM) are the filter;
* :class:`RtpRelay`: per leg, optionally terminates SRTP (``rx_keys``: unprotect what arrives,
  an IMS-AGW for e2ae, TS 33.328) and protects what leaves (``tx_keys``); its hooks
  (:mod:`ims.media.hooks`) see every packet once on ingress, with the plaintext when the leg
  terminates SRTP.

RTCP multiplexed on the RTP port (RFC 5761) is relayed as it came, on the RTP sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ims.media.hooks import Direction, Hook, PacketEvent, PacketKind, run_hooks
from ims.media.keys import SrtpKeys
from ims.media.rtp import is_rtcp
from ims.media.srtp import SrtpReceiver, SrtpSender

Addr = tuple[str, int]
RelayFilter = Callable[["RelaySocket", bytes, Addr, Addr], "bytes | None"]
"""``(socket it arrived on, data, source, destination) -> bytes to send, or None to drop``."""

SMALL_MAX_SIZE = 2048  # the default loop reads into a 256 KiB buffer per datagram otherwise
_NO_GATE: list[object] = []


class RelaySocket(asyncio.DatagramProtocol):
    """One bound UDP socket of a relay leg; forwards what it receives out of :attr:`peer`.

    ``peer is None``: the socket is parked (an anchor's pool) and drops what still arrives.
    ``latched`` false: the next packet's source becomes the leg's remote (``on_latch``).
    """

    __slots__ = (
        "transport",
        "peer",
        "remote",
        "latched",
        "on_latch",
        "filter",
        "gate",
        "owner",
        "rtcp",
        "packets",
        "bytes",
        "dropped",
    )

    def __init__(self, *, rtcp: bool = False) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: RelaySocket | None = None
        self.remote: Addr | None = None  # where packets sent out of *this* socket go
        self.latched = True
        self.on_latch: Callable[[RelaySocket, Addr], None] | None = None
        self.filter: RelayFilter | None = None
        self.gate: list[Any] = _NO_GATE  # filter runs while this list is non-empty
        self.owner: Any = None
        self.rtcp = rtcp
        self.packets = 0  # forwarded
        self.bytes = 0  # forwarded
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if hasattr(transport, "max_size"):
            transport.max_size = SMALL_MAX_SIZE

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = self.peer
        if peer is None:
            return  # parked
        if not self.latched:
            if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope)
                addr = (addr[0], addr[1])
            self.on_latch(self, addr)  # type: ignore[misc]
        dst = peer.remote
        if dst is None:
            self.dropped += 1
            return
        if self.gate:
            if len(addr) != 2:
                addr = (addr[0], addr[1])
            out = self.filter(self, data, addr, dst)  # type: ignore[misc]
            if out is None:
                self.dropped += 1
                return
            data = out
        peer.transport.sendto(data, dst)  # type: ignore[union-attr]
        self.packets += 1
        self.bytes += len(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that has gone away: count, keep relaying.
        self.dropped += 1

    def close(self) -> None:
        self.peer = None
        if self.transport is not None:
            self.transport.close()

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()


def _latch_leg(sock: RelaySocket, src: Addr) -> None:
    """Latch once per leg: the first packet's source (RTP, or RTCP minus one) is the far end."""
    leg: RelayLeg = sock.owner
    leg.latch((src[0], src[1] - 1) if sock.rtcp else src)


@dataclass(slots=True, eq=False)
class RelayLeg:
    """An RTP + RTCP socket pair on ``(host, port)`` / ``port + 1``."""

    name: str
    host: str
    port: int
    rtp: RelaySocket
    rtcp: RelaySocket

    @property
    def local_rtp_addr(self) -> Addr:
        return (self.host, self.port)

    @property
    def remote(self) -> Addr | None:
        return self.rtp.remote

    @property
    def latched(self) -> bool:
        return self.rtp.latched and self.rtcp.latched

    def set_remote(self, rtp: Addr, rtcp: Addr | None = None) -> None:
        self.rtp.remote = rtp
        self.rtcp.remote = rtcp if rtcp is not None else (rtp[0], rtp[1] + 1)

    def latch(self, rtp: Addr) -> None:
        if self.rtp.remote != rtp:
            self.set_remote(rtp)
        self.rtp.latched = self.rtcp.latched = True

    def expect_latch(self) -> None:
        """Take the far end from the first packet that arrives on either socket."""
        for s in (self.rtp, self.rtcp):
            s.owner = self
            s.on_latch = _latch_leg
            s.latched = False

    def connect(self, other: RelayLeg) -> None:
        """What arrives here leaves from ``other`` (and back)."""
        self.rtp.peer, other.rtp.peer = other.rtp, self.rtp
        self.rtcp.peer, other.rtcp.peer = other.rtcp, self.rtcp

    def park(self) -> None:
        """Stop relaying; the sockets stay bound (and drop what arrives) until reused."""
        for s in (self.rtp, self.rtcp):
            s.peer = None
            s.remote = None
            s.filter = None
            s.gate = _NO_GATE
            s.on_latch = None
            s.latched = True
            s.packets = s.bytes = s.dropped = 0

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()

    @property
    def usable(self) -> bool:
        return not (self.rtp.closing or self.rtcp.closing)


def _set_rcvbuf(sock: RelaySocket, size: int) -> None:
    if size and sock.transport is not None:
        raw = sock.transport.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


async def bind_leg(name: str, host: str, port: int, *, rcvbuf: int = 0) -> RelayLeg:
    """Bind RTP on ``port`` and RTCP on ``port + 1``; OSError when either is taken."""
    loop = asyncio.get_running_loop()
    _, rtp = await loop.create_datagram_endpoint(RelaySocket, local_addr=(host, port))
    try:
        _, rtcp = await loop.create_datagram_endpoint(
            lambda: RelaySocket(rtcp=True), local_addr=(host, port + 1)
        )
    except OSError:
        rtp.close()
        raise
    for s in (rtp, rtcp):
        _set_rcvbuf(s, rcvbuf)
    return RelayLeg(name=name, host=host, port=port, rtp=rtp, rtcp=rtcp)


async def bind_any_leg(name: str, host: str, *, rcvbuf: int = 0, attempts: int = 50) -> RelayLeg:
    """A leg on a free even/odd port pair: RTP where the kernel puts it (retried until even)."""
    loop = asyncio.get_running_loop()
    for _ in range(attempts):
        _, rtp = await loop.create_datagram_endpoint(RelaySocket, local_addr=(host, 0))
        assert rtp.transport is not None
        port = int(rtp.transport.get_extra_info("sockname")[1])
        if port % 2 == 0:
            try:
                _, rtcp = await loop.create_datagram_endpoint(
                    lambda: RelaySocket(rtcp=True), local_addr=(host, port + 1)
                )
            except OSError:
                pass
            else:
                for s in (rtp, rtcp):
                    _set_rcvbuf(s, rcvbuf)
                return RelayLeg(name=name, host=host, port=port, rtp=rtp, rtcp=rtcp)
        rtp.close()
    raise OSError(f"no free RTP/RTCP port pair on {host}")


# --- the SRTP-terminating relay ---------------------------------------------------------------


@dataclass(slots=True)
class LegStats:
    received: int = 0
    forwarded: int = 0
    dropped: int = 0  # SRTP failure, hook drop, or no remote yet
    rtcp_received: int = 0
    rtcp_forwarded: int = 0


class RtpLeg:
    """A :class:`RelayLeg` with its SRTP contexts (``rx``: terminate, ``tx``: protect)."""

    def __init__(self, leg: RelayLeg, rx: SrtpReceiver | None, tx: SrtpSender | None) -> None:
        self.leg = leg
        self.name = leg.name
        self.host = leg.host
        self.port = leg.port
        self.rx = rx
        self.tx = tx
        self.latch = True

    @property
    def local_rtp_addr(self) -> Addr:
        return self.leg.local_rtp_addr

    @property
    def remote_rtp(self) -> Addr | None:
        return self.leg.rtp.remote

    @property
    def remote_rtcp(self) -> Addr | None:
        return self.leg.rtcp.remote

    @property
    def stats(self) -> LegStats:
        rtp, rtcp = self.leg.rtp, self.leg.rtcp
        return LegStats(
            received=rtp.packets + rtp.dropped,
            forwarded=rtp.packets,
            dropped=rtp.dropped + rtcp.dropped,
            rtcp_received=rtcp.packets + rtcp.dropped,
            rtcp_forwarded=rtcp.packets,
        )


def _relatch(sock: RelaySocket, src: Addr) -> None:
    """RtpRelay's latching: follow the source of every packet until ``set_remote(latch=False)``."""
    if sock.remote != src:
        sock.remote = src


class RtpRelay:
    """Two legs on :class:`RelaySocket`; per leg optional SRTP termination and protection."""

    def __init__(self, a: RtpLeg, b: RtpLeg) -> None:
        self.a, self.b = a, b
        self.hooks: list[Hook] = []
        self._hook_errors = [0]
        a.leg.connect(b.leg)
        loop = asyncio.get_event_loop()
        for leg, other in ((a, b), (b, a)):
            crypto = leg.rx is not None or other.tx is not None
            for s in (leg.leg.rtp, leg.leg.rtcp):
                s.latched = False
                s.on_latch = _relatch
                s.filter = self._make_filter(leg, other, loop)
                # passthrough without hooks stays on the bare path; SRTP work always filters
                s.gate = [True] if crypto else self.hooks

    @classmethod
    async def create(
        cls,
        host_a: str = "127.0.0.1",
        host_b: str | None = None,
        *,
        port_a: int = 0,
        port_b: int = 0,
        a_rx_keys: SrtpKeys | None = None,
        a_tx_keys: SrtpKeys | None = None,
        b_rx_keys: SrtpKeys | None = None,
        b_tx_keys: SrtpKeys | None = None,
        rcvbuf: int = 1 << 20,
    ) -> RtpRelay:
        legs = []
        for name, host, port, rx, tx in (
            ("a", host_a, port_a, a_rx_keys, a_tx_keys),
            ("b", host_b or host_a, port_b, b_rx_keys, b_tx_keys),
        ):
            if port:
                leg = await bind_leg(name, host, port, rcvbuf=rcvbuf)
            else:
                leg = await bind_any_leg(name, host, rcvbuf=rcvbuf)
            legs.append(
                RtpLeg(leg, SrtpReceiver(rx) if rx else None, SrtpSender(tx) if tx else None)
            )
        return cls(legs[0], legs[1])

    def add_hook(self, hook: Hook) -> None:
        self.hooks.append(hook)

    @property
    def hook_errors(self) -> int:
        return self._hook_errors[0]

    def set_remote(
        self,
        leg: str,
        host: str,
        rtp_port: int,
        rtcp_port: int | None = None,
        *,
        latch: bool = False,
    ) -> None:
        lg = self.a if leg == "a" else self.b
        lg.leg.set_remote((host, rtp_port), (host, rtcp_port) if rtcp_port is not None else None)
        lg.latch = latch
        for s in (lg.leg.rtp, lg.leg.rtcp):
            s.latched = not latch

    def _make_filter(
        self, leg: RtpLeg, other: RtpLeg, loop: asyncio.AbstractEventLoop
    ) -> RelayFilter:
        hooks = self.hooks
        errors = self._hook_errors

        def through(sock: RelaySocket, data: bytes, addr: Addr, dst: Addr) -> bytes | None:
            is_ctrl = sock.rtcp or is_rtcp(data)
            out = data
            plain: bytes | None = None
            rx = leg.rx
            if rx is not None:
                plain = rx.unprotect_rtcp(data) if is_ctrl else rx.unprotect(data)
                if plain is None:
                    return None
                out = plain
            if hooks:
                ev = PacketEvent(
                    Direction.IN,
                    PacketKind.RTCP if is_ctrl else PacketKind.RTP,
                    data,
                    plain,
                    addr,
                    loop.time(),
                    leg.name,
                )
                hooked = run_hooks(hooks, ev, errors)
                if hooked is None:
                    return None
                if hooked is not data:
                    out = hooked
            tx = other.tx
            if tx is not None:
                return tx.protect_rtcp(out) if is_ctrl else tx.protect(out)
            return out

        return through

    def close(self) -> None:
        self.a.leg.close()
        self.b.leg.close()
