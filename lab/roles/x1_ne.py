"""``imslab run x1-ne``: a network element's LI side alone (X1 server + X2/X3 exporter).

Provisioned over X1 (``imslab li ...``) like a real NE: destinations become exporter links,
tasks bind XIDs to them; state persists in ``--state`` so a restart keeps the tasks. With
``--heartbeat-sip`` it exports a synthetic SIP OPTIONS X2 PDU per active task every N
seconds, which is enough to see a full X1 -> X2 -> LEMF chain without an IMS network.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from li.x1.ne import NetworkElementLI
from li.x1.tlsutil import client_context, server_context
from li.x2x3.pdu import MatchedTargetIdentifier, PayloadDirection, correlation_id_for
from li.x2x3.spool import SpoolFullError

ROLE = "x1-ne"
HELP = "LI side of a network element: X1 server (mutual TLS) driving an X2/X3 exporter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ne-id", default="ne-1", help="neIdentifier the ADMF must address (default %(default)s)"
    )
    parser.add_argument("--x1-listen", default="127.0.0.1:8443", help="HOST:PORT for X1 HTTPS")
    parser.add_argument("--state", type=Path, required=True, help="state dir (SQLite + spool)")
    parser.add_argument(
        "--pki",
        type=Path,
        required=True,
        help="ca.pem and the NE's server.pem/.key (X1 server, and X2/X3 client with --x2x3-tls)",
    )
    parser.add_argument(
        "--x2x3-tls", action="store_true", help="deliver X2/X3 over mutual TLS (default TCP)"
    )
    parser.add_argument(
        "--heartbeat-sip",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="export a synthetic SIP OPTIONS X2 PDU per active task every SECONDS (0: off)",
    )


async def run(args: argparse.Namespace) -> int:
    host, _, port = args.x1_listen.rpartition(":")
    pki: Path = args.pki
    ne = NetworkElementLI(
        ne_id=args.ne_id,
        state_dir=args.state,
        x1_host=host.strip("[]"),
        x1_port=int(port),
        x1_tls=server_context(pki / "server.pem", pki / "server.key", pki / "ca.pem"),
        x2x3_tls=client_context(pki / "ca.pem", pki / "server.pem", pki / "server.key")
        if args.x2x3_tls
        else None,
    )
    await ne.start()
    print(f"{args.ne_id}: X1 on {host}:{ne.x1_port}, {len(ne.tasks)} task(s) restored", flush=True)
    try:
        n = 0
        while True:
            await asyncio.sleep(args.heartbeat_sip or 3600)
            if not args.heartbeat_sip:
                continue
            n += 1
            for xid, task in list(ne.tasks.items()):
                call_id = f"heartbeat-{n}@{args.ne_id}"
                msg = (
                    f"OPTIONS {task.targets[0].value} SIP/2.0\r\nCall-ID: {call_id}\r\n"
                    f"CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
                ).encode()
                try:
                    ne.exporter.send_x2(
                        xid=xid,
                        correlation_id=correlation_id_for(call_id),
                        payload=msg,
                        direction=PayloadDirection.TO_TARGET,
                        attributes=(MatchedTargetIdentifier(value=task.targets[0].value),),
                    )
                except (SpoolFullError, ValueError, KeyError) as exc:
                    print(f"{args.ne_id}: cannot export: {exc}", flush=True)
    finally:
        await ne.close()
    return 0
