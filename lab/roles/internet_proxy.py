"""``imslab run internet_proxy --name NAME``: a plain SIP registrar/proxy for Internet users."""

from __future__ import annotations

import argparse

from lab import topology
from lab.roles import _build
from lab.topology import Topology

ROLE = "internet_proxy"
HELP = "Internet SIP proxy: registrar + proxy for non-IMS users (no IMS headers, own trust)"


async def start(topo: Topology, name: str) -> _build.RunningProxy:
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not an {ROLE}")
    server = _build.build_home_server(topo, name)
    await server.start()
    return _build.RunningProxy(server)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name)
    return await _build.serve(running, args.name, "Internet proxy")
