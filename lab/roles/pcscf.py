"""``imslab run pcscf --name NAME``: a P-CSCF (UE first hop, home or visited)."""

from __future__ import annotations

import argparse

from lab import topology
from lab.roles import _build
from lab.topology import Topology

ROLE = "pcscf"
HELP = "P-CSCF: first hop of the UEs (Path, Service-Route, P-Asserted-Identity, media anchoring)"


async def start(topo: Topology, name: str, *, li: bool = False) -> _build.RunningProxy:
    """Start the element; with ``li`` also its X1 NE + IRI-POI when ``[li]`` lists it."""
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not a {ROLE}")
    proxy = _build.build_pcscf(topo, name)
    return await _build.start_proxy(topo, name, proxy, li=li)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name, li=args.li)
    return await _build.serve(running, args.name, "P-CSCF")
