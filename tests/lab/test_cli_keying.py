"""Every keying ``imslab call --help`` lists works against a lab started by ``imslab up``.

``imslab up`` runs as a subprocess (the whole lab with its ``[li]``, on 127.0.70-79 through
``--net-offset 60``), exactly as a user starts it; it must have made the MIKEY credentials of
every profile under the lab state dir (dirs 0700, files 0600). Operator A's LI is tasked on
alice over X1 (``imslab li task add``). Then, for each keying the help lists, ``imslab call
alice bob --keying X`` must be answered with SRTP (or, for ``none``, RTP) audio both ways: the
caller hears the callee's 1000 Hz tone and the callee the caller's 440 Hz tone.

What the running lab's LI recovers follows from what operator A holds (lab.credentials): SDES
keys from the SDP, the publicly known PSK, alice's hop-by-hop PSK with its P-CSCF, and -- case
C -- alice's escrowed private key, which opens a PKE envelope only when alice is the responder
(``imslab call bob alice --keying pke-c``), and an RSA-R answer (study 2.3.2, reverse mode)
when alice initiates (``--keying rsa-r-c``). Every other MIKEY mode stays closed to it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ims.media.audio import read_wav
from ims.media.tone import detect_tone
from lab import topology
from lab.cli import main
from ue import keying_mikey, registry

OFFSET = 60
LAB = ["--net-offset", str(OFFSET)]
CALLER_HZ, CALLEE_HZ = 440, 1000

#: keyings whose keys operator A's LI recovers when alice (its subscriber) places the call;
#: rsa-r-c: RFC 4738 seals the envelope key to the *initiator's* key, which A holds (case C);
#: psk-operator: A's key service made alice's PSK with bob and kept a copy (study Q6);
#: psk-hop-cscf: A's P-CSCF and S-CSCF are intermediaries of the chain, A holds their links' keys
#: ticket: A's KMS issued alice's ticket (RFC 6043), so its LI function derives the keys
#: sdes-e2ae: the SRTP ends at A's anchor, whose CC-POI delivers it decrypted (study Q4)
RECOVERED_AS_CALLER = {
    "sdes",
    "sdes-e2ae",
    "psk-public",
    "psk-hop",
    "psk-hop-cscf",
    "psk-operator",
    "rsa-r-c",
    "ticket",
}

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def listed_keyings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The keyings as ``imslab call --help`` shows them (its ``keyings`` section)."""
    assert main(["call", "--help"]) == 0
    out = capsys.readouterr().out
    section = out.split("keyings (--keying NAME):", 1)[1]
    return re.findall(r"^  (\S+)\s{2,}", section, flags=re.MULTILINE)


class RunningLab:
    def __init__(self, proc: subprocess.Popen[bytes], state: Path) -> None:
        self.proc = proc
        self.state = state

    def stop(self) -> None:
        """Ctrl-C, as a user stops it (the LEMF closes its files on the way out)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def lab_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningLab]:
    """``imslab up`` in a subprocess."""
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    monkeypatch.delenv("IMSLAB_LAB_CREDENTIALS", raising=False)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    up = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "up", *LAB],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert up.stdout is not None and up.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = up.stdout.readline().decode()
            lines.append(line)
            if not line or line.startswith("ready"):
                break
        assert lines[-1].startswith("ready"), "".join(lines) + up.stderr.read().decode()
        assert any("MIKEY credentials" in line for line in lines), lines
        running = RunningLab(up, tmp_path / "state" / f"net-offset-{OFFSET}")
        yield running
    finally:
        keying_mikey.configure(None)
        RunningLab(up, tmp_path).stop()


def call(
    capsys: pytest.CaptureFixture[str], caller: str, callee: str, keying: str
) -> tuple[str, str]:
    """``imslab call`` (in this process, against the lab's processes); returns its Call-ID."""
    rc = main(
        [
            "call",
            caller,
            callee,
            *LAB,
            "--keying",
            keying,
            "--duration",
            "1.2",
            "--audio",
            f"tone:{CALLER_HZ}",
            "--callee-audio",
            f"tone:{CALLEE_HZ}",
        ]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, f"{keying}: {out}{captured.err}"
    assert "caller heard the callee: True" in out, out
    assert "callee heard the caller: True" in out, out
    assert "auth failures 0" in out, out
    keys = re.search(r"media keys: (.*)$", out, flags=re.MULTILINE)
    assert keys is not None, out
    mode = registry.BY_NAME[keying]
    if keying.startswith("sdes"):
        assert keys.group(1).startswith("SDES"), out
    elif mode.mikey:
        assert keys.group(1).startswith("MIKEY"), out
    else:
        assert keys.group(1) == "plain RTP", out
    cid = re.search(r"^call-id (\S+)$", out, flags=re.MULTILINE)
    assert cid is not None, out
    return cid.group(1), keys.group(1)


def lemf_calls(lemf: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    out = {}
    for path in lemf.glob("*/*/summary.json"):
        summary = json.loads(path.read_text())
        out[summary["call_id"]] = (path.parent, summary)
    return out


def assert_private(tree: Path) -> None:
    for p in [tree, *tree.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p}: {oct(mode)}"


def test_every_listed_keying_calls_through_the_running_lab(
    lab_up: RunningLab, capsys: pytest.CaptureFixture[str]
) -> None:
    keyings = listed_keyings(capsys)
    # the help is generated from the registry: every mode, nothing else
    assert keyings == registry.names()
    assert {"psk", "psk-hop", "pke-a", "pke-b", "pke-c", "pke-d", "rsa-r", "dh", "dhhmac"} <= set(
        keyings
    )
    creds = lab_up.state / "mikey"
    assert {p.name for p in creds.iterdir() if p.is_dir()} == set(registry.profiles_used())
    assert_private(creds)

    rc = main(["li", "task", "add", *LAB, "--operator", "a", "--target", "sip:alice@ims-a.test"])
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and answers and all(a["ok"] == "AcknowledgedAndCompleted" for a in answers)

    placed: dict[str, str] = {}  # Call-ID -> keying
    for k in keyings:
        cid, _ = call(capsys, "alice", "bob", k)
        placed[cid] = k
    # case C with the target as responder: operator A holds alice's escrowed private key
    responder_cid, _ = call(capsys, "bob", "alice", "pke-c")
    answered_by_a_running_ue(lab_up, capsys, "dh")

    time.sleep(1.0)  # the last PDUs reach the LEMF before the lab stops

    lab_up.stop()  # the LEMF's files are complete after it
    calls = lemf_calls(lab_up.state / "lemf")
    assert set(placed) | {responder_cid} <= set(calls)
    for cid, k in placed.items():
        directory, summary = calls[cid]
        if k == "sdes-user-layer":  # the operator's SDES keys, but the users' own layer inside
            assert {key["source"] for key in summary["keys"]} == {"sdes"}, summary
            for direction in ("from-target", "to-target"):
                rate, pcm = read_wav(directory / f"audio-{direction}.wav")
                assert len(pcm) > rate // 2, direction  # the outer layer was decrypted ...
                assert not any(detect_tone(pcm, hz, rate) for hz in (CALLER_HZ, CALLEE_HZ))
            continue  # ... and holds the inner ciphertext, no tone
        recovered = summary["keys_available"] or summary["media_encrypted"] is False
        assert recovered == (k in RECOVERED_AS_CALLER or k == "none"), (k, summary)
        if k == "sdes-e2ae":  # en clair from the anchor: no key was needed to hear it
            streams = [st for st in summary["streams"] if st["packets"] > 10]
            assert len(streams) == 2, summary
            assert all(st["decrypted_by_network"] and st["key"] is None for st in streams)
        if recovered:
            hears(directory, k)
        else:
            assert summary["keys_unavailable_reason"], (k, summary)
    directory, summary = calls[responder_cid]
    assert summary["keys_available"], summary
    assert {key["source"] for key in summary["keys"]} == {"mikey-pke-escrow"}, summary
    hears(directory, "pke-c (alice responds)", caller_hz=CALLEE_HZ, callee_hz=CALLER_HZ)


def answered_by_a_running_ue(lab: RunningLab, capsys: pytest.CaptureFixture[str], k: str) -> None:
    """``imslab run ue --name bob --keying K`` (its own process, the lab's credentials) answers
    ``imslab call alice sip:bob@ims-b.test --keying K``; each side recorded the other's tone."""
    heard_by_bob = lab.state.parent / "bob-heard"
    heard_by_alice = lab.state.parent / "alice-heard.wav"
    bob = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "run", "ue", "--name", "bob", *LAB, "--keying", k]
        + ["--record", str(heard_by_bob)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )
    try:
        assert bob.stdout is not None and bob.stderr is not None
        line = bob.stdout.readline().decode()
        assert "ready" in line, line + bob.stderr.read().decode()
        rc = main(
            ["call", "alice", "sip:bob@ims-b.test", *LAB, "--keying", k, "--duration", "1.2"]
            + ["--record", str(heard_by_alice)]
        )
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "media keys: MIKEY" in out and "auth failures 0" in out, out
    finally:
        RunningLab(bob, lab.state).stop()
    rate, pcm = read_wav(heard_by_alice)
    assert detect_tone(pcm[rate // 4 :], CALLEE_HZ, rate)  # run ue's default tone
    (wav,) = heard_by_bob.glob("*.wav")
    rate, pcm = read_wav(wav)
    assert detect_tone(pcm[rate // 4 :], CALLER_HZ, rate)


def hears(
    directory: Path, what: str, *, caller_hz: int = CALLER_HZ, callee_hz: int = CALLEE_HZ
) -> None:
    """The LEMF's decrypted audio: the target's own tone from it, the other's to it."""
    for direction, hz in (("from-target", caller_hz), ("to-target", callee_hz)):
        rate, pcm = read_wav(directory / f"audio-{direction}.wav")
        assert len(pcm) > rate // 2, (what, direction)
        assert detect_tone(pcm, hz, rate), (what, direction)
        other = callee_hz if hz == caller_hz else caller_hz
        assert not detect_tone(pcm, other, rate), (what, direction)


# --- rejections: one line on stderr, exit 2, nothing registered ------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["alice", "bob", "--keying", "pke-x"], "unknown keying 'pke-x'"),
        (["alicee", "bob"], "unknown UE 'alicee'"),
        (["alice", "bobb", "--keying", "psk"], "unknown UE 'bobb'"),
    ],
)
def test_wrong_names_are_rejected_before_anything_registers(
    argv: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    topo = topology.load(net_offset=OFFSET + 1)
    pcscf = topo.element("pcscf-a")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first_hop:
        # alice's first hop: a REGISTER would land here
        first_hop.bind((pcscf.address, pcscf.sip_port))
        first_hop.setblocking(False)
        rc = main(["call", *argv, "--net-offset", str(OFFSET + 1)])
        captured = capsys.readouterr()
        with pytest.raises(BlockingIOError):
            first_hop.recv(65535)
    assert rc == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("imslab call: "), captured.err
    assert needle in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "state").exists()  # no credentials made either


def test_run_ue_rejects_an_unknown_ue_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    rc = main(["run", "ue", "--name", "zed", "--net-offset", str(OFFSET + 1), "--keying", "psk"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.splitlines() == [
        "imslab run ue: unknown UE 'zed'; the topology's UEs: alice, bob, carol, dave, erin"
    ]
    assert not (tmp_path / "state").exists()
