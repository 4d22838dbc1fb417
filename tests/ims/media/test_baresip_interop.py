"""Interop with a real peer: baresip 1.0.0 (libre's own SRTP, not libsrtp) answers our SDES offer,
then SRTP audio flows both ways: we detect baresip's 440 Hz file, baresip records our 1 kHz tone.

The SIP here is a minimal hand-written INVITE/ACK/BYE over UDP (the media plane must not depend
on ims.sip); the SDP offer/answer, SDES negotiation and the SRTP media are ours.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import uuid
import wave
from pathlib import Path

import pytest

from ims.media.audio import BufferSink, ToneSource, WavWriter
from ims.media.session import MediaSession
from ims.media.tone import tone_ratio
from ims.sdes import make_offer
from ims.sdp import LocalAudio, SessionDescription, create_offer, process_answer
from tests.conftest import require_tool

pytestmark = [pytest.mark.peer, pytest.mark.slow]

# Addresses and ports are drawn at random inside 127.0.4.0/24 so that two runs of the suite on
# one machine (several developers at once) do not answer each other's INVITEs.
_RNG = random.Random()
BARESIP_HOST = f"127.0.4.{_RNG.randrange(20, 120)}"
US = f"127.0.4.{_RNG.randrange(120, 220)}"


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


CONFIG = """poll_method\t\tepoll
sip_listen\t\t{host}:{port}
net_interface\t\t127.0.0.1
audio_player\t\taubridge,nil
audio_source\t\taufile,{wav}
audio_alert\t\taubridge,nil
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module\t\t\tsrtp.so
module\t\t\tsndfile.so
module\t\t\taccount.so
snd_path\t\t{dir}
rtp_ports\t\t{rtp_lo}-{rtp_hi}
"""


class _Sip(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.queue.put_nowait(data)


def _request(
    method: str, uri: str, cseq: int, call_id: str, to_tag: str, body: bytes, port: int
) -> bytes:
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {US}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        f"From: <sip:alice@{US}>;tag=imslab1\r\n"
        f"To: <sip:bob@{BARESIP_HOST}>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:alice@{US}:{port}>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    "suite",
    ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"],
)
async def test_srtp_call_with_baresip(tmp_path: Path, suite: str) -> None:
    baresip = require_tool("baresip")
    sox = shutil.which("sox")
    wav = tmp_path / "tone440.wav"
    if sox:
        subprocess.run(
            [sox, "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth", "6", "sine", "440"],
            check=True,
            timeout=30,
        )
    else:
        with WavWriter(wav) as w:
            w.write(ToneSource(440).read(8000 * 6))
    sip_port = _free_udp_port(BARESIP_HOST)
    rtp_lo = _RNG.randrange(11000, 19000, 2)
    (tmp_path / "config").write_text(
        CONFIG.format(
            host=BARESIP_HOST,
            port=sip_port,
            wav=wav,
            dir=tmp_path,
            rtp_lo=rtp_lo,
            rtp_hi=rtp_lo + 40,
        )
    )
    (tmp_path / "accounts").write_text(
        f"<sip:bob@{BARESIP_HOST}>;regint=0;answermode=auto;mediaenc=srtp-mand;audio_codecs=pcmu\n"
    )
    proc = subprocess.Popen(
        [baresip, "-f", str(tmp_path), "-t", "20"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    loop = asyncio.get_running_loop()
    sip_tr, sip = await loop.create_datagram_endpoint(_Sip, local_addr=(US, 0))
    port = sip_tr.get_extra_info("sockname")[1]
    sink = BufferSink()
    media: MediaSession | None = None
    try:
        await asyncio.sleep(1.0)  # let baresip bind
        media = await MediaSession.create(US, source=ToneSource(1000), sink=sink)
        offer = create_offer(
            LocalAudio(
                address=US, port=media.local_port, codecs=("PCMU",), crypto=make_offer((suite,))
            ),
            session_id=int.from_bytes(os.urandom(3), "big"),
        )
        call_id = f"{uuid.uuid4().hex}@{US}"
        uri = f"sip:bob@{BARESIP_HOST}:{sip_port}"
        sip_tr.sendto(
            _request("INVITE", uri, 1, call_id, "", offer.encode(), port),
            (BARESIP_HOST, sip_port),
        )
        async with asyncio.timeout(10):
            while True:
                msg = await sip.queue.get()
                if msg.startswith(b"SIP/2.0 200"):
                    break
                assert msg.startswith(b"SIP/2.0 1"), msg[:80]
        head, _, body = msg.partition(b"\r\n\r\n")
        to_tag = re.search(rb"\r\nTo:[^\r]*;tag=([^;\r]+)", head, re.I)
        contact = re.search(rb"\r\nContact:\s*<([^>]+)>", head, re.I)
        assert to_tag and contact
        answer = SessionDescription.parse(body)
        assert answer.encode() == body  # baresip's answer round-trips byte-exact too
        (stream,) = process_answer(offer, answer)
        assert stream.sdes is not None and stream.codec == "PCMU"
        assert stream.sdes.suite == suite
        ack_uri = contact.group(1).decode()
        sip_tr.sendto(
            _request("ACK", ack_uri, 1, call_id, to_tag.group(1).decode(), b"", port),
            (BARESIP_HOST, sip_port),
        )
        # the offer had to carry our port before the keys were agreed: attach SRTP now
        media.set_keys(stream.sdes.tx, stream.sdes.rx)
        media.set_remote(stream.remote_address, stream.remote_rtp_port, stream.remote_rtcp_port)
        media.start(frames=100)  # 2 s of 1 kHz
        await media.wait_sent()
        await asyncio.sleep(0.3)
        sip_tr.sendto(
            _request("BYE", ack_uri, 2, call_id, to_tag.group(1).decode(), b"", port),
            (BARESIP_HOST, sip_port),
        )
        await media.stop()
        stats = media.snapshot()
        assert stats.received >= 80, stats
        assert stats.auth_failures == 0 and stats.replay_failures == 0
        assert tone_ratio(sink.pcm, 440) > 0.8  # baresip's file, through libre SRTP -> pylibsrtp
        async with asyncio.timeout(5):  # the BYE's 200: baresip closes the call and its WAVs
            while b"BYE" not in (msg := await sip.queue.get()).split(b"\r\n\r\n")[0] or not (
                msg.startswith(b"SIP/2.0 200")
            ):
                pass
        _stop(proc)  # the call is over (BYE answered): its WAV files are closed
        # baresip's sndfile module recorded what it decoded from our SRTP
        (dec,) = tmp_path.glob("dump-*-dec.wav")
        with wave.open(str(dec), "rb") as w:
            pcm = w.readframes(w.getnframes())
            rate = w.getframerate()
        assert tone_ratio(pcm, 1000, rate) > 0.6
    finally:
        sip_tr.close()
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if baresip lingers (it sometimes waits on its own shutdown)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
