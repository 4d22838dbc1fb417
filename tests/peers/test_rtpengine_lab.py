"""rtpengine as the media provider's relay (``anchor-m``) in a real lab call, with LI.

The lab runs ``deploy/rtpengine/lab.toml``: every element as its own ``imslab run`` process, and
``anchor-m`` as Debian's rtpengine daemon (userspace, ``--table=-1``), started by the anchor
role in this network namespace and stopped with it. pcscf-b anchors bob's calls on it over ng
(:class:`proxies.rtpengine.RtpengineAnchor`); operator B's LI taps rtpengine's path (a packet
capture of the relay's address, each datagram mapped to its call by rtpengine's own ``query``)
and its CC-POI is armed per call over LI_T3 by pcscf-b's IRI-POI.

Checked: a call with no task leaves nothing at the LEMF; with an X1 task on bob, alice (440 Hz)
calls bob (1000 Hz) and the LEMF holds one complete call with IRI from pcscf-b and scscf-b, X3
from anchor-m, the SDES keys, both directions decrypted with no failure, and each direction's WAV
holding its own sender's tone; the SDP pcscf-b sent toward the core points at rtpengine's
address with the port rtpengine chose, and the UEs' ``a=crypto`` lines crossed it; sngrep opens
the LEMF's ``call.pcap`` of that call as one dialog.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lab import topology
from lab.matrix.combine import direction_tones
from lab.orchestrator import Lab
from lab.rtpengine import rtpengine_binary
from tests.lab.cli_process import imslab

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "deploy" / "rtpengine" / "lab.toml")
OFFSET = 140  # the lab on 127.0.150-159 (no other test uses it)
LAB = ["--config", CONFIG, "--net-offset", str(OFFSET)]
CALLER_HZ, CALLEE_HZ = 440, 1000

pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.timeout(150)]


def test_config_is_the_builtin_topology_but_anchor_m() -> None:
    """deploy/rtpengine/lab.toml is lab/lab.toml with exactly two lines changed (no drift)."""
    builtin = (ROOT / "lab" / "lab.toml").read_text().splitlines()
    ours = Path(CONFIG).read_text().splitlines()
    ours = ours[ours.index(builtin[0]) :]  # past its own header
    added = [ln for ln in ours if ln not in builtin]
    removed = [ln for ln in builtin if ln not in ours]
    assert [ln.split("#")[0].strip() for ln in added] == [
        'engine = "rtpengine"',
        'elements = ["pcscf-b", "scscf-b", "anchor-m"]',
    ]
    assert [ln.split("#")[0].strip() for ln in removed] == ['elements = ["pcscf-b", "scscf-b"]']
    topo = topology.load(CONFIG)
    assert topo.element("anchor-m").engine == "rtpengine"
    assert topo.li is not None and topo.li.operator_of("anchor-m").operator == "b"  # type: ignore[union-attr]


def test_only_a_buyer_of_the_media_path_may_list_anothers_anchor() -> None:
    text = (
        Path(CONFIG)
        .read_text()
        .replace(
            'elements = ["pcscf-a", "scscf-a", "anchor-a"]',
            'elements = ["pcscf-a", "scscf-a", "anchor-a", "anchor-m"]',
        )
    )
    text = text.replace('elements = ["pcscf-b", "scscf-b", "anchor-m"]', 'elements = ["pcscf-b"]')
    import tomllib

    with pytest.raises(topology.TopologyError, match="anchor-m is not its element"):
        topology.parse(tomllib.loads(text))


async def call(caller: str, callee: str) -> str:
    rc, out = await imslab(
        "call",
        caller,
        callee,
        *LAB,
        "--duration",
        "2",
        "--audio",
        f"tone:{CALLER_HZ}",
        "--callee-audio",
        f"tone:{CALLEE_HZ}",
    )
    assert rc == 0, out
    assert "caller heard the callee: True" in out and "callee heard the caller: True" in out, out
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="the relay tap (AF_PACKET) needs root")
async def test_rtpengine_anchors_a_lab_call_and_li_gets_both_directions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path(rtpengine_binary()).exists():
        pytest.skip("rtpengine is not installed (apt-get install rtpengine-daemon)")
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    topo = topology.load(CONFIG, net_offset=OFFSET)
    assert topo.li is not None
    relay = topo.element("anchor-m")
    lemf = topo.li.lemf_out()
    async with Lab(topo, mode="subprocess", li=True, ready_timeout=30):
        await call("alice", "bob")  # no task yet: nobody intercepted
        # (the LEMF's own state is there from its start: OUT/lemf-status.json and the delivery
        # store under OUT/.dedup; no intercept record may be)
        filed = [
            p
            for p in lemf.rglob("*")
            if p.is_file()
            and p.name != "lemf-status.json"
            and not any(part.startswith(".") for part in p.relative_to(lemf).parts)
        ]
        assert not filed if lemf.exists() else True, filed

        rc, out = await imslab(
            "li", "task", "add", *LAB, "--operator", "b", "--target", "sip:bob@ims-b.test"
        )
        assert rc == 0, out
        xid = json.loads(out.splitlines()[0])["xid"]
        await call("alice", "bob")

    calls = [
        (p.parent, json.loads(p.read_text())) for p in sorted((lemf / xid).glob("*/summary.json"))
    ]
    calls = [(d, s) for d, s in calls if s.get("established")]
    assert len(calls) == 1, sorted(p.name for p in (lemf / xid).iterdir())
    call_dir, summary = calls[0]
    assert summary["complete"] and summary["ended"] == "BYE"
    assert {"pcscf-b", "scscf-b", "anchor-m"} <= set(summary["pois"]), summary["pois"]
    assert summary["x3_pdus"] > 0
    assert summary["keys_available"] and summary["media_encrypted"]
    streams = summary["streams"]
    assert {s["direction"] for s in streams} == {"from-target", "to-target"}, streams
    for s in streams:
        assert s["decrypted"] > 0 and s["decrypt_failures"] == 0, s
    assert summary["sequence_gaps"] == 0 or not summary["sequence_gaps"], summary["sequence_gaps"]
    # bob is the target and the callee: from-target is his 1000 Hz, to-target alice's 440 Hz
    tones = direction_tones(call_dir, {"from-target": CALLEE_HZ, "to-target": CALLER_HZ})
    assert set(tones) == {"from-target", "to-target"} and all(t["ok"] for t in tones.values()), (
        tones
    )

    # the SDP pcscf-b sent toward the core points at rtpengine, at a port rtpengine chose;
    # the SDES keys the LEMF used are the UEs' own (offer's and answer's)
    iri = [json.loads(ln) for ln in (call_dir / "iri.jsonl").read_text().splitlines()]
    media = [
        (m.get("address") or r["sip"]["sdp"].get("address"), m["port"], m["crypto"])
        for r in iri
        if isinstance(r.get("sip", {}).get("sdp"), dict)
        for m in r["sip"]["sdp"]["media"]
    ]
    lo, hi = relay.rtp_ports
    at_relay = [m for m in media if m[0] == relay.address]
    assert at_relay and all(lo <= port <= hi for _, port, _ in at_relay), media
    assert all(crypto for _, _, crypto in at_relay), at_relay  # a=crypto passed through
    keys = (call_dir / "keys.jsonl").read_text().splitlines()
    assert len(keys) >= 2, keys

    # sngrep reads the LEMF's call output (call.pcap: the SIP and the decrypted RTP) as one call
    sngrep = shutil.which("sngrep")
    if sngrep is not None:
        res = subprocess.run(
            [sngrep, "-N", "-c", "-I", str(call_dir / "call.pcap"), "-O", str(tmp_path / "s.pcap")],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 0 and "Dialog count: 1" in res.stdout, (res.stdout, res.stderr)
