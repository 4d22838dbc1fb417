"""Shared MIKEY test credentials (RSA key generation is slow: build them once per session)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ims.mikey.certs import (
    Credentials,
    TrustStore,
    issue_credentials,
    make_ca,
    self_signed_credentials,
)

NOW = 1_750_000_000.0


@dataclass
class Pki:
    ca: Credentials
    other_ca: Credentials
    alice: Credentials
    bob: Credentials
    mallory: Credentials  # issued by other_ca: untrusted for alice/bob
    alice_self: Credentials
    bob_self: Credentials

    @property
    def trust(self) -> TrustStore:
        return TrustStore((self.ca.certificate,))


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = make_ca("Operator CA", now=NOW)
    other = make_ca("External CA", now=NOW)
    return Pki(
        ca=ca,
        other_ca=other,
        alice=issue_credentials(ca, "sip:alice@ims.lab", now=NOW),
        bob=issue_credentials(ca, "sip:bob@ims.lab", now=NOW),
        mallory=issue_credentials(other, "sip:bob@ims.lab", now=NOW),
        alice_self=self_signed_credentials("sip:alice@ims.lab", now=NOW),
        bob_self=self_signed_credentials("sip:bob@ims.lab", now=NOW),
    )
