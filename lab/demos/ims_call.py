"""The IMS call demo: operator A's UE calls operator B's UE with SDES-SRTP through the network.

Starts the built-in lab (every element on its own loopback address), registers alice (operator
A) and bob (operator B) with digest authentication, places an SDES-SRTP call, plays a 440 Hz tone
one way and a 1000 Hz tone the other, checks both with the tone detector, and prints the path
the INVITE took (from the proxies' hook points), the media anchors that relayed the SRTP and the
keys' visibility: the ``a=crypto`` line crossed every proxy in the clear — the study's point
about SDES and lawful interception.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

from lab import topology
from lab.callflow import run_call
from lab.orchestrator import Lab
from proxies.hooks import MediaPacketEvent, SipMessageEvent
from proxies.media_anchor import AnchorClient

NAME = "ims"
HELP = "operator A calls operator B with SDES-SRTP through P-CSCFs, S-CSCFs and media anchors"
PRIORITY = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ims demo")
    group.add_argument("--config", default=None, help="topology TOML (default: built-in)")
    group.add_argument("--net-offset", type=int, default=0, help="shift the lab's addresses")
    group.add_argument("--subnet", default=None, help="run the lab inside one /24")
    group.add_argument("--duration", type=float, default=3.0, help="seconds of media")
    group.add_argument(
        "--subprocess", action="store_true", help="one process per element (imslab run ROLE)"
    )


def _step(n: int, text: str) -> None:
    print(f"[{n}/5] {text}", flush=True)


async def run(args: Any) -> bool:
    topo = topology.load(
        getattr(args, "config", None),
        net_offset=getattr(args, "net_offset", 0),
        subnet=getattr(args, "subnet", None),
    )
    duration = float(getattr(args, "duration", 3.0))
    mode = "subprocess" if getattr(args, "subprocess", False) else "inprocess"
    t0 = time.monotonic()
    _step(1, f"starting the lab ({len(topo.elements)} elements, {mode})")
    lab_cm = Lab(topo, mode=mode)
    try:
        await lab_cm.__aenter__()
    except (OSError, RuntimeError) as exc:
        print(f"      cannot start the lab: {exc}")
        print("      (is another lab running on these addresses? try --net-offset 40)")
        return False
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_exit(lab_cm.__aexit__)
        lab = lab_cm
        for name in lab.names:
            e = topo.elements[name]
            print(
                f"      {name:<11} {e.role:<15} {e.address}  ({topo.operators[e.operator].domain})"
            )
        seen: list[tuple[str, SipMessageEvent]] = []
        packets: dict[tuple[str, str], int] = {}
        crypto_seen: set[str] = set()

        def sip_hook(name: str) -> Any:
            def hook(ev: SipMessageEvent) -> None:
                seen.append((name, ev))
                if b"a=crypto:" in getattr(ev.message, "body", b""):
                    crypto_seen.add(name)

            return hook

        def media_hook(ev: MediaPacketEvent) -> None:
            key = (ev.element, ev.direction.value)
            packets[key] = packets.get(key, 0) + 1

        for name, el in lab.elements.items():
            if hasattr(el, "sip_hooks"):
                el.sip_hooks.add(sip_hook(name))
            if hasattr(el, "anchor"):
                el.anchor.hooks.add(media_hook)
        _step(2, "registering alice (operator A) and bob (operator B)")
        n = [2]

        def progress(text: str) -> None:
            if text.startswith("calling"):
                n[0] = 3
                _step(3, text)
            elif text.startswith("hung up"):
                n[0] = 4
                _step(4, text)
            else:
                print(f"      {text}", flush=True)

        report = await run_call(
            topo, "alice", "bob", keying="sdes", duration=duration, progress=progress
        )
        by_address = {e.address: n for n, e in topo.elements.items()}
        path = [by_address.get(h, h) for h in report.via_path]
        if not packets:  # elements in other processes: ask the anchors over their control port
            for name, e in topo.elements.items():
                if e.role != "anchor" or report.call_id is None:
                    continue
                client = AnchorClient((e.address, e.control_port), local_address=e.address)
                try:
                    stats = await client.stats(report.call_id)
                finally:
                    client.close()
                for direction in ("from_access", "from_core"):
                    if stats.get(f"{direction}_packets"):
                        packets[(name, direction)] = stats[f"{direction}_packets"]
    _step(5, f"lab stopped after {time.monotonic() - t0:.1f} s")
    expected = ["pcscf-a", "scscf-a", "scscf-b", "pcscf-b"]
    checks = [
        ("call answered", report.answered, f"status {report.status}"),
        ("SDES-SRTP negotiated", bool(report.keys and "SDES" in report.keys), str(report.keys)),
        ("signalling path", path == expected, " -> ".join(["alice", *path, "bob"])),
        (
            "media through anchors",
            bool(packets) and {e for e, _ in packets} >= {"anchor-a", "anchor-m"},
            ", ".join(f"{e} {d}: {c}" for (e, d), c in sorted(packets.items())),
        ),
        ("bob heard alice's 440 Hz", report.callee_ok, f"ratio {report.callee_heard or 0:.2f}"),
        ("alice heard bob's 1000 Hz", report.caller_ok, f"ratio {report.caller_heard or 0:.2f}"),
    ]
    print("\nSummary")
    for label, ok, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label:<28} {detail}")
    where = ", ".join(sorted(crypto_seen)) if crypto_seen else ", ".join(path)
    print(
        f"\nWhat it shows: the SRTP keys (a=crypto) crossed {where} in the clear inside SIP,"
        " while the anchors relayed only ciphertext: with SDES every CSCF on the path can hand"
        " the keys to a LEA."
    )
    ok = all(ok for _, ok, _ in checks)
    print(f"\nimslab demo ims: {'PASSED' if ok else 'FAILED'}")
    return ok
