"""The agency's side of two providers (study 2.1 Q2) and the tone check of recovered audio.

Each party sends its own tone (caller 440 Hz, callee 1000 Hz), so a recovered direction is
right only when its WAV holds *its* sender's tone and not the other one:
:func:`direction_tones` fails a swapped or a duplicated direction.

When the media runs through a separate provider, the IMS provider delivers IRI and keys and the
media provider delivers encrypted CC; neither alone gives the audio. :func:`decrypt_with_keys`
is what the agency does with both: the media provider's ``cc-encrypted.pcap`` decrypted with the
keys from the IMS provider's ``keys.jsonl`` (each stream bound to the key whose authentication
tag verifies), G.711 decoded into the same WAV names the LEMF uses.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

from ims.media.g711 import alaw_decode, ulaw_decode
from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpError, decode_rtp
from ims.media.srtp import LateJoinDecryptor
from ims.media.tone import detect_tone
from lab.matrix.spectrogram import peak_frequency
from li.pcap import parse_ip, read_pcap


def tone_in_wav(path: Path, freq: float) -> tuple[bool, float]:
    """(tone present, peak frequency) of a recovered-audio WAV; the first 0.2 s skipped."""
    try:
        with wave.open(str(path), "rb") as w:
            pcm = w.readframes(w.getnframes())
            rate = w.getframerate()
    except (OSError, EOFError, wave.Error):
        return False, 0.0
    pcm = pcm[int(0.2 * rate) * 2 :]
    if len(pcm) < rate // 5:  # less than 0.1 s of audio
        return False, 0.0
    return detect_tone(pcm, freq, rate), peak_frequency(pcm[: rate * 2 * 4], rate=rate)


def direction_tones(wav_dir: Path, expected: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per direction (``audio-<direction>.wav`` in ``wav_dir``): its expected tone, the peak
    found and whether it holds its own tone and not another direction's ({} if no WAV)."""
    out: dict[str, dict[str, Any]] = {}
    for direction, hz in expected.items():
        wav = wav_dir / f"audio-{direction}.wav"
        if not wav.exists():
            continue
        ok, peak = tone_in_wav(wav, hz)
        others = [f for d, f in expected.items() if d != direction and f != hz]
        foreign = any(tone_in_wav(wav, f)[0] for f in others)
        out[direction] = {
            "expected_hz": hz,
            "peak_hz": round(peak, 1),
            "ok": ok and not foreign and (not others or hz not in others),
        }
    if len(out) == len(expected) and len(set(expected.values())) < len(expected):
        for v in out.values():  # two directions expecting one tone cannot be told apart
            v["ok"] = False
    return out


def joined_audio(*, cc_dir: Path, keys_dir: Path, out_dir: Path, target_ip: str) -> int:
    """:func:`decrypt_with_keys` into ``out_dir`` unless that join was already made."""
    if (out_dir / "audio-from-target.wav").exists():
        return -1
    return decrypt_with_keys(cc_dir=cc_dir, keys_dir=keys_dir, out_dir=out_dir, target_ip=target_ip)


def _keys(keys_dir: Path) -> list[SrtpKeys]:
    path = keys_dir / "keys.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        out.append(
            SrtpKeys(
                suite=d["suite"],
                master_key=bytes.fromhex(d["master_key"]),
                master_salt=bytes.fromhex(d["master_salt"]),
                roc=int(d.get("roc", 0)),
            )
        )
    return out


def decrypt_with_keys(
    *, cc_dir: Path, keys_dir: Path, out_dir: Path, target_ip: str | None = None
) -> int:
    """Decrypt ``cc_dir/cc-encrypted.pcap`` with ``keys_dir``'s keys; returns packets decrypted.

    Direction: packets from ``target_ip`` (default: the source of the first packet, the tap
    being tasked with the target's address... which is then the first sender) are
    ``from-target``.
    """
    keys = _keys(keys_dir)
    pcap = cc_dir / "cc-encrypted.pcap"
    if not keys or not pcap.exists():
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    bound: dict[int, LateJoinDecryptor] = {}
    audio: dict[str, bytearray] = {"from-target": bytearray(), "to-target": bytearray()}
    done = 0
    for rec in read_pcap(pcap):
        seg = parse_ip(rec)
        if seg is None or len(seg.payload) < 12:
            continue
        if target_ip is None:
            target_ip = str(seg.src)
        ssrc = int.from_bytes(seg.payload[8:12], "big")
        decryptor = bound.get(ssrc)
        plain = decryptor.unprotect(seg.payload) if decryptor is not None else None
        if plain is None:
            # a stream's key may change under it (a media MITM armed after its first packets
            # re-encrypts the rest with the other leg's key): rebind to the key that verifies
            for k in keys:
                candidate = LateJoinDecryptor(k)
                plain = candidate.unprotect(seg.payload)
                if plain is not None:
                    bound[ssrc] = candidate
                    break
        if plain is None:
            continue
        try:
            pkt = decode_rtp(plain)
        except RtpError:
            continue
        if pkt.payload_type not in (0, 8):
            continue
        pcm = ulaw_decode(pkt.payload) if pkt.payload_type == 0 else alaw_decode(pkt.payload)
        audio["from-target" if str(seg.src) == target_ip else "to-target"] += pcm
        done += 1
    for direction, samples in audio.items():
        with wave.open(str(out_dir / f"audio-{direction}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(bytes(samples))
    return done
