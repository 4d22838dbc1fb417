"""``imslab run kms``: one home operator's MIKEY-SAKKE KMS over HTTPS with mutual TLS.

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

from lab import credentials, topology
from li.x1.tlsutil import server_context
from proxies.kms_https import KmsHttpsServer

ROLE = "kms"
HELP = "a home operator's MIKEY-SAKKE KMS (RFC 6509): key issuance and LI recovery over mTLS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topology.add_arguments(parser)
    parser.add_argument("--operator", required=True, help="the home operator (topology name)")
    parser.add_argument("--listen", default="127.0.0.1:8444", help="HOST:PORT for HTTPS")
    parser.add_argument("--pki", type=Path, required=True, help="ca.pem, server.pem, server.key")
    parser.add_argument(
        "--provisioning", action="append", default=[], metavar="CN", help="provisioning agent CN"
    )
    parser.add_argument(
        "--li", action="append", default=[], metavar="CN", help="the operator's LI function CN"
    )


async def run(args: argparse.Namespace) -> int:
    topo = topology.from_args(args)
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
