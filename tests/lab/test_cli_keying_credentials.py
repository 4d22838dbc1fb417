"""The running lab's MIKEY credentials (lab.credentials): made once, private, complete, and
each network function sees only what it holds."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from lab import credentials, topology
from ue import registry
from ue.keying_mikey import PUBLIC_PSK

BITS = 1024  # fast keys for this test; the lab uses 2048


@pytest.fixture
def topo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> topology.Topology:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    return topology.load(net_offset=3)


def test_made_once_private_and_covering_every_subscriber(topo: topology.Topology) -> None:
    made = credentials.ensure(topo, bits=BITS, now=1_000_000.0)
    path = credentials.directory(topo)
    assert made.path == path and path.parent == topo.li.state()  # type: ignore[union-attr]
    for p in [path, *path.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), p
    users = {s.sip_impu for s in topo.subscribers.values()}
    for name in registry.profiles_used():
        if (
            name == registry.KMS
        ):  # MIKEY-SAKKE keys, no certificates (tests/ue/test_keying_sakke.py)
            continue
        creds = made.profile(name)
        assert set(creds.credentials) == users, name
        assert set(creds.directory) == users, name
    assert set(made.default.hop_psk) == users
    # case C: operator CAs (the trust of case B) but keys of their own
    b, c = made.profile(registry.OPERATOR), made.profile(registry.ESCROW)
    assert c.trust == b.trust
    alice = "sip:alice@ims-a.test"
    assert c.directory[alice] != b.directory[alice]
    # a second ensure reuses the set ...
    before = (path / "network-psk").read_bytes()
    again = credentials.ensure(topo, bits=BITS, now=1_000_100.0)
    assert again.network_psk == before
    assert again.profile(registry.OPERATOR).directory[alice] == b.directory[alice]
    # ... until a subscriber is added (or the certificates near their end)
    more = dataclasses.replace(
        topo,
        subscribers={
            **topo.subscribers,
            "zoe@ims-a.test": dataclasses.replace(
                topo.subscribers["alice@ims-a.test"],
                impi="zoe@ims-a.test",
                impus=("sip:zoe@ims-a.test",),
            ),
        },
    )
    grown = credentials.ensure(more, bits=BITS, now=1_000_200.0)
    assert "sip:zoe@ims-a.test" in grown.default.credentials
    assert grown.network_psk != before
    meta = json.loads((path / "lab.json").read_text())
    assert "sip:zoe@ims-a.test" in meta["plan"]["users"]
    renewed = credentials.ensure(more, bits=BITS, now=1_000_200.0 + credentials.RENEW_AFTER)
    assert renewed.network_psk != grown.network_psk


def test_each_operator_holds_only_its_own(topo: topology.Topology) -> None:
    made = credentials.ensure(topo, bits=BITS)
    a = credentials.operator_secrets(topo, "a", made)
    assert a.public_psks == (PUBLIC_PSK,)
    # pcscf-a serves alice; carol roams behind pcscf-v (operator v)
    assert set(a.hop_psks or {}) == {"sip:alice@ims-a.test"}
    assert a.network_psk == made.network_psk
    assert set(a.private_keys or {}) == {"sip:alice@ims-a.test", "sip:carol@ims-a.test"}
    v = credentials.operator_secrets(topo, "v", made)
    assert set(v.hop_psks or {}) == {"sip:carol@ims-a.test"} and not v.private_keys
    m = credentials.operator_secrets(topo, "m", made)  # a media provider runs no P-CSCF
    assert m.network_psk is None and not m.hop_psks and not m.private_keys
    hop = credentials.hop_intermediary(topo, "pcscf-b", made)
    assert set(hop.ue_psks) == {"sip:bob@ims-b.test", "sip:erin@ims-b.test"}
    # study Q6: the PSKs the operators' key service made; the users' own (psk) stay theirs
    alice_bob = frozenset({"sip:alice@ims-a.test", "sip:bob@ims-b.test"})
    helped = made.profile(registry.OPERATOR_PSK).e2e_psk[alice_bob]
    assert helped in a.operator_psks
    assert helped in credentials.operator_secrets(topo, "b", made).operator_psks
    assert made.profile(registry.OPERATOR).e2e_psk[alice_bob] not in a.operator_psks
    assert not v.operator_psks and not m.operator_psks


def test_a_missing_set_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(credentials.CredentialsError, match="imslab up"):
        credentials.load(tmp_path / "nothing")
