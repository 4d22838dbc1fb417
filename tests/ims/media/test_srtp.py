"""SRTP: RFC 3711 Appendix B and RFC 7714 vectors, pylibsrtp <-> cryptography cross-checks,
late join past a sequence wrap and a 40,000-packet burst loss (sans-socket, synthetic streams)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.media.audio import ToneSource
from ims.media.g711 import ulaw_decode, ulaw_encode
from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, decode_rtp, encode_rtp
from ims.media.srtp import LateJoinDecryptor, SrtpReceiver, SrtpSender
from ims.media.srtp_crypto import (
    SessionKeys,
    SrtpAuthError,
    SrtpCryptoContext,
    aes_cm_iv,
    aes_cm_prf,
    derive_session_keys,
    gcm_srtcp_iv,
    gcm_srtp_iv,
)
from ims.media.srtp_index import IndexTracker
from ims.media.tone import tone_ratio
from ims.sdes.suites import RUNNABLE_SUITES, SUITES

H = bytes.fromhex


def keys(suite: str, seed: int = 1) -> SrtpKeys:
    s = SUITES[suite]
    rnd = bytes((seed * 7 + i * 13) & 0xFF for i in range(s.key_salt_len))
    return SrtpKeys(suite=suite, master_key=rnd[: s.key_len], master_salt=rnd[s.key_len :])


def rtp(seq: int, payload: bytes = b"\xff" * 160, ssrc: int = 0x11223344) -> bytes:
    return encode_rtp(
        RtpPacket(
            payload_type=0,
            sequence_number=seq & 0xFFFF,
            timestamp=(seq * 160) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
        )
    )


# ---- RFC 3711 Appendix B ------------------------------------------------------------------


def test_rfc3711_b3_key_derivation() -> None:
    mk, ms = H("E1F97A0D3E018BE0D64FA32C06DE4139"), H("0EC675AD498AFEEBB6960B3AABE6")
    assert aes_cm_prf(mk, ms, 0, 16) == H("C61E7A93744F39EE10734AFE3FF7A087")
    assert aes_cm_prf(mk, ms, 2, 14) == H("30CBBC08863D8C85D49DB34A9AE1")
    assert aes_cm_prf(mk, ms, 1, 20) == H("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    sk = derive_session_keys(
        SrtpKeys(suite="AES_CM_128_HMAC_SHA1_80", master_key=mk, master_salt=ms)
    )
    assert sk.rtp_key == H("C61E7A93744F39EE10734AFE3FF7A087")
    assert sk.rtp_auth == H("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


def test_rfc3711_b2_aes_cm_keystream() -> None:
    iv = aes_cm_iv(H("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"), ssrc=0, index=0)
    assert iv == H("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
    enc = Cipher(algorithms.AES(H("2B7E151628AED2A6ABF7158809CF4F3C")), modes.CTR(iv)).encryptor()
    ks = enc.update(bytes(16 * 0x10000))
    assert ks[:16] == H("E03EAD0935C95E80E166B16DD92B4EB4")
    assert ks[16:32] == H("D23513162B02D0F72A43A2FE4A5F97AB")
    assert ks[0xFF01 * 16 : 0xFF02 * 16] == H("6A2CC3787889374FBEB4C81B17BA6C44")


# ---- RFC 7714 §16/§17 -----------------------------------------------------------------------

GCM_SALT = H("517569642070726f2071756f")  # "Quid pro quo"
GCM_RTP = H(
    "8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e2070617274"
    "65732074726573"
)
GCM_RTCP = H(
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeef"
    "deadbeefdeadbeef"
)


def _gcm_ctx(suite: str, key: bytes) -> SrtpCryptoContext:
    sk = SessionKeys(key, GCM_SALT, b"", key, GCM_SALT, b"")
    s = SUITES[suite]
    return SrtpCryptoContext(
        SrtpKeys(suite=suite, master_key=bytes(s.key_len), master_salt=bytes(12)), sk
    )


def test_rfc7714_aes_128_gcm_srtp() -> None:
    assert gcm_srtp_iv(GCM_SALT, 0x5501A0B2, 0, 0xF17B) == H("51753c6580c2726f20718414")
    ctx = _gcm_ctx("AEAD_AES_128_GCM", H("000102030405060708090a0b0c0d0e0f"))
    expected = H(
        "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b"
        "36de3adf8833899d7f27beb16a9152cf765ee4390cce"
    )
    assert ctx.protect(GCM_RTP, roc=0) == expected
    assert ctx.unprotect(expected, roc=0) == GCM_RTP
    with pytest.raises(SrtpAuthError):
        ctx.unprotect(expected, roc=1)  # the ROC is in the IV: a wrong guess never authenticates


def test_rfc7714_aes_256_gcm_srtcp() -> None:
    assert gcm_srtcp_iv(GCM_SALT, 0x4D617273, 0x5D4) == H("517524055203726f207170bb")
    ctx = _gcm_ctx("AEAD_AES_256_GCM", bytes(range(32)))
    expected = H(
        "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658"
        "c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4"
    )
    assert ctx.protect_rtcp(GCM_RTCP, 0x5D4) == expected
    assert ctx.unprotect_rtcp(expected) == (GCM_RTCP, 0x5D4)


# ---- cross-checks with pylibsrtp ----------------------------------------------------------


@pytest.mark.parametrize("suite", [*RUNNABLE_SUITES, "NULL_HMAC_SHA1_80"])
def test_pylibsrtp_and_cryptography_agree(suite: str) -> None:
    k = keys(suite)
    sender, ours = SrtpSender(k), SrtpCryptoContext(k)
    receiver = SrtpReceiver(k)
    for seq in (0, 1, 2, 500):
        plain = rtp(seq, os.urandom(160))
        wire = sender.protect(plain)
        assert wire is not None and wire != plain or SUITES[suite].null_cipher
        assert wire is not None and len(wire) == len(plain) + SUITES[suite].rtp_tag_len
        assert ours.unprotect(wire, roc=0) == plain  # libsrtp -> cryptography
        assert ours.protect(plain, roc=0) == wire  # byte-identical both ways
    for seq in (600, 601):
        plain = rtp(seq)
        assert receiver.unprotect(ours.protect(plain, roc=0)) == plain  # cryptography -> libsrtp
    rr = H("80c90001") + (0x11223344).to_bytes(4, "big")
    srtcp = sender.protect_rtcp(rr)
    assert srtcp is not None
    assert ours.unprotect_rtcp(srtcp)[0] == rr
    assert receiver.unprotect_rtcp(ours.protect_rtcp(rr, 7)) == rr
    assert receiver.stats.slow_path == 0  # everything went through libsrtp


# ---- index tracking -----------------------------------------------------------------------


def test_index_estimation_rfc3711_appendix_a() -> None:
    t = IndexTracker()
    t.update(65530)
    assert t.estimate(65535) == 65535
    assert t.estimate(3) == 65536 + 3  # wrapped: ROC + 1
    t.update(65536 + 3)
    assert t.estimate(65534) == 65534  # late packet from before the wrap: ROC - 1
    assert t.is_replay(65536 + 3)
    assert not t.is_replay(65536 + 2)
    t.update(65536 + 2)
    assert t.is_replay(65536 + 2)
    assert t.is_replay(1)  # far below the window: too old


# ---- late join and burst loss -----------------------------------------------------------


def _tone_stream(k: SrtpKeys, count: int, start: int = 0) -> list[bytes]:
    """``count`` SRTP packets of a 440 Hz tone from sequence ``start`` (protected by pylibsrtp)."""
    sender = SrtpSender(k)
    second = ulaw_encode(ToneSource(440).read(8000))  # exactly 440 cycles: loops seamlessly
    out = []
    for seq in range(start, start + count):
        off = (seq % 50) * 160
        wire = sender.protect(rtp(seq, second[off : off + 160]))
        assert wire is not None
        out.append(wire)
    return out


@pytest.mark.parametrize("suite", RUNNABLE_SUITES)
def test_receiver_started_after_sequence_wrap_decrypts(suite: str) -> None:
    k = keys(suite, seed=3)
    # The sender protects 70,000 packets (ROC 0 -> 1); our receiver only sees the last 200.
    stream = _tone_stream(k, 70_000)
    late = stream[-200:]
    receiver = SrtpReceiver(k)
    pcm = [receiver.unprotect(w) for w in late]
    assert all(p is not None for p in pcm)
    assert receiver.roc(0x11223344) == 1
    assert receiver.stats.resyncs == 1 and receiver.stats.auth_failures == 0
    audio = b"".join(ulaw_decode(decode_rtp(p).payload) for p in pcm if p)
    assert tone_ratio(audio, 440) > 0.9
    # the LI decryptor (no libsrtp at all) does the same from any packet
    tap = LateJoinDecryptor(k)
    assert all(tap.unprotect(w) == p for w, p in zip(late[:50], pcm, strict=False))
    # and a plain pylibsrtp receiver indeed cannot (the reason this path exists)
    import pylibsrtp

    from ims.media.srtp import _policy

    raw = pylibsrtp.Session(_policy(k, pylibsrtp.Policy.SSRC_ANY_INBOUND))
    with pytest.raises(pylibsrtp.Error):
        raw.unprotect(late[0])


@pytest.mark.parametrize("suite", RUNNABLE_SUITES)
def test_burst_of_40000_lost_packets_then_audio_decrypts(suite: str) -> None:
    k = keys(suite, seed=5)
    stream = _tone_stream(k, 40_300, start=1000)
    receiver = SrtpReceiver(k)
    first = [receiver.unprotect(w) for w in stream[:100]]  # seq 1000..1099 via libsrtp
    assert all(first) and receiver.stats.slow_path == 0
    after = [receiver.unprotect(w) for w in stream[40_100:]]  # 40,000 packets never arrive
    assert all(p is not None for p in after)
    assert receiver.stats.auth_failures == 0
    audio = b"".join(ulaw_decode(decode_rtp(p).payload) for p in after if p)
    assert tone_ratio(audio, 440) > 0.9


def test_receiver_with_known_roc_hint_decrypts_directly() -> None:
    k = keys("AES_CM_128_HMAC_SHA1_80")
    ctx = SrtpCryptoContext(k)
    wire = ctx.protect(rtp(10), roc=7)  # MIKEY's CS ID map would carry ROC 7
    hinted = LateJoinDecryptor(SrtpKeys(**{**_asdict(k), "roc": 7}))
    assert hinted.unprotect(wire) == rtp(10)


def _asdict(k: SrtpKeys) -> dict[str, object]:
    return {"suite": k.suite, "master_key": k.master_key, "master_salt": k.master_salt}


@pytest.mark.parametrize("suite", RUNNABLE_SUITES)
def test_garbage_tampering_and_replay_never_raise(suite: str) -> None:
    k = keys(suite)
    stream = _tone_stream(k, 20)
    r = SrtpReceiver(k)
    assert r.unprotect(b"") is None
    assert r.unprotect(b"\x00" * 40) is None  # not RTP v2
    assert r.stats.format_errors == 2
    assert all(r.unprotect(w) for w in stream[:10])
    bad = bytearray(stream[10])
    bad[-1] ^= 0xFF
    assert r.unprotect(bytes(bad)) is None
    assert r.stats.auth_failures == 1
    assert r.unprotect(stream[5]) is None
    assert r.stats.replay_failures == 1
    assert r.unprotect_rtcp(b"\x80\xc9\x00\x01") is None
    assert r.unprotect(stream[11]) is not None  # still in sync afterwards
    wrong = SrtpReceiver(keys(suite, seed=9))
    assert wrong.unprotect(stream[0]) is None and wrong.stats.auth_failures == 1


@pytest.mark.parametrize("suite", RUNNABLE_SUITES)
def test_late_join_decryptor_handles_srtcp_from_libsrtp(suite: str) -> None:
    k = keys(suite, seed=11)
    sender = SrtpSender(k)
    rr = bytes.fromhex("80c90001") + (0x11223344).to_bytes(4, "big")
    for _ in range(5):
        sender.protect_rtcp(rr)  # the tap joins after 5 SRTCP packets
    wire = sender.protect_rtcp(rr)
    assert wire is not None
    tap = LateJoinDecryptor(k)
    assert tap.unprotect_rtcp(wire) == rr
    assert SrtpCryptoContext(k).unprotect_rtcp(wire) == (rr, 6)
    bad = bytearray(wire)
    bad[9] ^= 1
    assert tap.unprotect_rtcp(bytes(bad)) is None and tap.stats.auth_failures == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=250), st.sampled_from(RUNNABLE_SUITES))
def test_receivers_never_raise_on_random_bytes(data: bytes, suite: str) -> None:
    k = keys(suite)
    for r in (SrtpReceiver(k, max_roc=4), LateJoinDecryptor(k, max_roc=4)):
        assert r.unprotect(data) is None
        assert r.unprotect_rtcp(data) is None
        s = r.stats
        assert s.auth_failures + s.format_errors + s.replay_failures >= 1


@given(st.integers(0, 2**20), st.lists(st.integers(1, 30_000), min_size=1, max_size=60))
def test_index_estimate_follows_any_stream_with_gaps_below_2_15(
    start: int, gaps: list[int]
) -> None:
    t = IndexTracker()
    index = start
    t.update(index)
    for g in gaps:
        index += g
        assert t.estimate(index & 0xFFFF) == index
        if g % 2:
            t.update(index)
        else:
            t.note(index & 0xFFFF)
        assert t.roc == index >> 16 and t.highest_index == index


@pytest.mark.parametrize("suite", RUNNABLE_SUITES)
def test_sender_with_initial_roc_from_mikey(suite: str) -> None:
    base = keys(suite, seed=13)
    k = SrtpKeys(suite=suite, master_key=base.master_key, master_salt=base.master_salt, roc=3)
    sender = SrtpSender(k)
    wires = [sender.protect(rtp(seq)) for seq in range(65530, 65546)]  # wraps: ROC 3 -> 4
    assert all(wires)
    ctx = SrtpCryptoContext(k)
    assert ctx.unprotect(wires[0] or b"", roc=3) == rtp(65530)
    assert ctx.unprotect(wires[-1] or b"", roc=4) == rtp(65545)
    rx = SrtpReceiver(k)  # knows ROC 3 from the same CS ID map
    assert [rx.unprotect(w or b"") for w in wires] == [rtp(s) for s in range(65530, 65546)]
    assert rx.roc(0x11223344) == 4 and rx.stats.auth_failures == 0
    rr = bytes.fromhex("80c90001") + (0x11223344).to_bytes(4, "big")
    assert rx.unprotect_rtcp(sender.protect_rtcp(rr) or b"") == rr


def test_late_join_decryptor_drops_replayed_srtcp() -> None:
    k = keys("AES_CM_128_HMAC_SHA1_80", seed=17)
    sender = SrtpSender(k)
    rr = bytes.fromhex("80c90001") + (0x11223344).to_bytes(4, "big")
    wires = [sender.protect_rtcp(rr) or b"" for _ in range(3)]
    tap = LateJoinDecryptor(k)
    assert [tap.unprotect_rtcp(w) for w in wires] == [rr, rr, rr]
    assert tap.unprotect_rtcp(wires[1]) is None and tap.stats.replay_failures == 1
