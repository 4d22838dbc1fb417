"""Transactions complete over a lossy, reordering in-memory network (retransmissions work).

Two TransactionLayers exchange real encoded datagrams through :class:`LossyNet`, which drops
10-30 % of them and delays each by 1-150 ms (so they also reorder).  Time is simulated.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.sip.message import make_response
from ims.sip.transaction import (
    Flow,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTimedOut,
)
from tests.ims.sip.transaction.sipmsg import A, B, LossyNet, request


def run_sim(loss: float, seed: int, n: int = 60) -> tuple[dict[int, int], int, LossyNet]:
    a, b = TransactionLayer(), TransactionLayer()
    net = LossyNet({A: a, B: b}, loss=loss, seed=seed)
    finals: dict[int, int] = {}
    timeouts = 0
    index = {}
    for i in range(n):
        method = "INVITE" if i % 2 else "OPTIONS"
        tx, events = a.send_request(request(method, call_id=f"c{i}@a"), Flow("UDP", B, A), 0.0)
        index[tx] = i
        net.send(A, events)
    for _ in range(100_000):  # bounded
        if net.next_time() is None:
            break
        for owner, ev in net.step():
            if owner == B and isinstance(ev, RequestReceived):
                req = ev.request
                if req.method == "INVITE":
                    net.send(
                        B, b.respond(ev.transaction, make_response(req, 180, to_tag="t"), net.now)
                    )
                    net.send(
                        B, b.respond(ev.transaction, make_response(req, 486, to_tag="t"), net.now)
                    )
                else:
                    net.send(
                        B, b.respond(ev.transaction, make_response(req, 200, to_tag="t"), net.now)
                    )
            elif owner == A and isinstance(ev, ResponseReceived) and ev.response.status >= 200:
                assert index[ev.transaction] not in finals  # a final goes up exactly once
                finals[index[ev.transaction]] = ev.response.status
            elif owner == A and isinstance(ev, TransactionTimedOut):
                timeouts += 1
    assert a.pending == 0 and b.pending == 0  # everything terminated by its timers
    return finals, timeouts, net


@pytest.mark.parametrize(("loss", "seed"), [(0.1, 1), (0.2, 2), (0.2, 3), (0.3, 4), (0.3, 5)])
def test_transactions_complete_despite_loss(loss: float, seed: int) -> None:
    finals, timeouts, net = run_sim(loss, seed)
    assert net.dropped > 0
    assert len(finals) + timeouts == 60
    assert len(finals) == 60, f"{timeouts} transactions timed out at {loss:.0%} loss"
    assert all(status == (486 if i % 2 else 200) for i, status in finals.items())
    # retransmissions happened: more datagrams than the 60 x (request + final [+ ACK]) minimum
    assert net.sent > 60 * 2 + 30


def test_lossless_baseline_is_minimal() -> None:
    finals, timeouts, net = run_sim(0.0, 9, n=10)
    assert len(finals) == 10 and timeouts == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    layer = TransactionLayer()
    layer.receive_bytes(data, Flow("UDP", A, B), 0.0)


_BASE = request("INVITE").encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)), max_size=6))
def test_mutated_requests_never_raise(edits: list[tuple[int, int]]) -> None:
    data = bytearray(_BASE)
    for pos, value in edits:
        data[pos] = value
    layer = TransactionLayer()
    layer.receive_bytes(bytes(data), Flow("UDP", A, B), 0.0)
    layer.receive_bytes(bytes(data), Flow("UDP", A, B), 0.1)  # and as a retransmission
    layer.handle_timer(100.0)
