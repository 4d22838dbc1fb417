"""``imslab sip parse``: JSON out, exit 0; parse errors with their SIP status, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main

INVITE = (
    b"INVITE sip:bob@127.0.1.2 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bKcli1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"f: Alice <sip:alice@127.0.1.1>;tag=1\r\n"
    b"t: <sip:bob@127.0.1.2>\r\n"
    b"i: cli-1@127.0.1.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"m: <sip:alice@127.0.1.1:5060>;expires=30\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 5\r\n\r\nv=0\r\n"
)


def test_parse_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "invite.sip"
    f.write_bytes(INVITE)
    assert main(["sip", "parse", str(f)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "INVITE" and doc["request_uri"]["user"] == "bob"
    assert [h[0] for h in doc["headers"]][:3] == ["v", "Max-Forwards", "f"]
    p = doc["parsed"]
    assert p["via"][0]["branch"] == "z9hG4bKcli1" and p["via"][0]["rport"] is True
    assert p["from"]["display_name"] == "Alice" and p["from"]["params"] == [["tag", "1"]]
    assert p["cseq"] == {"seq": 7, "method": "INVITE"}
    assert p["contact"][0]["params"] == [["expires", "30"]]
    assert doc["body_length"] == 5 and doc["body"] == "v=0\r\n"


def test_parse_error_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.sip"
    f.write_bytes(INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert main(["sip", "parse", str(f)]) == 2
    out = capsys.readouterr()
    err = json.loads(out.out)
    assert err["status"] == 505 and err["offset"] == 0
    assert "505" in out.err
    f.write_bytes(INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 7 BYE"))
    assert main(["sip", "parse", str(f)]) == 2
    err = json.loads(capsys.readouterr().out)
    assert err["status"] == 400 and err["header"] == "CSeq" and err["offset"] > 0


def test_parse_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "two.sip"
    f.write_bytes(INVITE + b"\r\n\r\n" + INVITE)
    assert main(["sip", "parse", "--stream", "--compact", str(f)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["messages"]) == 2 and doc["keepalives"] == 1 and doc["buffered"] == 0


def test_uri_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sip", "uri", "sip:%61lice@AtLanta.com;transport=TCP"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["uris"][0]["user"] == "%61lice" and doc["aor"] == ["sip:alice@atlanta.com"]
    a, b = "sip:alice@atlanta.com;transport=TCP", "sip:%61lice@AtLanTa.CoM;Transport=tcp"
    assert main(["sip", "uri", a, b]) == 0
    assert json.loads(capsys.readouterr().out)["equal"] is True
    assert main(["sip", "uri", "sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"]) == 1
    assert json.loads(capsys.readouterr().out)["equal"] is False
    assert main(["sip", "uri", "sip:+1-212-555-1212@gw.test;user=phone"]) == 0
    assert json.loads(capsys.readouterr().out)["as_tel"] == ["tel:+1-212-555-1212"]
    assert main(["sip", "uri", "sip:a@b:99999"]) == 2
    assert json.loads(capsys.readouterr().out)["status"] == 400


def test_parse_stream_good_messages_then_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = b"INVITE sip:bob@127.0.1.2 SIP/2.0\r\nContent-Length: -1\r\n\r\n"
    f = tmp_path / "stream.sip"
    f.write_bytes(INVITE + bad)
    assert main(["sip", "parse", "--stream", "--compact", str(f)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["messages"]) == 1 and doc["messages"][0]["method"] == "INVITE"
    assert doc["error"]["status"] == 400
