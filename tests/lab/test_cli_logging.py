"""Logging set up once by the CLI: the chosen level and renderer honoured, the call's context
(element, Call-ID) on every line of a call, keys never logged (issue 16, item 1)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog

from ims import log
from lab.cli import main

SUBNET = "127.0.6"


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )


@pytest.fixture(scope="module")
def demo_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[dict[str, Any]], str]:
    pki = tmp_path_factory.mktemp("pki")
    res = _cli(
        "--log-json",
        "--log-level",
        "debug",
        "demo",
        "ims",
        "--subnet",
        SUBNET,
        "--duration",
        "1",
        env={"IMSLAB_PKI": str(pki)},
    )
    lines = [json.loads(line) for line in res.stderr.splitlines()]  # every line is JSON
    return res.returncode, lines, res.stdout


def test_json_lines_carry_element_and_call_id(
    demo_json: tuple[int, list[dict[str, Any]], str],
) -> None:
    rc, lines, out = demo_json
    assert rc == 0, out
    assert lines, "DEBUG level chosen but no log line written"
    for line in lines:
        assert {"event", "level", "timestamp", "component"} <= set(line)
    # every element logged "element started" with its own name bound
    started = {ln["element"] for ln in lines if ln["event"] == "element started"}
    assert {"pcscf-a", "scscf-a", "scscf-b", "pcscf-b", "anchor-a"} <= started
    # a proxy's line about a SIP message names the element and the message's Call-ID
    registered = [ln for ln in lines if ln["event"] in ("registered", "ue registered")]
    by_element = {
        ln["element"]: ln
        for ln in registered
        if "element" in ln and ln["component"].startswith("proxies")
    }
    assert {"pcscf-a", "scscf-a", "pcscf-b", "scscf-b"} <= set(by_element)
    for ln in by_element.values():
        assert "@" in ln["call_id"]
    # the P-CSCF and the S-CSCF logged the same REGISTER under the same Call-ID
    assert by_element["pcscf-a"]["call_id"] == by_element["scscf-a"]["call_id"]
    # the UEs' lines name the UE
    ue_lines = [ln for ln in lines if ln["component"] == "ue"]
    assert ue_lines and {ln.get("element") for ln in ue_lines} <= {"alice", "bob"}
    # the INVITE's media lines at the anchors carry the call's Call-ID
    media = [ln for ln in lines if ln.get("element", "").startswith("anchor") and "call_id" in ln]
    assert media, "no anchor line carries a Call-ID"
    assert len({ln["call_id"] for ln in media}) == 1


def test_level_is_honoured_and_console_is_not_json(tmp_path: Path) -> None:
    res = _cli(
        "--log-level",
        "ERROR",
        "demo",
        "ims",
        "--subnet",
        SUBNET,
        "--duration",
        "0.5",
        env={"IMSLAB_PKI": str(tmp_path)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == ""  # ERROR: the run's info lines are filtered out
    res = _cli(
        "--log-level",
        "INFO",
        "demo",
        "ims",
        "--subnet",
        SUBNET,
        "--duration",
        "0.5",
        env={"IMSLAB_PKI": str(tmp_path)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stderr.splitlines()
    assert any("element started" in ln and "element=pcscf-a" in ln for ln in lines)
    assert not any(ln.startswith("{") for ln in lines)


def test_unknown_level_is_refused() -> None:
    res = _cli("--log-level", "FOO", "sip", "uri", "sip:a@b")
    assert res.returncode == 2
    assert res.stdout == ""
    [line] = res.stderr.splitlines()
    assert "'FOO'" in line and "DEBUG" in line and "--help" in line


def test_logger_made_before_configure_follows_it(capsys: pytest.CaptureFixture[str]) -> None:
    early = log.get_logger("test.early")  # like a module-level logger made at import time
    buf = io.StringIO()
    try:
        log.configure(level="DEBUG", json=True, stream=buf)
        with log.bound(call_id="c1@h", xid="x-1"):
            early.debug("inside", master_key="00ff", ssrc=7)
        early.debug("outside")
        log.configure(level="WARNING", json=True, stream=buf)
        early.info("filtered")
    finally:
        log.configure(level="WARNING")
    first, second = (json.loads(ln) for ln in buf.getvalue().splitlines())
    assert first["call_id"] == "c1@h" and first["xid"] == "x-1"
    assert first["master_key"] == "<redacted>" and first["ssrc"] == 7
    assert second["event"] == "outside" and "call_id" not in second


def test_message_context_ends_with_the_message() -> None:
    buf = io.StringIO()
    logger = log.get_logger("t")
    log.bind(element="e1")
    try:
        log.configure(level="INFO", json=True, stream=buf)
        log.tag_message(call_id="outside")  # no message: nothing to tag
        with log.message(xid=uuid.UUID(int=1), correlation_id=0xC0FFEE, branch=None):
            log.tag_message(call_id="c2")
            logger.info("inside")
        logger.info("after")
    finally:
        structlog.contextvars.clear_contextvars()
        log.configure(level="WARNING")
    inside, after = (json.loads(ln) for ln in buf.getvalue().splitlines())
    assert (inside["element"], inside["call_id"]) == ("e1", "c2")
    assert inside["xid"] == "00000000-0000-0000-0000-000000000001"
    assert inside["correlation_id"] == "0000000000c0ffee"
    assert "branch" not in inside
    assert after["element"] == "e1" and "call_id" not in after and "xid" not in after


def test_key_log_is_explicit(capsys: pytest.CaptureFixture[str]) -> None:
    buf = io.StringIO()
    try:
        log.configure(level="INFO", json=True, stream=buf, key_log=True)
        log.get_logger("t").info("k", master_key="00ff")
    finally:
        log.configure(level="WARNING")
    assert json.loads(buf.getvalue())["master_key"] == "00ff"
    assert main(["--key-log", "--version"]) == 0


def test_element_processes_log_like_the_cli() -> None:
    from lab import topology
    from lab.orchestrator import Lab

    try:
        log.configure(level="info", json=True)
        cmd = Lab(topology.load(), mode="subprocess").command("pcscf-a")
    finally:
        log.configure(level="WARNING")
    assert cmd[cmd.index("--log-level") + 1] == "INFO"
    assert "--log-json" in cmd
    assert "--log-json" not in Lab(topology.load(), mode="subprocess").command("pcscf-a")
