"""``imslab call FROM TO``: place one call between UEs of a running lab (``imslab up``).

``FROM`` is a UE name of the topology; ``TO`` a UE name (both are run here, the callee
answers automatically with a 1000 Hz tone) or any SIP/tel URI. Exit status 0 when the call
was answered and each side heard the other's tone.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from lab import aio, topology
from lab.callflow import run_call
from lab.errors import CheckFailed, UserError
from ue import keying


def register(sub: Any) -> None:
    parser = sub.add_parser("call", help="place a call between UEs of a running lab")
    topology.add_arguments(parser)
    parser.add_argument("caller", metavar="FROM", help="UE name (see the topology's [ues])")
    parser.add_argument("callee", metavar="TO", help="UE name, or a sip:/tel: URI")
    parser.add_argument(
        "--keying",
        default="sdes",
        choices=keying.available(),
        metavar="KEYING",
        help=f"media keying ({', '.join(keying.available())}; default %(default)s)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of media")
    parser.add_argument(
        "--audio", default=None, help="caller audio: tone:HZ (default tone:440) or FILE.wav"
    )
    parser.add_argument("--callee-audio", default=None, help="callee audio (default tone:1000)")
    parser.add_argument("--bind", default=None, help="bind every UE to this address instead")
    parser.add_argument("--record", type=Path, default=None, help="save what the caller heard")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    topo = topology.from_args(args)
    for role, name in (("FROM", args.caller), ("TO", args.callee)):
        if name not in topo.ues and (role == "FROM" or ":" not in name):
            raise UserError(
                f"{role} {name!r} is not a UE of the topology"
                + ("" if role == "FROM" else " nor a sip:/tel: URI"),
                hint=f"give one of {', '.join(sorted(topo.ues))}",
            )
    for option, audio in (("--audio", args.audio), ("--callee-audio", args.callee_audio)):
        if audio and not audio.startswith("tone:") and not Path(audio).is_file():
            raise UserError(f"{option} {audio}: no such file", hint="give a WAV file or tone:HZ")

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
