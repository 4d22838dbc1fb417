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
