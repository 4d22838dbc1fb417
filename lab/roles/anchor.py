"""``imslab run anchor --name NAME``: a media anchor (IMS-AGW / media-path provider)."""

from __future__ import annotations

import argparse
import asyncio

from lab import topology
from lab.roles._build import add_li_argument
from lab.roles._li import attach_anchor
from lab.topology import Topology
from li.wiring import ElementLi
from proxies.media_anchor import AnchorControlServer, MediaAnchor

ROLE = "anchor"
HELP = "media anchor: RTP/RTCP relay controlled by the P-CSCF (JSON/UDP control port)"


class RunningAnchor:
    """A started anchor with its control server; ``close()`` stops both."""

    def __init__(
        self, anchor: MediaAnchor, server: AnchorControlServer, li: ElementLi | None = None
    ) -> None:
        self.anchor = anchor
        self.server = server
        self.name = anchor.name
        self.li = li

    async def close(self) -> None:
        if self.li is not None:
            await self.li.close()
            self.li = None
        self.server.close()
        await self.anchor.close()


async def start(topo: Topology, name: str, *, li: bool = False) -> RunningAnchor:
    """Start the anchor; with ``li`` also its X1 NE + CC-POI when ``[li]`` lists it."""
    element = topo.element(name)
    if element.role != ROLE:
        raise topology.TopologyError(f"{name} is a {element.role}, not an anchor")
    anchor = MediaAnchor(name, element.address, element.rtp_ports)
    server = AnchorControlServer(anchor)
    running = RunningAnchor(anchor, server)
    try:
        # the LI side first: every stored task is armed before the anchor relays media
        if li:
            running.li = await attach_anchor(topo, name, anchor)
        await server.start(element.address, element.control_port)
    except BaseException:
        await running.close()
        raise
    return running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topology.add_arguments(parser)
    parser.add_argument("--name", required=True, help="element name in the topology")
    add_li_argument(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name, li=args.li)
    print(f"{args.name}: anchor ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()
    return 0
