"""``imslab run scscf --name NAME``: an S-CSCF (registrar + home routing of one operator)."""

from __future__ import annotations

import argparse
import time

from lab import credentials, topology
from lab.mikey_hop import intermediary_hook
from lab.roles import _build
from lab.topology import Topology

ROLE = "scscf"
HELP = "S-CSCF: registrar with digest auth, originating/terminating routing, peering"


async def start(topo: Topology, name: str, *, li: bool = False) -> _build.RunningProxy:
    """Start the element; with ``li`` also its X1 NE + IRI-POI when ``[li]`` lists it."""
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not a {ROLE}")
    server = _build.build_home_server(topo, name)
    running = await _build.start_proxy(topo, name, server, li=li)
    creds = credentials.from_environment()  # imslab up: the lab's MIKEY credentials
    if creds is not None:  # hop by hop through the S-CSCFs too (study 2.2.2, psk-hop-cscf)
        inter = credentials.chain_intermediary(topo, name, creds)
        running.sip_hooks.add(intermediary_hook(inter, {}, time.time))
    return running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name, li=args.li)
    return await _build.serve(running, args.name, "S-CSCF")
