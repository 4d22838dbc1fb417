"""``imslab run pcscf --name NAME``: a P-CSCF (UE first hop, home or visited)."""

from __future__ import annotations

import argparse
import time

from lab import credentials, topology
from lab.mikey_hop import intermediary_hook
from lab.roles import _build
from lab.topology import Topology

ROLE = "pcscf"
HELP = "P-CSCF: first hop of the UEs (Path, Service-Route, P-Asserted-Identity, media anchoring)"


async def start(topo: Topology, name: str, *, li: bool = False) -> _build.RunningProxy:
    """Start the element; with ``li`` also its X1 NE + IRI-POI when ``[li]`` lists it."""
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not a {ROLE}")
    proxy = _build.build_pcscf(topo, name)
    running = await _build.start_proxy(topo, name, proxy, li=li)
    creds = credentials.from_environment()  # imslab up: the lab's MIKEY credentials
    if creds is not None:  # the P-CSCF's hop-by-hop MIKEY function (study 2.2.2, psk-hop)
        ue_at = credentials.ue_addresses(topo)
        inter = credentials.hop_intermediary(topo, name, creds)
        running.sip_hooks.add(intermediary_hook(inter, ue_at, time.time))
        # and its link in the chain through the S-CSCFs (psk-hop-cscf): each hook re-protects
        # only what its own keys open
        chain = credentials.chain_intermediary(topo, name, creds)
        running.sip_hooks.add(intermediary_hook(chain, ue_at, time.time))
    return running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name, li=args.li)
    return await _build.serve(running, args.name, "P-CSCF")
