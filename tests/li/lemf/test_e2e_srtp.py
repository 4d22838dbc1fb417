"""End to end: SIP with SDES + SRTP through the exporter -> LEMF -> cc.pcap (plain RTP) and WAV."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from ims.media.audio import ToneSource, read_wav
from ims.media.g711 import ulaw_encode
from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, decode_rtp, encode_rtp
from ims.media.srtp import SrtpSender
from ims.media.tone import detect_tone
from ims.sdes import crypto_for
from li.keys import KeyRecord, KeySource, Sender
from li.lemf.receiver import LemfServer
from li.pcap import parse_ip, read_pcap, udp_packet
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import (
    MatchedTargetIdentifier,
    PayloadDirection,
    PayloadFormat,
    address_attributes,
    correlation_id_for,
)
from tests.conftest import require_tool

HOST = "127.0.6.2"
XID = uuid.UUID("7a1c0b2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d")
DID = uuid.UUID("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
ALICE = ("127.0.6.11", 40000)  # the target
BOB = ("127.0.6.12", 41000)
SUITE = "AES_CM_128_HMAC_SHA1_80"


def sip(start: str, headers: list[str], sdp: str | None) -> bytes:
    body = sdp.encode() if sdp else b""
    lines = [start, *headers]
    if sdp:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sdp(addr: tuple[str, int], crypto: str | None, proto: str = "RTP/SAVP") -> str:
    lines = [
        "v=0",
        f"o=- 1 1 IN IP4 {addr[0]}",
        "s=-",
        f"c=IN IP4 {addr[0]}",
        "t=0 0",
        f"m=audio {addr[1]} {proto} 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    if crypto:
        lines.append(f"a=crypto:{crypto}")
    return "\r\n".join(lines) + "\r\n"


CALL_ID = "e2e-call-1@ims.test"
COMMON = [
    "Via: SIP/2.0/UDP 127.0.6.11:5060;branch=z9hG4bK-e2e",
    "From: <sip:alice@ims.test>;tag=al1",
    f"Call-ID: {CALL_ID}",
]


def rtp_stream(
    keys: SrtpKeys | None, freq: float, ssrc: int, first_seq: int, n: int
) -> list[bytes]:
    src = ToneSource(freq)
    sender = SrtpSender(keys) if keys else None
    out = []
    for i in range(n):
        pkt = encode_rtp(
            RtpPacket(
                payload_type=0,
                sequence_number=(first_seq + i) & 0xFFFF,
                timestamp=(i * 160) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=ulaw_encode(src.read(160)),
            )
        )
        if sender is None:
            out.append(pkt)
        else:
            protected = sender.protect(pkt)
            assert protected is not None
            out.append(protected)
    return out


async def run_call(
    tmp_path: Path,
    *,
    sdes: bool = True,
    key_record: bool = False,
    n: int = 400,
    first_seq: int = 65300,
    ip_packets: bool = False,
) -> tuple[Path, list[bytes], list[bytes]]:
    offer_c = crypto_for(SUITE, 1)
    answer_c = crypto_for(SUITE, 1)
    a_keys = SrtpKeys(suite=SUITE, master_key=offer_c.master_key, master_salt=offer_c.master_salt)
    b_keys = SrtpKeys(suite=SUITE, master_key=answer_c.master_key, master_salt=answer_c.master_salt)
    cid = correlation_id_for(CALL_ID)
    out = tmp_path / "lemf"
    async with LemfServer(out, host=HOST, plain_tcp=True) as lemf:
        exp = X2X3Exporter(tmp_path / "spool", nf_id="pcscf-1", keepalive_interval=0.2)
        exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=lemf.port))
        exp.bind_task(XID, [DID])
        async with exp:
            target = (MatchedTargetIdentifier(value="sip:alice@ims.test"),)
            invite = sip(
                "INVITE sip:bob@ims.test SIP/2.0",
                [*COMMON, "To: <sip:bob@ims.test>", "CSeq: 1 INVITE"],
                sdp(ALICE, str(offer_c) if sdes else None),
            )
            ok = sip(
                "SIP/2.0 200 OK",
                [*COMMON, "To: <sip:bob@ims.test>;tag=bo1", "CSeq: 1 INVITE"],
                sdp(BOB, str(answer_c) if sdes else None),
            )
            sip_attrs = address_attributes(("127.0.6.11", 5060), ("127.0.6.20", 5060))
            exp.send_x2(
                xid=XID,
                correlation_id=cid,
                payload=invite,
                direction=PayloadDirection.FROM_TARGET,
                attributes=sip_attrs + target,
            )
            exp.send_x2(
                xid=XID,
                correlation_id=cid,
                payload=ok,
                direction=PayloadDirection.TO_TARGET,
                attributes=sip_attrs + target,
            )
            up = rtp_stream(a_keys, 1000.0, 0xA11CE, first_seq, n)
            down = rtp_stream(b_keys, 400.0, 0xB0B, 100, n)
            for i, (u, d) in enumerate(zip(up, down, strict=True)):
                if key_record and i == 50:  # keys arrive after media started
                    for sender, k in ((Sender.OFFERER, a_keys), (Sender.ANSWERER, b_keys)):
                        exp.send_key_record(
                            xid=XID,
                            correlation_id=cid,
                            record=KeyRecord(
                                call_id=CALL_ID, source=KeySource.SDES, sender=sender, keys=k
                            ),
                        )
                for pkt, direction, src, dst in (
                    (u, PayloadDirection.FROM_TARGET, ALICE, BOB),
                    (d, PayloadDirection.TO_TARGET, BOB, ALICE),
                ):
                    if ip_packets:  # format 5: the whole IPv4/UDP packet
                        exp.send_x3(
                            xid=XID,
                            correlation_id=cid,
                            payload=udp_packet(src[0], src[1], dst[0], dst[1], pkt),
                            direction=direction,
                            payload_format=PayloadFormat.IPV4_PACKET,
                        )
                    else:
                        exp.send_x3(
                            xid=XID,
                            correlation_id=cid,
                            payload=pkt,
                            direction=direction,
                            attributes=address_attributes(src, dst),
                        )
            assert await exp.drain(timeout=30)
    return out / str(XID) / f"{cid:016x}", up, down


@pytest.mark.peer
async def test_sdes_call_decrypted_at_lemf(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    call_dir, up, down = await run_call(tmp_path)
    summary = json.loads((call_dir / "summary.json").read_text())
    assert summary["call_id"] == CALL_ID
    assert summary["keys_available"] and summary["media_encrypted"] is True
    assert summary["target_role"] == "offerer"
    streams = {s["direction"]: s for s in summary["streams"]}
    assert streams["from-target"]["decrypted"] == 400
    assert streams["to-target"]["decrypted"] == 400
    assert streams["from-target"]["decrypt_failures"] == 0

    # cc.pcap holds plain RTP: tshark decodes it as RTP with our SSRCs and sequence numbers
    res = subprocess.run(
        [
            tshark,
            "-r",
            str(call_dir / "cc.pcap"),
            "-d",
            f"udp.port=={ALICE[1]},rtp",
            "-T",
            "fields",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.seq",
            "-e",
            "rtp.p_type",
            "-e",
            "srtp.auth_tag",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [r.split("\t") for r in res.stdout.splitlines()]
    assert len(rows) == 800
    ssrcs = {int(r[0], 16) for r in rows}
    assert ssrcs == {0xA11CE, 0xB0B}
    assert all(r[2] == "0" and r[3] == "" for r in rows)
    a_seqs = [int(r[1]) for r in rows if int(r[0], 16) == 0xA11CE]
    assert a_seqs == [(65300 + i) & 0xFFFF for i in range(400)]  # across the ROC wrap
    # and the payload bytes are the original audio
    plain = [parse_ip(r) for r in read_pcap(call_dir / "cc.pcap")]
    first = decode_rtp(plain[0].payload if plain[0] else b"")
    assert first.ssrc in (0xA11CE, 0xB0B) and len(first.payload) == 160

    # cc-encrypted.pcap keeps the SRTP as intercepted
    enc = [parse_ip(r) for r in read_pcap(call_dir / "cc-encrypted.pcap")]
    assert [e.payload for e in enc if e is not None][:2] == [up[0], down[0]]

    # WAV per direction with the tone each side sent
    _, pcm_up = read_wav(call_dir / "audio-from-target.wav")
    _, pcm_down = read_wav(call_dir / "audio-to-target.wav")
    assert len(pcm_up) == 400 * 320
    assert detect_tone(pcm_up, 1000.0) and not detect_tone(pcm_up, 400.0)
    assert detect_tone(pcm_down, 400.0) and not detect_tone(pcm_down, 1000.0)

    # IRI: two SIP records, no key material, key fingerprints only
    iri = [json.loads(x) for x in (call_dir / "iri.jsonl").read_text().splitlines()]
    assert [r["sip"].get("method") or r["sip"]["status"] for r in iri] == ["INVITE", 200]
    assert iri[0]["direction"] == "from-target" and iri[0]["keys_found"]
    keys_hex = {
        json.loads(x)["master_key"] for x in (call_dir / "keys.jsonl").read_text().splitlines()
    }
    assert len(keys_hex) == 2
    for name in ("iri.jsonl", "summary.json"):
        text = (call_dir / name).read_text()
        assert not any(k in text for k in keys_hex), name
        assert "inline:" not in text
    # x2x3.pcap: every PDU, decodable by tshark as 5GLI
    assert len(list(read_pcap(call_dir / "x2x3.pcap"))) == 802


async def test_key_records_after_media_start(tmp_path: Path) -> None:
    """No SDES in the SIP; keys come as key records after 50 packets: all still decrypted."""
    call_dir, _, _ = await run_call(tmp_path, sdes=False, key_record=True, n=200)
    summary = json.loads((call_dir / "summary.json").read_text())
    streams = {s["direction"]: s for s in summary["streams"]}
    assert streams["from-target"]["decrypted"] == 200
    assert streams["to-target"]["decrypted"] == 200
    assert {k["sender"] for k in summary["keys"]} == {"offerer", "answerer"}
    assert {k["direction"] for k in summary["keys"]} == {"from-target", "to-target"}
    _, pcm = read_wav(call_dir / "audio-from-target.wav")
    assert detect_tone(pcm, 1000.0)


async def test_no_keys_reports_why(tmp_path: Path) -> None:
    call_dir, _, _ = await run_call(tmp_path, sdes=False, n=50)
    summary = json.loads((call_dir / "summary.json").read_text())
    assert not summary["keys_available"]
    assert summary["keys_unavailable_reason"] == (
        "no SDES or MIKEY key in the signalling and no key record"
    )
    assert not (call_dir / "cc.pcap").exists()
    assert (call_dir / "cc-encrypted.pcap").exists()
    assert all(s["decrypted"] == 0 for s in summary["streams"])


async def test_ipv4_packet_format_decrypted(tmp_path: Path) -> None:
    """X3 payload format 5 (whole IPv4/UDP packets): kept as is and decrypted like RTP."""
    call_dir, up, _ = await run_call(tmp_path, n=100, ip_packets=True)
    summary = json.loads((call_dir / "summary.json").read_text())
    streams = {s["direction"]: s for s in summary["streams"]}
    assert streams["from-target"]["decrypted"] == 100 and streams["to-target"]["decrypted"] == 100
    enc = [parse_ip(r) for r in read_pcap(call_dir / "cc-encrypted.pcap")]
    assert enc[0] is not None and enc[0].payload == up[0] and enc[0].src == ALICE[0]
    plain = [parse_ip(r) for r in read_pcap(call_dir / "cc.pcap")]
    assert plain[0] is not None and (plain[0].src, plain[0].sport) == ALICE
    _, pcm = read_wav(call_dir / "audio-from-target.wav")
    assert detect_tone(pcm, 1000.0)
