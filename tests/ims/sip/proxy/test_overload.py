"""Overload control of the proxy core (ims.sip.proxy.overload): the measured queueing delay of
the probe drives the fraction of new requests answered 503 + Retry-After; accepted work
(in-dialog requests, ACK, CANCEL) always passes. Time is the ``now`` argument throughout.

RFC 3261 §21.5.4: "The server MAY indicate when the client should retry the request in a
Retry-After header field."
"""

from __future__ import annotations

from ims.sip.message import Response
from ims.sip.parser import parse_message
from ims.sip.proxy.core import ForwardRequest, SendResponse
from ims.sip.proxy.overload import (
    ABSORBED,
    PROBE_LOST,
    OverloadConfig,
    OverloadControl,
    OverloadGate,
    Shed,
)
from ims.sip.transport import Peer
from tests.ims.sip.proxy.test_core import UAC, core, invite, only

UAC_TCP = Peer(transport="tcp", host="127.0.3.2", port=5061)


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
    """Over TCP/TLS (UDP requests meet the adapter's stateless gate before the core)."""
    p = core(overload=OverloadConfig(target=0.1, retry_after=7))
    assert p.overload is not None
    p.overload.reject = 0.95
    shed = 0
    for i in range(40):
        acts = p.receive_request(invite(branch=f"z9hG4bKn{i}"), UAC_TCP, 1.0, transaction=f"s{i}")
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
        acts = p.receive_request(bye, UAC_TCP, 1.0, transaction=f"b{i}")
        assert only(acts, ForwardRequest)
    # UDP: the core leaves shedding to the gate (which already counted its admission)
    acts = p.receive_request(invite(branch="z9hG4bKudp"), UAC, 1.0, transaction="u")
    assert only(acts, ForwardRequest)


def test_no_overload_config_never_sheds() -> None:
    p = core(overload=None)
    assert p.overload is None
    acts = p.receive_request(invite(), UAC, 0.0, transaction="stx")
    assert only(acts, ForwardRequest)


def _request(
    method: str, *, to_tag: str = "", via: str = "", compact: bool = False, n: int = 1
) -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    vias = (
        via
        or f"SIP/2.0/UDP 127.0.3.2:5099;branch=z9hG4bKg{n}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx"
    )
    names = ("v", "f", "t", "i") if compact else ("Via", "From", "To", "Call-ID")
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"{names[0]}: {vias}\r\n"
        "Max-Forwards: 70\r\n"
        f"{names[1]}: <sip:alice@example.com>;tag=a1\r\n"
        f"{names[2]}: <sip:bob@example.com>{tag}\r\n"
        f"{names[3]}: gate1@127.0.3.2\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_gate_sheds_new_requests_statelessly_before_parsing() -> None:
    """A new request the control does not admit gets a stateless 503 built from its own
    headers: RFC 3261 §8.2.6.2 ("the From field of the response MUST equal the From header
    field of the request. The Call-ID ... MUST equal ... The CSeq ... MUST equal ... The Via
    header field values in the response MUST equal the Via header field values in the
    request and MUST maintain the same ordering"), a To tag of ours, Retry-After (§21.5.4);
    sent to the source address at the sent-by port (§18.2.2), the source port with rport
    (RFC 3581 §4)."""
    ctl = OverloadControl(OverloadConfig(retry_after=5))
    gate = OverloadGate(ctl, "g4te")
    src = ("127.0.3.2", 40000)
    assert gate.screen(_request("INVITE"), src, 0.0) is None  # p = 0: not even peeked
    ctl.reject = 0.95
    verdicts = [gate.screen(_request("INVITE", n=i), src, 1.0) for i in range(40)]
    shed = [v for v in verdicts if isinstance(v, Shed)]
    assert 36 <= len(shed) <= 39 and gate.shed == len(shed)
    assert verdicts.count(None) == 40 - len(shed)  # the admitted ones: the full path
    v = shed[0]
    assert v.to == ("127.0.3.2", 5099)
    resp = parse_message(v.response)
    assert isinstance(resp, Response) and resp.status == 503
    assert len(resp.vias) == 2 and resp.vias[1].branch == "z9hG4bKx"
    assert resp.vias[0].branch is not None and resp.vias[0].branch.startswith("z9hG4bKg")
    assert resp.from_ is not None and resp.from_.tag == "a1"
    assert resp.to is not None and resp.to.tag == "g4te"
    assert resp.call_id == "gate1@127.0.3.2" and resp.cseq is not None
    assert resp.cseq.method == "INVITE"
    assert resp.headers.get("Retry-After") == "5"
    rport = _request(
        "OPTIONS", via="SIP/2.0/UDP 127.0.3.2:5099;rport;branch=z9hG4bKr", compact=True
    )
    shed2 = [gate.screen(rport, src, 1.0) for _ in range(40)]
    assert {s.to for s in shed2 if isinstance(s, Shed)} == {src}


def test_gate_absorbs_the_ack_of_its_503_and_passes_accepted_work() -> None:
    """The ACK of a non-2xx final response goes hop by hop with the response's To tag
    (RFC 3261 §17.1.1.3: "The To header field in the ACK MUST equal the To header field in
    the response being acknowledged"): ours is absorbed, 64*T1 long after the last 503 too;
    in-dialog requests, CANCEL, responses and other ACKs always pass to the full path."""
    ctl = OverloadControl(OverloadConfig())
    gate = OverloadGate(ctl, "g4te")
    src = ("127.0.3.2", 5099)
    ctl.reject = 0.95
    assert any(isinstance(gate.screen(_request("INVITE", n=i), src, 1.0), Shed) for i in range(5))
    assert gate.screen(_request("ACK", to_tag="g4te"), src, 1.0) is ABSORBED
    assert gate.screen(_request("ACK", to_tag="other"), src, 1.0) is None
    for _ in range(20):
        assert gate.screen(_request("BYE", to_tag="b1"), src, 1.0) is None
        assert gate.screen(_request("CANCEL"), src, 1.0) is None
    assert gate.screen(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\n\r\n", src, 1.0) is None
    ctl.reject = 0.0  # recovered: the late ACKs of the 503s are still ours
    assert gate.screen(_request("ACK", to_tag="g4te"), src, 30.0) is ABSORBED
    assert gate.screen(_request("INVITE", n=99), src, 30.0) is None
    assert gate.screen(_request("ACK", to_tag="g4te"), src, 34.0) is None  # 64*T1 later
    assert gate.absorbed == 2


def test_gate_leaves_what_it_cannot_read_to_the_parser() -> None:
    """Folded lines, no Via, a maddr, garbage: None (the full parser answers them)."""
    ctl = OverloadControl(OverloadConfig())
    ctl.reject = 0.95
    gate = OverloadGate(ctl, "g4te")
    src = ("127.0.3.2", 5099)
    good = _request("INVITE")
    folded = good.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards:\r\n 70\r\n")
    maddr = _request("INVITE", via="SIP/2.0/UDP 127.0.3.2;maddr=10.1.1.1;branch=z9hG4bKm")
    no_via = b"\r\n".join(ln for ln in good.split(b"\r\n") if not ln.startswith(b"Via"))
    for data in (folded, maddr, no_via, b"", b"\x00\xff garbage", b"INVITE\r\n\r\n"):
        for _ in range(5):
            assert gate.screen(data, src, 1.0) is None
    for cut in range(len(good)):  # every truncation: a verdict, never an exception
        gate.screen(good[:cut], src, 1.0)


def test_gate_gives_a_retransmission_the_verdict_of_its_first_copy() -> None:
    """RFC 3261 §17.2.1: a retransmitted request is answered with the response already sent;
    an admitted INVITE's retransmission must not be shed (its caller would get a 503 and the
    callee's 200), a shed one's gets the 503 again."""
    ctl = OverloadControl(OverloadConfig())
    gate = OverloadGate(ctl, "g4te")
    src = ("127.0.3.2", 5099)
    ctl.reject = 0.5
    firsts = {}
    for i in range(20):
        via = f"SIP/2.0/UDP 127.0.3.2:5099;branch=z9hG4bKr{i}"
        firsts[i] = isinstance(gate.screen(_request("INVITE", via=via), src, 1.0), Shed)
    assert 8 <= sum(firsts.values()) <= 12
    ctl.reject = 0.95
    for i in range(20):
        via = f"SIP/2.0/UDP 127.0.3.2:5099;branch=z9hG4bKr{i}"
        again = gate.screen(_request("INVITE", via=via), src, 1.5)
        assert isinstance(again, Shed) == firsts[i]
