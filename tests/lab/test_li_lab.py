"""Lawful interception in the running lab, as a user drives it.

The lab with its ``[li]`` runs as subprocesses (``imslab run ROLE --name NAME`` per element and
``imslab run lemf --name lemf``, on 127.0.100-109 through ``--net-offset 90``); the test then
acts like the user: ``imslab li task add`` over X1 (mutual TLS, PKI found through the topology),
``imslab call alice bob``, and reads what the LEMF wrote. Calls between non-targets, and a call
after ``imslab li task remove``, must leave nothing at the LEMF.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ims.media.audio import read_wav
from ims.media.tone import detect_tone
from lab import topology
from lab.orchestrator import Lab
from tests.lab.cli_process import imslab as run_imslab

OFFSET = 90
CONFIG = str(topology.default_path())
LAB = ["--config", CONFIG, "--net-offset", str(OFFSET)]
CALLER_HZ, CALLEE_HZ = 440, 1000

pytestmark = pytest.mark.timeout(90)


async def imslab(*argv: str) -> tuple[int, str]:
    return await run_imslab(*argv, timeout=30)


async def call(caller: str, callee: str) -> None:
    rc, out = await imslab(
        "call",
        caller,
        callee,
        *LAB,
        "--duration",
        "1.5",
        "--audio",
        f"tone:{CALLER_HZ}",
        "--callee-audio",
        f"tone:{CALLEE_HZ}",
    )
    assert rc == 0, out
    assert "caller heard the callee: True" in out, out


def records(lemf_out: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(lemf_out.glob("*/*/iri.jsonl")):
        for line in path.read_text().splitlines():
            out.append((path.parent, json.loads(line)))
    return out


async def test_task_alice_over_x1_and_read_the_lemf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    topo = topology.load(CONFIG, net_offset=OFFSET)
    assert topo.li is not None
    lemf_out = topo.li.lemf_out()
    assert lemf_out == tmp_path / "state" / f"net-offset-{OFFSET}" / "lemf"
    names = [n for n in topo.elements if n != "proxy-inet"]
    async with Lab(topo, mode="subprocess", names=names, li=True, ready_timeout=20):
        rc, out = await imslab(
            "li", "task", "add", *LAB, "--operator", "a", "--target", "sip:alice@ims-a.test"
        )
        assert rc == 0, out
        answers = [json.loads(line) for line in out.splitlines()]
        assert {a["ne"] for a in answers} == {"pcscf-a", "scscf-a", "anchor-a"}
        assert all(a["ok"] == "AcknowledgedAndCompleted" for a in answers)
        xid = answers[0]["xid"]
        assert {a["xid"] for a in answers} == {xid}

        rc, out = await imslab("li", "task", "list", *LAB, "--element", "pcscf-a")
        assert rc == 0, out
        listed = [json.loads(line) for line in out.splitlines()]
        assert {a["ne"] for a in listed} == {"pcscf-a", "anchor-a"}
        assert all([t["xid"] for t in a["tasks"]] == [xid] for a in listed)

        await call("alice", "bob")  # the target calls
        await call("carol", "erin")  # two non-targets, through operator A's S-CSCF

        rc, out = await imslab("li", "task", "remove", *LAB, "--operator", "a", xid)
        assert rc == 0, out
        await call("bob", "alice")  # the former target, after DeactivateTask
    # the lab (and with it the LEMF) has stopped: its files are complete

    recs = records(lemf_out)
    assert {d.parent.name for d, _ in recs} == {xid}
    invites = [(d, r) for d, r in recs if r.get("sip", {}).get("method") == "INVITE"]
    # one call, reported by both IRI-POIs (P-CSCF and S-CSCF) into the same call directory;
    # the non-target call and the call after the task was removed left nothing
    assert len({r["sip"]["call_id"] for _, r in invites}) == 1
    assert {r["poi"] for _, r in invites} == {"pcscf-a", "scscf-a"}
    assert len({d for d, _ in invites}) == 1
    call_dir, invite = invites[0]
    assert invite["sip"]["from"] == "sip:alice@ims-a.test"
    assert invite["sip"]["request_uri"] == "sip:bob@ims-b.test"
    assert not any("carol" in json.dumps(r) or "erin" in json.dumps(r) for _, r in recs)

    in_call = [r for d, r in recs if d == call_dir]
    sip = [r["sip"] for r in in_call if r["type"] == "sip"]
    assert any(s.get("status") == 200 and s["cseq"].endswith("INVITE") for s in sip)
    assert any(s.get("method") == "BYE" for s in sip)
    assert any(s.get("status") == 200 and s["cseq"].endswith("BYE") for s in sip)
    assert {r["poi"] for r in in_call} == {"pcscf-a", "scscf-a"}

    summary = json.loads((call_dir / "summary.json").read_text())
    assert summary["keys_available"] is True
    assert {k["source"] for k in summary["keys"]} == {"sdes"}
    assert {k["direction"] for k in summary["keys"]} == {"from-target", "to-target"}
    assert "anchor-a" in summary["pois"]
    for direction, hz in (("from-target", CALLER_HZ), ("to-target", CALLEE_HZ)):
        rate, pcm = read_wav(call_dir / f"audio-{direction}.wav")
        assert len(pcm) > rate  # more than half a second of audio
        assert detect_tone(pcm, hz, rate), direction
        assert not detect_tone(pcm, CALLEE_HZ if hz == CALLER_HZ else CALLER_HZ, rate)


async def test_x2x3_over_mutual_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``delivery = "tls"``: the POIs deliver to the LEMF over mutual TLS (lab X2/X3 PKI)."""
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    text = topology.default_path().read_text()
    assert 'delivery = "tcp"' in text
    config = tmp_path / "lab.toml"
    config.write_text(text.replace('delivery = "tcp"', 'delivery = "tls"'))
    lab = ["--config", str(config), "--net-offset", str(OFFSET)]
    topo = topology.load(config, net_offset=OFFSET)
    assert topo.li is not None and topo.li.delivery == "tls"
    names = ["pcscf-a", "scscf-a", "anchor-a", "pcscf-b", "scscf-b", "anchor-m"]
    async with Lab(topo, mode="subprocess", names=names, li=True, ready_timeout=20):
        rc, out = await imslab(
            "li", "task", "add", *lab, "--element", "pcscf-a", "--target", "sip:alice@ims-a.test"
        )
        assert rc == 0, out
        xid = json.loads(out.splitlines()[0])["xid"]
        rc, out = await imslab("call", "alice", "bob", *lab, "--duration", "1")
        assert rc == 0, out
    assert (topo.li.delivery_pki_dir() / "server.pem").is_file()
    recs = records(topo.li.lemf_out())
    assert {d.parent.name for d, _ in recs} == {xid}
    assert any(r.get("sip", {}).get("method") == "BYE" for _, r in recs)
    summaries = [json.loads(p.read_text()) for p in topo.li.lemf_out().glob("*/*/summary.json")]
    established = [s for s in summaries if s["established"]]
    assert len(established) == 1
    assert established[0]["keys_available"] and set(established[0]["pois"]) == {
        "pcscf-a",
        "anchor-a",
    }
