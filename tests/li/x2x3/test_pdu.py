"""X2/X3 PDU codec: the reference capture, round trips, tshark agreement, malformed input."""

from __future__ import annotations

import ipaddress
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from li.pcap import PcapWriter, TcpFlowWriter, parse_ip, read_pcap
from li.x2x3.framing import PduFramer, split_pdus
from li.x2x3.pdu import (
    VERSION,
    AttributeType,
    DestinationAddress,
    DestinationPort,
    IPProtocol,
    MatchedTargetIdentifier,
    OpaqueAttribute,
    PayloadDirection,
    PayloadFormat,
    Pdu,
    PduType,
    SdpSessionDescription,
    SequenceNumber,
    SourceAddress,
    SourcePort,
    Timestamp,
    X2X3DecodeError,
    address_attributes,
    assemble_pdu,
    decode_cc_fields,
    decode_pdu,
    encode_attributes,
    encode_pdu,
    header_template,
    keepalive,
    keepalive_ack,
    network_function_id,
    x2_pdu,
    x3_pdu,
)
from tests.conftest import require_tool

XID = uuid.UUID("2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901")

SIP = (
    b"INVITE sip:bob@ims.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.6.1:5060;branch=z9hG4bK-1\r\n"
    b"From: <sip:alice@ims.test>;tag=a1\r\nTo: <sip:bob@ims.test>\r\n"
    b"Call-ID: call-1@ims.test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
)
RTP = bytes.fromhex("80000001000000a0deadbeef") + b"\xd5" * 160


def reference_pdu_bytes(conformance_dir: Path) -> bytes:
    rec = next(read_pcap(conformance_dir / "x2x3" / "sipgate-x2-demo-01.pcap"))
    seg = parse_ip(rec)
    assert seg is not None
    return seg.payload


def test_reference_capture_decodes_and_reencodes(conformance_dir: Path) -> None:
    raw = reference_pdu_bytes(conformance_dir)
    pdu = decode_pdu(raw)
    # The fields tshark shows for this capture (README of the conformance vector).
    assert pdu.version == 5
    assert pdu.pdu_type is PduType.X2
    assert pdu.header_length == 81 and len(pdu.payload) == 539
    assert pdu.payload_format is PayloadFormat.SIP_MESSAGE
    assert pdu.payload_direction is PayloadDirection.FROM_TARGET
    assert pdu.xid == uuid.UUID("8c292fa1-5831-46ec-86be-bd85f2083299")
    assert pdu.correlation_id == 1
    assert pdu.attributes == (
        MatchedTargetIdentifier(value="<E164Number>494012345678</E164Number>"),
    )
    assert pdu.payload.startswith(b"REGISTER sip:sipgate.de SIP/2.0\n")
    assert encode_pdu(pdu) == raw


@pytest.mark.parametrize("cut", [0, 1, 39, 40, 60, 80, 81, 300])
def test_truncated_reference_raises(conformance_dir: Path, cut: int) -> None:
    raw = reference_pdu_bytes(conformance_dir)
    with pytest.raises(X2X3DecodeError):
        decode_pdu(raw[:cut])
    with pytest.raises(X2X3DecodeError):
        decode_pdu(raw + b"x")


def full_pdu() -> Pdu:
    return x3_pdu(
        xid=XID,
        correlation_id=0x0102030405060708,
        payload=RTP,
        direction=PayloadDirection.FROM_TARGET,
        attributes=(
            OpaqueAttribute(type=AttributeType.DOMAIN_ID, value=b"did"),
            network_function_id("pcscf-1"),
            OpaqueAttribute(type=AttributeType.INTERCEPTION_POINT_ID, value=b"ipid"),
            SequenceNumber(value=7),
            Timestamp(seconds=1_700_000_000, nanoseconds=123_456_789),
            SourceAddress(address=ipaddress.IPv4Address("127.0.6.1")),
            DestinationAddress(address=ipaddress.IPv4Address("127.0.6.2")),
            SourceAddress(address=ipaddress.IPv6Address("fd00::1")),
            DestinationAddress(address=ipaddress.IPv6Address("fd00::2")),
            SourcePort(port=40000),
            DestinationPort(port=40002),
            IPProtocol(protocol=17),
            MatchedTargetIdentifier(value="sip:alice@ims.test"),
            OpaqueAttribute(type=AttributeType.OTHER_TARGET_IDENTIFIER + 1, value=b"text/plain"),
            SdpSessionDescription(value="v=0\r\n"),
            OpaqueAttribute(type=999, value=b"unknown type kept"),
        ),
    )


def test_every_attribute_round_trips() -> None:
    pdu = full_pdu()
    raw = encode_pdu(pdu)
    assert raw[:2] == b"\x00\x05"
    assert decode_pdu(raw) == pdu
    assert encode_pdu(decode_pdu(raw)) == raw
    assert pdu.sequence_number == 7
    assert pdu.timestamp == pytest.approx(1_700_000_000.123456789)


def test_keepalive_layout_matches_openli() -> None:
    # OpenLI's 48-byte keepalive-ack: 00 05 00 04 | 00 00 00 30 | ... | 00 08 00 04 <seq>
    raw = encode_pdu(keepalive_ack(0x01020304))
    assert len(raw) == 48
    assert raw[:8] == bytes.fromhex("0005000400000030")
    assert raw[8:40] == bytes(32)
    assert raw[40:] == bytes.fromhex("0008000401020304")
    assert encode_pdu(keepalive(9))[2:4] == b"\x00\x03"


@pytest.mark.parametrize(
    ("attr_type", "length"), [(8, 2), (9, 4), (10, 16), (12, 4), (14, 1), (16, 2)]
)
def test_fixed_size_attribute_with_wrong_length(attr_type: int, length: int) -> None:
    good = encode_pdu(keepalive(1))
    tlv = attr_type.to_bytes(2, "big") + length.to_bytes(2, "big") + bytes(length)
    bad = bytearray(good[:40] + tlv)
    bad[4:8] = (40 + len(tlv)).to_bytes(4, "big")
    with pytest.raises(X2X3DecodeError):
        decode_pdu(bytes(bad))


def test_header_length_below_40_and_unknown_type() -> None:
    raw = bytearray(encode_pdu(keepalive(1)))
    raw[4:8] = (39).to_bytes(4, "big")
    with pytest.raises(X2X3DecodeError):
        decode_pdu(bytes(raw))
    raw = bytearray(encode_pdu(keepalive(1)))
    raw[2:4] = (9).to_bytes(2, "big")
    with pytest.raises(X2X3DecodeError):
        decode_pdu(bytes(raw))


def test_attribute_overrunning_header() -> None:
    raw = bytearray(encode_pdu(keepalive(1)))
    raw[42:44] = (5).to_bytes(2, "big")  # seq TLV claims 5 bytes, 4 present
    with pytest.raises(X2X3DecodeError):
        decode_pdu(bytes(raw))


# -- framing -----------------------------------------------------------------------------


def stream() -> tuple[list[Pdu], bytes]:
    pdus = [
        x2_pdu(xid=XID, correlation_id=1, payload=SIP, direction=PayloadDirection.FROM_TARGET),
        keepalive(1),
        full_pdu(),
        keepalive_ack(1),
    ]
    return pdus, b"".join(encode_pdu(p) for p in pdus)


def test_framer_whole_bytewise_and_trailing() -> None:
    pdus, data = stream()
    assert split_pdus(data) == pdus
    framer = PduFramer()
    got: list[Pdu] = []
    for i in range(len(data)):
        got += framer.feed(data[i : i + 1])
    assert got == pdus and framer.at_boundary()
    framer = PduFramer()
    assert framer.feed(data + data[:50]) == pdus
    assert framer.buffered == 50 and not framer.at_boundary()
    with pytest.raises(X2X3DecodeError):
        split_pdus(data + data[:50])


def test_framer_rejects_huge_length_before_buffering() -> None:
    raw = bytearray(encode_pdu(keepalive(1)))
    raw[8:12] = (0xFFFFFFF0).to_bytes(4, "big")
    framer = PduFramer(max_pdu_size=4096)
    with pytest.raises(X2X3DecodeError):
        framer.feed(bytes(raw[:40]))
    with pytest.raises(X2X3DecodeError):  # stays failed: the stream lost sync
        framer.feed(b"")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoder_only_raises_decode_error(data: bytes) -> None:
    try:
        pdu = decode_pdu(data)
    except X2X3DecodeError:
        return
    assert encode_pdu(pdu) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 64), max_size=20))
def test_framer_only_raises_decode_error(data: bytes, cuts: list[int]) -> None:
    _, good = stream()
    framer = PduFramer(max_pdu_size=2048)
    chunks = [good[:100], data]
    pos = 0
    for c in cuts:
        chunks.append(data[pos : pos + c])
        pos += c
    try:
        for chunk in chunks:
            for pdu in framer.feed(chunk):
                assert isinstance(pdu, Pdu)
    except X2X3DecodeError:
        pass
    assert framer.buffered <= 2048 + max((len(c) for c in chunks), default=0)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(PduType)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.uuids(),
    st.integers(0, 2**64 - 1),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6),
    st.binary(max_size=200),
)
def test_round_trip_property(
    ptype: PduType,
    fmt: int,
    direction: int,
    xid: uuid.UUID,
    cid: int,
    tlvs: list[tuple[int, bytes]],
    payload: bytes,
) -> None:
    attrs = tuple(OpaqueAttribute(type=t, value=v) for t, v in tlvs)
    raw = encode_pdu(
        Pdu(
            pdu_type=ptype,
            payload_format=fmt,
            payload_direction=direction,
            xid=xid,
            correlation_id=cid,
            attributes=attrs,
            payload=payload,
        )
    )
    prefix, tail = header_template(VERSION, ptype, fmt, direction, xid, cid)
    assert assemble_pdu(prefix, tail, encode_attributes(attrs), payload) == raw
    try:
        pdu = decode_pdu(raw)
    except X2X3DecodeError:
        return  # a random TLV of a fixed-size type with the wrong length
    assert encode_pdu(pdu) == raw
    assert split_pdus(raw * 3) == [pdu] * 3


# -- tshark agreement --------------------------------------------------------------------

FIELDS = [
    "li5g.ver",
    "li5g.type",
    "li5g.hl",
    "li5g.pl",
    "li5g.pf",
    "li5g.pd",
    "li5g.xid",
    "li5g.cid",
    "li5g.sq",
    "li5g.ts",
    "li5g.srcip",
    "li5g.dstip",
    "li5g.srcport",
    "li5g.dstport",
    "li5g.ipproto",
    "li5g.nfid",
    "sip.Method",
    "sip.Call-ID",
    "rtp.ssrc",
    "rtp.seq",
]


@pytest.mark.peer
def test_tshark_decodes_our_x2_and_x3(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    port = 50100
    attrs = (
        network_function_id("pcscf-1"),
        SequenceNumber(value=41),
        Timestamp(seconds=1_700_000_000, nanoseconds=500_000_000),
        *address_attributes(("127.0.6.1", 5060), ("127.0.6.2", 5062)),
        MatchedTargetIdentifier(value="sip:alice@ims.test"),
    )
    x2 = x2_pdu(
        xid=XID,
        correlation_id=0xABCDEF,
        payload=SIP,
        direction=PayloadDirection.FROM_TARGET,
        attributes=attrs,
    )
    x3 = x3_pdu(
        xid=XID,
        correlation_id=0xABCDEF,
        payload=RTP,
        direction=PayloadDirection.TO_TARGET,
        attributes=(
            SequenceNumber(value=42),
            *address_attributes(("127.0.6.2", 40002), ("127.0.6.1", 40000)),
        ),
    )
    cap = tmp_path / "x.pcap"
    with PcapWriter(cap) as pw:
        flow = TcpFlowWriter(pw, "127.0.6.10", 41000, "127.0.6.20", port)
        flow.write(encode_pdu(x2), 1_700_000_000.0)
        flow.write(encode_pdu(x3), 1_700_000_000.1)
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(cap),
            "-d",
            f"tcp.port=={port},5gli",
            "-E",
            "occurrence=f",
            "-E",
            "separator=|",
            "-T",
            "fields",
            *[a for f in FIELDS for a in ("-e", f)],
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert len(out) == 2
    rows = [dict(zip(FIELDS, line.split("|"), strict=True)) for line in out]
    for row, pdu in zip(rows, (x2, x3), strict=True):
        assert int(row["li5g.ver"]) == pdu.version
        assert int(row["li5g.type"]) == pdu.pdu_type
        assert int(row["li5g.hl"]) == pdu.header_length
        assert int(row["li5g.pl"]) == len(pdu.payload)
        assert int(row["li5g.pf"]) == pdu.payload_format
        assert int(row["li5g.pd"]) == pdu.payload_direction
        assert uuid.UUID(row["li5g.xid"]) == pdu.xid
        assert int(row["li5g.cid"].replace(":", ""), 16) == pdu.correlation_id
        assert int(row["li5g.sq"]) == pdu.sequence_number
        src, dst = pdu.find(SourceAddress), pdu.find(DestinationAddress)
        assert src is not None and dst is not None
        assert row["li5g.srcip"] == str(src.address) and row["li5g.dstip"] == str(dst.address)
        sp, dp = pdu.find(SourcePort), pdu.find(DestinationPort)
        assert sp is not None and dp is not None
        assert int(row["li5g.srcport"]) == sp.port and int(row["li5g.dstport"]) == dp.port
        assert int(row["li5g.ipproto"]) == 17
    assert rows[0]["sip.Method"] == "INVITE" and rows[0]["sip.Call-ID"] == "call-1@ims.test"
    assert bytes.fromhex(rows[0]["li5g.nfid"].replace(":", "")) == b"pcscf-1"
    assert rows[0]["li5g.ts"] == "Nov 14, 2023 22:13:20.500000000 UTC"
    assert int(rows[1]["rtp.ssrc"], 16) == 0xDEADBEEF and int(rows[1]["rtp.seq"]) == 1


# -- the LEMF's per-packet view (decode_cc_fields) -------------------------------------------


def _agrees(raw: bytes) -> None:
    """decode_cc_fields accepts exactly what decode_pdu accepts and reads the same fields."""
    try:
        pdu = decode_pdu(raw)
    except X2X3DecodeError:
        with pytest.raises(X2X3DecodeError):
            decode_cc_fields(raw)
        return
    f = decode_cc_fields(raw)
    src, dst = pdu.find(SourceAddress), pdu.find(DestinationAddress)
    sport, dport = pdu.find(SourcePort), pdu.find(DestinationPort)
    nfid = pdu.opaque(AttributeType.NETWORK_FUNCTION_ID)
    assert (f.payload_format, f.payload_direction) == (
        int(pdu.payload_format),
        int(pdu.payload_direction),
    )
    assert (f.xid, f.correlation_id, f.payload) == (pdu.xid.bytes, pdu.correlation_id, pdu.payload)
    assert (f.sequence, f.timestamp, f.nfid) == (pdu.sequence_number, pdu.timestamp, nfid)
    assert f.src == (src.address.packed if src else None)
    assert f.dst == (dst.address.packed if dst else None)
    assert (f.sport, f.dport) == (sport.port if sport else None, dport.port if dport else None)
    carried = {int(t) for t in (8, 9, 10, 11, 12, 13, 14, 15, 16, 5, 6, 7)}
    assert f.other == any(a.attr_type not in carried for a in pdu.attributes)


def test_cc_fields_of_an_exported_x3_pdu() -> None:
    attrs = (
        network_function_id("anchor-1"),
        SequenceNumber(value=7),
        Timestamp(seconds=1_700_000_000, nanoseconds=250_000_000),
        *address_attributes(("10.0.0.1", 40000), ("2001:db8::1", 50000)),
    )
    # mixed families are legal on the wire (the LEMF rejects them when building pcaps)
    raw = encode_pdu(x3_pdu(xid=XID, correlation_id=9, payload=RTP, direction=3, attributes=attrs))
    f = decode_cc_fields(raw)
    assert (f.sequence, f.timestamp, f.nfid, f.sport, f.dport) == (
        7,
        1_700_000_000.25,
        b"anchor-1",
        40000,
        50000,
    )
    assert f.src == bytes([10, 0, 0, 1]) and f.dst == ipaddress.ip_address("2001:db8::1").packed
    assert not f.other and f.payload == RTP
    _agrees(raw)
    tagged = encode_pdu(
        x3_pdu(
            xid=XID,
            correlation_id=9,
            payload=RTP,
            direction=3,
            attributes=(*attrs, MatchedTargetIdentifier(value="sip:t@ims.test")),
        )
    )
    assert decode_cc_fields(tagged).other  # the LEMF takes the full decode for this one
    _agrees(tagged)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_cc_fields_only_raise_decode_error_and_agree_on_random_bytes(data: bytes) -> None:
    _agrees(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 22, 999]),
            st.integers(0, 20),
        ),
        max_size=10,
    ),
    st.binary(max_size=64),
    st.integers(0, 3),
)
def test_cc_fields_agree_with_decode_pdu_on_any_attribute_run(
    tlvs: list[tuple[int, int]], payload: bytes, cut: int
) -> None:
    """Valid and invalid TLV runs alike (fixed-size types of the wrong length, truncations):
    the fast view and the full decoder agree on the verdict and on every field."""
    attrs = b"".join(
        t.to_bytes(2, "big") + n.to_bytes(2, "big") + bytes((i * 7 + k) & 0xFF for k in range(n))
        for i, (t, n) in enumerate(tlvs)
    )
    attrs = attrs[: len(attrs) - cut] if cut <= len(attrs) else attrs
    prefix, tail = header_template(VERSION, PduType.X3, 8, 2, XID, 5)
    _agrees(assemble_pdu(prefix, tail, attrs, payload))
