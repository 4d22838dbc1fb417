"""``imslab run pcscf --name NAME``: a P-CSCF (UE first hop, home or visited)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from lab import credentials, topology
from lab.mikey_hop import intermediary_hook
from lab.roles import _build
from lab.topology import Topology
from proxies.e2ae import EdgeSignalling, anchor_control, signalling_hook

ROLE = "pcscf"
HELP = "P-CSCF: first hop of the UEs (Path, Service-Route, P-Asserted-Identity, media anchoring)"


async def start(topo: Topology, name: str, *, li: bool = False) -> _build.RunningProxy:
    """Start the element; with ``li`` also its X1 NE + IRI-POI when ``[li]`` lists it."""
    if topo.element(name).role != ROLE:
        raise topology.TopologyError(f"{name} is not a {ROLE}")
    proxy = _build.build_pcscf(topo, name)
    if proxy.anchor is not None:  # SDES to the access edge (TS 33.328 e2ae), when a UE asks
        edge_hook(proxy)
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


def edge_hook(proxy: Any) -> None:
    """The e2ae function's SIP half, ahead of any LI hook (the IRI-POI reports the SDP as it
    leaves, with the anchor's keys in it)."""
    proxy.sip_hooks.add(
        signalling_hook(
            EdgeSignalling(),
            # a registered UE: its flow (UDP), or its contact (a response over TLS names the
            # UE's Via sent-by, not the connection's port)
            is_access=lambda peer: (
                peer in proxy.by_flow or f"{peer[0]}:{peer[1]}" in proxy.by_contact
            ),
            control=anchor_control(proxy.anchor),
        )
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _build.add_arguments(parser)


async def run(args: argparse.Namespace) -> int:
    running = await start(topology.from_args(args), args.name, li=args.li)
    return await _build.serve(running, args.name, "P-CSCF")
