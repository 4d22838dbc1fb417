"""Kamailio (Debian's package) as the lab's Internet SIP proxy, with LI on the IMS side.

The lab runs with every element but ``proxy-inet``; Kamailio takes that element's address and
port with ``deploy/kamailio/internet-proxy.cfg`` rendered from the topology (the domain, its
subscriber's digest credentials, the peering table, the S-CSCFs as the only trusted peers).
Our S-CSCF exchanges calls with it both ways while an X1 task on alice is active: dave (an
Internet user, registered at Kamailio with digest) calls alice, alice calls dave. The LEMF must
hold both calls with IRI, keys and both tones; Kamailio's own Record-Route (its ``ftag``
parameter, which our proxies never write) must be in the intercepted signalling. Kamailio must
refuse to relay for a stranger, also one on the S-CSCF's address but another port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from lab import topology
from lab.matrix.combine import tone_in_wav
from lab.orchestrator import Lab
from lab.topology import Topology
from tests.lab.cli_process import imslab

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "kamailio" / "internet-proxy.cfg"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
OFFSET = 170  # the lab on 127.0.180-189 (no other test uses it)
CONFIG = str(topology.default_path())
LAB = ["--config", CONFIG, "--net-offset", str(OFFSET)]
CALLER_HZ, CALLEE_HZ = 440, 1000
PROXY = "proxy-inet"

pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.timeout(150)]


def _modules() -> Path:
    for p in (MODULES, *Path("/usr/lib").glob("*/kamailio/modules")):
        if (p / "tm.so").exists():
            return p
    raise FileNotFoundError("kamailio modules")


def render_cfg(topo: Topology, name: str, rundir: Path) -> str:
    """The template filled from the topology for element ``name`` (an internet_proxy)."""
    me = topo.element(name)
    domain = topo.operators[me.operator].domain
    peers = [topo.element(e) for d, e in sorted(topo.peering.items()) if e != name and d != domain]
    from_peer = "\n".join(
        f'    if ($si == "{p.address}" && $sp == {p.sip_port}) {{ $var(peer) = 1; }}' for p in peers
    )
    creds_to, creds_from = [], []
    for sub in topo.subscribers.values():
        if sub.domain != domain:
            continue
        impus = " || ".join(f'$$URI == "{u}"' for u in sub.impus if u.startswith("sip:"))
        for var, out in (("$tu", creds_to), ("$fu", creds_from)):
            cond = impus.replace("$$URI", var)
            out.append(
                f'    if ($aU == "{sub.impi}" && ({cond})) {{ $var(pw) = "{sub.password}"; }}'
            )
    serving = {d: topo.element(e) for d, e in sorted(topo.peering.items()) if e != name}
    peering = "\n".join(
        f'    if ($rd == "{d}") {{ $du = "sip:{e.address}:{e.sip_port}"; return; }}'
        for d, e in serving.items()
    )
    fields = {
        "ADDRESS": me.address,
        "PORT": str(me.sip_port),
        "DOMAIN": domain,
        "MPATH": str(_modules()) + "/",
        "RUNDIR": str(rundir),
        "FROM_PEER": from_peer,
        "CREDENTIALS_TO": "\n".join(creds_to),
        "CREDENTIALS_FROM": "\n".join(creds_from),
        "PEERING": peering,
    }
    text = TEMPLATE.read_text()
    for key, value in fields.items():
        text = text.replace(f"@@{key}@@", value)
    assert "@@" not in text
    return text


async def call(caller: str, callee: str) -> str:
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
    assert "caller heard the callee: True" in out and "callee heard the caller: True" in out, out
    return out


def sip_request(src: tuple[str, int], dst: tuple[str, int], method: str, ruri: str) -> int:
    """Send one request from ``src`` (port 0: any) and return the first status above 100."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(src)
        host, port = s.getsockname()
        msg = (
            f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{os.urandom(6).hex()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:mallory@{host}>;tag={os.urandom(4).hex()}\r\n"
            f"To: <{ruri}>\r\n"
            f"Call-ID: {os.urandom(8).hex()}@{host}\r\n"
            f"CSeq: 1 {method}\r\n"
            f"Contact: <sip:mallory@{host}:{port}>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        s.settimeout(0.5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            s.sendto(msg, dst)
            try:
                while True:
                    data, _ = s.recvfrom(65535)
                    status = int(data.split(b" ", 2)[1])
                    if status > 100:
                        return status
            except TimeoutError:
                continue
    raise AssertionError(f"no answer from {dst}")


@pytest.fixture
def kamailio() -> str:
    if not Path(KAMAILIO).exists():
        pytest.skip("kamailio is not installed (apt-get install kamailio)")
    return KAMAILIO


async def test_kamailio_as_internet_proxy_with_li(
    kamailio: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    topo = topology.load(CONFIG, net_offset=OFFSET)
    assert topo.li is not None
    me = topo.element(PROXY)
    rundir = tmp_path / "kamailio"
    rundir.mkdir()
    cfg = rundir / "kamailio.cfg"
    cfg.write_text(render_cfg(topo, PROXY, rundir))
    check = subprocess.run([kamailio, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    names = [n for n in topo.elements if n != PROXY]
    async with Lab(topo, mode="subprocess", names=names, li=True, ready_timeout=30):
        log = (rundir / "kamailio.log").open("w")
        proc = subprocess.Popen(
            [kamailio, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "8"]
            + ["-Y", str(rundir), "-w", str(rundir), "-P", str(rundir / "kamailio.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            scscf = topo.element("scscf-a")
            # up when it answers; a stranger's INVITE out of the domain is challenged (407)
            status = sip_request(
                ("127.0.0.1", 0), (me.address, me.sip_port), "INVITE", "sip:alice@ims-a.test"
            )
            assert status == 407
            # the S-CSCF's address but not its port is no peer either
            status = sip_request(
                (scscf.address, 0), (me.address, me.sip_port), "INVITE", "sip:dave@internet.test"
            )
            assert status == 407

            rc, out = await imslab(
                "li", "task", "add", *LAB, "--operator", "a", "--target", "sip:alice@ims-a.test"
            )
            assert rc == 0, out
            xid = json.loads(out.splitlines()[0])["xid"]
            out = await call("dave", "alice")  # Internet -> Kamailio -> S-CSCF A -> alice
            assert f"via {me.address}:{me.sip_port}" in out, out  # dave registered at Kamailio
            await call("alice", "dave")  # alice -> S-CSCF A -> Kamailio -> dave
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            log.close()
    klog = (rundir / "kamailio.log").read_text()

    lemf_out = topo.li.lemf_out() / xid
    calls = []
    for summary_path in sorted(lemf_out.glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        if summary.get("established"):
            calls.append((summary_path.parent, summary))
    assert len(calls) == 2, (sorted(p.name for p in lemf_out.iterdir()), klog[-2000:])
    expected = {
        ("sip:dave@internet.test", "sip:alice@ims-a.test"),
        ("sip:alice@ims-a.test", "sip:dave@internet.test"),
    }
    parties: set[tuple[str, str]] = set()
    for call_dir, summary in calls:
        assert summary["complete"] and summary["ended"] == "BYE"
        assert summary["keys_available"]
        iri = [json.loads(line) for line in (call_dir / "iri.jsonl").read_text().splitlines()]
        # each POI on the path files the INVITE: the S-CSCF's shows the AoR, the P-CSCF's the
        # contact it was retargeted to, in whichever order the two X2 links delivered them
        invites = [r["sip"] for r in iri if r.get("sip", {}).get("method") == "INVITE"]
        parties |= {(i["from"], i["request_uri"]) for i in invites} & expected
        invite = invites[0]
        # Kamailio's Record-Route (rr append_fromtag: ";ftag=") in what the POIs intercepted
        assert b";ftag=" in (call_dir / "x2x3.pcap").read_bytes()
        target_is_caller = invite["from"] == "sip:alice@ims-a.test"
        sent, heard = (CALLER_HZ, CALLEE_HZ) if target_is_caller else (CALLEE_HZ, CALLER_HZ)
        assert tone_in_wav(call_dir / "audio-from-target.wav", sent)[0]
        assert tone_in_wav(call_dir / "audio-to-target.wav", heard)[0]
    assert parties == expected
