"""Issue 11 finding 12: key and record hygiene at the POI's spool and the LEMF's WAV files.

Before the fix: spool segments kept the a=crypto keys of intercepted SDP after their delivery
was acknowledged and after shutdown; ``spool/sequence.json`` was 0644; the LEMF patched a
WAV header only at checkpoints (a player saw 0 frames during a call and after a crash), and
repaired a stale header only when the same call resumed.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from li.lemf.output import PrivateWavWriter
from li.lemf.receiver import LemfServer
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import PayloadDirection
from tests.security.li_helpers import HOST

pytestmark = pytest.mark.timeout(60)

XID = uuid.UUID("0b5e55ed-0000-4000-8000-000000000012")
DID = uuid.UUID("0b5e55ed-0000-4000-8000-0000000012d1")
KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # the inline key the spool must not keep


def invite_with_crypto(i: int) -> bytes:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/SAVP 0\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
    )
    return (
        f"INVITE sip:bob@ims.test SIP/2.0\r\nCall-ID: k{i}@x\r\nCSeq: 1 INVITE\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()


def spool_bytes(spool: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(spool.rglob("*")) if p.is_file())


async def test_spool_keeps_no_key_after_ack_or_shutdown(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True) as lemf:
        exp = X2X3Exporter(spool, nf_id="pcscf-a", backoff_initial=0.01)
        exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=lemf.port))
        exp.bind_task(XID, [DID])
        await exp.start()
        for i in range(20):
            exp.send_x2(
                xid=XID,
                correlation_id=i,
                payload=invite_with_crypto(i),
                direction=PayloadDirection.FROM_TARGET,
            )
        assert await exp.drain(timeout=20)
        assert exp.status(DID).pending_bytes == 0
        # acknowledged: nothing of it is left in the spool
        assert KEY.encode() not in spool_bytes(spool)
        await exp.close()
        assert KEY.encode() not in spool_bytes(spool)
        assert lemf.mediation is not None and lemf.mediation.stats.x2 == 20
    seq = spool / "sequence.json"
    assert seq.is_file() and seq.stat().st_mode & 0o777 == 0o600
    for p in spool.rglob("*"):
        assert p.stat().st_mode & 0o077 == 0, p


def wav_frames(path: Path) -> int:
    """What a player believes: the data chunk size in the header, in 16-bit samples."""
    head = path.read_bytes()[:44]
    return int(struct.unpack("<I", head[40:44])[0]) // 2


def test_wav_header_follows_the_audio_at_least_every_second(tmp_path: Path) -> None:
    now = [100.0]
    wav = PrivateWavWriter(tmp_path / "a.wav", monotonic=lambda: now[0])
    for _ in range(60):  # 1.2 s of 20 ms frames, no flush/checkpoint from outside
        wav.write(bytes(320))
        now[0] += 0.02
    # the header was patched within the last second of audio, and the data is on disk
    assert wav_frames(tmp_path / "a.wav") >= 160 * 10
    now[0] += 0.5
    wav.idle()  # no audio for a while: the header says everything
    assert wav_frames(tmp_path / "a.wav") == 160 * 60
    wav.close()


async def test_lemf_repairs_every_wav_on_start(tmp_path: Path) -> None:
    """A crash left a WAV whose header says 0 frames: a LEMF starting on that output
    directory fixes it, even if that call never resumes."""
    out = tmp_path / "out"
    call_dir = out / str(XID) / f"{7:016x}"
    call_dir.mkdir(parents=True, mode=0o700)
    wav = PrivateWavWriter(call_dir / "audio-from-target.wav")
    wav.write(bytes(16000))
    wav._fh.flush()  # the data reached the file, the header did not (a crash)
    assert wav_frames(call_dir / "audio-from-target.wav") == 0
    async with LemfServer(out, host=HOST, plain_tcp=True):
        assert wav_frames(call_dir / "audio-from-target.wav") == 8000
    wav._fh.close()
