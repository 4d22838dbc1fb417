"""The LI command line end to end: `li pki`, `run lemf`, `run x1-ne`, `li ...`, `x2x3 decode`.

Real processes on loopback: the ADMF CLI provisions a destination and a task over X1 (mutual
TLS), the NE exports X2 heartbeats to the LEMF, the NE is restarted and still has the task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lab.cli import main

HOST = "127.0.6.8"
IMSLAB = [sys.executable, "-m", "lab.cli"]


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([*IMSLAB, *args], stdout=fh, stderr=subprocess.STDOUT)


def wait_log(log: Path, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = log.read_text() if log.exists() else ""
        if text in data:
            return data
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {log}: {log.read_text() if log.exists() else ''}")


def stop(p: subprocess.Popen[bytes]) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)


def li(capsys: pytest.CaptureFixture[str], pki: Path, port: int, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc = main(["li", "--ne", f"{HOST}:{port}", "--ne-id", "ne-7", "--pki", str(pki), *args])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    return rc, json.loads(out)


@pytest.mark.slow
def test_li_cli_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    assert main(["li", "--ne-id", "ne-7", "pki", str(pki), "--host", HOST]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    procs = []
    try:
        lemf = start(
            ["run", "lemf", "--listen", f"{HOST}:0", "--out", str(out), "--plain-tcp"],
            tmp_path / "lemf.log",
        )
        procs.append(lemf)
        text = wait_log(tmp_path / "lemf.log", "listening on")
        lemf_port = int(text.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
        ne_args = [
            "run",
            "x1-ne",
            "--ne-id",
            "ne-7",
            "--x1-listen",
            f"{HOST}:0",
            "--state",
            str(tmp_path / "state"),
            "--pki",
            str(pki),
            "--heartbeat-sip",
            "0.2",
        ]
        ne = start(ne_args, tmp_path / "ne.log")
        procs.append(ne)
        text = wait_log(tmp_path / "ne.log", "task(s) restored")
        port = int(text.split("X1 on ")[1].split(",")[0].rsplit(":", 1)[1])
        did = str(uuid.uuid4())
        rc, res = li(
            capsys,
            pki,
            port,
            "destination",
            "add",
            "--did",
            did,
            "--address",
            f"{HOST}:{lemf_port}",
        )
        assert rc == 0 and res["did"] == did
        rc, res = li(
            capsys, pki, port, "task", "add", "--target", "sip:alice@ims.test", "--did", did
        )
        assert rc == 0
        xid = res["xid"]
        rc, res = li(
            capsys, pki, port, "task", "add", "--xid", xid, "--target", "sip:x@y", "--did", did
        )
        assert rc == 1 and res["error"] == 2010
        rc, res = li(
            capsys, pki, port, "task", "add", "--target", "imsi:001010123456789", "--did", did
        )
        assert rc == 1 and res["error"] == 3010
        # X2 reaches the LEMF
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list(out.glob(f"{xid}/*/iri.jsonl")):
            time.sleep(0.05)
        iri = list(out.glob(f"{xid}/*/iri.jsonl"))
        assert iri
        # restart the NE: the task is still provisioned
        stop(ne)
        procs.remove(ne)
        ne = start(ne_args, tmp_path / "ne2.log")
        procs.append(ne)
        text = wait_log(tmp_path / "ne2.log", "1 task(s) restored")
        port = int(text.split("X1 on ")[1].split(",")[0].rsplit(":", 1)[1])
        rc, res = li(capsys, pki, port, "task", "show", xid)
        assert rc == 0 and res["targets"] == ["sipUri:sip:alice@ims.test"]
        rc, res = li(capsys, pki, port, "task", "remove", xid)
        assert rc == 0
        rc, res = li(capsys, pki, port, "task", "show", xid)
        assert rc == 1 and res["error"] == 2020
    finally:
        for p in procs:
            stop(p)
    assert "sequence gaps" in (tmp_path / "lemf.log").read_text()
    # the decode command reads the LEMF's capture
    pcap = next(out.glob(f"{xid}/*/x2x3.pcap"))
    assert main(["x2x3", "decode", str(pcap)]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (
        line["pdu_type"] == "X2"
        and line["xid"] == xid
        and line["sip_start_line"].startswith("OPTIONS")
    )
    assert (os.stat(out).st_mode & 0o777) == 0o700


def test_x2x3_decode_reference(capsys: pytest.CaptureFixture[str], conformance_dir: Path) -> None:
    assert main(["x2x3", "decode", str(conformance_dir / "x2x3" / "sipgate-x2-demo-01.pcap")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    obj = json.loads(line)
    assert obj["payload_direction"] == "FROM_TARGET" and obj["correlation_id"] == "0000000000000001"
    assert obj["attributes"] == [{"matched_target": "<E164Number>494012345678</E164Number>"}]


def test_x2x3_decode_truncated_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from li.x2x3.pdu import encode_pdu, keepalive

    f = tmp_path / "stream.bin"
    f.write_bytes(encode_pdu(keepalive(1)) + encode_pdu(keepalive(2))[:30])
    assert main(["x2x3", "decode", str(f)]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 1
