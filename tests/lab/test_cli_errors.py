"""The CLI's one error path (issue 16, item 2): one line on stderr naming what is wrong and what
to do, exit 2 for bad input and 1 for a failed call; --version; help on every option."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from lab.cli import build_parser, main


def test_address_in_use_is_reported_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The lab collapsed into 127.0.1.0/24 puts anchor-a's control port at 127.0.1.12:2223.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.1.12", 2223))
        rc = main(["run", "anchor", "--name", "anchor-a", "--subnet", "127.0.1", "--no-li"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    assert "127.0.1.12" in err and "another lab running" in err


# -- issue 16, item 2: one error path ----------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Any]:
    yield path, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))
        else:
            yield path, parser, action


def test_every_option_and_command_has_help() -> None:
    missing = []
    for path, parser, action in _walk(build_parser()):
        where = " ".join(("imslab", *path))
        if action is None:
            if path and not parser.description:
                missing.append(f"{where}: no description")
            continue
        if action.help is None or not str(action.help).strip():
            name = "/".join(action.option_strings) or action.dest
            missing.append(f"{where} {name}: no help")
    assert missing == []


def _cli(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


def test_version() -> None:
    res = _cli("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"imslab {metadata.version('imslab')}"


@pytest.mark.parametrize(
    ("argv", "rc", "expected"),
    [
        (["up", "--config", "/nonexistent/lab.toml"], 2, "/nonexistent/lab.toml: no such file"),
        (["up", "--subnet", "300.1.1"], 2, "--subnet '300.1.1' is not three octets"),
        (["up", "--net-offset", "250"], 2, "--net-offset 250 moves"),
        (["call", "alice", "nobody"], 2, "unknown UE 'nobody' (TO)"),
        (["call", "mallory", "bob"], 2, "unknown UE 'mallory' (FROM)"),
        (["call", "alice", "bob", "--audio", "/nonexistent.wav"], 2, "/nonexistent.wav: no such"),
        (["call", "alice", "bob", "--keying", "rot13"], 2, "unknown keying 'rot13'"),
        (["--log-level", "LOUD", "up"], 2, "unknown log level 'LOUD'"),
        (["nosuchcommand"], 2, "invalid choice: 'nosuchcommand'"),
        (["li", "task", "add", "--target", "sip:a@b"], 2, "give --did"),
        (["sip-ping", "nohostport"], 2, "target must be HOST:PORT"),
    ],
)
def test_user_errors_are_one_line_on_stderr(argv: list[str], rc: int, expected: str) -> None:
    res = _cli(*argv)
    assert res.returncode == rc, res.stderr
    assert res.stdout == ""
    [line] = res.stderr.splitlines()
    assert line.startswith("imslab")
    assert expected in line, line
    assert "Traceback" not in res.stderr and "Errno" not in line


def test_no_lab_running_gives_a_hint() -> None:
    # nothing listens on 127.0.4.0/24 in this namespace: the REGISTER meets ICMP unreachable
    res = _cli("call", "alice", "bob", "--subnet", "127.0.4", "--duration", "0.2")
    assert res.returncode == 1
    [line] = res.stderr.splitlines()
    assert line.startswith("imslab call: ")
    assert "is the lab running? Start it with `imslab up`" in line
    assert "Errno" not in line


def test_broken_pipe_is_quiet() -> None:
    # `imslab ... | head`: the reader is gone before the command writes (read end closed
    # before the interpreter has even started)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "config", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_errors_map_known_exceptions() -> None:
    from ims.sip.transport.errors import SipTransportError
    from lab import errors
    from ue.agent import CallFailed

    assert errors.explain(CallFailed(404, "Not Found")) == ("call failed: 404 Not Found", 1)
    line, rc = errors.explain(SipTransportError("ICMP: [Errno 111] Connection refused")) or ("", 0)
    assert rc == 1 and "imslab up" in line and "Errno" not in line
    assert errors.explain(RuntimeError("a bug")) is None  # bugs keep their traceback


@pytest.mark.slow
def test_a_refused_call_prints_its_status_once(tmp_path: Path) -> None:
    env = dict(os.environ, IMSLAB_PKI=str(tmp_path), PYTHONUNBUFFERED="1")
    up = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "up", "--no-li", "--subnet", "127.0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = up.stdout.readline().decode()
            if not line or line.startswith("ready"):
                break
        assert line.startswith("ready")
        res = _cli("call", "alice", "sip:nobody@ims-b.test", "--subnet", "127.0.5", env=env)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
    assert res.returncode == 1
    assert "registered alice" in res.stdout  # progress stays on stdout
    [line] = res.stderr.splitlines()
    assert line == "imslab call: call failed: 404 Not Found"
