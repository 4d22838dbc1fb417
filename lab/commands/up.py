"""``imslab up``: run the whole lab (every element of the topology) until Ctrl-C.

First it makes (or reuses) the lab's MIKEY credentials for every keying of :mod:`ue.registry`
(:mod:`lab.credentials`, under the lab state dir) and hands their directory to the elements
(``IMSLAB_LAB_CREDENTIALS``): the P-CSCFs run their hop-by-hop MIKEY function with it and each
operator's LI opens what that operator legitimately holds; ``imslab call`` and ``imslab run
ue`` load the same set.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from typing import Any

from lab import aio, credentials, topology
from lab.orchestrator import Lab


def register(sub: Any) -> None:
    parser = sub.add_parser("up", help="run every element of the lab until Ctrl-C")
    topology.add_arguments(parser)
    parser.add_argument(
        "--subprocess",
        action="store_true",
        help="one process per element (imslab run ROLE) instead of one process for all",
    )
    parser.add_argument(
        "--no-li",
        dest="li",
        action="store_false",
        help="leave out the topology's [li] (LEMF, X1 NEs, POIs)",
    )
    parser.set_defaults(func=_run)


def describe(topo: topology.Topology) -> str:
    lines = []
    for name, e in sorted(topo.elements.items(), key=lambda kv: kv[1].address):
        op = topo.operators[e.operator]
        extra = f" tls:{e.tls_port}" if e.tls else ""
        if e.role == "anchor":
            extra = f" control:{e.control_port} rtp:{e.rtp_ports[0]}-{e.rtp_ports[1]}"
            if e.engine != "imslab":
                extra += f" ({e.engine})"
        lines.append(f"  {name:<11} {e.role:<15} {e.address:<13} {op.domain:<14}{extra}")
    if topo.li is not None:
        li = topo.li
        lemf = li.lemf
        lines.append(
            f"  {lemf.name:<11} {'lemf':<15} {lemf.address:<13} {'':<14} "
            f"x2x3:{lemf.port}/{li.delivery} out:{li.lemf_out()}"
        )
        for lio in li.operators.values():
            lines.append(
                f"  LI {lio.operator:<8} X1 on {', '.join(lio.elements)} (port {lio.x1_port}), "
                f"PKI {li.pki_dir(lio.operator)}"
            )
    for name, u in sorted(topo.ues.items()):
        lines.append(
            f"  UE {name:<8} {u.subscriber:<20} via {u.pcscf} ({u.transport}) at {u.address}"
        )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    topo = topology.from_args(args)
    creds = credentials.ensure(topo)
    os.environ[credentials.ENV] = str(creds.path)  # the elements (and subprocesses) inherit it

    async def main() -> int:
        mode = "subprocess" if args.subprocess else "inprocess"
        if not args.li:
            topo_shown = dataclasses.replace(topo, li=None)
        else:
            topo_shown = topo
        async with Lab(topo, mode=mode, li=args.li):
            print(f"imslab up ({mode}): {len(topo.elements)} elements\n{describe(topo_shown)}")
            print(f"  MIKEY credentials ({', '.join(creds.names)}): {creds.path}")
            print("ready; place calls with `imslab call alice bob`; Ctrl-C stops", flush=True)
            await asyncio.Event().wait()
        return 0

    try:
        return aio.run(main)
    except asyncio.CancelledError:
        return 0
