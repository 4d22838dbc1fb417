"""``imslab run anchor --name NAME``: a media anchor (IMS-AGW / media-path provider).

``engine = "imslab"`` (default): our relay (:class:`proxies.media_anchor.MediaAnchor`) behind the
JSON control server. ``engine = "rtpengine"``: Debian's rtpengine daemon on the element's address
and ng port, its CC-POI on a packet tap of the relay (:mod:`lab.rtpengine`; the tap needs root,
and runs only when the element's LI does).
"""

from __future__ import annotations

import argparse
import asyncio

from lab import topology
from lab.roles._build import add_li_argument
from lab.roles._li import attach_anchor
from lab.rtpengine import RelayTap, RtpengineDaemon
from lab.topology import Topology
from li.wiring import ElementLi
from proxies.e2ae import EdgeMedia
from proxies.media_anchor import AnchorControlServer, MediaAnchor
from proxies.rtpengine import NgClient

ROLE = "anchor"
HELP = "media anchor: RTP/RTCP relay controlled by the P-CSCF (JSON/UDP control, or rtpengine)"


class RunningAnchor:
    """A started anchor with its control server; ``close()`` stops both."""

    def __init__(
        self,
        anchor: MediaAnchor,
        server: AnchorControlServer,
        li: ElementLi | None = None,
        *,
        edge: EdgeMedia | None = None,
    ) -> None:
        self.anchor = anchor
        #: the e2ae SRTP termination; its ``content_hooks`` is where the CC-POI taps
        self.edge = edge
        self.server = server
        self.name = anchor.name
        self.li = li

    async def close(self) -> None:
        if self.li is not None:
            await self.li.close()
            self.li = None
        self.server.close()
        await self.anchor.close()


class RunningRtpengine:
    """rtpengine for an anchor element, with its relay tap and LI side when it has one."""

    def __init__(self, name: str, daemon: RtpengineDaemon) -> None:
        self.name = name
        self.daemon = daemon
        self.tap: RelayTap | None = None
        self.li: ElementLi | None = None

    async def close(self) -> None:
        if self.li is not None:
            await self.li.close()
            self.li = None
        if self.tap is not None:
            await self.tap.close()
            self.tap.ng.close()
            self.tap = None
        await self.daemon.stop()


async def start_rtpengine(topo: Topology, name: str, *, li: bool = False) -> RunningRtpengine:
    """rtpengine on the element's address; with ``li`` (and ``[li]`` listing it) the relay tap
    and its CC-POI, armed before rtpengine takes its first offer."""
    element = topo.element(name)
    running = RunningRtpengine(name, RtpengineDaemon(element))
    try:
        await running.daemon.start()
        if li and topo.li is not None and topo.li.operator_of(name) is not None:
            tap = RelayTap(element, NgClient((element.address, element.control_port)))
            running.tap = tap
            tap.start()  # PermissionError without CAP_NET_RAW: LI asked for, so refuse to run
            running.li = await attach_anchor(topo, name, tap)
    except BaseException:
        await running.close()
        raise
    return running


async def start(topo: Topology, name: str, *, li: bool = False) -> RunningAnchor | RunningRtpengine:
    """Start the anchor; with ``li`` also its X1 NE + CC-POI when ``[li]`` lists it."""
    element = topo.element(name)
    if element.role != ROLE:
        raise topology.TopologyError(f"{name} is a {element.role}, not an anchor")
    if element.engine == "rtpengine":
        return await start_rtpengine(topo, name, li=li)
    anchor = MediaAnchor(name, element.address, element.rtp_ports)
    # SRTP ending here for the UEs that ask for it (TS 33.328 e2ae), keyed by its P-CSCFs
    edge = EdgeMedia(
        name,
        allowed=frozenset(
            e.address for e in topo.elements.values() if e.role == "pcscf" and e.anchor == name
        ),
    )
    edge.install(anchor)
    server = AnchorControlServer(anchor)
    running = RunningAnchor(anchor, server, edge=edge)
    try:
        # the LI side first: every stored task is armed before the anchor relays media
        if li:
            running.li = await attach_anchor(topo, name, anchor, tap=edge.content_hooks)
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
    topo = topology.from_args(args)
    running = await start(topo, args.name, li=args.li)
    engine = topo.element(args.name).engine
    print(f"{args.name}: anchor ready" + (" (rtpengine)" if engine != "imslab" else ""), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()
    return 0
