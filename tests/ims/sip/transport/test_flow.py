"""The transport layer's addresses: a Flow's far end is a Peer (RFC 3261 §18)."""

from __future__ import annotations

import pytest

from ims.sip.transport import Flow, Peer, normalize_transport


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS"])
def test_a_flows_far_end_is_a_peer(transport: str) -> None:
    """§18.2.2: a response goes back where the request came from; the proxy core routes to
    that end as a Peer (transport written as in a URI's transport= parameter)."""
    flow = Flow(transport, ("127.0.0.7", 5070), local=("127.0.0.1", 5060), connection=4)
    assert flow.peer == Peer(transport=transport.lower(), host="127.0.0.7", port=5070)
    assert flow.peer.addr == flow.remote
    assert normalize_transport(flow.peer.transport) == flow.transport
    # §17: "reliable" transports run no retransmission timers
    assert flow.reliable is (transport != "UDP")


def test_names() -> None:
    assert str(Peer(transport="tls", host="127.0.0.2", port=5061)) == "tls:127.0.0.2:5061"
    assert str(Flow("TCP", ("127.0.0.2", 5060), connection=9)) == "TCP#9:127.0.0.2:5060"
