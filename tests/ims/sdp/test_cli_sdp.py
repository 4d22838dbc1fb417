"""``imslab sdp parse``: JSON out, keys only with --show-keys, answer preview, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "sdp"


def test_parse_hides_keys_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    path = VECTORS / "baresip_offer_srtp_mand.sdp"
    assert main(["sdp", "parse", str(path)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    (c,) = doc["media"][0]["crypto"]
    assert c["suite"] == "AES_CM_128_HMAC_SHA1_80" and c["usable"] and "master_key" not in out
    key_b64 = path.read_text().split("inline:")[1].split()[0]
    assert key_b64 not in out


def test_parse_show_keys_and_answer(capsys: pytest.CaptureFixture[str]) -> None:
    path = VECTORS / "rtpengine_offer_12_crypto.sdp"
    assert main(["sdp", "parse", str(path), "--show-keys", "--answer"]) == 0
    doc = json.loads(capsys.readouterr().out)
    crypto = doc["media"][0]["crypto"]
    assert len(crypto) == 12 and len(crypto[0]["key_params"][0]["master_key"]) == 64
    # runnable: 2 GCM, 2 AES_CM_128, NULL_HMAC_SHA1_80 (libsrtp profile 5, never chosen by default)
    assert sum(c["usable"] for c in crypto) == 5
    assert doc["answer"]["streams"][0]["sdes_suite"] == "AEAD_AES_256_GCM"


def test_parse_stdin_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not sdp\r\n")))
    assert main(["sdp", "parse", "-"]) == 2
    assert "error" in capsys.readouterr().err


def test_offer_then_answer_round_trip(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    from ims.sdp import SessionDescription, process_answer

    assert (
        main(["sdp", "offer", "--suite", "AEAD_AES_128_GCM", "--codec", "PCMA", "--port", "41000"])
        == 0
    )
    offer_bytes = capsysbinary.readouterr().out
    offer = SessionDescription.parse(offer_bytes)
    assert offer.media[0].proto == "RTP/SAVP" and offer.media[0].formats == ("8", "101")
    path = tmp_path / "offer.sdp"
    path.write_bytes(offer_bytes)
    assert main(["sdp", "answer", str(path), "--port", "42000"]) == 0
    answer = SessionDescription.parse(capsysbinary.readouterr().out)
    (s,) = process_answer(offer, answer)
    assert s.sdes is not None and s.sdes.suite == "AEAD_AES_128_GCM" and s.remote_rtp_port == 42000


def test_answer_refuses_plain_offer_when_srtp_required(capsys: pytest.CaptureFixture[str]) -> None:
    path = VECTORS / "sipp_uac_offer.sdp"
    assert main(["sdp", "answer", str(path), "--require-srtp"]) == 1
    assert '"status": 488' in capsys.readouterr().err
