"""``imslab run sip-proxy``: an RFC 3261 stateful proxy + registrar until stopped.

    imslab run sip-proxy --listen 127.0.0.1:5070 [--domain example.com] [--users users.toml]
                         [--transport udp,tcp] [--no-record-route] [--host NAME=IP ...]

It answers OPTIONS sent to itself with 200, REGISTERs for its domains (digest-authenticated
when ``--users`` is given), forwards requests for registered users to their contacts (forking
to all of them) and anything else to its Request-URI, Record-Routing dialog-creating requests.

``users.toml``::

    realm = "example.com"     # optional (default: the first --domain, else the listen host)
    [users]
    alice = "secret"
    bob = "secret"

The first line printed (``sip-proxy ready udp:HOST:PORT ...``) tells a supervisor it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tomllib
from pathlib import Path

from ims.log import get_logger
from ims.sip.aio.proxy import ProxyServer
from ims.sip.proxy.core import ProxyConfig, ProxyCore
from ims.sip.proxy.location import LocationRouter
from ims.sip.proxy.overload import OverloadConfig
from ims.sip.registrar import BindingStore, Registrar, digest_authenticator
from ims.sip.transport import Peer

ROLE = "sip-proxy"
HELP = "RFC 3261 stateful proxy + registrar (Record-Route, forking, digest REGISTER)"

_log = get_logger("lab.roles.sip_proxy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default="127.0.0.1:5070", help="HOST:PORT (default %(default)s)"
    )
    parser.add_argument("--domain", action="append", default=[], help="domain served (repeatable)")
    parser.add_argument("--users", type=Path, help="users.toml: realm and [users] name = password")
    parser.add_argument("--transport", default="udp", help="comma list: udp[,tcp] (default udp)")
    parser.add_argument("--no-record-route", action="store_true", help="do not Record-Route")
    parser.add_argument(
        "--overload",
        action="store_true",
        help="shed new requests with 503 + Retry-After when the queue delay stays high",
    )
    parser.add_argument("--name", default="sip-proxy", help="element name in hooks and logs")
    parser.add_argument(
        "--host", action="append", default=[], metavar="NAME=IP", help="static host entry"
    )
    parser.add_argument(
        "--allow-net",
        action="append",
        metavar="CIDR",
        help="only forward to next hops in these networks (repeatable; default: loopback "
        "127.0.0.0/8 and ::1 — the lab never talks off the machine; 0.0.0.0/0 allows all)",
    )
    parser.add_argument("--min-expires", type=int, default=60, help="registrar Min-Expires")
    parser.add_argument(
        "--auth-algorithms",
        default="SHA-256,MD5",
        help="digest algorithms, preferred first",
    )


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--listen wants HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def load_users(path: Path) -> tuple[str | None, dict[str, str]]:
    data = tomllib.loads(path.read_text())
    users = data.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise SystemExit(f"{path}: [users] must map names to password strings")
    realm = data.get("realm")
    return (str(realm) if realm else None), {str(k): str(v) for k, v in users.items()}


def build(args: argparse.Namespace) -> ProxyServer:
    host, port = parse_listen(args.listen)
    transports = [t.strip().lower() for t in args.transport.split(",") if t.strip()]
    local = tuple(Peer(transport=t, host=host, port=port) for t in transports)
    domains = frozenset(d.lower() for d in args.domain)
    config = ProxyConfig(
        name=args.name,
        local=local,
        domains=domains,
        record_route=not args.no_record_route,
        overload=OverloadConfig() if getattr(args, "overload", False) else None,
    )
    authenticate = None
    known = None
    if args.users is not None:
        realm, users = load_users(args.users)
        realm = realm or (sorted(domains)[0] if domains else host)
        algorithms = [a.strip() for a in args.auth_algorithms.split(",") if a.strip()]
        authenticate = digest_authenticator(realm, users, algorithms)
        names = set(users)

        def known(aor: str) -> bool:
            return aor.removeprefix("sip:").split("@", 1)[0] in names

    registrar = Registrar(
        BindingStore(min_expires=args.min_expires), authenticate=authenticate, known_aors=known
    )
    router = LocationRouter(registrar, is_known_user=known)
    hosts = dict(h.split("=", 1) for h in args.host if "=" in h)
    allowed = args.allow_net or ["127.0.0.0/8", "::1/128"]
    if any(n in ("0.0.0.0/0", "::/0") for n in allowed):
        allowed = ["0.0.0.0/0", "::/0"]
    return ProxyServer(ProxyCore(config, router), hosts=hosts, allowed_networks=allowed)


def tune_gc() -> None:
    """A proxy keeps tens of thousands of live transactions (timers D, J, K, L hold them for
    up to 32 s): full cyclic-GC passes over them stall the loop long enough for Timer A
    retransmissions to pile up. Freeze what start-up allocated and collect young objects
    less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def run(args: argparse.Namespace) -> int:
    tune_gc()
    server = build(args)
    host, port = parse_listen(args.listen)
    bound = []
    for peer in server.core.config.local:
        try:
            h, p = await server.listen(peer.transport, host, port)
        except (OSError, ValueError) as exc:
            print(f"{ROLE}: cannot listen on {peer.transport}:{host}:{port}: {exc}", flush=True)
            server.close()
            return 2
        bound.append(f"{peer.transport}:{h}:{p}")
    print(f"{ROLE} ready {' '.join(bound)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
    return 0
