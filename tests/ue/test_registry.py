"""The keying registry (ue.registry): one table, every name buildable, profiles resolved."""

from __future__ import annotations

import pytest

from ue import keying, keying_mikey, registry
from ue.keying_mikey import MikeyCredentials


def test_every_mode_builds_a_strategy_of_its_own_name() -> None:
    for mode in registry.MODES:
        strategy = keying.get(mode.name)
        assert strategy.name == mode.name
        if isinstance(strategy, keying_mikey.MikeyKeying):
            assert mode.mikey
        if mode.mikey:  # reads MIKEY credentials (sdes-user-layer: the users' own PSK)
            assert mode.profile in registry.PROFILES
            assert strategy.profile == mode.profile  # type: ignore[attr-defined]


def test_the_lists_derive_from_the_table() -> None:
    assert keying.available()[: len(registry.MODES)] == registry.names()
    assert len(set(registry.names())) == len(registry.MODES)
    lines = registry.help_text().splitlines()
    assert [line.split()[0] for line in lines] == registry.names()
    assert set(registry.profiles_used()) == set(registry.PROFILES)
    # the study's PKE cases are distinct entries with distinct PKIs
    cases = {registry.BY_NAME[f"pke-{c}"].profile for c in "abcd"}
    assert cases == {registry.EXTERNAL, registry.OPERATOR, registry.ESCROW, registry.SELF_SIGNED}


def test_unknown_names_raise_keying_error() -> None:
    with pytest.raises(keying.KeyingError, match="unknown keying mode 'pke-e'"):
        keying.get("pke-e")


def test_a_strategy_reads_the_credentials_of_its_profile() -> None:
    default, external = MikeyCredentials(), MikeyCredentials(self_signed=True)
    try:
        keying_mikey.configure(default, profiles={registry.EXTERNAL: external})
        pke_a = keying.get("pke-a")
        pke_b = keying.get("pke-b")
        assert isinstance(pke_a, keying_mikey.MikeyKeying)
        assert isinstance(pke_b, keying_mikey.MikeyKeying)
        assert pke_a.creds() is external
        assert pke_b.creds() is default  # profile not configured: the default set
        keying_mikey.configure(default)  # the matrix's way: one set for every profile
        assert pke_a.creds() is default
    finally:
        keying_mikey.configure(None)
