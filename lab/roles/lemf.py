"""``imslab run lemf --listen HOST:PORT --out DIR (--tls-dir PKI | --plain-tcp)``: the LEMF.

Receives X2/X3 from any number of POIs over TLS with mutual certificates (each POI's
certificate CN is the NFID it may use), or over plain TCP only when asked for explicitly
(``--plain-tcp``: tshark-decodable, but anyone who reaches the port can send), and writes the
intercept output tree under DIR (see docs/li-interfaces.md).

``imslab run lemf [--config lab.toml] --name lemf`` takes all of that from the topology's
``[li]`` (address, port, output dir; ``delivery = "tls"`` with the lab's X2/X3 PKI, or
``delivery = "tcp"``, which is the topology's explicit permission for plain TCP); explicit
``--listen/--out/--tls-*`` still override it.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

from ims.store import open_store
from lab import topology
from lab.errors import UserError
from lab.topology import Topology
from li.lemf.mikeykeys import mikey_psk_policy
from li.lemf.receiver import LemfServer
from li.x1.tlsutil import server_context

ROLE = "lemf"
HELP = "LEMF: receive X2/X3 (mutual TLS, or --plain-tcp) and write iri.jsonl, pcaps, WAV, summaries"


def split_hostport(value: str, default_port: int = 0) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host.strip("[]"), int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topology.add_arguments(parser)
    parser.add_argument(
        "--name", default=None, help="the topology's LEMF ([li.lemf] name): settings from there"
    )
    parser.add_argument("--listen", default=None, help="HOST:PORT (default 127.0.0.1:50100)")
    parser.add_argument("--out", type=Path, help="output directory (created 0700)")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        help="PKI directory (ca.pem, server.pem, server.key as made by `imslab li pki`): "
        "TLS with client certificates required",
    )
    parser.add_argument(
        "--plain-tcp",
        action="store_true",
        help="accept X2/X3 over plain TCP (tshark-decodable; unauthenticated: anyone who "
        "reaches the port can send). Without it the LEMF needs a TLS PKI",
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
    parser.add_argument(
        "--liid",
        action="append",
        default=[],
        metavar="XID=LIID",
        help="lawful interception identifier of a task in the HI2 records (1..25 characters; "
        "default: the XID's first 25 hex digits); repeatable",
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


class RunningLemf:
    def __init__(self, lemf: LemfServer) -> None:
        self.lemf = lemf
        self.name = "lemf"

    async def close(self) -> None:
        await self.lemf.close()


async def start(topo: Topology, name: str) -> RunningLemf:
    """In-process: the topology's LEMF (what ``imslab up`` runs)."""
    args = argparse.Namespace(
        config=None,
        net_offset=0,
        subnet=None,
        name=name,
        listen=None,
        out=None,
        tls_dir=None,
        tls_cert=None,
        tls_key=None,
        tls_ca=None,
        mikey_psk=[],
        liid=[],
        plain_tcp=False,
    )
    lemf = await _start(args, topo)
    running = RunningLemf(lemf)
    running.name = name
    return running


async def _start(args: argparse.Namespace, topo: Topology | None = None) -> LemfServer:
    if topo is None and args.name is not None:
        topo = topology.from_args(args)
    if topo is not None:
        # settings from the topology's [li]; explicit options still win
        li = topo.li
        if li is None or li.lemf.name != args.name:
            raise topology.TopologyError(f"no LEMF named {args.name!r} in the topology's [li]")
        args.listen = args.listen or f"{li.lemf.address}:{li.lemf.port}"
        args.out = args.out or li.lemf_out()
        if li.delivery == "tls" and args.tls_dir is None and args.tls_cert is None:
            from lab.roles._li import delivery_pki

            args.tls_dir = delivery_pki(topo).ca.parent
        elif li.delivery == "tcp":
            args.plain_tcp = True  # the topology says so explicitly
    if args.out is None:
        raise SystemExit("imslab run lemf: give --out DIR (or --name with a topology [li])")
    host, port = split_hostport(args.listen or "127.0.0.1:50100", 50100)
    ctx = tls_from_args(args)
    if ctx is None and not args.plain_tcp:
        raise SystemExit(
            "imslab run lemf: give a PKI (--tls-dir, or --tls-cert/--tls-key/--tls-ca) for "
            "mutual TLS, or --plain-tcp to accept unauthenticated X2/X3"
        )
    default_policy = None
    per_task = {}
    for item in args.mikey_psk:
        xid, sep, hexkey = item.rpartition("=")
        policy = mikey_psk_policy(bytes.fromhex(hexkey))
        if sep:
            per_task[xid] = policy
        else:
            default_policy = policy
    liids = {}
    for item in args.liid:
        xid, sep, liid = item.partition("=")
        if not sep or not 1 <= len(liid.encode()) <= 25:
            raise UserError(f"--liid {item!r}: give XID=LIID", hint="a LIID has 1 to 25 characters")
        liids[xid] = liid
    lemf = LemfServer(
        args.out,
        host=host,
        port=port,
        ssl=ctx,
        key_policy=default_policy,
        task_key_policies=per_task,
        liids=liids,
        plain_tcp=ctx is None,
        # [store] naming a shared backend (Redis, or a url) holds the delivery state too
        delivery_store=None
        if topo is None or (topo.store.url is None and topo.store.backend == "sqlite")
        else open_store(topo.store.resolved_url(topo.name)),
    )
    await lemf.start()
    mode = "TLS (mutual)" if ctx is not None else "TCP"
    print(
        f"lemf: listening on {host}:{lemf.port} ({mode}), writing to {args.out}; ready",
        flush=True,
    )
    return lemf


async def run(args: argparse.Namespace) -> int:
    lemf = await _start(args)
    try:
        await asyncio.Event().wait()
    finally:
        await lemf.close()
        if lemf.mediation is not None:
            s = lemf.mediation.stats
            print(
                f"lemf: {s.pdus} PDUs ({s.x2} X2, {s.x3} X3), {s.calls} calls, "
                f"{s.duplicates} duplicates dropped, {s.gaps} sequence gaps, "
                f"lag behind the POIs {s.lag_s:.3f} s (at most {s.max_lag_s:.3f} s)",
                flush=True,
            )
    return 0
