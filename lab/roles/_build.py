"""Build network elements from the topology (shared by the role modules and the orchestrator)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from pathlib import Path
from typing import Any

from ims.sip.proxy import Peer
from ims.sip.registrar import BindingStore
from ims.sip.trust import TrustPolicy
from ims.store import Store, open_store
from ims.store.mapping import StoredMap
from lab import tls, topology
from lab.roles._li import attach_proxy
from lab.topology import Topology
from li.wiring import ElementLi
from proxies.media_anchor import AnchorClient, AnchorControl
from proxies.pcscf import Pcscf
from proxies.rtpengine import NgClient, RtpengineAnchor
from proxies.scscf import DomainPeer, HomeServer, subscriber_records
from proxies.subscribers import SubscriberDb

IMS_OPERATOR_ROLES = ("pcscf", "scscf")


def pki_dir(topo: Topology) -> Path:
    return tls.default_dir()


def _sip_peer(e: topology.Element) -> tuple[str, int]:
    # core elements send SIP from their listening socket (UDP): address *and* port
    return (e.address, e.sip_port)


def trust_policy(topo: Topology, name: str) -> TrustPolicy:
    """Who ``name`` trusts, generated from the topology (docs/security.md).

    The IMS Trust Domain (RFC 3325) is every P-CSCF and S-CSCF of the IMS operators; the
    Internet proxy is a *known* peer of the S-CSCFs (it may route in-dialog requests along a
    route set they are on) but never trusted; the Internet proxy itself trusts nobody and knows
    the S-CSCFs it peers with. An element never trusts itself by address (its own port is not a
    peer)."""
    me = topo.element(name)
    ims = [e for e in topo.elements.values() if e.role in IMS_OPERATOR_ROLES and e.name != name]
    if me.role == "internet_proxy":
        return TrustPolicy.of(known=[_sip_peer(e) for e in ims if e.role == "scscf"])
    inet = [e for e in topo.elements.values() if e.role == "internet_proxy"]
    return TrustPolicy.of(
        trusted=[_sip_peer(e) for e in ims],
        known=[_sip_peer(e) for e in inet] if me.role == "scscf" else [],
    )


def lab_networks(topo: Topology) -> list[str]:
    """Where the lab's SIP elements may send: the /24 of every element and UE address (all of
    127.0.0.0/8 when the lab runs on loopback, where SIPp and baresip take addresses of their
    own). An element tricked into relaying still cannot reach anything outside the lab."""
    addresses = [e.address for e in topo.elements.values()] + [u.address for u in topo.ues.values()]
    nets = {str(ipaddress.ip_network(f"{a}/24", strict=False)) for a in addresses}
    if any(ipaddress.ip_address(a).is_loopback for a in addresses):
        nets.add("127.0.0.0/8")
    return sorted(nets)


def open_element_store(topo: Topology) -> Store:
    """The lab's shared store (``[store]`` in lab.toml), one connection per element."""
    return open_store(topo.store.resolved_url(topo.name))


def build_home_server(topo: Topology, name: str) -> HomeServer:
    e = topo.element(name)
    domain = topo.domain_of(name)
    ims = e.role == "scscf"
    peers = {}
    for d, peer_name in topo.peering.items():
        if d == domain:
            continue
        p = topo.element(peer_name)
        peers[d] = DomainPeer(
            hop=Peer(transport="udp", host=p.address, port=p.sip_port),
            trusted=p.role == "scscf",
        )
    server = HomeServer(
        name,
        e.address,
        domain=domain,
        subscribers=SubscriberDb(subscriber_records(topo.subscribers_of(domain))),
        peers=peers,
        tel_domains=dict(topo.tel),
        trust=trust_policy(topo, name),
        ims=ims,
        sip_port=e.sip_port,
        allowed_networks=lab_networks(topo),
        store=open_element_store(topo),
    )
    return server


def build_pcscf(topo: Topology, name: str, *, pki: Path | None = None) -> Pcscf:
    e = topo.element(name)
    home = {}
    for d, server in topo.peering.items():
        s = topo.element(server)
        if s.role != "scscf":
            continue  # a P-CSCF registers UEs only with an IMS home network's S-CSCF
        home[d] = Peer(transport="udp", host=s.address, port=s.sip_port)
    anchor: AnchorControl | None = None
    if e.anchor is not None:
        a = topo.element(e.anchor)
        ng = (a.address, a.control_port)
        anchor = (
            RtpengineAnchor(NgClient(ng, local_address=e.address))
            if a.engine == "rtpengine"
            else AnchorClient(ng, local_address=e.address)
        )
    ssl_context = None
    if e.tls:
        ssl_context = tls.server_context(pki or pki_dir(topo), name, e.address)
    pcscf = Pcscf(
        name,
        e.address,
        domain=topo.domain_of(name),
        home_servers=home,
        trust=trust_policy(topo, name),
        anchor=anchor,
        sip_port=e.sip_port,
        tls_port=e.tls_port if e.tls else None,
        ssl_context=ssl_context,
        allowed_networks=lab_networks(topo),
        store=open_element_store(topo),
    )
    return pcscf


class RunningProxy:
    """A started proxy; ``close()`` stops it (its LI side, when it has one, and its anchor
    client)."""

    def __init__(self, proxy: Any, li: ElementLi | None = None) -> None:
        self.proxy = proxy
        self.name = proxy.name
        self.sip_hooks = proxy.sip_hooks
        self.li = li

    async def close(self) -> None:
        if self.li is not None:
            await self.li.close()
            self.li = None
        anchor = getattr(self.proxy, "anchor", None)
        if anchor is not None and hasattr(anchor, "close"):
            anchor.close()
        await self.proxy.close()
        bindings = getattr(self.proxy, "store", None)
        if isinstance(bindings, BindingStore):
            bindings.store.close()
        access = getattr(self.proxy, "by_flow", None)
        if isinstance(access, StoredMap):
            access.store.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topology.add_arguments(parser)
    parser.add_argument("--name", required=True, help="element name in the topology")
    add_li_argument(parser)


def add_li_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-li",
        dest="li",
        action="store_false",
        help="do not start the element's X1 NE and POIs even when the topology's [li] lists it",
    )


async def start_proxy(topo: Topology, name: str, proxy: Any, *, li: bool) -> RunningProxy:
    """Start ``proxy`` and, when ``li`` and the topology's ``[li]`` lists it, its LI side --
    the LI side first: every stored task is armed before the proxy takes its first request."""
    running = RunningProxy(proxy)
    try:
        if li:
            running.li = await attach_proxy(topo, name, proxy)
        await proxy.start()
    except BaseException:
        await running.close()
        raise
    return running


async def serve(running: Any, name: str, what: str) -> int:
    print(f"{name}: {what} ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()
    return 0
