"""RTP/RTCP codec (RFC 3550), G.711 tables (against CPython's audioop when present), audio I/O,
tone detection, receiver statistics and the reorder buffer."""

from __future__ import annotations

import array
import importlib
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ims.media import g711
from ims.media.audio import BufferSink, SilenceSource, ToneSource, WavSource, WavWriter, read_wav
from ims.media.rtp import (
    ReportBlock,
    RtcpBye,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtcpSourceDescription,
    RtcpUnknown,
    RtpError,
    RtpExtension,
    RtpPacket,
    SdesChunk,
    SdesItem,
    decode_rtcp,
    decode_rtp,
    encode_rtcp,
    encode_rtp,
    header_length,
    is_rtcp,
)
from ims.media.stats import ReceiverStats, ReorderBuffer
from ims.media.tone import detect_tone, dominant_tone, goertzel_power, tone_ratio

# A PCMU packet laid out like a baresip one (V=2, PT 0, 12-byte header) + 160 bytes payload.
BARESIP_RTP = bytes.fromhex("80003a1f0001f4006efd2e8a") + b"\xff" * 160


def test_rtp_decode_encode_real_header() -> None:
    pkt = decode_rtp(BARESIP_RTP)
    assert (pkt.payload_type, pkt.sequence_number, pkt.timestamp, pkt.ssrc) == (
        0,
        0x3A1F,
        0x1F400,
        0x6EFD2E8A,
    )
    assert not pkt.marker and pkt.csrcs == () and pkt.extension is None and len(pkt.payload) == 160
    assert encode_rtp(pkt) == BARESIP_RTP


def test_rtp_csrc_extension_padding_round_trip() -> None:
    pkt = RtpPacket(
        payload_type=8,
        sequence_number=65535,
        timestamp=2**32 - 1,
        ssrc=1,
        marker=True,
        csrcs=(2, 3, 4),
        extension=RtpExtension(profile=0xBEDE, data=b"\x10\xaa\x00\x00"),
        payload=b"abc",
        padding=5,
    )
    data = encode_rtp(pkt)
    assert data[0] == 0x80 | 0x20 | 0x10 | 3 and data[1] == 0x80 | 8
    assert header_length(data) == 12 + 12 + 8
    assert data[-1] == 5 and len(data) == 12 + 12 + 8 + 3 + 5
    assert decode_rtp(data) == pkt


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x80" * 11,
        b"\x40" + bytes(11),
        b"\x81" + bytes(11),
        b"\x90" + bytes(11) + b"\x00\x00",
        b"\xa0" + bytes(11),
        b"\xa0" + bytes(11) + b"\x09",
    ],
)
def test_rtp_malformed(bad: bytes) -> None:
    with pytest.raises(RtpError):
        decode_rtp(bad)


def test_rtcp_compound_round_trip() -> None:
    block = ReportBlock(
        ssrc=9, fraction_lost=12, packets_lost=-3, highest_sequence=70000, jitter=42, lsr=7, dlsr=8
    )
    packets = (
        RtcpSenderReport(
            ssrc=1,
            ntp_timestamp=2**63 + 5,
            rtp_timestamp=160,
            packet_count=3,
            octet_count=480,
            reports=(block,),
        ),
        RtcpReceiverReport(ssrc=1, reports=(block, block)),
        RtcpSourceDescription(
            chunks=(
                SdesChunk(ssrc=1, items=((SdesItem.CNAME, b"alice@ims"),)),
                SdesChunk(ssrc=2, items=((SdesItem.CNAME, b"b"), (SdesItem.TOOL, b"imslab"))),
            )
        ),
        RtcpBye(ssrcs=(1, 2), reason=b"bye"),
        RtcpUnknown(packet_type=204, count=1, body=b"\x00\x00\x00\x01NAME"),
    )
    data = encode_rtcp(packets)
    assert len(data) % 4 == 0 and is_rtcp(data) and not is_rtcp(BARESIP_RTP)
    assert decode_rtcp(data) == packets
    assert encode_rtcp(decode_rtcp(data)) == data


def test_rtcp_rr_and_sdes_hand_assembled() -> None:
    # RR with no report blocks + SDES CNAME, bytes written by hand from RFC 3550 §6.4.2/§6.5
    rr = bytes.fromhex("80c900016efd2e8a")
    sdes = bytes.fromhex("81ca00066efd2e8a0110") + b"sip:alice@127.0." + bytes.fromhex("0000")
    pk = decode_rtcp(rr + sdes)
    assert isinstance(pk[0], RtcpReceiverReport) and pk[0].ssrc == 0x6EFD2E8A
    assert isinstance(pk[1], RtcpSourceDescription)
    assert pk[1].chunks[0].items == ((1, b"sip:alice@127.0."),)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x80\xc9",
        b"\x80\xc9\x00\x05\x00\x00\x00\x01",
        b"\x40\xc9\x00\x00",
        b"\x81\xc8\x00\x01\x00\x00\x00\x01",
    ],
)
def test_rtcp_malformed(bad: bytes) -> None:
    with pytest.raises(RtpError):
        decode_rtcp(bad)


@given(st.binary(max_size=200))
def test_decoders_only_raise_rtp_error(data: bytes) -> None:
    for fn in (decode_rtp, decode_rtcp):
        try:
            fn(data)
        except RtpError:
            pass


def test_g711_against_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            audioop = importlib.import_module("audioop")
        except ImportError:
            pytest.skip("audioop was removed from this Python")
    pcm = array.array("h", range(-32768, 32768)).tobytes()
    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    allcodes = bytes(range(256))
    assert g711.ulaw_decode(allcodes) == audioop.ulaw2lin(allcodes, 2)
    assert g711.alaw_decode(allcodes) == audioop.alaw2lin(allcodes, 2)


def test_g711_known_points() -> None:
    assert g711.ulaw_encode(b"\x00\x00") == b"\xff" and g711.alaw_encode(b"\x00\x00") == b"\xd5"
    tone = ToneSource(1000, amplitude=12000).read(800)
    for name in ("PCMU", "PCMA"):
        back = g711.DECODERS[name](g711.ENCODERS[name](tone))
        assert tone_ratio(back, 1000) > 0.99


def test_tone_detection() -> None:
    a, b = ToneSource(440).read(4000), ToneSource(1000).read(4000)
    assert detect_tone(a, 440) and not detect_tone(a, 1000)
    assert dominant_tone(b, [440, 1000, 2000]) == 1000
    assert goertzel_power(SilenceSource().read(800), 440) == 0.0
    mixed = array.array(
        "h", (x + y for x, y in zip(array.array("h", a), array.array("h", b), strict=True))
    ).tobytes()
    assert 0.4 < tone_ratio(mixed, 440) < 0.6


def test_wav_write_read_and_source(tmp_path: Path) -> None:
    path = tmp_path / "t.wav"
    tone = ToneSource(440)
    with WavWriter(path) as w:
        for _ in range(10):
            w.write(tone.read())
    rate, pcm = read_wav(path)
    assert rate == 8000 and len(pcm) == 3200 and detect_tone(pcm, 440)
    src = WavSource(path)
    frames = [src.read() for _ in range(12)]
    assert b"".join(frames[:10]) == pcm and frames[11] == bytes(320)
    looped = WavSource(path, loop=True)
    assert b"".join(looped.read() for _ in range(20)) == pcm * 2
    sink = BufferSink()
    sink.write(b"ab")
    assert sink.pcm == b"ab"


def test_receiver_stats_loss_jitter_wrap() -> None:
    st_ = ReceiverStats()
    for i, seq in enumerate([65533, 65534, 65535, 0, 2, 3]):  # seq 1 lost, wrap
        assert st_.update(seq, timestamp=i * 160, arrival=i * 0.02)
    assert st_.received == 6 and st_.expected == 7 and st_.lost == 1
    assert st_.jitter == pytest.approx(0.0, abs=1e-6)
    assert not st_.update(3, 5 * 160, 0.2) and st_.duplicates == 1
    js = ReceiverStats()
    for i in range(50):
        js.update(i, i * 160, i * 0.02 + (0.005 if i % 2 else 0))
    assert 30 < js.jitter < 45  # alternating 5 ms = 40 timestamp units


def test_reorder_buffer() -> None:
    rb = ReorderBuffer(depth=2)
    out: list[bytes | None] = []
    for seq in (10, 12, 11, 13, 16, 17, 18, 14):
        out += rb.push(seq, bytes([seq]))
    out += rb.flush()
    assert out == [b"\x0a", b"\x0b", b"\x0c", b"\x0d", None, None, b"\x10", b"\x11", b"\x12"]
    assert rb.late == 1  # 14 arrived after its slot was played as silence
    wrap = ReorderBuffer(depth=1)
    got = [f for s in (65534, 0, 65535, 1) for f in wrap.push(s, bytes([s & 0xFF]))]
    assert got == [b"\xfe", b"\xff", b"\x00", b"\x01"]
