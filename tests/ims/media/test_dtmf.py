"""RFC 4733 telephone-event payloads, checked against the RFC's layout and against tshark."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ims.media.dtmf import DtmfEvent, DtmfReceiver, digit_event, event_payloads
from ims.media.rtp import RtpError, RtpPacket, encode_rtp
from tests.conftest import require_tool
from tests.ims.media.pcaputil import udp_ipv4, write_pcap


def test_payload_layout() -> None:
    ev = DtmfEvent(event=11, end=True, volume=10, duration=800)
    assert ev.encode() == bytes([11, 0x80 | 10]) + (800).to_bytes(2, "big")
    assert DtmfEvent.decode(ev.encode()) == ev and ev.digit == "#"
    with pytest.raises(RtpError):
        DtmfEvent.decode(b"\x01")
    with pytest.raises(ValueError):
        digit_event("x")


def test_event_sequence_and_receiver() -> None:
    pkts = event_payloads("5", duration_ms=100)
    assert pkts[0][0] is True and not any(m for m, _ in pkts[1:])
    durations = [DtmfEvent.decode(p).duration for _, p in pkts]
    assert durations == [160, 320, 480, 640, 800, 800, 800]
    assert [DtmfEvent.decode(p).end for _, p in pkts] == [False] * 4 + [True] * 3
    rx = DtmfReceiver()
    got = [rx.push(1000, p) for _, p in pkts]
    assert got.count("5") == 1 and rx.digits == ["5"]
    rx.push(2000, DtmfEvent(event=10, end=True).encode())
    assert rx.digits == ["5", "*"]


@pytest.mark.peer
def test_tshark_reads_our_telephone_events(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    frames = []
    for i, (marker, payload) in enumerate(event_payloads("7", duration_ms=60)):
        rtp = encode_rtp(
            RtpPacket(
                payload_type=101,
                sequence_number=10 + i,
                timestamp=4000,
                ssrc=1,
                marker=marker,
                payload=payload,
            )
        )
        frames.append(udp_ipv4("127.0.4.1", "127.0.4.2", 40000, 40000, rtp))
    pcap = tmp_path / "dtmf.pcap"
    write_pcap(pcap, frames)
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(pcap),
            "-d",
            "udp.port==40000,rtp",
            "-o",
            "rtpevent.event_payload_type_value:101",
            "-T",
            "fields",
            "-e",
            "rtpevent.event_id",
            "-e",
            "rtpevent.end_of_event",
            "-e",
            "rtpevent.duration",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert [r[0] for r in rows] == ["7"] * 5
    assert [r[1] in ("1", "True") for r in rows] == [False, False, True, True, True]
    assert [r[2] for r in rows] == ["160", "320", "480", "480", "480"]
