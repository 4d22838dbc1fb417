"""Two media sessions exchange (S)RTP audio on loopback: tones both ways for every suite
pylibsrtp runs; tampered and replayed packets are counted and dropped; hooks observe/rewrite."""

from __future__ import annotations

import asyncio
import os

import pytest

from ims.media.audio import BufferSink, ToneSource
from ims.media.hooks import DROP, Direction, PacketEvent, PacketKind
from ims.media.keys import SrtpKeys
from ims.media.session import MediaSession
from ims.media.tone import tone_ratio
from ims.sdes.suites import RUNNABLE_SUITES, SUITES

HOST = "127.0.4.1"
FRAMES = 25  # 0.5 s of audio each way


def _keys(suite: str) -> SrtpKeys:
    s = SUITES[suite]
    return SrtpKeys(
        suite=suite, master_key=os.urandom(s.key_len), master_salt=os.urandom(s.salt_len)
    )


async def _pair(
    suite: str | None, pt: int = 0
) -> tuple[MediaSession, MediaSession, BufferSink, BufferSink]:
    k_ab = _keys(suite) if suite else None
    k_ba = _keys(suite) if suite else None
    sink_a, sink_b = BufferSink(), BufferSink()
    a = await MediaSession.create(
        HOST,
        payload_type=pt,
        tx_keys=k_ab,
        rx_keys=k_ba,
        source=ToneSource(440),
        sink=sink_a,
        rtcp_interval=0.1,
    )
    b = await MediaSession.create(
        HOST,
        payload_type=pt,
        tx_keys=k_ba,
        rx_keys=k_ab,
        source=ToneSource(1000),
        sink=sink_b,
        rtcp_interval=0.1,
    )
    a.set_remote(*b.local_rtp_addr)
    b.set_remote(*a.local_rtp_addr)
    return a, b, sink_a, sink_b


async def _run(a: MediaSession, b: MediaSession) -> None:
    a.start(frames=FRAMES)
    b.start(frames=FRAMES)
    async with asyncio.timeout(5):
        await a.wait_sent()
        await b.wait_sent()
        while a.stats.received < FRAMES or b.stats.received < FRAMES:
            await asyncio.sleep(0.01)
    await a.stop()
    await b.stop()


@pytest.mark.parametrize("suite", [*RUNNABLE_SUITES, None], ids=lambda s: s or "plain")
async def test_tones_cross_both_ways(suite: str | None) -> None:
    a, b, sink_a, sink_b = await _pair(suite)
    await _run(a, b)
    for s in (a.stats, b.stats):
        assert s.sent == FRAMES
        assert s.received == FRAMES
        assert s.lost == 0
        assert s.auth_failures == s.replay_failures == 0
        assert s.rtcp_received >= 1  # at least the BYE compound
    # b sent 1 kHz to a, a sent 440 Hz to b
    assert tone_ratio(sink_a.pcm, 1000) > 0.9 and tone_ratio(sink_a.pcm, 440) < 0.01
    assert tone_ratio(sink_b.pcm, 440) > 0.9 and tone_ratio(sink_b.pcm, 1000) < 0.01
    assert len(sink_b.pcm) == FRAMES * 320
    # RTCP (every 0.1 s here): SRs arrived, and the peer's report blocks describe our stream
    assert a.last_sr is not None and a.last_sr.ssrc == b.ssrc and a.last_sr.packet_count > 0
    assert a.remote_reports and all(r.ssrc == a.ssrc for r in a.remote_reports)
    assert all(r.packets_lost == 0 and r.fraction_lost == 0 for r in a.remote_reports)
    assert any(r.lsr != 0 for r in b.remote_reports)  # LSR echoes our SR once one arrived


async def test_pcma_plain() -> None:
    a, b, sink_a, sink_b = await _pair(None, pt=8)
    await _run(a, b)
    assert tone_ratio(sink_b.pcm, 440) > 0.9


@pytest.mark.parametrize("suite", RUNNABLE_SUITES)
async def test_tampered_and_replayed_packets_are_counted_and_dropped(suite: str) -> None:
    a, b, _sink_a, sink_b = await _pair(suite)
    captured: list[bytes] = []

    def tamper(ev: PacketEvent) -> bytes | None:
        if ev.direction is Direction.OUT and ev.kind is PacketKind.RTP:
            captured.append(ev.wire)
            n = len(captured)
            if n % 5 == 0:  # flip a payload bit of every 5th packet
                w = bytearray(ev.wire)
                w[20] ^= 0x01
                return bytes(w)
        return None

    a.add_hook(tamper)
    await_frames = FRAMES - FRAMES // 5
    a.start(frames=FRAMES)
    async with asyncio.timeout(5):
        await a.wait_sent()
        while b.stats.received + b.snapshot().auth_failures < FRAMES:
            await asyncio.sleep(0.01)
    # replay three genuine packets a second time, straight onto b's socket
    genuine = [w for i, w in enumerate(captured, 1) if i % 5]
    assert a._rtp is not None and a._rtp.transport is not None
    for w in genuine[:3]:
        a._rtp.transport.sendto(w, b.local_rtp_addr)
    async with asyncio.timeout(5):
        while b.snapshot().replay_failures < 3:
            await asyncio.sleep(0.01)
    await a.stop()
    await b.stop()
    assert b.stats.received == await_frames
    assert b.stats.auth_failures == FRAMES // 5
    assert b.stats.replay_failures == 3
    assert tone_ratio(sink_b.pcm, 440) > 0.8


async def test_hooks_can_drop_and_observers_see_plaintext() -> None:
    a, b, _sa, _sb = await _pair("AES_CM_128_HMAC_SHA1_80")
    seen: list[bytes] = []
    b.add_observer(lambda ev: seen.append(ev.plain or b"") if ev.kind is PacketKind.RTP else None)
    dropped = [0]

    def drop_odd(ev: PacketEvent) -> object:
        if ev.direction is Direction.IN and ev.kind is PacketKind.RTP:
            dropped[0] += 1
            if dropped[0] % 2:
                return DROP
        return None

    def broken(ev: PacketEvent) -> None:
        raise RuntimeError("a broken hook must not break media")

    b.add_hook(drop_odd)  # type: ignore[arg-type]
    b.add_hook(broken)
    a.start(frames=10)
    async with asyncio.timeout(5):
        await a.wait_sent()
        while b.stats.received + b.stats.dropped_by_hook < 10:
            await asyncio.sleep(0.01)
    await a.stop()
    await b.stop()
    assert b.stats.dropped_by_hook == 5
    assert b.stats.received == 5
    assert len(seen) == 5 and all(p[1] & 0x7F == 0 for p in seen)  # clear RTP, PT 0
    assert b.stats.hook_errors >= 5


async def test_pacing_does_not_drift() -> None:
    a, b, _sa, _sb = await _pair(None)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    a.add_hook(lambda ev: times.append(ev.time) if ev.kind is PacketKind.RTP else None)
    t0 = loop.time()
    a.start(frames=50)
    await a.wait_sent()
    elapsed = loop.time() - t0
    await a.stop()
    await b.stop()
    assert len(times) == 50
    # frame n is due at start + n*20 ms: never early, and lateness does not accumulate
    lateness = [t - (times[0] + n * 0.02) for n, t in enumerate(times)]
    assert min(lateness) > -0.002
    if a.stats.schedule_resets == 0:
        assert sorted(lateness)[25] < 0.01  # median lateness under 10 ms
        assert lateness[-1] < 0.1  # no drift by the 50th frame
    assert 0.98 <= elapsed < 1.5


def test_sessions_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[float, float]:
        a, b, sink_a, sink_b = await _pair("AEAD_AES_128_GCM")
        await _run(a, b)
        return tone_ratio(sink_a.pcm, 1000), tone_ratio(sink_b.pcm, 440)

    ra, rb = uvloop.run(main())
    assert ra > 0.9 and rb > 0.9


async def test_default_loop_transport_gets_small_max_size() -> None:
    a = await MediaSession.create(HOST)
    assert a._rtp is not None and a._rtp.transport is not None
    assert getattr(a._rtp.transport, "max_size", 2048) == 2048
    await a.stop()


async def test_reordered_and_lost_packets_are_played_in_order() -> None:
    from ims.media.g711 import ulaw_decode, ulaw_encode
    from ims.media.rtp import RtpPacket, encode_rtp

    sink = BufferSink()
    s = await MediaSession.create(HOST, sink=sink, reorder_depth=3)
    frames = [ulaw_encode(ToneSource(300 + 100 * i).read(160)) for i in range(10)]

    def pkt(i: int) -> bytes:
        return encode_rtp(
            RtpPacket(
                payload_type=0,
                sequence_number=65530 + i,
                timestamp=i * 160,
                ssrc=5,
                payload=frames[i],
            )
        )

    for i in (0, 2, 1, 3, 5, 4, 6, 8, 9):  # 7 is lost; the sequence number wraps after 5
        s._on_rtp(pkt(i), ("127.0.4.9", 1))
    s._on_rtp(pkt(4), ("127.0.4.9", 1))  # duplicate
    await s.stop()
    expected = b"".join(ulaw_decode(f) if i != 7 else bytes(320) for i, f in enumerate(frames))
    assert sink.pcm == expected
    st_ = s.snapshot()
    assert (st_.received, st_.lost, st_.duplicates) == (9, 1, 1)


async def test_stop_is_idempotent_and_sending_after_stop_is_a_noop() -> None:
    a, b, _sa, _sb = await _pair("AES_CM_128_HMAC_SHA1_80")
    await a.stop()
    await a.stop()
    a.send_frame(bytes(320))
    assert a.stats.sent == 0
    await b.stop()


async def test_srtp_over_ipv6_loopback() -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    k = _keys("AES_CM_128_HMAC_SHA1_80")
    sink = BufferSink()
    a = await MediaSession.create("::1", tx_keys=k, source=ToneSource(440))
    b = await MediaSession.create("::1", rx_keys=k, sink=sink)
    a.set_remote(*b.local_rtp_addr)
    a.start(frames=10)
    async with asyncio.timeout(5):
        await a.wait_sent()
        while b.stats.received < 10:
            await asyncio.sleep(0.01)
    await a.stop()
    await b.stop()
    assert tone_ratio(sink.pcm, 440) > 0.9


async def test_dtmf_telephone_events_over_srtp() -> None:
    a, b, _sa, _sb = await _pair("AEAD_AES_128_GCM")
    async with asyncio.timeout(10):
        await a.send_dtmf("19#*", duration_ms=60, gap_ms=20)
        while len(b.dtmf.digits) < 4:
            await asyncio.sleep(0.01)
    await a.stop()
    await b.stop()
    assert b.dtmf.digits == ["1", "9", "#", "*"]  # each once, though its end packet came 3 times
