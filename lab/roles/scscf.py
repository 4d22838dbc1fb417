"""``imslab run scscf --name NAME``: an S-CSCF (registrar + home routing of one operator)."""

from __future__ import annotations

import argparse

from lab import topology
from lab.roles import _build
from lab.topology import Topology

ROLE = "scscf"
HELP = "S-CSCF: registrar with digest auth, originating/terminating routing, peering"


async def start(topo: Topology, name: str, *, li: bool = False) -> _build.RunningProxy:
    """Start the element; with ``li`` also its X1 NE + IRI-POI when ``[li]`` lists it."""
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not a {ROLE}")
    server = _build.build_home_server(topo, name)
    return await _build.start_proxy(topo, name, server, li=li)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name, li=args.li)
    return await _build.serve(running, args.name, "S-CSCF")
