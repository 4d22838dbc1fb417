"""Hypothesis over random interleavings of TU calls and network deliveries (dup, drop, reorder).

The layer must never raise anything but TransactionProtocolError (and only from TU calls that
the figures forbid), and once the TUs have answered everything and the timers have run, no
transaction is left.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ims.sip.message import make_response
from ims.sip.transaction import (
    Flow,
    RequestReceived,
    SendMessage,
    ServerTransaction,
    TransactionLayer,
    TransactionProtocolError,
    TransactionTerminated,
)
from tests.ims.sip.transaction.sipmsg import A, B, request

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["invite", "options", "deliver", "dup", "drop", "respond", "cancel", "time", "error"]
        ),
        st.integers(0, 1000),
        st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 500, 603]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_random_interleavings(ops: list[tuple[str, int, int]]) -> None:
    a, b = TransactionLayer(), TransactionLayer()
    layers = {A: a, B: b}
    wire: list[tuple[bytes, tuple[str, int], tuple[str, int]]] = []
    servers: list[ServerTransaction] = []
    clients: list = []  # type: ignore[type-arg]
    now = 0.0

    def absorb(owner: tuple[str, int], events: list) -> None:  # type: ignore[type-arg]
        for ev in events:
            if isinstance(ev, SendMessage):
                wire.append((ev.data, owner, ev.flow.remote))
            elif isinstance(ev, RequestReceived):
                servers.append(ev.transaction)
            elif isinstance(ev, TransactionTerminated) and ev.transaction in servers:
                servers.remove(ev.transaction)

    for n, (op, pick, status) in enumerate(ops):
        if op in ("invite", "options"):
            method = "INVITE" if op == "invite" else "OPTIONS"
            tx, events = a.send_request(
                request(method, call_id=f"c{n}", cseq=n + 1), Flow("UDP", B, A), now
            )
            clients.append(tx)
            absorb(A, events)
        elif op in ("deliver", "dup", "drop") and wire:
            data, src, dst = wire[pick % len(wire)]
            if op != "dup":
                wire.pop(pick % len(wire))
            if op != "drop":
                absorb(dst, layers[dst].receive_bytes(data, Flow("UDP", src, dst), now))
        elif op == "respond" and servers:
            tx = servers[pick % len(servers)]
            try:
                absorb(B, b.respond(tx, make_response(tx.request, status, to_tag="t"), now))
            except TransactionProtocolError:
                assert tx.terminated or tx.last_response is not None
        elif op == "cancel" and clients:
            absorb(A, a.cancel(clients[pick % len(clients)], now))
        elif op == "time":
            now += pick / 50.0
            absorb(A, a.handle_timer(now))
            absorb(B, b.handle_timer(now))
        elif op == "error" and clients:
            absorb(A, a.transport_error(clients[pick % len(clients)], "boom", now))
    # drain: deliver everything, TUs answer what is left, let every timer run
    for _ in range(200):
        while wire:
            data, src, dst = wire.pop(0)
            absorb(dst, layers[dst].receive_bytes(data, Flow("UDP", src, dst), now))
        for tx in list(servers):
            if not tx.terminated and (tx.last_response is None or tx.last_response.status < 200):
                absorb(B, b.respond(tx, make_response(tx.request, 500, to_tag="t"), now))
        t = min((x for x in (a.get_timer(), b.get_timer()) if x is not None), default=None)
        if t is None and not wire:
            break
        if t is not None:
            now = max(now, t)
            absorb(A, a.handle_timer(now))
            absorb(B, b.handle_timer(now))
    assert a.pending == 0 and b.pending == 0
