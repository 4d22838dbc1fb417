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

``--workers N`` (UDP): N worker processes share the listen address with ``SO_REUSEPORT`` (the
kernel hands each source address and port to one worker, so a transaction's retransmissions,
its CANCEL and its ACK reach the worker holding it); each worker forwards from a port of its
own, named in its Via (``ProxyConfig.sent_by``), so responses come back to it too; the
registrar's bindings live in one shared store (``--store URL``, default an SQLite file in a
private temporary directory for the run: ``ims.store``), and the digest nonce secret is common
to all workers (a challenge from one is answered to another). This process supervises them:
it prints the ready line when every worker listens and stops them when it is stopped or when
one of them dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from ims.log import get_logger
from ims.sip.aio.proxy import ProxyServer
from ims.sip.proxy.core import ProxyConfig, ProxyCore
from ims.sip.proxy.location import LocationRouter
from ims.sip.proxy.overload import OverloadConfig
from ims.sip.registrar import BindingStore, Registrar, digest_authenticator
from ims.sip.transport import Peer
from ims.store import open_store

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
        "--workers", type=int, default=1, help="worker processes sharing the address (UDP)"
    )
    parser.add_argument(
        "--store",
        help="registrar bindings store URL (sqlite:///abs/path.db, redis://..., unix://...; "
        "default: in memory, or a private SQLite file with --workers > 1)",
    )
    # internal: set by the supervisor for its workers
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
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


#: the digest nonce secret a supervisor hands its workers (environment, not argv: ps shows argv)
SECRET_ENV = "IMSLAB_SIP_PROXY_SECRET"


def build(args: argparse.Namespace, sender: tuple[str, int] | None = None) -> ProxyServer:
    """The proxy of ``args``; ``sender``: a worker's own UDP address (``ProxyConfig.sent_by``)."""
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
        sent_by=() if sender is None else (Peer(transport="udp", host=sender[0], port=sender[1]),),
    )
    authenticate = None
    known = None
    if args.users is not None:
        realm, users = load_users(args.users)
        realm = realm or (sorted(domains)[0] if domains else host)
        algorithms = [a.strip() for a in args.auth_algorithms.split(",") if a.strip()]
        shared = os.environ.get(SECRET_ENV)
        secret = bytes.fromhex(shared) if shared else None
        authenticate = digest_authenticator(realm, users, algorithms, secret=secret)
        names = set(users)

        def known(aor: str) -> bool:
            return aor.removeprefix("sip:").split("@", 1)[0] in names

    url = getattr(args, "store", None)
    store = None if url is None else open_store(url)
    registrar = Registrar(
        BindingStore(store, min_expires=args.min_expires),
        authenticate=authenticate,
        known_aors=known,
    )
    # a shared store keeps wall-clock expiry times (ims.store); the core's now is the loop's
    # monotonic clock, so the router adds the difference
    offset = 0.0 if store is None else time.time() - time.monotonic()
    router = LocationRouter(registrar, is_known_user=known, clock_offset=offset)
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
    if args.workers > 1:
        return await supervise(args)
    tune_gc()
    host, port = parse_listen(args.listen)
    own: socket.socket | None = None
    if args.worker:
        # the worker's own port, bound before the core is built: its Via names it
        own = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        own.bind((host, 0))
    server = build(args, None if own is None else own.getsockname()[:2])
    bound = []
    for peer in server.core.config.local:
        try:
            h, p = await server.listen(peer.transport, host, port, reuse_port=args.worker)
        except (OSError, ValueError) as exc:
            print(f"{ROLE}: cannot listen on {peer.transport}:{host}:{port}: {exc}", flush=True)
            server.close()
            return 2
        bound.append(f"{peer.transport}:{h}:{p}")
    if own is not None:
        await server.listen("udp", host, 0, sock=own)
    print(f"{ROLE} ready {' '.join(bound)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
    return 0


def worker_argv(args: argparse.Namespace, store: str) -> list[str]:
    """The command line of one worker: this one's options, one process, the shared store."""
    argv = ["run", ROLE, "--listen", args.listen, "--transport", args.transport]
    for d in args.domain:
        argv += ["--domain", d]
    for h in args.host:
        argv += ["--host", h]
    for n in args.allow_net or ():
        argv += ["--allow-net", n]
    if args.users is not None:
        argv += ["--users", str(args.users.resolve())]
    if args.no_record_route:
        argv.append("--no-record-route")
    if getattr(args, "overload", False):
        argv.append("--overload")
    argv += ["--name", args.name, "--min-expires", str(args.min_expires)]
    argv += ["--auth-algorithms", args.auth_algorithms, "--store", store, "--worker"]
    return argv


async def supervise(args: argparse.Namespace) -> int:
    """Start ``args.workers`` workers (see the module docstring), print the ready line when all
    listen, stop them all when cancelled or when one exits."""
    transports = {t.strip().lower() for t in args.transport.split(",") if t.strip()}
    if transports != {"udp"}:
        print(f"{ROLE}: --workers needs --transport udp (SO_REUSEPORT)", flush=True)
        return 2
    with contextlib.ExitStack() as stack:
        store = args.store
        if store is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sip-proxy-"))
            store = f"sqlite:///{tmp}/location.db"
        env = dict(os.environ)
        env[SECRET_ENV] = os.urandom(32).hex()
        root = str(Path(__file__).resolve().parents[2])  # the checkout holding lab/
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        procs: list[asyncio.subprocess.Process] = []
        try:
            for _ in range(args.workers):
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-c",
                        "import sys; from lab.cli import main; sys.exit(main())",
                        *worker_argv(args, store),
                        stdout=asyncio.subprocess.PIPE,
                        env=env,
                    )
                )
            bound = ""
            for proc in procs:
                assert proc.stdout is not None
                async with asyncio.timeout(30):
                    line = (await proc.stdout.readline()).decode(errors="replace").strip()
                if not line.startswith(f"{ROLE} ready"):
                    print(f"{ROLE}: a worker did not start: {line}", flush=True)
                    return 2
                bound = line.removeprefix(f"{ROLE} ready").strip()
            print(f"{ROLE} ready {bound} workers={len(procs)}", flush=True)
            drains = [asyncio.ensure_future(_relay(p)) for p in procs]  # a full pipe blocks
            stack.callback(lambda: [d.cancel() for d in drains])
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in procs],
                return_when=asyncio.FIRST_COMPLETED,
            )
            print(f"{ROLE}: a worker exited ({done.pop().result()}): stopping", flush=True)
            return 1
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())


async def _relay(proc: asyncio.subprocess.Process) -> None:
    """Pass a worker's further output on (its pipe must not fill up)."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()
