"""The lab CLI end to end: ``imslab demo``, ``imslab up`` + ``imslab call``, ``imslab run``."""

from __future__ import annotations

import asyncio
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
    env = dict(
        os.environ,
        IMSLAB_PKI=str(tmp_path),
        IMSLAB_STATE=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
    )
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
        deadline = time.monotonic() + 60  # it first makes the lab's MIKEY credentials
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


async def test_ue_role_answers_and_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ims.media.audio import read_wav
    from ims.media.tone import detect_tone
    from lab import topology
    from lab.callflow import run_call
    from lab.orchestrator import Lab
    from lab.roles import ue as ue_role

    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo):
        bob = await ue_role.start(topo, "bob", audio="tone:1000", record=tmp_path / "rec")
        try:
            report = await run_call(topo, "alice", "sip:bob@ims-b.test", duration=1.0)
            assert report.answered and report.caller_ok
            for _ in range(100):
                if list((tmp_path / "rec").glob("*.wav")):
                    break
                await asyncio.sleep(0.05)
        finally:
            await bob.close()
    (wav,) = list((tmp_path / "rec").glob("*.wav"))
    rate, pcm = read_wav(wav)
    assert rate == 8000 and detect_tone(pcm[3200:], 440)


async def test_call_with_a_wav_file_and_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ims.media.audio import ToneSource, WavWriter, read_wav
    from ims.media.tone import detect_tone
    from lab import topology
    from lab.callflow import run_call
    from lab.orchestrator import Lab

    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    wav = tmp_path / "speech.wav"
    src = ToneSource(600)
    with WavWriter(wav) as w:
        for _ in range(100):
            w.write(src.read(160))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo):
        report = await run_call(
            topo,
            "alice",
            "bob",
            audio=str(wav),
            duration=1.0,
            record=tmp_path / "heard.wav",
            progress=lambda _: None,
        )
    assert report.ok and report.callee_heard is None  # no tone to detect: energy only
    rate, pcm = read_wav(tmp_path / "heard.wav")
    assert rate == 8000 and detect_tone(pcm[3200:], 1000)  # the callee's default tone
