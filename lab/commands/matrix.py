"""``imslab matrix``: the study's table measured, every row a ladder of real calls.

Each row (a key-management method in a scenario) climbs the capability ladder -- passive POIs of
the target's network, + the other networks' POIs, + key material an operator holds, + MITM on
signalling by one operator, + with the other operators' help, + MITM on the media path -- one
real call per rung, each capability granted only by an X1 task, until the LEMF's output holds
the decrypted audio of both directions (caller 440 Hz, callee 1000 Hz). "LI needed" is what that
rung's call had to use; the study's answer is shown beside it. Rows run in parallel, each in its
own worker process on its own 127.0.<base+i>.0/24. Exit status 0 when every row agrees with the
study (1 on a mismatch, unless --allow-mismatch).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from lab import aio


def register(sub: Any) -> None:
    from li.study import Capability, Method, Scenario

    p = sub.add_parser(
        "matrix",
        help="reproduce the study's table with real calls (keys, audio, what LI needed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        action="append",
        default=[],
        choices=[m.value for m in Method],
        help="only this method (repeatable)",
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        choices=[s.value for s in Scenario],
        help="only this scenario (repeatable)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("matrix-out"),
        help="directory for matrix.json, matrix.html and the LEMF output",
    )
    p.add_argument(
        "--subnet-base",
        type=int,
        default=100,
        help="row i runs on 127.0.<base+i>.0/24 (default 100)",
    )
    p.add_argument("--jobs", type=int, default=4, help="rows at a time (worker processes)")
    p.add_argument("--media-seconds", type=float, default=1.0, help="audio per call (s)")
    p.add_argument("--rsa-bits", type=int, default=2048, help="RSA size of generated keys")
    p.add_argument(
        "--withhold",
        action="append",
        default=[],
        choices=[c.value for c in Capability],
        help="never grant this rung (repeatable): what is possible without it",
    )
    p.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="exit 0 even when a row disagrees with the study",
    )
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from lab.matrix.runner import select

    rows = select(args.method, args.scenario)
    if args.list:
        for e in rows:
            print(
                f"{e.key:32} {e.rung_text:14} {e.needs_text():56} "
                f"study {e.section} (seed line {e.seed_line})"
            )
        return 0
    if not rows:
        print("no row matches")
        return 2
    return int(aio.run(lambda: run_matrix(args, rows)))


async def run_matrix(args: argparse.Namespace, rows: list[Any]) -> int:
    from lab.matrix.parallel import run_rows
    from lab.matrix.report import CallResult, format_table, table_row, write_html, write_json
    from li.study import Capability

    started = time.time()
    done = 0

    def progress(_: int, res: CallResult) -> None:
        nonlocal done
        done += 1
        cells = table_row(res)
        print(
            f"[{done}/{len(rows)}] {res.key}: call {cells[2]}, keys {cells[3]}, audio {cells[4]}, "
            f"lowest rung {cells[5]}, needed {cells[6]} -> {cells[8]} ({res.duration_s:.1f}s)",
            flush=True,
        )

    results = await run_rows(
        rows,
        args.out,
        jobs=args.jobs,
        subnet_base=args.subnet_base,
        media_seconds=args.media_seconds,
        bits=args.rsa_bits,
        withheld=[Capability(c) for c in args.withhold],
        on_result=progress,
    )
    meta = {
        "rows": len(results),
        "reproduced": sum(r.reproduced for r in results),
        "seconds": round(time.time() - started, 1),
        "lemf": str(args.out / "rows"),
        "jobs": args.jobs,
        "withheld": list(args.withhold),
        "load": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    write_json(results, args.out / "matrix.json", meta=meta)
    write_html(results, args.out / "matrix.html", meta=meta)
    print()
    print(format_table(results))
    print(
        f"\n{meta['reproduced']}/{meta['rows']} rows as in the study in {meta['seconds']} s "
        f"(load {meta['load']}); report: {args.out / 'matrix.html'} and "
        f"{args.out / 'matrix.json'}"
    )
    print(json.dumps({"lemf": meta["lemf"]}))
    if meta["reproduced"] != meta["rows"] and not args.allow_mismatch:
        return 1
    return 0
