"""``imslab run pcscf --name NAME``: a P-CSCF (UE first hop, home or visited)."""

from __future__ import annotations

import argparse

from lab import topology
from lab.roles import _build
from lab.topology import Topology

ROLE = "pcscf"
HELP = "P-CSCF: first hop of the UEs (Path, Service-Route, P-Asserted-Identity, media anchoring)"


async def start(topo: Topology, name: str) -> _build.RunningProxy:
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not a {ROLE}")
    proxy = _build.build_pcscf(topo, name)
    await proxy.start()
    return _build.RunningProxy(proxy)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name)
    return await _build.serve(running, args.name, "P-CSCF")
