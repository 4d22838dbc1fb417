"""LEMF: MIKEY-PSK keys opened with the PSK the task provides; a wrong PSK gives the reason."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ims.media.audio import ToneSource, read_wav
from ims.media.g711 import ulaw_encode
from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, encode_rtp
from ims.media.srtp import SrtpSender
from ims.media.tone import detect_tone
from ims.mikey.modes.psk import PskInitiator
from ims.mikey.policy import Sender as MikeySender
from ims.mikey.sdp import key_mgmt_attribute
from li.lemf.mikeykeys import mikey_psk_policy
from li.lemf.receiver import LemfServer
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import PayloadDirection, address_attributes, correlation_id_for

HOST = "127.0.6.9"
XID = uuid.UUID("5b0c0b2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d")
DID = uuid.UUID("6d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
PSK = bytes(range(32))
CALL_ID = "mikey-call@ims.test"
NOW = 1_700_000_000.0


def sdp(addr: str, port: int, key_mgmt: str | None) -> str:
    lines = [
        "v=0",
        f"o=- 1 1 IN IP4 {addr}",
        "s=-",
        f"c=IN IP4 {addr}",
        "t=0 0",
        f"m=audio {port} RTP/SAVP 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    if key_mgmt:
        lines.append(key_mgmt)
    return "\r\n".join(lines) + "\r\n"


def sip(start: str, to: str, body: str) -> bytes:
    b = body.encode()
    return (
        f"{start}\r\nFrom: <sip:alice@ims.test>;tag=a\r\nTo: {to}\r\nCall-ID: {CALL_ID}\r\n"
        f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {len(b)}\r\n\r\n"
    ).encode() + b


async def run(tmp_path: Path, lemf_psk: bytes) -> dict:  # type: ignore[type-arg]
    init = PskInitiator(psk=PSK, idi="sip:alice@ims.test", idr="sip:bob@ims.test")
    offer_mikey = init.initiate(NOW)
    assert init.result is not None
    keys = {k.sender: k for k in init.result.keys}
    cid = correlation_id_for(CALL_ID)
    policy = mikey_psk_policy(lemf_psk)
    async with LemfServer(
        tmp_path / "out", host=HOST, task_key_policies={str(XID): policy}, plain_tcp=True
    ) as lemf:
        exp = X2X3Exporter(tmp_path / "spool", nf_id="pcscf-1", keepalive_interval=0.2)
        exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=lemf.port))
        exp.bind_task(XID, [DID])
        async with exp:
            invite = sip(
                "INVITE sip:bob@ims.test SIP/2.0",
                "<sip:bob@ims.test>",
                sdp("127.0.6.11", 40000, key_mgmt_attribute(offer_mikey)),
            )
            ok = sip("SIP/2.0 200 OK", "<sip:bob@ims.test>;tag=b", sdp("127.0.6.12", 41000, None))
            exp.send_x2(
                xid=XID, correlation_id=cid, payload=invite, direction=PayloadDirection.FROM_TARGET
            )
            exp.send_x2(
                xid=XID, correlation_id=cid, payload=ok, direction=PayloadDirection.TO_TARGET
            )
            for sender, direction, freq, ssrc in (
                (MikeySender.INITIATOR, PayloadDirection.FROM_TARGET, 1000.0, 0x1111),
                (MikeySender.RESPONDER, PayloadDirection.TO_TARGET, 400.0, 0x2222),
            ):
                k = keys[sender]
                tx = SrtpSender(
                    SrtpKeys(suite=str(k.suite), master_key=k.master_key, master_salt=k.master_salt)
                )
                tone = ToneSource(freq)
                for i in range(150):
                    pkt = tx.protect(
                        encode_rtp(
                            RtpPacket(
                                payload_type=0,
                                sequence_number=i + 1,
                                timestamp=i * 160,
                                ssrc=ssrc,
                                payload=ulaw_encode(tone.read(160)),
                            )
                        )
                    )
                    assert pkt is not None
                    exp.send_x3(
                        xid=XID,
                        correlation_id=cid,
                        payload=pkt,
                        direction=direction,
                        attributes=address_attributes(("127.0.6.11", 40000), ("127.0.6.12", 41000)),
                    )
            assert await exp.drain(timeout=30)
    call_dir = tmp_path / "out" / str(XID) / f"{cid:016x}"
    summary: dict[str, object] = json.loads((call_dir / "summary.json").read_text())
    summary["_dir"] = str(call_dir)
    return summary


async def test_mikey_psk_opened_with_task_secret(tmp_path: Path) -> None:
    s = await run(tmp_path, PSK)
    streams = {x["direction"]: x for x in s["streams"]}
    assert streams["from-target"]["decrypted"] == 150 and streams["to-target"]["decrypted"] == 150
    assert {k["source"] for k in s["keys"]} == {"mikey-psk-public"}
    _, up = read_wav(Path(s["_dir"]) / "audio-from-target.wav")
    _, down = read_wav(Path(s["_dir"]) / "audio-to-target.wav")
    assert detect_tone(up, 1000.0) and detect_tone(down, 400.0)


async def test_mikey_wrong_psk_reports_reason(tmp_path: Path) -> None:
    s = await run(tmp_path, b"\x00" * 32)
    assert not s["keys_available"]
    assert "MIKEY not opened with the task's PSK" in s["keys_unavailable_reason"]
    assert all(x["decrypted"] == 0 for x in s["streams"])
