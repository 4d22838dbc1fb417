"""``imslab call FROM TO``: place one call between UEs of a running lab (``imslab up``).

``FROM`` is a UE name of the topology; ``TO`` a UE name (both are run here, the callee
answers automatically with a 1000 Hz tone) or any SIP/tel URI. ``--keying`` picks one mode of
the keying registry (:mod:`ue.registry`; the help lists them from it); MIKEY modes use the
lab's credentials (:mod:`lab.credentials`, made by ``imslab up``). Exit status 0 when the call
was answered and each side heard the other's tone; 2 (one line on stderr) when a name is
wrong -- checked before anything registers.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from lab import aio, credentials, topology
from lab.callflow import run_call
from lab.errors import CheckFailed, UserError
from lab.topology import Topology
from ue import registry


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "call",
        help="place a call between UEs of a running lab",
        description="Place a call between UEs of a running lab (imslab up).",
        epilog="keyings (--keying NAME):\n" + registry.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    topology.add_arguments(parser)
    parser.add_argument("caller", metavar="FROM", help="UE name (see the topology's [ues])")
    parser.add_argument("callee", metavar="TO", help="UE name, or a sip:/tel: URI")
    parser.add_argument(
        "--keying",
        default="sdes",
        metavar="NAME",
        help="media keying, one of: " + ", ".join(registry.names()) + " (default sdes)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of media")
    parser.add_argument(
        "--audio", default=None, help="caller audio: tone:HZ (default tone:440) or FILE.wav"
    )
    parser.add_argument("--callee-audio", default=None, help="callee audio (default tone:1000)")
    parser.add_argument("--bind", default=None, help="bind every UE to this address instead")
    parser.add_argument("--record", type=Path, default=None, help="save what the caller heard")
    parser.set_defaults(func=_run)


def usage_error(args: argparse.Namespace, topo: Topology) -> str | None:
    """Why the command line cannot be run (unknown keying or UE), or None."""
    if args.keying not in registry.BY_NAME:
        return f"unknown keying {args.keying!r}; choose one of: {', '.join(registry.names())}"
    ues = ", ".join(sorted(topo.ues))
    if args.caller not in topo.ues:
        return f"unknown UE {args.caller!r} (FROM); the topology's UEs: {ues}"
    if args.callee not in topo.ues and not args.callee.lower().startswith(
        ("sip:", "sips:", "tel:")
    ):
        return f"unknown UE {args.callee!r} (TO); a UE name ({ues}) or a sip:/tel: URI"
    return None


def _run(args: argparse.Namespace) -> int:
    topo = topology.from_args(args)
    problem = usage_error(args, topo)
    if problem is not None:
        raise UserError(problem)
    for option, audio in (("--audio", args.audio), ("--callee-audio", args.callee_audio)):
        if audio and not audio.startswith("tone:") and not Path(audio).is_file():
            raise UserError(f"{option} {audio}: no such file", hint="give a WAV file or tone:HZ")
    if registry.BY_NAME[args.keying].mikey:
        try:
            credentials.install(topo, args.keying)
        except (credentials.CredentialsError, OSError) as exc:
            raise CheckFailed(str(exc)) from exc

    async def main() -> int:
        report = await run_call(
            topo,
            args.caller,
            args.callee,
            keying=args.keying,
            duration=args.duration,
            audio=args.audio,
            callee_audio=args.callee_audio,
            bind=args.bind,
            record=args.record,
        )
        if not report.answered:
            raise CheckFailed(f"call failed: {report.error}")
        print(f"call-id {report.call_id}")
        print(f"caller heard the callee: {report.caller_ok}  (tone ratio {report.caller_heard})")
        print(f"callee heard the caller: {report.callee_ok}  (tone ratio {report.callee_heard})")
        stats = report.stats
        print(
            f"packets sent {stats.get('sent')}, received {stats.get('received')}, "
            f"auth failures {stats.get('auth_failures')}"
        )
        return 0 if report.ok else 1

    try:
        return aio.run(main)
    except asyncio.CancelledError:
        return 130
