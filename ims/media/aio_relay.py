"""A reusable RTP/RTCP relay (media anchor building block) on asyncio.

Two legs, each an RTP/RTCP port pair: what arrives on leg A is sent from leg B to B's remote,
and back. Per leg, optionally:

- ``rx_keys``: SRTP arriving on this leg is unprotected (SRTP terminated, e.g. an IMS-AGW for
  SDES e2ae, TS 33.328); failures are counted and the packet dropped;
- ``tx_keys``: packets leaving on this leg are protected with our own key.

With neither, SRTP passes through untouched (a relaying anchor: end-to-end keys stay end to end).
Remote addresses come from SDP (``set_remote``) or are latched from the first packet received
(symmetric RTP, RFC 4961). Hooks (:mod:`ims.media.hooks`) see every packet once, on ingress,
with ``leg`` set to the ingress leg, the wire bytes and (when this leg terminates SRTP) the
plaintext; a hook may rewrite or drop. This is where a CC-POI attaches in the anchor.
The hot path avoids per-packet allocation beyond what the crypto needs and never logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ims.media.hooks import Direction, Hook, PacketEvent, PacketKind, run_hooks
from ims.media.keys import SrtpKeys
from ims.media.rtp import is_rtcp
from ims.media.session import UdpEndpoint, bind_pair, set_rcvbuf
from ims.media.srtp import SrtpReceiver, SrtpSender


@dataclass(slots=True)
class LegStats:
    received: int = 0
    forwarded: int = 0
    dropped: int = 0  # SRTP failure, hook drop, or no remote yet
    rtcp_received: int = 0
    rtcp_forwarded: int = 0


@dataclass(slots=True)
class RelayLeg:
    name: str
    host: str
    port: int
    rtp: UdpEndpoint
    rtcp: UdpEndpoint
    rx: SrtpReceiver | None = None
    tx: SrtpSender | None = None
    remote_rtp: tuple[str, int] | None = None
    remote_rtcp: tuple[str, int] | None = None
    latch: bool = True
    stats: LegStats = field(default_factory=LegStats)

    @property
    def local_rtp_addr(self) -> tuple[str, int]:
        return (self.host, self.port)


class RtpRelay:
    def __init__(self, a: RelayLeg, b: RelayLeg) -> None:
        self.a, self.b = a, b
        self.hooks: list[Hook] = []
        self._hook_errors = [0]
        for leg, other in ((a, b), (b, a)):
            leg.rtp.on_datagram = self._make_handler(leg, other, PacketKind.RTP)
            leg.rtcp.on_datagram = self._make_handler(leg, other, PacketKind.RTCP)

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
            rtp, rtcp, actual = await bind_pair(host, port)
            set_rcvbuf(rtp, rcvbuf)
            legs.append(
                RelayLeg(
                    name=name,
                    host=host,
                    port=actual,
                    rtp=rtp,
                    rtcp=rtcp,
                    rx=SrtpReceiver(rx) if rx else None,
                    tx=SrtpSender(tx) if tx else None,
                )
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
        lg.remote_rtp = (host, rtp_port)
        lg.remote_rtcp = (host, rtcp_port if rtcp_port is not None else rtp_port + 1)
        lg.latch = latch

    def _make_handler(
        self, leg: RelayLeg, other: RelayLeg, kind: PacketKind
    ) -> Callable[[bytes, tuple[str, int]], None]:
        rtcp_kind = kind is PacketKind.RTCP
        hooks = self.hooks
        errors = self._hook_errors
        loop = asyncio.get_event_loop()

        def handle(data: bytes, addr: tuple[str, int]) -> None:
            is_ctrl = rtcp_kind or is_rtcp(data)
            st = leg.stats
            if is_ctrl:
                st.rtcp_received += 1
                if leg.latch and leg.remote_rtcp != addr:
                    leg.remote_rtcp = addr
            else:
                st.received += 1
                if leg.latch and leg.remote_rtp != addr:
                    leg.remote_rtp = addr
            out: bytes = data
            plain: bytes | None = None
            if leg.rx is not None:
                plain = leg.rx.unprotect_rtcp(data) if is_ctrl else leg.rx.unprotect(data)
                if plain is None:
                    st.dropped += 1
                    return
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
                    st.dropped += 1
                    return
                if hooked is not data:
                    out = hooked
            if other.tx is not None:
                protected = other.tx.protect_rtcp(out) if is_ctrl else other.tx.protect(out)
                if protected is None:
                    st.dropped += 1
                    return
                out = protected
            if is_ctrl:
                dest = other.remote_rtcp
                ep = other.rtcp
            else:
                dest = other.remote_rtp
                ep = other.rtp
            if dest is None or ep.transport is None:
                st.dropped += 1
                return
            ep.transport.sendto(out, dest)
            if is_ctrl:
                st.rtcp_forwarded += 1
            else:
                st.forwarded += 1

        return handle

    def close(self) -> None:
        for leg in (self.a, self.b):
            for ep in (leg.rtp, leg.rtcp):
                if ep.transport is not None:
                    ep.transport.close()
