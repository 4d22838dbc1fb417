"""Rows of the matrix in parallel: one worker process per running row, one loopback /24 each.

A row's ladder is sequential (it stops at the first rung that succeeds), but rows are
independent: each runs in its own process (the UE's MIKEY credentials are process-wide) on its
own subnet ``127.0.<base + i>`` with its own LEMF, so no address, port or key can be shared
between rows. Most of a row's time is the calls' media (sleeping), so a few more workers than
cores pay off.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from lab.matrix.report import CallResult
from li.study import Capability, Expectation, expectation


def slug(key: str) -> str:
    return key.replace("/", "--")


def _row_in_process(
    key: str,
    work: str,
    subnet: str,
    media_seconds: float,
    bits: int,
    withheld: tuple[str, ...],
) -> dict[str, Any]:
    """Worker entry point: one row, its own lab, LEMF and X1 PKI under ``work``."""
    from lab.matrix.runner import MatrixRunner

    method, _, scenario = key.partition("/")
    exp = expectation(method, scenario)
    os.environ["IMSLAB_PKI"] = str(Path(work) / "pki")

    async def go() -> dict[str, Any]:
        async with MatrixRunner(
            Path(work), subnet=subnet, media_seconds=media_seconds, bits=bits
        ) as runner:
            result = await runner.run(exp, withheld=[Capability(c) for c in withheld])
            return result.to_json()

    return asyncio.run(go())


async def run_rows(
    rows: Sequence[Expectation],
    out: Path,
    *,
    jobs: int = 4,
    subnet_base: int = 100,
    media_seconds: float = 1.0,
    bits: int = 2048,
    withheld: Sequence[Capability] = (),
    on_result: Callable[[int, CallResult], None] | None = None,
) -> list[CallResult]:
    """Run ``rows`` with up to ``jobs`` at a time; results in the order of ``rows``."""
    if subnet_base + len(rows) > 255:
        raise ValueError(f"{len(rows)} rows do not fit above 127.0.{subnet_base}.0")
    out.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    held = tuple(c.value for c in withheld)
    ctx = multiprocessing.get_context("spawn")  # no asyncio/uvloop state inherited
    results: list[CallResult | None] = [None] * len(rows)
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:

        async def one(i: int, exp: Expectation) -> None:
            doc = await loop.run_in_executor(
                pool,
                _row_in_process,
                exp.key,
                str(out / "rows" / slug(exp.key)),
                f"127.0.{subnet_base + i}",
                media_seconds,
                bits,
                held,
            )
            res = CallResult.from_json(doc)
            results[i] = res
            if on_result is not None:
                on_result(i, res)

        await asyncio.gather(*(one(i, e) for i, e in enumerate(rows)))
    return [r for r in results if r is not None]
