"""The topology's optional ``[li]`` part: LEMF, per-operator LI elements, paths, remapping."""

from __future__ import annotations

import copy
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from lab import topology
from lab.roles import _li
from lab.topology import TopologyError


def _data() -> dict[str, Any]:
    return tomllib.loads(topology.default_path().read_text())


def test_builtin_lab_runs_li_for_operators_a_and_b() -> None:
    topo = topology.load()
    li = topo.li
    assert li is not None and li.delivery == "tcp"
    assert li.lemf.address == "127.0.18.60" and li.lemf.port == topology.LEMF_PORT
    assert topo.li_elements() == ["pcscf-a", "scscf-a", "anchor-a", "pcscf-b", "scscf-b"]
    assert li.operator_of("anchor-a") is not None and li.operator_of("anchor-m") is None
    assert topo.addresses()["lemf"] == "127.0.18.60"


def test_li_leaves_the_existing_addresses_alone() -> None:
    data = _data()
    del data["li"]
    without = topology.parse(data)
    assert without.li is None and without.li_elements() == []
    assert without.elements == topology.load().elements
    assert without.ues == topology.load().ues


def test_remap_moves_the_lemf_too() -> None:
    moved = topology.load(net_offset=90)
    assert moved.li is not None and moved.li.lemf.address == "127.0.108.60"
    one = topology.load(subnet="127.0.7")
    assert one.li is not None and one.li.lemf.address == "127.0.7.60"


def test_state_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path))
    li = topology.load().li
    assert li is not None
    assert li.lemf_out() == tmp_path / "lemf"
    assert li.pki_dir("a") == tmp_path / "li" / "a" / "pki"
    assert li.ne_state("scscf-b") == tmp_path / "li" / "b" / "scscf-b"
    # a moved lab keeps its state apart
    moved = topology.load(net_offset=90).li
    assert moved is not None and moved.lemf_out() == tmp_path / "net-offset-90" / "lemf"
    one = topology.load(subnet="127.0.7").li
    assert one is not None and one.pki_dir("a") == tmp_path / "subnet-127.0.7" / "li" / "a" / "pki"
    # paths in the file are relative to the file
    data = _data()
    data["li"]["state_dir"] = "state"
    data["li"]["lemf"]["out"] = "out"
    data["li"]["operators"]["a"]["pki"] = "/abs/pki"
    li2 = topology.parse(data, source=str(tmp_path / "lab.toml")).li
    assert li2 is not None
    assert li2.state() == tmp_path / "state" and li2.lemf_out() == tmp_path / "out"
    assert li2.pki_dir("a") == Path("/abs/pki")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda li: li.pop("lemf"), "li.lemf"),
        (lambda li: li.update(delivery="udp"), "delivery"),
        (lambda li: li["operators"]["a"]["elements"].append("nope"), "unknown element"),
        (lambda li: li["operators"]["a"]["elements"].append("pcscf-b"), "not its element"),
        (lambda li: li["operators"].update(m={"elements": ["anchor-m", "anchor-m"]}), "twice"),
        (lambda li: li["operators"].update(zz={"elements": []}), "unknown operator"),
        (lambda li: li["lemf"].update(address="127.0.10.10"), "share the address"),
        (lambda li: li["lemf"].update(name="alice"), "already"),
    ],
)
def test_inconsistent_li_is_refused(edit: Any, message: str) -> None:
    data = copy.deepcopy(_data())
    edit(data["li"])
    with pytest.raises(TopologyError, match=message):
        topology.parse(data)


def test_internet_proxy_has_no_poi() -> None:
    data = _data()
    data["li"]["operators"]["inet"] = {"elements": ["proxy-inet"]}
    with pytest.raises(TopologyError, match="no POI"):
        topology.parse(data)


def test_lab_pki_is_made_once_and_remade_for_other_addresses(tmp_path: Path) -> None:
    from cryptography import x509

    data = _data()
    data["li"]["operators"]["a"]["pki"] = str(tmp_path / "pki")  # one PKI dir, two plans
    topo = topology.parse(data)
    pki = _li.operator_pki(topo, "a")
    first = pki.server.cert.read_bytes()
    assert _li.operator_pki(topo, "a").server.cert.read_bytes() == first
    moved = _li.operator_pki(topo.remap(net_offset=90), "a")
    assert moved.server.cert == pki.server.cert and moved.server.cert.read_bytes() != first
    cert = x509.load_pem_x509_certificate(moved.server.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert {"127.0.100.10", "127.0.100.11", "127.0.100.12"} <= ips
    assert "127.0.10.10" not in ips
    assert (pki.client.key.stat().st_mode & 0o777) == 0o600


def test_destination_did_is_stable() -> None:
    did = _li.destination_did(topology.load())
    assert did == _li.destination_did(topology.load(net_offset=90))
    assert isinstance(did, uuid.UUID)
