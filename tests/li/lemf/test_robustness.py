"""The LEMF never stops on odd intercepted input (hypothesis), and its files decode in tshark."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from li.lemf.mediation import Mediation
from li.lemf.sipinfo import summarise
from li.x2x3.pdu import (
    MatchedTargetIdentifier,
    Pdu,
    PduType,
    address_attributes,
    encode_pdu,
    mime_content_type,
    x2_pdu,
)
from tests.conftest import require_tool

XID = uuid.UUID("3c3c3c3c-0000-4000-8000-000000000001")

sip_like = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda start, hdrs, body: (start + "\r\n" + "\r\n".join(hdrs) + "\r\n\r\n" + body).encode(
            "utf-8", "surrogateescape"
        ),
        st.sampled_from(["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "SIP/2.0 9", "x"]),
        st.lists(
            st.sampled_from(
                [
                    "Content-Type: application/sdp",
                    "f: <sip:x@y>;tag=1",
                    "Call-ID: c",
                    "CSeq: 1 INVITE",
                    "To: bad <",
                    " folded",
                    "i: z",
                ]
            ),
            max_size=6,
        ),
        st.text(
            alphabet="vmcoa=:/ 0123456789\r\nRTP/SAVPcrypto:inline|key-mgmt:mikey", max_size=200
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(sip_like)
def test_summarise_never_raises(data: bytes) -> None:
    info = summarise(data)
    info.public()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([PduType.X2, PduType.X3]),
            st.integers(0, 20),
            st.integers(0, 6),
            st.integers(1, 3),
            sip_like,
            st.booleans(),
        ),
        max_size=12,
    )
)
def test_mediation_never_raises(items: list[tuple[PduType, int, int, int, bytes, bool]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        med = Mediation(Path(d), lemf_addr=("127.0.6.10", 50100))
        for i, (ptype, fmt, direction, cid, payload, keyrec) in enumerate(items):
            attrs = (MatchedTargetIdentifier(value="sip:a@b"),) + address_attributes(
                ("127.0.6.1", 1000), ("127.0.6.2", 2000)
            )
            if keyrec:
                attrs += (mime_content_type("application/vnd.imslab.key-record+json"),)
            pdu = Pdu(
                pdu_type=ptype,
                payload_format=4 if keyrec else fmt,
                payload_direction=direction,
                xid=XID,
                correlation_id=cid,
                attributes=attrs,
                payload=payload,
            )
            med.handle(pdu, encode_pdu(pdu), ("127.0.6.1", 40000 + i))
            if i % 4 == 3:
                med.checkpoint()
        med.close()
        assert med.stats.pdus == len(items)


@pytest.mark.peer
def test_lemf_x2x3_pcap_decodes_in_tshark(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    med = Mediation(tmp_path, lemf_addr=("127.0.6.10", 50111))
    sip = (
        b"INVITE sip:bob@ims.test SIP/2.0\r\nCall-ID: t1@ims.test\r\nCSeq: 1 INVITE\r\n"
        b"From: <sip:alice@ims.test>;tag=1\r\nTo: <sip:bob@ims.test>\r\nContent-Length: 0\r\n\r\n"
    )
    for cid in (1, 1, 2):
        pdu = x2_pdu(xid=XID, correlation_id=cid, payload=sip, direction=3)
        med.handle(pdu, encode_pdu(pdu), ("127.0.6.1", 40000))
    med.close()
    pcap = tmp_path / str(XID) / f"{1:016x}" / "x2x3.pcap"
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(pcap),
            "-d",
            "tcp.port==50111,5gli",
            "-E",
            "occurrence=f",
            "-T",
            "fields",
            "-e",
            "li5g.xid",
            "-e",
            "li5g.cid",
            "-e",
            "sip.Method",
            "-e",
            "sip.Call-ID",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert out == [f"{XID}\t0000000000000001\tINVITE\tt1@ims.test"] * 2


def test_open_files_bounded_and_calls_resume(tmp_path: Path) -> None:
    """Only max_open_calls calls keep files open; a suspended call resumes in append mode."""
    from li.pcap import read_pcap

    med = Mediation(tmp_path, lemf_addr=("127.0.6.10", 50111), max_open_calls=2)
    for rnd in range(4):
        for cid in range(1, 6):
            sip = f"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c{cid}\r\nCSeq: {rnd} OPTIONS\r\n\r\n"
            pdu = x2_pdu(xid=XID, correlation_id=cid, payload=sip.encode(), direction=2)
            med.handle(pdu, encode_pdu(pdu), ("127.0.6.1", 40000))
            assert sum(c.is_open for c in med.calls.values()) <= 2
        med.checkpoint()
    med.close()
    for cid in range(1, 6):
        d = tmp_path / str(XID) / f"{cid:016x}"
        assert len((d / "iri.jsonl").read_text().splitlines()) == 4
        assert len(list(read_pcap(d / "x2x3.pcap"))) == 4
