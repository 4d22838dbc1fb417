"""The lab with each element in its own network namespace (the compose layout without Docker).

Needs root (CI runs as root) and iproute2; skips with the reason otherwise. Namespaces are
created for this test and removed afterwards; the lab runs on a private /24 inside them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import netns, topology
from lab.orchestrator import Lab

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SUBNET = "10.231.77"


@pytest.fixture
def namespaces() -> Iterator[netns.NetnsLab]:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    topo = topology.load(subnet=SUBNET)
    with netns.NetnsLab(topo, prefix="imslt-") as ns:
        yield ns


async def test_call_with_every_element_in_its_own_namespace(
    namespaces: netns.NetnsLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = namespaces.topology
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path))
    async with Lab(topo, mode="subprocess", netns=namespaces, ready_timeout=30):
        # isolation: the element namespaces are not the host's
        probe = subprocess.run(
            ["ip", "netns", "exec", namespaces.ns_of("pcscf-a"), "ip", "-o", "addr"],
            capture_output=True,
            text=True,
        )
        assert f"{SUBNET}.10/24" in probe.stdout and "127.0.10.10" not in probe.stdout
        for caller, callee in (("alice", "bob"), ("carol", "bob")):
            cmd = [sys.executable, "-m", "lab.cli", "call", caller, callee]
            cmd += ["--subnet", SUBNET, "--duration", "1"]
            res = subprocess.run(
                namespaces.wrap(caller, cmd),
                capture_output=True,
                text=True,
                timeout=60,
                env=dict(os.environ),
            )
            assert res.returncode == 0, res.stdout + res.stderr
            assert "callee heard the caller: True" in res.stdout
        # the compose layout exactly: bob as a long-running `imslab run ue`, alice calls his AOR
        bob_cmd = [sys.executable, "-m", "lab.cli", "run", "ue", "--name", "bob"]
        bob = subprocess.Popen(
            namespaces.wrap("bob", [*bob_cmd, "--subnet", SUBNET]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        try:
            assert bob.stdout is not None
            assert "ready" in bob.stdout.readline()
            cmd = [sys.executable, "-m", "lab.cli", "call", "alice", "sip:bob@ims-b.test"]
            res = subprocess.run(
                namespaces.wrap("alice", [*cmd, "--subnet", SUBNET, "--duration", "1"]),
                capture_output=True,
                text=True,
                timeout=60,
                env=dict(os.environ),
            )
            assert res.returncode == 0, res.stdout + res.stderr
            assert "caller heard the callee: True" in res.stdout
        finally:
            bob.terminate()
            try:
                bob.wait(timeout=10)
            except subprocess.TimeoutExpired:
                bob.kill()
                bob.wait()
