"""``imslab sip-ping HOST:PORT``: send SIP OPTIONS through a real SipEndpoint, print the answers.

A liveness probe for any SIP element of the lab (proxy, P-CSCF, UE), and a small end-to-end
check of the transaction layer: retransmissions (UDP), timer F, TCP/TLS connection reuse.
Exit 0 when every OPTIONS got a final response, 1 otherwise.

    imslab sip-ping 127.0.0.1:5070
    imslab sip-ping 127.0.0.1:5070 --transport tcp --count 3 --json
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
from typing import Any

from ims.sip.aio import SipEndpoint, SipTimeoutError, SipTransportError
from ims.sip.message import Request, new_call_id, new_tag
from ims.sip.transaction import TimerConfig


def register(sub: Any) -> None:
    p = sub.add_parser("sip-ping", help="send SIP OPTIONS to HOST:PORT and print the responses")
    p.add_argument("target", help="HOST:PORT of the SIP element")
    p.add_argument(
        "--transport",
        default="udp",
        choices=["udp", "tcp", "tls"],
        help="SIP transport (default %(default)s)",
    )
    p.add_argument("--count", type=int, default=1, help="number of OPTIONS (default 1)")
    p.add_argument(
        "--listen", default="127.0.0.1", help="local address to bind (default 127.0.0.1)"
    )
    p.add_argument("--t1", type=float, default=0.5, help="RFC 3261 T1 in seconds (default 0.5)")
    p.add_argument("--insecure", action="store_true", help="TLS: do not verify the certificate")
    p.add_argument("--cafile", help="TLS: CA certificate file to verify the server with")
    p.add_argument("--json", action="store_true", help="one JSON line per OPTIONS")
    p.set_defaults(func=run)


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"target must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def ping(args: argparse.Namespace) -> int:
    target = _target(args.target)
    client_ssl = None
    if args.transport == "tls":
        client_ssl = ssl.create_default_context(cafile=args.cafile)
        if args.insecure:
            client_ssl.check_hostname = False
            client_ssl.verify_mode = ssl.CERT_NONE
    t2 = max(4.0, args.t1)
    ep = SipEndpoint(timers=TimerConfig(t1=args.t1, t2=t2), name="sip-ping", client_ssl=client_ssl)
    failures = 0
    try:
        await ep.listen("udp", args.listen, 0)
        if args.transport != "udp":
            await ep.listen("tcp", args.listen, 0)
        local = ep.local_address("udp")
        for i in range(args.count):
            req = Request(
                "OPTIONS",
                f"sip:{target[0]}:{target[1]}",
                [
                    ("From", f"<sip:ping@{local[0]}>;tag={new_tag()}"),
                    ("To", f"<sip:{target[0]}:{target[1]}>"),
                    ("Call-ID", new_call_id(local[0])),
                    ("CSeq", f"{i + 1} OPTIONS"),
                    ("Accept", "application/sdp"),
                ],
            )
            t0 = time.perf_counter()
            result: dict[str, Any] = {"seq": i + 1, "target": args.target}
            try:
                resp = await ep.request(req, target, args.transport)
                result.update(status=resp.status, reason=resp.reason)
                result["server"] = resp.headers.get("Server") or resp.headers.get("User-Agent")
                if resp.status >= 300:
                    failures += 1
            except (SipTimeoutError, SipTransportError) as exc:
                failures += 1
                result.update(status=None, error=f"{type(exc).__name__}: {exc}")
            result["ms"] = round((time.perf_counter() - t0) * 1000, 2)
            if args.json:
                print(json.dumps(result))
            elif result.get("status") is not None:
                print(
                    f"{args.target} seq={i + 1} {result['status']} {result['reason']} "
                    f"time={result['ms']} ms"
                )
            else:
                print(f"{args.target} seq={i + 1} {result['error']} after {result['ms']} ms")
    finally:
        await ep.close()
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    from lab.aio import run as aio_run

    return aio_run(lambda: ping(args))
