"""Calls/s a SipEndpoint UAS sustains against SIPp's built-in ``uac`` (INVITE/ACK/BYE).

SIPp places calls at increasing rates; the UAS answers INVITE 180 + 200 and BYE 200 through
its transactions. For each rate the script reports SIPp's successful/failed calls; it stops at
the first rate with a failure. Numbers go to docs/benchmarks/sip-transactions.md.

Run: .venv/bin/python benchmarks/bench_endpoint_sipp.py [--rates 200,400] [--seconds 5] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from ims.sip.aio import ServerContext, SipEndpoint

SIPP_IP = "127.0.2.92"
EP_IP = "127.0.2.93"


async def one_rate(sipp: str, rate: int, seconds: float) -> tuple[int, int, float, float]:
    ep = SipEndpoint()
    host, port = await ep.listen("udp", EP_IP, 0)

    def answer(ctx: ServerContext) -> None:
        if ctx.request.method == "INVITE":
            ctx.respond(180)
            ctx.respond(200, headers=[("Contact", f"<sip:uas@{EP_IP}:{port}>")])
        else:
            ctx.respond(200)

    ep.on_request(answer)
    calls = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.csv"
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        proc = await asyncio.create_subprocess_exec(
            "timeout", str(int(seconds) + 40), sipp, "-sn", "uac", f"{host}:{port}",
            "-i", SIPP_IP, "-p", "0", "-m", str(calls), "-r", str(rate), "-d", "0",
            "-l", str(max(rate * 4, 100)), "-timeout", str(int(seconds) + 30), "-nostdin",
            "-trace_stat", "-stf", str(stats), "-fd", "1",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=tmp,
        )  # fmt: skip
        await proc.wait()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        text = stats.read_text() if stats.exists() else ""
    await ep.close()
    ok = failed = 0
    if text:
        header, *rows = [line.split(";") for line in text.strip().splitlines()]
        last = dict(zip(header, rows[-1], strict=False))
        ok = int(last.get("SuccessfulCall(C)", "0"))
        failed = int(last.get("FailedCall(C)", "0"))
    return ok, failed, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="100,200,400,800,1200")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp not installed")

    async def run_all() -> None:
        for rate in [int(r) for r in args.rates.split(",")]:
            ok, failed, elapsed, cpu = await one_rate(sipp, rate, args.seconds)
            print(
                f"rate {rate:5d} calls/s: {ok} ok, {failed} failed in {elapsed:.1f} s; "
                f"endpoint CPU {cpu / max(ok, 1) * 1e6:.0f} us/call"
            )
            if failed or ok == 0:
                break

    if args.uvloop:
        import uvloop

        uvloop.run(run_all())
    else:
        asyncio.run(run_all())


if __name__ == "__main__":
    main()
