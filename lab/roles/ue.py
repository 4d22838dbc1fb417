"""``imslab run ue --name bob``: a UE that registers and answers calls until stopped.

MIKEY keyings use the lab's credentials (:mod:`lab.credentials`). It registers through its
P-CSCF (digest), re-registers before the registration lapses,
answers every call with a tone (``--audio``) and, with ``--record DIR``, saves what it heard
per call as ``DIR/<call-id>.wav``. A long-running callee for ``imslab call alice sip:bob@...``
or a container running one UE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from lab import credentials, topology
from lab.topology import Topology
from lab.ues import user_agent
from ue import keying as keying_mod
from ue import registry
from ue.agent import Call, UserAgent

ROLE = "ue"
HELP = "a UE: registers through its P-CSCF and answers calls (tone), until stopped"


class RunningUe:
    def __init__(self, ua: UserAgent, record: Path | None) -> None:
        self.ua = ua
        self.name = ua.config.name
        self.record = record
        self.answered: list[Call] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        ua.on_call = self._on_call
        self._refresh = asyncio.ensure_future(self._reregister())

    def _on_call(self, call: Call) -> None:
        self.answered.append(call)
        if self.record is not None:
            task = asyncio.ensure_future(self._save(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _save(self, call: Call) -> None:
        await call.ended.wait()
        assert self.record is not None
        safe = "".join(ch if ch.isalnum() else "_" for ch in call.call_id)
        call.save_received(self.record / f"{safe}.wav")

    async def _reregister(self) -> None:
        while True:
            await asyncio.sleep(max(30, self.ua.config.expires - 60))
            with contextlib.suppress(Exception):
                await self.ua.register()

    async def close(self) -> None:
        self._refresh.cancel()
        with contextlib.suppress(Exception):
            await self.ua.unregister()
        await self.ua.close()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2)


async def start(
    topo: Topology,
    name: str,
    *,
    keying: str = "sdes",
    audio: str = "tone:1000",
    record: Path | None = None,
    bind: str | None = None,
) -> RunningUe:
    keying_mod.get(keying)  # an unknown name fails here, before anything registers
    credentials.install(topo, keying)  # MIKEY: the lab's credentials (imslab up made them)
    ua = user_agent(topo, name, keying=keying, bind=bind)
    ua.audio = audio
    await ua.start()
    try:
        await ua.register()
    except BaseException:
        await ua.close()
        raise
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
    return RunningUe(ua, record)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topology.add_arguments(parser)
    parser.add_argument("--name", required=True, help="UE name in the topology ([ues])")
    parser.add_argument(
        "--keying",
        default="sdes",
        choices=registry.names(),
        metavar="NAME",
        help="keying for calls it places/answers: " + ", ".join(registry.names()),
    )
    parser.add_argument("--audio", default="tone:1000", help="what it sends: tone:HZ or FILE.wav")
    parser.add_argument("--record", type=Path, default=None, help="save received audio here")
    parser.add_argument("--bind", default=None, help="bind to this address instead")


async def run(args: argparse.Namespace) -> int:
    topo = topology.from_args(args)
    if args.name not in topo.ues:  # one line, before anything registers
        ues = ", ".join(sorted(topo.ues))
        print(
            f"imslab run ue: unknown UE {args.name!r}; the topology's UEs: {ues}", file=sys.stderr
        )
        return 2
    running = await start(
        topo,
        args.name,
        keying=args.keying,
        audio=args.audio,
        record=args.record,
        bind=args.bind,
    )
    print(f"{args.name}: UE registered as {running.ua.config.aor}; ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()
    return 0
