"""``imslab mikey decode`` / ``imslab mikey demo`` run for real (in-process CLI entry point)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ims.mikey.certs import private_key_pem
from ims.mikey.constants import DhGroup, EncrAlg
from ims.mikey.crypto import DhKeyPair
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator
from ims.mikey.modes.psk import PskInitiator
from ims.mikey.sdp import key_mgmt_attribute
from lab.cli import main

from .conftest import NOW, Pki


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(["mikey", *argv])
    return rc, capsys.readouterr().out


@pytest.mark.parametrize("mode", ["psk", "pke", "dh", "dhhmac", "rsa-r"])
def test_demo_every_mode(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    rc, out = _run(capsys, "demo", "--mode", mode, "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["keys_match"] is True
    assert doc["initiator_keys"] == doc["responder_keys"]


def test_decode_psk_with_key(capsys: pytest.CaptureFixture[str]) -> None:
    i = PskInitiator(psk=b"k" * 16, encr_alg=EncrAlg.AES_CM_128)
    b64 = base64.b64encode(i.initiate(NOW)).decode()
    rc, out = _run(capsys, "decode", b64)
    assert rc == 0 and "srtp_keys" not in json.loads(out)
    rc, out = _run(capsys, "decode", b64, "--psk", (b"k" * 16).hex())
    doc = json.loads(out)
    assert rc == 0 and doc["tgk"] == i.tgk.hex()
    assert i.result is not None
    assert doc["srtp_keys"][0]["master_key"] == i.result.keys[0].master_key.hex()
    rc, out = _run(capsys, "decode", b64, "--psk", "00" * 16)
    assert rc == 1 and json.loads(out)["error"]["mikey_error"] == "INVALID_MAC"


def test_decode_pke_from_sdp_file(
    capsys: pytest.CaptureFixture[str], pki: Pki, tmp_path: Path
) -> None:
    i = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate)
    sdp = tmp_path / "offer.sdp"
    sdp.write_text(
        f"v=0\r\ns=-\r\n{key_mgmt_attribute(i.initiate(NOW))}\r\nm=audio 1 RTP/SAVP 0\r\n"
    )
    key = tmp_path / "bob.pem"
    key.write_bytes(private_key_pem(pki.bob.private_key))
    rc, out = _run(capsys, "decode", f"@{sdp}", "--private-key", str(key))
    assert rc == 0 and json.loads(out)["tgk"] == i.tgk.hex()


def test_decode_dhhmac_with_private_value(capsys: pytest.CaptureFixture[str]) -> None:
    kp = DhKeyPair.generate(DhGroup.OAKLEY_1)
    i = DhHmacInitiator(psk=b"p" * 16, dh_key=kp, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab")
    offer = i.initiate(NOW)
    reply = DhHmacResponder(psk=b"p" * 16).receive(offer, NOW)
    assert reply.message is not None and reply.result is not None
    rc, out = _run(
        capsys,
        "decode",
        base64.b64encode(offer).decode(),
        "--dh-private",
        f"{kp.private:x}",
        "--peer-message",
        base64.b64encode(reply.message).decode(),
    )
    assert rc == 0
    assert json.loads(out)["srtp_keys"][1]["master_key"] == reply.result.keys[1].master_key.hex()


def test_decode_garbage(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _run(capsys, "decode", base64.b64encode(b"\x01\x00\x05").decode())
    assert rc == 1 and "mikey_error" in json.loads(out)


@pytest.mark.parametrize("mode", ["psk", "pke", "dh", "dhhmac", "rsa-r"])
def test_demo_save_then_decode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str
) -> None:
    """The docs/mikey.md recipe: save an exchange, then recover its keys with `decode`."""
    rc, out = _run(capsys, "demo", "--mode", mode, "--json", "--save", str(tmp_path))
    assert rc == 0
    want = json.loads(out)["initiator_keys"]
    rand = (tmp_path / "rand.hex").read_text().strip()
    if mode in ("psk", "pke"):
        extra = (
            ["--psk", (tmp_path / "psk.hex").read_text().strip()]
            if mode == "psk"
            else ["--private-key", str(tmp_path / "responder.pem")]
        )
        argv = ["decode", f"@{tmp_path / 'offer.sdp'}", *extra]
    elif mode == "rsa-r":
        argv = [
            "decode",
            f"@{tmp_path / 'r_message.b64'}",
            "--private-key",
            str(tmp_path / "initiator.pem"),
            "--rand",
            rand,
        ]
    else:
        argv = [
            "decode",
            f"@{tmp_path / 'answer.sdp'}",
            "--dh-private",
            (tmp_path / "initiator_dh.hex").read_text().strip(),
            "--peer-message",
            f"@{tmp_path / 'i_message.b64'}",
        ]
    rc, out = _run(capsys, *argv)
    assert rc == 0 and json.loads(out)["srtp_keys"] == want
