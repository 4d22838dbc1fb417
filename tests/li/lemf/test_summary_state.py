"""The LEMF's files as the single source of truth: summary.json on every state change
(debounced, atomic, 0600) with a ``complete`` marker, IRI events (start of interception,
content unavailable) as records, SRTCP decrypted into cc.pcap, and a restart that continues
a call (keys, counters, one WAV per direction)."""

from __future__ import annotations

import json
import stat
import struct
import subprocess
import uuid
import wave
from pathlib import Path
from typing import Any

import pytest

from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, encode_rtp
from ims.media.srtp import SrtpSender
from ims.sdes import crypto_for
from li.lemf.mediation import Mediation
from li.pcap import IPPROTO_UDP, parse_ip, read_pcap
from li.poi.export import iri_pdus
from li.poi.iri import IriEvent, IriRecord, TargetDirection
from li.x2x3.pdu import PayloadDirection, Pdu, encode_pdu, x2_pdu, x3_pdu
from tests.conftest import require_tool

XID = uuid.UUID("1a7e0ffe-0000-4000-8000-0000000000a6")
CID = 0x66
SUITE = "AES_CM_128_HMAC_SHA1_80"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def sip(start: str, cseq: str, sdp: str | None = None) -> bytes:
    body = sdp.encode() if sdp else b""
    ctype = "Content-Type: application/sdp\r\n" if sdp else ""
    return (
        f"{start}\r\nCall-ID: state@ims.test\r\nCSeq: {cseq}\r\nFrom: <sip:a@x>;tag=1\r\n"
        f"To: <sip:b@x>\r\n{ctype}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def sdp(crypto: str) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.6.129\r\ns=-\r\nc=IN IP4 127.0.6.129\r\nt=0 0\r\n"
        f"m=audio 40000 RTP/SAVP 0\r\na=crypto:{crypto}\r\n"
    )


def feed(med: Mediation, pdu: Pdu) -> None:
    med.handle(pdu, encode_pdu(pdu), ("127.0.6.130", 1))


def x2(payload: bytes, direction: PayloadDirection) -> Pdu:
    return x2_pdu(xid=XID, correlation_id=CID, payload=payload, direction=direction)


def x3(payload: bytes, direction: PayloadDirection) -> Pdu:
    return x3_pdu(xid=XID, correlation_id=CID, payload=payload, direction=direction)


def rtp(ssrc: int, i: int) -> bytes:
    return encode_rtp(
        RtpPacket(
            payload_type=0, sequence_number=i, timestamp=i * 160, ssrc=ssrc, payload=b"\x7f" * 160
        )
    )


def sender_report(ssrc: int, n: int) -> bytes:
    """An RTCP SR (RFC 3550 §6.4.1) without report blocks."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xE0000000 + n, 0, n * 160, n, n * 160)


def summary(d: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((d / "summary.json").read_text())
    return out


def keys() -> tuple[Any, Any, SrtpKeys, SrtpKeys]:
    tc, pc = crypto_for(SUITE, 1), crypto_for(SUITE, 1)
    tk = SrtpKeys(suite=SUITE, master_key=tc.master_key, master_salt=tc.master_salt)
    pk = SrtpKeys(suite=SUITE, master_key=pc.master_key, master_salt=pc.master_salt)
    return tc, pc, tk, pk


def test_summary_follows_state_changes_debounced_with_complete_marker(tmp_path: Path) -> None:
    clock = Clock()
    med = Mediation(tmp_path, monotonic=clock)
    d = tmp_path / str(XID) / f"{CID:016x}"
    tc, pc, tk, pk = keys()
    feed(
        med,
        x2(sip("INVITE sip:b@x SIP/2.0", "1 INVITE", sdp(str(tc))), PayloadDirection.FROM_TARGET),
    )
    s = summary(d)  # a key bound: written at once, no checkpoint needed
    assert s["keys_available"] and len(s["keys"]) == 1 and s["complete"] is False
    assert stat.S_IMODE((d / "summary.json").stat().st_mode) == 0o600
    assert not list(d.glob("*.tmp"))
    clock.t += 0.05  # within the debounce: the answer's key waits
    feed(med, x2(sip("SIP/2.0 200 OK", "1 INVITE", sdp(str(pc))), PayloadDirection.TO_TARGET))
    assert len(summary(d)["keys"]) == 1
    clock.t += 0.1  # the next PDU (the first packet decrypted) writes both changes
    tx, rx = SrtpSender(tk), SrtpSender(pk)
    feed(med, x3(tx.protect(rtp(1, 0)) or b"", PayloadDirection.FROM_TARGET))
    s = summary(d)
    assert len(s["keys"]) == 2 and s["established"]
    assert [(x["direction"], x["decrypted"]) for x in s["streams"]] == [("from-target", 1)]
    rev = s["revision"]
    for i in range(1, 50):  # counters alone: no rewrite per packet
        clock.t += 0.02
        feed(med, x3(tx.protect(rtp(1, i)) or b"", PayloadDirection.FROM_TARGET))
        feed(med, x3(rx.protect(rtp(2, i)) or b"", PayloadDirection.TO_TARGET))
    s = summary(d)
    assert s["revision"] == rev + 1  # only the to-target stream's first decryption
    med.checkpoint()  # a keepalive within SUMMARY_INTERVAL of the last write: files flushed
    assert summary(d)["revision"] == rev + 1
    clock.t += 1.0
    med.checkpoint()  # a keepalive more than SUMMARY_INTERVAL later: counters written
    s = summary(d)
    assert {x["direction"]: x["decrypted"] for x in s["streams"]} == {
        "from-target": 50,
        "to-target": 49,
    }
    # BYE: ended; the summary written on the next debounce slot says complete, and the WAVs
    # it lists are whole (header patched) while the LEMF is still running
    clock.t += 1.0
    feed(med, x2(sip("BYE sip:b@x SIP/2.0", "2 BYE"), PayloadDirection.FROM_TARGET))
    s = summary(d)
    assert s["ended"] == "BYE" and s["complete"] is True
    with wave.open(str(d / "audio-from-target.wav")) as w:
        assert w.getnframes() == 50 * 160
    med.close()


def test_iri_events_become_records(tmp_path: Path) -> None:
    clock = Clock()
    med = Mediation(tmp_path, monotonic=clock)
    d = tmp_path / str(XID) / f"{CID:016x}"
    common: dict[str, Any] = {
        "xid": XID,
        "correlation_id": CID,
        "call_id": "state@ims.test",
        "direction": TargetDirection.NOT_APPLICABLE,
        "element": "pcscf-a",
        "matched": "sip:alice@ims.test",
    }
    start = IriRecord(
        event=IriEvent.START_OF_INTERCEPTION,
        time=10.0,
        sdp_state=sdp("1 AES_CM_128_HMAC_SHA1_80 inline:secret").encode(),
        **common,
    )
    gone = IriRecord(
        event=IriEvent.CC_UNAVAILABLE, time=11.0, reason="media not anchored here", **common
    )
    for r in (start, gone):
        clock.t += 1.0
        for pdu in iri_pdus(r):
            feed(med, pdu)
    recs = [json.loads(line) for line in (d / "iri.jsonl").read_text().splitlines()]
    events = [r for r in recs if r["type"] == "iri-event"]
    assert [(e["event"], e["reason"], e["element"], e["sdp_state"]) for e in events] == [
        ("start-of-interception", "", "pcscf-a", True),
        ("cc-unavailable", "media not anchored here", "pcscf-a", False),
    ]
    assert all(e["poi"] and e["time"] for e in events)
    assert "secret" not in (d / "iri.jsonl").read_text()  # the SDP state stays in x2x3.pcap
    s = summary(d)  # written on the events themselves, before any close
    assert s["interception_started_mid_call"] is True
    assert s["content_unavailable"]["reason"] == "media not anchored here"
    assert s["call_id"] == "state@ims.test"
    # the key record without keys that follows the event (same instant: debounced) is in
    # the summary after the next keepalive
    med.checkpoint()
    s = summary(d)
    assert "media not anchored here" in s["keys_unavailable_reason"]
    med.close()


def test_srtcp_is_decrypted_into_cc_pcap(tmp_path: Path) -> None:
    med = Mediation(tmp_path)
    d = tmp_path / str(XID) / f"{CID:016x}"
    tc, pc, tk, pk = keys()
    feed(
        med,
        x2(sip("INVITE sip:b@x SIP/2.0", "1 INVITE", sdp(str(tc))), PayloadDirection.FROM_TARGET),
    )
    feed(med, x2(sip("SIP/2.0 200 OK", "1 INVITE", sdp(str(pc))), PayloadDirection.TO_TARGET))
    tx, rx = SrtpSender(tk), SrtpSender(pk)
    reports = [sender_report(0x111, n) for n in range(3)] + [sender_report(0x222, 9)]
    # RTCP before any RTP of its SSRC: the candidates are tried directly
    feed(med, x3(tx.protect_rtcp(reports[0]) or b"", PayloadDirection.FROM_TARGET))
    for i in range(5):
        feed(med, x3(tx.protect(rtp(0x111, i)) or b"", PayloadDirection.FROM_TARGET))
    feed(med, x3(tx.protect_rtcp(reports[1]) or b"", PayloadDirection.FROM_TARGET))
    feed(med, x3(tx.protect_rtcp(reports[2]) or b"", PayloadDirection.FROM_TARGET))
    feed(med, x3(rx.protect_rtcp(reports[3]) or b"", PayloadDirection.TO_TARGET))
    forged = bytearray(tx.protect_rtcp(sender_report(0x111, 7)) or b"")
    forged[-1] ^= 1  # a bad tag is counted, never written
    feed(med, x3(bytes(forged), PayloadDirection.FROM_TARGET))
    med.close()
    s = summary(d)
    assert s["rtcp"] == {"packets": 5, "decrypted": 4, "plain": 0, "failures": 1}
    udp = [parse_ip(r) for r in read_pcap(d / "cc.pcap")]
    payloads = [u.payload for u in udp if u is not None and u.proto == IPPROTO_UDP]
    rtcp_out = [p for p in payloads if 200 <= p[1] <= 204]
    assert rtcp_out == reports  # SRTCP decrypted back to the very SRs sent
    assert len(payloads) == 5 + 4


@pytest.mark.peer
def test_tshark_reads_the_decrypted_rtcp(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    med = Mediation(tmp_path)
    d = tmp_path / str(XID) / f"{CID:016x}"
    tc, pc, tk, _ = keys()
    feed(
        med,
        x2(sip("INVITE sip:b@x SIP/2.0", "1 INVITE", sdp(str(tc))), PayloadDirection.FROM_TARGET),
    )
    tx = SrtpSender(tk)
    for n in range(3):
        feed(med, x3(tx.protect(rtp(0x1234, n)) or b"", PayloadDirection.FROM_TARGET))
        feed(
            med, x3(tx.protect_rtcp(sender_report(0x1234, n)) or b"", PayloadDirection.FROM_TARGET)
        )
    med.close()
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(d / "cc.pcap"),
            "-d",
            "udp.port==40000,rtcp",
            "-Y",
            "rtcp.pt == 200",
            "-T",
            "fields",
            "-e",
            "rtcp.senderssrc",
            "-e",
            "rtcp.sender.packetcount",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\n")
    assert [line.split() for line in out if line] == [["0x00001234", str(n)] for n in range(3)]


def test_restart_continues_keys_counters_and_wav(tmp_path: Path) -> None:
    tc, pc, tk, pk = keys()
    d = tmp_path / str(XID) / f"{CID:016x}"
    tx, rx = SrtpSender(tk), SrtpSender(pk)
    med = Mediation(tmp_path)
    feed(
        med,
        x2(sip("INVITE sip:b@x SIP/2.0", "1 INVITE", sdp(str(tc))), PayloadDirection.FROM_TARGET),
    )
    feed(med, x2(sip("SIP/2.0 200 OK", "1 INVITE", sdp(str(pc))), PayloadDirection.TO_TARGET))
    for i in range(20):
        feed(med, x3(tx.protect(rtp(1, i)) or b"", PayloadDirection.FROM_TARGET))
        feed(med, x3(rx.protect(rtp(2, i)) or b"", PayloadDirection.TO_TARGET))
    med.close()
    before = summary(d)
    # a new LEMF process on the same directory: no SIP, no key record comes again
    med = Mediation(tmp_path)
    for i in range(20, 45):
        feed(med, x3(tx.protect(rtp(1, i)) or b"", PayloadDirection.FROM_TARGET))
        feed(med, x3(rx.protect(rtp(2, i)) or b"", PayloadDirection.TO_TARGET))
    call = med.calls[(str(XID), CID)]
    assert len(call.candidates) == 2 and call.restarts == 1
    med.close()
    s = summary(d)
    assert s["restarts"] == 1 and s["revision"] > before["revision"]
    assert s["keys"] == before["keys"] and s["target_role"] == "offerer"
    assert s["x2_pdus"] == 2 and s["x3_pdus"] == 90 and s["call_id"] == "state@ims.test"
    assert {x["direction"]: (x["packets"], x["decrypted"], x["key"]) for x in s["streams"]} == {
        x["direction"]: (45, 45, x["key"]) for x in before["streams"]
    }
    assert len((d / "keys.jsonl").read_text().splitlines()) == 2  # not written again
    assert sorted(p.name for p in d.glob("audio-*.wav")) == [
        "audio-from-target.wav",
        "audio-to-target.wav",
    ]
    for name in ("audio-from-target.wav", "audio-to-target.wav"):
        with wave.open(str(d / name)) as w:
            assert w.getnframes() == 45 * 160


def test_restart_with_a_foreign_summary_keeps_working(tmp_path: Path) -> None:
    d = tmp_path / str(XID) / f"{CID:016x}"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"x2_pdus": "many", "streams": [{"x": 1}]}))
    (d / "keys.jsonl").write_text('{"torn": \n')
    med = Mediation(tmp_path)
    tc, pc, tk, _ = keys()
    feed(
        med,
        x2(sip("INVITE sip:b@x SIP/2.0", "1 INVITE", sdp(str(tc))), PayloadDirection.FROM_TARGET),
    )
    tx = SrtpSender(tk)
    for i in range(3):
        feed(med, x3(tx.protect(rtp(1, i)) or b"", PayloadDirection.FROM_TARGET))
    med.close()
    s = summary(d)
    assert s["restarts"] == 1 and s["x2_pdus"] == 1 and s["streams"][0]["decrypted"] == 3
