"""Run the lab with each element in its own Linux network namespace (root only).

The layout stands in for one container per element on a Docker bridge network:

* a hub namespace ``<prefix>hub`` holds a Linux bridge (the host's own namespace is not touched);
* each element gets a namespace ``<prefix><name>`` with a veth ``eth0`` plugged into the bridge
  and its topology address as ``/24``;
* all UEs share one namespace ``<prefix>ues`` (one veth carrying every UE address), from where
  the test runs ``imslab call``.

Loopback (127/8) cannot be routed between namespaces, so the topology is remapped onto a private
/24 (``subnet``, default ``10.231.7``) with :meth:`lab.topology.Topology.remap`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from lab.topology import Topology

DEFAULT_SUBNET = "10.231.7"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the suite as root)"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    probe = subprocess.run(
        ["ip", "netns", "add", "imsl-probe"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", "imsl-probe"], capture_output=True, check=False)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")


class NetnsLab:
    """Creates and removes the namespaces for a (remapped) topology."""

    def __init__(self, topo: Topology, *, prefix: str = "imsl-") -> None:
        self.topology = topo
        self.prefix = prefix
        self.hub = f"{prefix}hub"
        self.namespaces: list[str] = []

    def ns_of(self, name: str) -> str:
        """The namespace an element (or UE, or ``ues``) runs in."""
        if name in self.topology.ues or name == "ues":
            return f"{self.prefix}ues"
        return f"{self.prefix}{name}"[:15]

    def wrap(self, name: str, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run inside element ``name``'s namespace."""
        return ["ip", "netns", "exec", self.ns_of(name), *cmd]

    def _add_ns(self, ns: str) -> None:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)

    def create(self) -> None:
        self._add_ns(self.hub)
        _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        _ip("link", "set", "br0", "up", ns=self.hub)
        groups: dict[str, list[str]] = {}
        for name, e in self.topology.elements.items():
            groups.setdefault(self.ns_of(name), []).append(e.address)
        for name, u in self.topology.ues.items():
            groups.setdefault(self.ns_of(name), []).append(u.address)
        for i, (ns, addresses) in enumerate(sorted(groups.items())):
            self._add_ns(ns)
            hub_end = f"v{i}"
            # create the pair inside the element namespace, then move one end to the hub
            _ip("link", "add", "eth0", "type", "veth", "peer", "name", hub_end, ns=ns)
            _ip("link", "set", hub_end, "netns", self.hub, ns=ns)
            _ip("link", "set", hub_end, "master", "br0", ns=self.hub)
            _ip("link", "set", hub_end, "up", ns=self.hub)
            for addr in addresses:
                _ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)

    def destroy(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()

    def __enter__(self) -> NetnsLab:
        try:
            self.create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
