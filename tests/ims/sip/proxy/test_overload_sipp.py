"""Graceful overload of `imslab run sip-proxy`, measured with SIPp (issue 15).

`imslab run sip-proxy --overload`: the proxy's max loss-free rate R is found on this machine,
in this run (SIPp steps of 3 s; the callee registered, INVITE/100/180/200/ACK/BYE/200 with
Record-Route:
``benchmarks/bench_vs_kamailio.py``'s scenario). Then SIPp offers 2R calls/s for 10 s: the
proxy must shed what it cannot carry with 503 + Retry-After (``ims.sip.proxy.overload``)
instead of collapsing into retransmissions, so its goodput (calls completed per second) stays
>= 80 % of R; and at the normal rate afterwards (R/2) every call completes again, none shed.

Addresses: 127.0.4.0/24; every SIPp run is bounded by ``timeout`` and a call count.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.bench_vs_kamailio import loss_free, ramp, sipp_step, start_imslab

pytestmark = [pytest.mark.peer, pytest.mark.slow]

STEP_SECONDS = 3.0
RATES = [50, 100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000]


@pytest.mark.timeout(400)
@pytest.mark.xfail(
    strict=False,
    reason="issue 15 target not met yet: with shedding on, R fell from 600 to 400 calls/s and "
    "2R kept 50 calls/s of goodput (6,637 shed, 866 failed): each 503 still costs a parse, a "
    "server transaction and its ACK (docs/benchmarks.md)",
)
def test_goodput_at_twice_the_max_rate_and_recovery(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.skip("sipp is not installed (apt-get install sip-tester)")
    proxy = start_imslab(tmp_path, shed=True)
    try:
        top, runs = ramp(sipp, proxy, RATES, STEP_SECONDS, tmp_path)
        assert top >= 50, runs  # the proxy carries calls at all
        over = sipp_step(sipp, proxy.address, 2 * top, 10.0, tmp_path, proxy.uas_port)
        after = sipp_step(sipp, proxy.address, top // 2, STEP_SECONDS, tmp_path, proxy.uas_port)
    finally:
        proxy.stop()
    # past its capacity the proxy keeps carrying calls (shedding the rest with 503)
    assert float(str(over["goodput"])) >= 0.8 * top, (top, over, runs)
    # and it recovered: the normal rate is loss-free again
    assert loss_free(after, STEP_SECONDS), after
