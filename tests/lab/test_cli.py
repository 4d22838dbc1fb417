"""The lab CLI end to end: ``imslab demo``, ``imslab up`` + ``imslab call``, ``imslab run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.cli import main

SUBNET = "127.0.7"


def test_demo_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path))
    rc = main(["demo", "ims", "--subnet", SUBNET, "--duration", "1"])
    out = capsys.readouterr().out
    assert "alice -> pcscf-a -> scscf-a -> scscf-b -> pcscf-b -> bob" in out
    assert "imslab demo ims: PASSED" in out
    assert rc == 0


@pytest.mark.slow
def test_up_then_call_between_processes(tmp_path: Path) -> None:
    env = dict(os.environ, IMSLAB_PKI=str(tmp_path), PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "lab.cli"]
    up = subprocess.Popen(
        [*cli, "up", "--subprocess", "--subnet", SUBNET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = up.stdout.readline().decode()
            lines.append(line)
            if not line or line.startswith("ready"):
                break
        assert up.stderr is not None
        assert lines[-1].startswith("ready"), "".join(lines) + up.stderr.read().decode()
        res = subprocess.run(
            [*cli, "call", "carol", "bob", "--subnet", SUBNET, "--duration", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert "callee heard the caller: True" in res.stdout
        assert "caller heard the callee: True" in res.stdout
        plain = subprocess.run(
            [*cli, "call", "alice", "erin", "--subnet", SUBNET, "--duration", "1"]
            + ["--keying", "none"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert "plain RTP" in plain.stdout
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    assert up.returncode is not None
