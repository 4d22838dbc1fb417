"""LEMF call logic without sockets: a late offer (SDP in the 200 OK, answer in the ACK)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, encode_rtp
from ims.media.srtp import SrtpSender
from ims.sdes import crypto_for
from li.keys import KeyRecord, KeySource, Sender
from li.lemf.mediation import Mediation
from li.x2x3.keyrecord import key_record_pdu
from li.x2x3.pdu import PayloadDirection, Pdu, encode_pdu, x2_pdu, x3_pdu

XID = uuid.UUID("1a7e0ffe-0000-4000-8000-000000000001")
SUITE = "AES_CM_128_HMAC_SHA1_80"


def sip(start: str, sdp: str | None) -> bytes:
    body = sdp.encode() if sdp else b""
    ctype = "Content-Type: application/sdp\r\n" if sdp else ""
    return (
        f"{start}\r\nCall-ID: late@ims.test\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@x>;tag=1\r\n"
        f"To: <sip:b@x>\r\n{ctype}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def sdp(crypto: str) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.6.1\r\ns=-\r\nc=IN IP4 127.0.6.1\r\nt=0 0\r\n"
        f"m=audio 40000 RTP/SAVP 0\r\na=crypto:{crypto}\r\n"
    )


def feed(med: Mediation, pdu: Pdu) -> None:
    med.handle(pdu, encode_pdu(pdu), ("127.0.6.1", 1))


def srtp(keys: SrtpKeys, ssrc: int, n: int) -> list[bytes]:
    tx = SrtpSender(keys)
    out = []
    for i in range(n):
        p = tx.protect(
            encode_rtp(
                RtpPacket(
                    payload_type=0,
                    sequence_number=i,
                    timestamp=i * 160,
                    ssrc=ssrc,
                    payload=b"\xff" * 160,
                )
            )
        )
        assert p is not None
        out.append(p)
    return out


def test_late_offer_and_key_record_sender_mapping(tmp_path: Path) -> None:
    target_c, peer_c = crypto_for(SUITE, 1), crypto_for(SUITE, 1)
    med = Mediation(tmp_path)
    # the target calls without SDP; the peer's 200 OK carries the offer; the ACK the answer
    feed(
        med,
        x2_pdu(
            xid=XID,
            correlation_id=9,
            payload=sip("INVITE sip:b@x SIP/2.0", None),
            direction=PayloadDirection.FROM_TARGET,
        ),
    )
    feed(
        med,
        x2_pdu(
            xid=XID,
            correlation_id=9,
            payload=sip("SIP/2.0 200 OK", sdp(str(peer_c))),
            direction=PayloadDirection.TO_TARGET,
        ),
    )
    feed(
        med,
        x2_pdu(
            xid=XID,
            correlation_id=9,
            payload=sip("ACK sip:b@x SIP/2.0", sdp(str(target_c))),
            direction=PayloadDirection.FROM_TARGET,
        ),
    )
    call = med.calls[(str(XID), 9)]
    assert call.target_is_offerer is False
    assert call.offer_sdp and b"a=crypto" in call.offer_sdp and call.answer_sdp
    # an extra key record: the offerer (the peer) -> media to the target
    other = SrtpKeys(suite=SUITE, master_key=b"\x01" * 16, master_salt=b"\x02" * 14)
    feed(
        med,
        key_record_pdu(
            XID,
            9,
            KeyRecord(
                call_id="late@ims.test", source=KeySource.SDES, sender=Sender.OFFERER, keys=other
            ),
        ),
    )
    assert call.candidates[-1].direction == PayloadDirection.TO_TARGET
    tk = SrtpKeys(suite=SUITE, master_key=target_c.master_key, master_salt=target_c.master_salt)
    pk = SrtpKeys(suite=SUITE, master_key=peer_c.master_key, master_salt=peer_c.master_salt)
    for a, b in zip(srtp(tk, 1, 30), srtp(pk, 2, 30), strict=True):
        feed(
            med,
            x3_pdu(xid=XID, correlation_id=9, payload=a, direction=PayloadDirection.FROM_TARGET),
        )
        feed(
            med, x3_pdu(xid=XID, correlation_id=9, payload=b, direction=PayloadDirection.TO_TARGET)
        )
    med.close()
    summary = json.loads((tmp_path / str(XID) / f"{9:016x}" / "summary.json").read_text())
    assert summary["target_role"] == "answerer"
    streams = {s["direction"]: s for s in summary["streams"]}
    assert streams["from-target"]["decrypted"] == 30 and streams["to-target"]["decrypted"] == 30
    by_fp = {k["fingerprint"]: k for k in summary["keys"]}
    assert by_fp[streams["from-target"]["key"]]["direction"] == "from-target"
    assert by_fp[streams["to-target"]["key"]]["direction"] == "to-target"


def test_plain_rtp_before_its_sdp(tmp_path: Path) -> None:
    """X3 from the anchor can beat the P-CSCF's X2: plain RTP held until the RTP/AVP SDP
    arrives is then written to cc.pcap and the WAV."""
    med = Mediation(tmp_path)
    for i in range(10):
        rtp = encode_rtp(
            RtpPacket(
                payload_type=0, sequence_number=i, timestamp=i * 160, ssrc=7, payload=b"\xff" * 160
            )
        )
        feed(
            med,
            x3_pdu(xid=XID, correlation_id=5, payload=rtp, direction=PayloadDirection.FROM_TARGET),
        )
    plain_sdp = (
        sdp("1 X inline:x").replace("RTP/SAVP", "RTP/AVP").replace("a=crypto:1 X inline:x\r\n", "")
    )
    feed(
        med,
        x2_pdu(
            xid=XID,
            correlation_id=5,
            payload=sip("INVITE sip:b@x SIP/2.0", plain_sdp),
            direction=PayloadDirection.FROM_TARGET,
        ),
    )
    med.close()
    summary = json.loads((tmp_path / str(XID) / f"{5:016x}" / "summary.json").read_text())
    assert summary["media_encrypted"] is False and summary["keys_unavailable_reason"] is None
    (stream,) = summary["streams"]
    assert stream["plain_rtp"] and stream["packets"] == 10
    assert "cc.pcap" in summary["files"] and "audio-from-target.wav" in summary["files"]
