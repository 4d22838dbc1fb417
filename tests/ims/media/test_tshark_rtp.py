"""tshark dissects RTP and compound RTCP we encode: rtp.* and rtcp.* fields equal ours."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ims.media.rtp import (
    ReportBlock,
    RtcpBye,
    RtcpSenderReport,
    RtcpSourceDescription,
    RtpExtension,
    RtpPacket,
    SdesChunk,
    SdesItem,
    encode_rtcp,
    encode_rtp,
)
from tests.conftest import require_tool
from tests.ims.media.pcaputil import udp_ipv4, write_pcap

pytestmark = pytest.mark.peer


def _tshark(pcap: Path, fields: list[str]) -> list[list[str]]:
    tshark = require_tool("tshark")
    cmd = [
        tshark,
        "-r",
        str(pcap),
        "-d",
        "udp.port==40000,rtp",
        "-d",
        "udp.port==40001,rtcp",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_tshark_reads_our_rtp_and_rtcp(tmp_path: Path) -> None:
    rtp = RtpPacket(
        payload_type=8,
        sequence_number=4242,
        timestamp=123456,
        ssrc=0xCAFEBABE,
        marker=True,
        csrcs=(7, 9),
        extension=RtpExtension(profile=0xBEDE, data=b"\x10\x01\x00\x00"),
        payload=b"\xd5" * 160,
        padding=4,
    )
    rtcp = encode_rtcp(
        [
            RtcpSenderReport(
                ssrc=0xCAFEBABE,
                ntp_timestamp=(3_900_000_000 << 32) | (1 << 31),
                rtp_timestamp=123456,
                packet_count=50,
                octet_count=8000,
                reports=(
                    ReportBlock(
                        ssrc=0x11223344,
                        fraction_lost=64,
                        packets_lost=3,
                        highest_sequence=70_000,
                        jitter=17,
                        lsr=5,
                        dlsr=6,
                    ),
                ),
            ),
            RtcpSourceDescription(
                chunks=(SdesChunk(ssrc=0xCAFEBABE, items=((SdesItem.CNAME, b"alice@imslab"),)),)
            ),
            RtcpBye(ssrcs=(0xCAFEBABE,), reason=b"done"),
        ]
    )
    pcap = tmp_path / "media.pcap"
    write_pcap(
        pcap,
        [
            udp_ipv4("127.0.4.1", "127.0.4.2", 40000, 40000, encode_rtp(rtp)),
            udp_ipv4("127.0.4.1", "127.0.4.2", 40001, 40001, rtcp),
        ],
    )
    rows = _tshark(
        pcap,
        [
            "rtp.p_type",
            "rtp.seq",
            "rtp.timestamp",
            "rtp.ssrc",
            "rtp.marker",
            "rtp.csrc.item",
            "rtp.padding.count",
            "rtp.ext.profile",
        ],
    )
    pt, seq, ts, ssrc, marker, csrc, padcount, prof = rows[0]
    assert (pt, seq, ts, int(ssrc, 16)) == ("8", "4242", "123456", 0xCAFEBABE)
    assert marker in ("1", "True") and [int(c, 16) for c in csrc.split("|")] == [7, 9]
    assert padcount == "4" and int(prof, 16) == 0xBEDE
    rows = _tshark(
        pcap,
        [
            "rtcp.pt",
            "rtcp.senderssrc",
            "rtcp.sender.packetcount",
            "rtcp.sender.octetcount",
            "rtcp.ssrc.identifier",
            "rtcp.ssrc.cum_nr",
            "rtcp.ssrc.ext_high",
            "rtcp.ssrc.jitter",
            "rtcp.sdes.text",
            "rtcp.bye_reason_not_padded",
            "rtcp.ssrc.fraction",
            "rtcp.ssrc.lsr",
        ],
    )
    pts, sender, pc, oc, ident, cum, high, jitter, text, reason, fraction, lsr = rows[1]
    assert pts.split("|") == ["200", "202", "203"]
    assert int(sender, 16) == 0xCAFEBABE and (pc, oc) == ("50", "8000")
    # the identifier field also names the SDES chunk and BYE sources, in packet order
    assert [int(x, 16) for x in ident.split("|")] == [0x11223344, 0xCAFEBABE, 0xCAFEBABE]
    assert (cum, high, jitter, fraction, lsr) == ("3", "70000", "17", "64", "5")
    assert text.split("|") == ["alice@imslab", "done"]  # tshark files the BYE reason as text too
    assert reason in ("done", "")  # field name differs between tshark versions
