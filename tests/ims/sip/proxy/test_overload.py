"""Overload control of the proxy core (ims.sip.proxy.overload): the measured queueing delay of
the probe drives the fraction of new requests answered 503 + Retry-After; accepted work
(in-dialog requests, ACK, CANCEL) always passes. Time is the ``now`` argument throughout.

RFC 3261 §21.5.4: "The server MAY indicate when the client should retry the request in a
Retry-After header field."
"""

from __future__ import annotations

from ims.sip.proxy.core import ForwardRequest, SendResponse
from ims.sip.proxy.overload import PROBE_LOST, OverloadConfig, OverloadControl
from tests.ims.sip.proxy.test_core import UAC, core, invite, only


def delays(ctl: OverloadControl, start: float, delay: float, n: int) -> float:
    """``n`` probes that each come back after ``delay``; returns the time after them."""
    now = start
    for _ in range(n):
        while not ctl.probe_due(now):
            now += 0.01
        ctl.probe_sent(now)
        now += delay
        ctl.probe_returned(now)
    return now


def test_short_queue_admits_everything() -> None:
    ctl = OverloadControl(OverloadConfig(target=0.1))
    delays(ctl, 0.0, 0.002, 20)
    assert ctl.reject == 0.0 and all(ctl.admit() for _ in range(1000))


def test_standing_queue_raises_rejection_and_recovery_lowers_it() -> None:
    cfg = OverloadConfig(target=0.1, window=0.2, step=0.1, max_reject=0.9)
    ctl = OverloadControl(cfg)
    now = delays(ctl, 0.0, 0.3, 10)  # every probe waits three times the target
    assert ctl.reject == 0.9  # capped: a trickle still gets through
    admitted = sum(ctl.admit() for _ in range(1000))
    assert 95 <= admitted <= 105  # deterministic 1 - p
    now = delays(ctl, now, 0.01, 6)  # short again: one or two windows (0.2 s) later...
    assert 0.7 - 1e-9 <= ctl.reject <= 0.8 + 1e-9  # ...one step down per window
    delays(ctl, now, 0.01, 60)
    assert ctl.reject == 0.0


def test_a_transient_stall_sheds_nothing_a_standing_queue_does() -> None:
    """CoDel's rule (RFC 8289 §3.2): the smallest delay of a window counts."""
    ctl = OverloadControl(OverloadConfig(target=0.1, window=0.2))
    now = delays(ctl, 0.0, 0.005, 5)
    now = delays(ctl, now, 0.4, 1)  # the process was descheduled once for 400 ms
    delays(ctl, now, 0.005, 10)  # and drains at once
    assert ctl.reject == 0.0
    delays(ctl, now + 5, 0.15, 10)  # 150 ms every time: a standing queue
    assert ctl.reject > 0.0


def test_a_probe_stuck_in_the_queue_counts_by_its_age() -> None:
    ctl = OverloadControl(OverloadConfig(target=0.1, interval=0.05, window=0.2))
    delays(ctl, 0.0, 0.005, 1)  # opens the first window
    assert ctl.probe_due(0.1)
    ctl.probe_sent(0.1)
    assert not ctl.probe_due(0.15) and ctl.reject == 0.0
    assert not ctl.probe_due(0.4)  # out 300 ms: overload is measured before it returns
    assert not ctl.probe_due(0.6)
    assert not ctl.probe_due(0.7)  # a whole window without a delay below 300 ms
    assert ctl.reject > 0.0
    assert ctl.probe_due(0.1 + PROBE_LOST + 0.1)  # taken as lost: a new one goes out


def test_core_sheds_new_requests_with_503_retry_after_but_not_in_dialog_ones() -> None:
    p = core(overload=OverloadConfig(target=0.1, retry_after=7))
    assert p.overload is not None
    p.overload.reject = 0.95
    shed = 0
    for i in range(40):
        acts = p.receive_request(invite(branch=f"z9hG4bKn{i}"), UAC, 1.0, transaction=f"s{i}")
        if not only(acts, ForwardRequest):
            (resp,) = only(acts, SendResponse)
            assert resp.response.status == 503 and resp.transaction == f"s{i}"
            assert resp.response.headers.get("Retry-After") == "7"
            shed += 1
    assert 36 <= shed <= 39 and p.stats["shed"] == shed
    # a BYE of an accepted call (To tag) is never shed
    bye = invite(method="BYE", branch="z9hG4bKbye", extra="")
    bye.headers.set("To", "<sip:bob@example.com>;tag=b1")
    for i in range(20):
        acts = p.receive_request(bye, UAC, 1.0, transaction=f"b{i}")
        assert only(acts, ForwardRequest)


def test_no_overload_config_never_sheds() -> None:
    p = core(overload=None)
    assert p.overload is None
    acts = p.receive_request(invite(), UAC, 0.0, transaction="stx")
    assert only(acts, ForwardRequest)
