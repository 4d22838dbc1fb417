"""``imslab run lemf --listen HOST:PORT --out DIR [--tls-dir PKI]``: the LEMF / mediation.

Receives X2/X3 from any number of POIs (TCP, or TLS with mutual certificates when a PKI is
given) and writes the intercept output tree under DIR (see docs/li-interfaces.md).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

from li.lemf.mikeykeys import mikey_psk_policy
from li.lemf.receiver import LemfServer
from li.x1.tlsutil import server_context

ROLE = "lemf"
HELP = "LEMF: receive X2/X3 (TCP or mutual TLS) and write iri.jsonl, pcaps, WAV, summaries"


def split_hostport(value: str, default_port: int = 0) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host.strip("[]"), int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default="127.0.0.1:50100", help="HOST:PORT (default %(default)s)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory (created 0700)")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        help="PKI directory (ca.pem, server.pem, server.key as made by `imslab li pki`): "
        "TLS with client certificates required; without it plain TCP (tshark-decodable)",
    )
    parser.add_argument("--tls-cert", type=Path, help="server certificate (overrides --tls-dir)")
    parser.add_argument("--tls-key", type=Path, help="server private key")
    parser.add_argument("--tls-ca", type=Path, help="CA that issued the POIs' certificates")
    parser.add_argument(
        "--mikey-psk",
        action="append",
        default=[],
        metavar="[XID=]HEX",
        help="MIKEY PSK the LEMF may use to open key-mgmt in intercepted SDP (per task with "
        "XID=, else for every task); repeatable",
    )


def tls_from_args(args: argparse.Namespace) -> ssl.SSLContext | None:
    cert, key, ca = args.tls_cert, args.tls_key, args.tls_ca
    if args.tls_dir is not None:
        cert = cert or args.tls_dir / "server.pem"
        key = key or args.tls_dir / "server.key"
        ca = ca or args.tls_dir / "ca.pem"
    if cert is None:
        return None
    if key is None or ca is None:
        raise SystemExit("--tls-cert needs --tls-key and --tls-ca")
    return server_context(cert, key, ca)


async def run(args: argparse.Namespace) -> int:
    host, port = split_hostport(args.listen, 50100)
    ctx = tls_from_args(args)
    default_policy = None
    per_task = {}
    for item in args.mikey_psk:
        xid, sep, hexkey = item.rpartition("=")
        policy = mikey_psk_policy(bytes.fromhex(hexkey))
        if sep:
            per_task[xid] = policy
        else:
            default_policy = policy
    lemf = LemfServer(
        args.out,
        host=host,
        port=port,
        ssl=ctx,
        key_policy=default_policy,
        task_key_policies=per_task,
    )
    await lemf.start()
    mode = "TLS (mutual)" if ctx is not None else "TCP"
    print(f"lemf: listening on {host}:{lemf.port} ({mode}), writing to {args.out}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await lemf.close()
        if lemf.mediation is not None:
            s = lemf.mediation.stats
            print(
                f"lemf: {s.pdus} PDUs ({s.x2} X2, {s.x3} X3), {s.calls} calls, "
                f"{s.duplicates} duplicates dropped, {s.gaps} sequence gaps",
                flush=True,
            )
    return 0
