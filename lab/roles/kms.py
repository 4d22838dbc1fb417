"""``imslab run kms``: one home operator's KMS (MIKEY-SAKKE, MIKEY-TICKET) over HTTPS with mTLS.

Two ways to run it: ``--name kms-a`` -- a ``role = "kms"`` element of the topology, what
``imslab up`` starts (its address, port :data:`lab.topology.KMS_PORT`, the lab CA's certificate
for ``kms.<domain>``, MIKEY-TICKET on with its peers, the operator's LI function ``li.<domain>``
and ``provisioning`` as the privileged identities); or ``--operator a --pki DIR`` by hand, as
below.

The KMS core (:class:`proxies.kms.KmsCore`) is provisioned with the operator's subscribers
from the topology and its master secrets from the lab state (``<state>/kms/<domain>/
secrets.json``, made once, 0600 -- the same KMS ``imslab up`` provisioned the UEs' keys with);
peers with every other home operator's KMS. Its audit log is ``<state>/kms/<domain>/
audit.jsonl`` (0600). The TLS identities come from a PKI directory (``ca.pem``,
``server.pem``/``server.key``); clients present certificates of the same CA: a UE's CN is
its AoR, the provisioning agents' and the LI function's CNs are given here.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from lab import credentials, ticket_credentials, topology
from lab.roles._build import serve
from li.x1.tlsutil import server_context
from proxies.kms import PROVISIONING
from proxies.kms_https import KmsHttpsServer

ROLE = "kms"
HELP = (
    "a home operator's KMS: MIKEY-SAKKE keys (RFC 6509), MIKEY-TICKET (RFC 6043) and LI "
    "recovery over mTLS"
)


class RunningKms:
    """A started KMS element; ``close()`` stops it."""

    def __init__(self, name: str, server: KmsHttpsServer) -> None:
        self.name = name
        self.server = server

    async def close(self) -> None:
        await self.server.close()


async def start(topo: topology.Topology, name: str) -> RunningKms:
    """Start the KMS element ``name`` of the topology (in-process or ``run kms --name``)."""
    element = topo.element(name)
    if element.role != ROLE:
        raise topology.TopologyError(f"{name} is a {element.role}, not a kms")
    domain = topo.operators[element.operator].domain
    if domain not in ticket_credentials.kms_elements(topo):
        raise topology.TopologyError(f"{name}: operator {element.operator} has no subscribers")
    server = KmsHttpsServer(
        lambda: credentials.kms_cores(topo)[domain],  # built on the first MIKEY-SAKKE request
        ssl_context=ticket_credentials.server_context(topo, element),
        audit_path=credentials.kms_dir(topo, domain) / "audit.jsonl",
        host=element.address,
        port=topology.KMS_PORT,
        provisioning=[PROVISIONING],
        li=[ticket_credentials.li_identity(domain)],
        tickets=ticket_credentials.service(topo, domain),
        peers=ticket_credentials.peer_clients(topo, domain),
    )
    await server.start()
    return RunningKms(name, server)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topology.add_arguments(parser)
    parser.add_argument("--name", help="the KMS element of the topology (what `imslab up` runs)")
    parser.add_argument("--operator", help="the home operator (topology name), with --pki")
    parser.add_argument("--listen", default="127.0.0.1:8444", help="HOST:PORT for HTTPS")
    parser.add_argument("--pki", type=Path, help="ca.pem, server.pem, server.key")
    parser.add_argument("--no-li", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--provisioning", action="append", default=[], metavar="CN", help="provisioning agent CN"
    )
    parser.add_argument(
        "--li", action="append", default=[], metavar="CN", help="the operator's LI function CN"
    )


async def run(args: argparse.Namespace) -> int:
    topo = topology.from_args(args)
    if args.name is not None:
        running = await start(topo, args.name)
        return await serve(running, args.name, f"KMS on port {running.server.port}")
    if args.operator is None or args.pki is None:
        print("imslab run kms: give --name, or --operator and --pki", flush=True)
        return 2
    if args.operator not in topo.operators:
        print(f"imslab run kms: unknown operator {args.operator!r}", flush=True)
        return 2
    domain = topo.operators[args.operator].domain
    cores = credentials.kms_cores(topo)
    if domain not in cores:
        print(f"imslab run kms: operator {args.operator} runs no IMS home network", flush=True)
        return 2
    host, _, port = args.listen.rpartition(":")
    pki: Path = args.pki
    server = KmsHttpsServer(
        cores[domain],
        ssl_context=server_context(pki / "server.pem", pki / "server.key", pki / "ca.pem"),
        audit_path=credentials.kms_dir(topo, domain) / "audit.jsonl",
        host=host.strip("[]"),
        port=int(port),
        provisioning=args.provisioning,
        li=args.li,
    )
    async with server:
        n = len(cores[domain].subscribers)
        print(f"kms {domain}: HTTPS on {host}:{server.port}, {n} subscriber(s)", flush=True)
        await asyncio.Event().wait()
    return 0
