"""MIKEY credentials of one matrix case, generated with ``cryptography`` (ims.mikey.certs).

The study's PKE cases differ only in who issued which certificate and whom the UEs trust:

* operator CAs (one per home domain) -- cases B, C (the operator also keeps the private keys
  it generated: ``OPERATOR_ESCROW``), RSA-R and DH-SIGN: a UE trusts, for
  identities of domain D, only D's operator CA (name binding, see :mod:`ue.keying_mikey`);
* an external CA outside the operators' control -- case A: the UEs trust only it;
* self-signed certificates -- case D (and DH with self-signed certificates);
* operator CAs under a *flat* trust store (``OPERATOR_FLAT``): every UE trusts every operator
  CA for any name, so one operator can vouch for another operator's subscriber (case B without
  the name binding the study's "both operators" rests on).

:class:`LabPki` keeps the CA keys: an *assisting* operator uses its CA to issue the substitute
certificates of a task-authorised MITM (li.mitm), and in case C it holds its subscribers'
private keys (lent to its POIs only through an X1 task's ``keyDelivery``). PSKs: the users'
own (psk, dhhmac), the publicly known one, and the hop-by-hop ones each UE shares with its
P-CSCF.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from ims.mikey.certs import Credentials, generate_rsa_key, make_ca, make_certificate
from ue.keying_mikey import PUBLIC_PSK, MikeyCredentials, aor, domain_of, pair


class Pki(StrEnum):
    NONE = "none"
    OPERATOR = "operator"  # case B; RSA-R, DH-SIGN: the operators never see private keys
    OPERATOR_ESCROW = "operator-escrow"  # case C: operator-issued, the operator keeps the keys
    EXTERNAL = "external"  # case A
    SELF_SIGNED = "self-signed"  # case D
    # case B under a flat trust store: operator-issued certificates, but a UE trusts every
    # operator CA for any name (the web-PKI model) instead of the peer's domain's CA only
    OPERATOR_FLAT = "operator-flat"


@dataclass(slots=True)
class LabPki:
    kind: Pki
    operator_cas: dict[str, Credentials] = field(default_factory=dict)  # domain -> CA
    external_ca: Credentials | None = None
    users: dict[str, Credentials] = field(default_factory=dict)  # aor -> the user's own
    # study Q6: domain -> the end-to-end PSK that domain's operator helped its user set up
    operator_psks: dict[str, bytes] = field(default_factory=dict)

    @property
    def operator_holds_private_keys(self) -> bool:
        """Case C: each operator holds its subscribers' private keys (it generated them)."""
        return self.kind is Pki.OPERATOR_ESCROW

    def issue(self, domain: str, identity: str, *, now: float, bits: int) -> Credentials:
        """A certificate for ``identity`` from ``domain``'s operator CA (substitutes)."""
        ca = self.operator_cas[domain]
        return _issue(ca, identity, now=now, bits=bits)


def _issue(ca: Credentials, identity: str, *, now: float, bits: int) -> Credentials:
    key = generate_rsa_key(bits)
    cert = make_certificate(
        subject=identity.partition(":")[2],
        public_key=key.public_key(),
        issuer_key=ca.private_key,
        issuer=ca.certificate,
        not_before=now - 60,
        uris=[identity],
    )
    return Credentials(private_key=key, chain=(cert, ca.certificate))


def self_signed(identity: str, *, now: float, bits: int) -> Credentials:
    key = generate_rsa_key(bits)
    cert = make_certificate(
        subject=identity.partition(":")[2],
        public_key=key.public_key(),
        issuer_key=key,
        not_before=now - 60,
        uris=[identity],
    )
    return Credentials(private_key=key, chain=(cert,))


def provision(
    kind: Pki,
    users: list[str],
    domains: list[str],
    *,
    now: float,
    bits: int = 2048,
    dhhmac_public: bool = False,
    operator_psk: bool = False,
) -> tuple[MikeyCredentials, LabPki]:
    """Credentials for ``users`` (AoRs) and the PKI behind them. ``operator_psk``: the first
    user (the caller) asked its operator's key service for the PSK it shares with the others,
    so that operator keeps a copy (study Q6)."""
    users = [aor(u) for u in users]
    pki = LabPki(kind=kind)
    creds = MikeyCredentials()
    for i, a in enumerate(users):
        for b in users[i + 1 :]:
            creds.e2e_psk[pair(a, b)] = secrets.token_bytes(32)
            creds.dhhmac_psk[pair(a, b)] = PUBLIC_PSK if dhhmac_public else secrets.token_bytes(32)
        creds.hop_psk[a] = secrets.token_bytes(32)
    if operator_psk and len(users) > 1:
        pki.operator_psks[domain_of(users[0])] = creds.e2e_psk[pair(users[0], users[1])]
    if kind in (Pki.OPERATOR, Pki.OPERATOR_ESCROW, Pki.OPERATOR_FLAT):
        for d in domains:
            pki.operator_cas[d] = make_ca(f"{d} operator CA", now=now, bits=bits)
            creds.trust[d] = (pki.operator_cas[d].certificate,)
        if kind is Pki.OPERATOR_FLAT:  # any operator CA vouches for any name
            flat = tuple(ca.certificate for ca in pki.operator_cas.values())
            creds.trust = {d: flat for d in domains}
        for u in users:
            pki.users[u] = _issue(pki.operator_cas[domain_of(u)], u, now=now, bits=bits)
    elif kind is Pki.EXTERNAL:
        pki.external_ca = make_ca("users' own CA", now=now, bits=bits)
        # the operators still run CAs (they could issue substitutes), but nobody trusts them
        for d in domains:
            pki.operator_cas[d] = make_ca(f"{d} operator CA", now=now, bits=bits)
        for d in domains:
            creds.trust[d] = (pki.external_ca.certificate,)
        for u in users:
            pki.users[u] = _issue(pki.external_ca, u, now=now, bits=bits)
    elif kind is Pki.SELF_SIGNED:
        creds.self_signed = True
        for u in users:
            pki.users[u] = self_signed(u, now=now, bits=bits)
    creds.credentials = dict(pki.users)
    creds.directory = {u: c.certificate for u, c in pki.users.items()}
    return creds, pki
