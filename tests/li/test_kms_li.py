"""LI through the MIKEY-SAKKE KMS in the running lab: the LEMF decrypts without any MITM.

``imslab up`` (subprocess, LI on); X1 tasks on alice and carol at operator A and on bob at
operator B; real MIKEY-SAKKE calls (``imslab call --keying sakke``). The IRI-POIs hand the
offer's I_MESSAGE to their operator's KMS LI function (li.kms_li), which recovers the keys
only as the Responder's KMS (RFC 6508 §6.2.1: the SSV is encapsulated under the Responder's
KMS Public Key) and only for a tasked party. Rows of issue 14:

* one KMS: alice -> carol, both operator A's (carol roaming in the visited network);
* two KMSs: alice -> bob: only B (bob's KMS) delivers; A's KMS cannot;
* roaming target: bob -> carol: A (carol's home KMS) delivers; the visited network has none;
* non-IMS peer: alice -> dave: dave has no KMS, so no MIKEY-SAKKE call exists to intercept.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ims.media.audio import read_wav
from ims.media.tone import detect_tone
from lab.cli import main
from lab.matrix.combine import decrypt_with_keys
from ue import keying_mikey, keying_sakke

OFFSET = 70
LAB = ["--net-offset", str(OFFSET)]
CALLER_HZ, CALLEE_HZ = 440, 1000

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@pytest.fixture
def lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    monkeypatch.delenv("IMSLAB_LAB_CREDENTIALS", raising=False)
    up = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "up", *LAB],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )
    try:
        assert up.stdout is not None and up.stderr is not None
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = up.stdout.readline().decode()
            lines.append(line)
            if not line or line.startswith("ready"):
                break
        assert lines[-1].startswith("ready"), "".join(lines) + up.stderr.read().decode()
        yield tmp_path / "state" / f"net-offset-{OFFSET}", up
    finally:
        keying_mikey.configure(None)
        keying_sakke.configure(None)
        stop(up)


def stop(up: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user stops it: the LEMF closes its files on the way out."""
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(20)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def task(capsys: pytest.CaptureFixture[str], operator: str, target: str) -> None:
    rc = main(["li", "task", "add", *LAB, "--operator", operator, "--target", target])
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and answers and all(a["ok"] == "AcknowledgedAndCompleted" for a in answers)


def call(
    capsys: pytest.CaptureFixture[str], caller: str, callee: str, keying: str = "sakke"
) -> tuple[int, str]:
    rc = main(
        ["call", caller, callee, *LAB, "--keying", keying, "--duration", "1.2"]
        + ["--audio", f"tone:{CALLER_HZ}", "--callee-audio", f"tone:{CALLEE_HZ}"]
    )
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def placed(
    capsys: pytest.CaptureFixture[str], caller: str, callee: str, keying: str = "sakke"
) -> str:
    rc, out = call(capsys, caller, callee, keying)
    assert rc == 0, out
    assert f"media keys: MIKEY {keying}" in out and "auth failures 0" in out, out
    assert "caller heard the callee: True" in out and "callee heard the caller: True" in out
    cid = re.search(r"^call-id (\S+)$", out, flags=re.MULTILINE)
    assert cid is not None, out
    return cid.group(1)


def deliveries(lemf: Path, call_id: str) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in lemf.glob("*/*/summary.json"):
        summary = json.loads(path.read_text())
        if summary["call_id"] == call_id:
            out.append((path.parent, summary))
    return out


def hears_both(directory: Path) -> None:
    """The decrypted audio of both directions: the caller's tone one way, the callee's the
    other (which is "from-target" depends on whether the task's target called)."""
    heard = {}
    for direction in ("from-target", "to-target"):
        rate, pcm = read_wav(directory / f"audio-{direction}.wav")
        assert len(pcm) > rate // 2, (directory, direction)
        heard[direction] = {hz for hz in (CALLER_HZ, CALLEE_HZ) if detect_tone(pcm, hz, rate)}
    assert sorted(heard.values(), key=sorted) in ([{CALLER_HZ}, {CALLEE_HZ}],), heard


def by_kms(
    found: list[tuple[Path, dict[str, Any]]], source: str = "mikey-sakke-kms"
) -> tuple[list[Any], list[Any]]:
    """(deliveries with the KMS's keys, deliveries whose KMS refused)."""
    got = [
        (d, s)
        for d, s in found
        if s["keys_available"] and {k["source"] for k in s["keys"]} == {source}
    ]
    refused = [(d, s) for d, s in found if not s["keys_available"]]
    return got, refused


def test_kms_rows_decrypt_without_mitm(
    lab: tuple[Path, subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state, up = lab
    task(capsys, "a", "sip:alice@ims-a.test")
    task(capsys, "a", "sip:carol@ims-a.test")
    task(capsys, "b", "sip:bob@ims-b.test")
    one_kms = placed(capsys, "alice", "carol")
    two_kms = placed(capsys, "alice", "bob")
    roaming = placed(capsys, "carol", "alice")
    rc, out = call(capsys, "alice", "dave")
    assert rc != 0 and "no MIKEY-SAKKE KMS" in out, out  # RFC 6509 §2.1: no KMS, no SAKKE
    time.sleep(1.0)  # the last PDUs reach the LEMF before the lab stops
    stop(up)
    lemf = state / "lemf"

    # one KMS: both parties are A's (two tasks, two deliveries); A's KMS recovers as the
    # Responder's KMS (RFC 6508 §6.2.2): both directions decrypted in each delivery
    got, refused = by_kms(deliveries(lemf, one_kms))
    assert len(got) == 2 and not refused
    for d, _ in got:
        hears_both(d)
    # two KMSs: the SSV is under bob's KMS (B, RFC 6508 §6.2.1): A's KMS refuses, B's delivers
    # the keys; B buys its media path from operator M (no CC of B), A carries alice's media:
    # the agency decrypts A's CC with B's keys
    got, refused = by_kms(deliveries(lemf, two_kms))
    assert len(got) == 1 and len(refused) == 1
    (b_dir, b_summary), (a_dir, a_summary) = got[0], refused[0]
    assert "kms.ims-a.test cannot recover" in a_summary["keys_unavailable_reason"]
    assert b_summary["x3_pdus"] == 0 and a_summary["x3_pdus"] > 0
    joined = tmp_path / "joined"
    assert decrypt_with_keys(cc_dir=a_dir, keys_dir=b_dir, out_dir=joined) > 0
    hears_both(joined)
    # roaming target carol (in the visited network) calls alice: A's KMS (alice's) recovers,
    # A's anchor carries alice's media: both of A's deliveries decrypt both directions
    got, refused = by_kms(deliveries(lemf, roaming))
    assert len(got) == 2 and not refused
    for d, _ in got:
        hears_both(d)
    # every recovery and refusal audited (RFC 6508 §7), no key material in the logs
    audit_a = (state / "kms" / "ims-a.test" / "audit.jsonl").read_text()
    actions = [json.loads(x)["action"] for x in audit_a.splitlines()]
    assert actions.count("recovered") >= 4 and "recovery-failed" in actions
    assert "recovered" in (state / "kms" / "ims-b.test" / "audit.jsonl").read_text()
    keys = [json.loads(x) for x in (b_dir / "keys.jsonl").read_text().splitlines()]
    assert keys and all(k["master_key"] not in audit_a for k in keys)


def test_ticket_rows_decrypt_without_mitm(
    lab: tuple[Path, subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    """MIKEY-TICKET (RFC 6043) through the KMS elements over HTTPS: the POIs post the offer's
    TRANSFER_INIT to their operator's KMS (``li.<domain>`` over mutual TLS), which derives the
    keys from the ticket it issued (the Initiator's KMS holds the TPK) or resolved for its
    subscriber (§10: the Responder's KMS saw the keys in RESOLVE_RESP)."""
    state, up = lab
    task(capsys, "a", "sip:alice@ims-a.test")
    task(capsys, "a", "sip:carol@ims-a.test")
    task(capsys, "b", "sip:bob@ims-b.test")
    one_kms = placed(capsys, "alice", "carol", "ticket")
    two_kms = placed(capsys, "alice", "bob", "ticket")
    roaming = placed(capsys, "carol", "alice", "ticket")
    rc, out = call(capsys, "alice", "dave", "ticket")
    assert rc != 0, out  # dave (non-IMS) has no KMS: the ticket cannot be resolved
    time.sleep(1.0)
    stop(up)
    lemf = state / "lemf"
    source = "mikey-ticket-kms"
    # one KMS: A issued and resolved; both of A's deliveries decrypt both directions
    got, refused = by_kms(deliveries(lemf, one_kms), source)
    assert len(got) == 2 and not refused
    for d, _ in got:
        hears_both(d)
    # two KMSs: unlike MIKEY-SAKKE, *both* operators deliver the keys: A issued alice's
    # ticket, B resolved it for bob. A also carries alice's media, so A decrypts on its own
    got, refused = by_kms(deliveries(lemf, two_kms), source)
    assert len(got) == 2 and not refused, [s for _, s in deliveries(lemf, two_kms)]
    a_dirs = [d for d, s in got if s["x3_pdus"] > 0]
    assert len(a_dirs) == 1
    hears_both(a_dirs[0])
    # roaming target carol calls alice: A's KMS issued the ticket, A's deliveries decrypt
    got, refused = by_kms(deliveries(lemf, roaming), source)
    assert len(got) == 2 and not refused
    for d, _ in got:
        hears_both(d)
    # the KMS audits (no keys): A issued and recovered, B forwarded/resolved and recovered
    audit_a = (state / "kms" / "ims-a.test" / "audit.jsonl").read_text()
    audit_b = (state / "kms" / "ims-b.test" / "audit.jsonl").read_text()
    acts_a = {(r["action"], r["requester"]) for r in map(json.loads, audit_a.splitlines())}
    acts_b = {(r["action"], r["requester"]) for r in map(json.loads, audit_b.splitlines())}
    assert {("issued", "sip:alice@ims-a.test"), ("recovered", "li.ims-a.test")} <= acts_a
    assert ("resolved", "kms.ims-b.test") in acts_a
    assert {("forwarded", "sip:bob@ims-b.test"), ("recovered", "li.ims-b.test")} <= acts_b
