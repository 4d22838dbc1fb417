"""``imslab matrix``: every key-management method of the study across scenarios, by real calls.

Each row starts the built-in lab in-process (addresses moved by the topology override, default
``--net-offset 70``: 127.0.80-89.x), places one call with both UEs sending a 440 Hz tone,
intercepts it as the study's operator would, and reports keys recovered, audio recovered and
what LI needed, next to the study's answer. Exit status 0 when every row reproduces the study.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from lab import aio


def register(sub: Any) -> None:
    from li.study import Method, Scenario

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
        "--net-offset",
        type=int,
        default=70,
        help="shift the lab's 127.0.10-19 networks (default 70: 127.0.80-89)",
    )
    p.add_argument("--subnet", default=None, help="collapse the lab into one /24 (e.g. 127.0.8)")
    p.add_argument("--media-seconds", type=float, default=1.2, help="audio per call (s)")
    p.add_argument("--rsa-bits", type=int, default=2048, help="RSA size of generated keys")
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from lab.matrix.runner import select

    rows = select(args.method, args.scenario)
    if args.list:
        for e in rows:
            print(f"{e.key:32} {e.needs_text():48} study {e.section}")
        return 0
    if not rows:
        print("no row matches")
        return 2
    return int(aio.run(lambda: run_matrix(args, rows)))


async def run_matrix(args: argparse.Namespace, rows: list[Any]) -> int:
    from lab.matrix.report import format_table, table_row, write_html, write_json
    from lab.matrix.runner import MatrixRunner

    results = []
    started = time.time()
    async with MatrixRunner(
        args.out,
        subnet=args.subnet,
        net_offset=0 if args.subnet else args.net_offset,
        media_seconds=args.media_seconds,
        bits=args.rsa_bits,
    ) as runner:
        for i, exp in enumerate(rows, 1):
            print(f"[{i}/{len(rows)}] {exp.key} ...", end=" ", flush=True)
            res = await runner.run(exp)
            results.append(res)
            cells = table_row(res)
            print(
                f"call {cells[2]}, keys {cells[3]}, audio {cells[4]}, needed {cells[5]} "
                f"-> {cells[6]} ({res.duration_s:.1f}s)",
                flush=True,
            )
            await asyncio.sleep(0)
    meta = {
        "rows": len(results),
        "reproduced": sum(r.reproduced for r in results),
        "seconds": round(time.time() - started, 1),
        "lemf": str(args.out / "lemf"),
    }
    write_json(results, args.out / "matrix.json", meta=meta)
    write_html(results, args.out / "matrix.html", meta=meta)
    print()
    print(format_table(results))
    print(
        f"\n{meta['reproduced']}/{meta['rows']} rows as in the study; "
        f"report: {args.out / 'matrix.html'} and {args.out / 'matrix.json'}"
    )
    print(json.dumps({"lemf": meta["lemf"]}))
    return 0 if meta["reproduced"] == meta["rows"] else 1
