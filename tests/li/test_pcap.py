"""li.pcap: synthesized IPv4/IPv6 UDP and TCP packets with checksums tshark validates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from li.pcap import PcapWriter, TcpFlowWriter, _checksum, parse_ip, read_pcap, udp_packet
from tests.conftest import require_tool


def write(path: Path) -> None:
    with PcapWriter(path) as pw:
        pw.write(udp_packet("127.0.6.1", 4000, "127.0.6.2", 4002, b"hello v4"), 1.5)
        pw.write(udp_packet("fd00::1", 4000, "fd00::2", 4002, b"hello v6 odd"), 2.25)
        TcpFlowWriter(pw, "fd00::1", 5000, "fd00::2", 5002).write(b"tcp v6 payload", 3.0)
        TcpFlowWriter(pw, "127.0.6.1", 5000, "127.0.6.2", 5002).write(b"tcp v4 payload!", 4.0)


def test_round_trip_and_append(tmp_path: Path) -> None:
    p = tmp_path / "x.pcap"
    write(p)
    recs = list(read_pcap(p))
    assert [r.ts for r in recs] == [1.5, 2.25, 3.0, 4.0]
    segs = [parse_ip(r) for r in recs]
    assert [(s.src, s.sport, s.dst, s.dport, s.payload) for s in segs if s] == [
        ("127.0.6.1", 4000, "127.0.6.2", 4002, b"hello v4"),
        ("fd00::1", 4000, "fd00::2", 4002, b"hello v6 odd"),
        ("fd00::1", 5000, "fd00::2", 5002, b"tcp v6 payload"),
        ("127.0.6.1", 5000, "127.0.6.2", 5002, b"tcp v4 payload!"),
    ]
    assert (p.stat().st_mode & 0o777) == 0o600
    with PcapWriter(p, append=True) as pw:
        pw.write(udp_packet("127.0.6.1", 1, "127.0.6.2", 2, b"more"), 5.0)
    assert len(list(read_pcap(p))) == 5


@pytest.mark.peer
def test_tshark_validates_checksums(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    p = tmp_path / "x.pcap"
    write(p)
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(p),
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "tcp.checksum.status",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    # Wireshark checksum status: 0 bad, 1 good, 2 unverified; IPv6 has no header checksum
    assert out == ["1\t1\t", "\t1\t", "\t\t1", "1\t\t1"]


def _fold_checksum(data: bytes) -> int:
    """The Internet checksum the long way: 16-bit big-endian words (odd length padded with a
    zero byte) added with the carry folded back in, then complemented."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=600),
        # runs of 0x00 / 0xFF words: where a modulo shortcut could confuse +0 and -0
        st.lists(st.sampled_from([b"\x00", b"\xff"]), max_size=12).map(b"".join),
    )
)
def test_checksum_is_the_word_by_word_internet_checksum(data: bytes) -> None:
    assert _checksum(data) == _fold_checksum(data)
