"""The RTP relay building block: SRTP passthrough, SRTP termination with re-keying, taps."""

from __future__ import annotations

import asyncio
import os
import socket

from ims.media.aio_relay import RtpRelay
from ims.media.audio import BufferSink, ToneSource
from ims.media.hooks import PacketEvent, PacketKind
from ims.media.keys import SrtpKeys
from ims.media.rtp import decode_rtp
from ims.media.session import MediaSession
from ims.media.tone import tone_ratio

HOST = "127.0.4.3"


def _k(suite: str = "AES_CM_128_HMAC_SHA1_80") -> SrtpKeys:
    return SrtpKeys(suite=suite, master_key=os.urandom(16), master_salt=os.urandom(14))


async def _call_through(
    relay: RtpRelay, a: MediaSession, b: MediaSession, frames: int = 20
) -> None:
    a.set_remote(*relay.a.local_rtp_addr)
    b.set_remote(*relay.b.local_rtp_addr)
    relay.set_remote("a", *a.local_rtp_addr)
    relay.set_remote("b", *b.local_rtp_addr)
    a.start(frames=frames)
    b.start(frames=frames)
    async with asyncio.timeout(5):
        await a.wait_sent()
        await b.wait_sent()
        while a.stats.received < frames or b.stats.received < frames:
            await asyncio.sleep(0.01)
    await a.stop()
    await b.stop()
    relay.close()


async def test_srtp_passthrough_keeps_end_to_end_keys() -> None:
    k_ab, k_ba = _k(), _k()
    sa, sb = BufferSink(), BufferSink()
    a = await MediaSession.create(HOST, tx_keys=k_ab, rx_keys=k_ba, source=ToneSource(440), sink=sa)
    b = await MediaSession.create(
        HOST, tx_keys=k_ba, rx_keys=k_ab, source=ToneSource(1000), sink=sb
    )
    relay = await RtpRelay.create(HOST)
    wires: list[bytes] = []
    relay.add_hook(lambda ev: wires.append(ev.wire) if ev.kind is PacketKind.RTP else None)
    await _call_through(relay, a, b)
    assert tone_ratio(sb.pcm, 440) > 0.9 and tone_ratio(sa.pcm, 1000) > 0.9
    assert relay.a.stats.forwarded == 20 and relay.b.stats.forwarded == 20
    assert len(wires) == 40 and all(len(w) == 12 + 160 + 10 for w in wires)  # still SRTP


async def test_srtp_terminating_anchor_rekeys_and_taps_plaintext() -> None:
    k_a_up = _k()  # UE A <-> anchor
    k_a_down = SrtpKeys(
        suite="AEAD_AES_128_GCM", master_key=os.urandom(16), master_salt=os.urandom(12)
    )
    k_b_up, k_b_down = _k("AES_CM_128_HMAC_SHA1_32"), _k()  # anchor <-> UE B
    sa, sb = BufferSink(), BufferSink()
    a = await MediaSession.create(
        HOST, tx_keys=k_a_up, rx_keys=k_a_down, source=ToneSource(440), sink=sa
    )
    b = await MediaSession.create(
        HOST, tx_keys=k_b_up, rx_keys=k_b_down, source=ToneSource(1000), sink=sb
    )
    relay = await RtpRelay.create(
        HOST, a_rx_keys=k_a_up, a_tx_keys=k_a_down, b_rx_keys=k_b_up, b_tx_keys=k_b_down
    )
    tapped: dict[str, list[bytes]] = {"a": [], "b": []}

    def tap(ev: PacketEvent) -> None:
        if ev.kind is PacketKind.RTP and ev.plain is not None:
            tapped[ev.leg].append(decode_rtp(ev.plain).payload)

    relay.add_hook(tap)
    await _call_through(relay, a, b)
    assert tone_ratio(sb.pcm, 440) > 0.9 and tone_ratio(sa.pcm, 1000) > 0.9
    assert len(tapped["a"]) == 20 and len(tapped["b"]) == 20
    from ims.media.g711 import ulaw_decode

    assert tone_ratio(ulaw_decode(b"".join(tapped["a"])), 440) > 0.9  # CC in clear at the anchor


async def test_latching_and_bad_srtp_dropped() -> None:
    relay = await RtpRelay.create(HOST, a_rx_keys=_k())
    sb = BufferSink()
    b = await MediaSession.create(HOST, sink=sb)
    relay.set_remote("b", *b.local_rtp_addr)
    a = await MediaSession.create(HOST, tx_keys=_k(), source=ToneSource(440))  # wrong key
    a.set_remote(*relay.a.local_rtp_addr)
    a.start(frames=5)
    await a.wait_sent()
    async with asyncio.timeout(5):
        while relay.a.stats.dropped < 5:
            await asyncio.sleep(0.01)
    assert relay.a.remote_rtp == a.local_rtp_addr  # latched from the first packet
    assert relay.a.rx is not None and relay.a.rx.stats.auth_failures == 5
    assert b.stats.received == 0
    await a.stop()
    await b.stop()
    relay.close()


async def test_relay_socket_engine_gate_filter_latch_and_park() -> None:
    """The anchor's packet path (``RelaySocket``): bare forwarding, a filter that runs only
    while its gate list is non-empty (rewrite / drop), latching once per leg, parking."""
    from ims.media.aio_relay import bind_any_leg

    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.put_nowait(data)

    sink_t, _ = await loop.create_datagram_endpoint(Sink, local_addr=(HOST, 0))
    sink = sink_t.get_extra_info("sockname")[:2]
    a, b = await bind_any_leg("access", HOST), await bind_any_leg("core", HOST)
    a.connect(b)
    a.expect_latch()
    b.set_remote(sink)
    ue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ue.bind((HOST, 0))
    try:
        seen: list[tuple[bytes, tuple[str, int], tuple[str, int]]] = []
        gate: list[object] = []

        def filt(
            sock: object, data: bytes, src: tuple[str, int], dst: tuple[str, int]
        ) -> bytes | None:
            seen.append((data, src, dst))
            return None if data == b"drop" else data.upper()

        for s in (a.rtp, a.rtcp):
            s.filter, s.gate = filt, gate
        ue.sendto(b"one", a.local_rtp_addr)
        async with asyncio.timeout(5):
            assert await got.get() == b"one"  # gate empty: the filter is not called
        assert not seen and a.remote == ue.getsockname() and a.latched
        gate.append(object())  # e.g. a hook was added to the list the gate is
        ue.sendto(b"two", a.local_rtp_addr)
        ue.sendto(b"drop", a.local_rtp_addr)
        ue.sendto(b"three", a.local_rtp_addr)
        async with asyncio.timeout(5):
            assert await got.get() == b"TWO"
            assert await got.get() == b"THREE"
        assert [d for d, _, _ in seen] == [b"two", b"drop", b"three"]
        assert seen[0][1] == ue.getsockname() and seen[0][2] == sink
        assert (a.rtp.packets, a.rtp.dropped, a.rtp.bytes) == (3, 1, 3 + 3 + 5)
        a.park()
        ue.sendto(b"late", a.local_rtp_addr)
        await asyncio.sleep(0.1)
        assert got.empty() and (a.rtp.packets, a.rtp.dropped) == (0, 0)  # parked: dropped
    finally:
        ue.close()
        sink_t.close()
        a.close()
        b.close()
