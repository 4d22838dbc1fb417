"""The topology model: the built-in lab loads, validates and can be moved to other addresses."""

from __future__ import annotations

import tomllib

import pytest

from lab import topology
from lab.topology import TopologyError


def test_builtin_lab_has_every_role() -> None:
    topo = topology.load()
    roles = {e.role for e in topo.elements.values()}
    assert roles == {"pcscf", "scscf", "anchor", "internet_proxy", "kms"}
    assert topo.domain_of("pcscf-a") == "ims-a.test"
    assert topo.server_for_domain("ims-b.test").name == "scscf-b"  # type: ignore[union-attr]
    assert topo.domain_for_tel("+494021") == "ims-b.test"
    assert topo.domain_for_tel("+1555") is None
    alice = topo.subscriber_of_ue("alice")
    assert any(i.startswith("tel:") for i in alice.impus)
    assert topo.ue("carol").transport == "tls" and topo.ue("carol").pcscf == "pcscf-v"
    # the separate media-path provider runs an anchor and no signalling element
    m_roles = {e.role for e in topo.elements.values() if e.operator == "m"}
    assert m_roles == {"anchor"}
    for e in topo.elements.values():
        assert e.address.startswith("127.0.1")
        assert 10 <= int(e.address.split(".")[2]) <= 19


def test_address_override() -> None:
    topo = topology.load(subnet="127.0.7")
    assert topo.element("pcscf-a").address == "127.0.7.10"
    assert topo.ue("bob").address == "127.0.7.111"
    shifted = topology.load(net_offset=20)
    assert shifted.element("scscf-b").address == "127.0.31.21"
    with pytest.raises(TopologyError):
        topology.load(net_offset=250)
    with pytest.raises(TopologyError):
        topology.load(subnet="127.0")


def _data() -> dict:  # type: ignore[type-arg]
    return tomllib.loads(topology.default_path().read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["elements"]["pcscf-a"].update(anchor="nowhere"), "unknown anchor"),
        (lambda d: d["elements"]["pcscf-a"].update(role="sbc"), "unknown role"),
        (lambda d: d["ues"]["alice"].update(subscriber="x@y"), "unknown subscriber"),
        (lambda d: d["elements"]["scscf-a"].update(address="127.0.10.10"), "share the address"),
        (lambda d: d["peering"].update({"x.test": "nope"}), "unknown element"),
        (lambda d: d["elements"]["pcscf-v"].update(tls=False), "does not offer TLS"),
        (lambda d: d["elements"]["pcscf-a"].pop("address"), "missing field"),
    ],
)
def test_invalid_topologies(mutate, message) -> None:  # type: ignore[no-untyped-def]
    data = _data()
    mutate(data)
    with pytest.raises(TopologyError, match=message):
        topology.parse(data)
