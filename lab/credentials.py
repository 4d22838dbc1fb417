"""The running lab's MIKEY credentials: generated once by ``imslab up``, loaded by every UE.

Every credential profile a keying of :mod:`ue.registry` names is provisioned for all the
topology's subscribers with :func:`lab.matrix.credentials.provision` (the matrix's own
provisioning, so both labs hold the study's PKIs the same way):

* ``operator`` -- one CA per operator domain, each subscriber certified by its home operator's
  CA; also the PSKs (the users' end-to-end PSKs, DHHMAC PSKs, each UE's PSK with its P-CSCF);
* ``external`` -- a CA outside the operators' control (case A);
* ``escrow`` -- the ``operator`` CAs, but the subscriber's key pair was made -- and is kept --
  by its operator (case C): a fresh key per subscriber, issued by the same CA;
* ``self-signed`` -- self-signed certificates (case D).

Layout under the lab state dir (``<state>/mikey``, dirs 0700, files 0600)::

    mikey/lab.json          what was provisioned for whom (regenerated when that changes)
    mikey/network-psk       the P-CSCFs' shared PSK of the hop-by-hop chain (study 2.2.2)
    mikey/link-psks.json    one PSK per link of the chain through the S-CSCFs (psk-hop-cscf)
    mikey/<profile>/...     one :meth:`ue.keying_mikey.MikeyCredentials.save` per profile
    mikey/kms/              MIKEY-SAKKE (profile ``kms``): every KMS's community keys and each
                            user's keys for the acceptable key periods (:mod:`ue.keying_sakke`)
    kms/<domain>/           each operator's KMS: master secrets and audit log (``proxies.kms``)

The MIKEY-SAKKE keys are issued by each home operator's KMS core (:class:`proxies.kms.KmsCore`,
audited) and re-issued when the key period or the subscribers change (RFC 6509 §3.3: monthly,
the next month's from the second-to-last day).

Generation runs under a file lock, so ``imslab up --subprocess`` elements, ``imslab call`` and
``imslab run ue`` started together all end up with the same set. Besides the UEs, two network
functions read it: the P-CSCFs' hop-by-hop MIKEY intermediary (their UEs' hop PSKs and the
network PSK) and each operator's LI key policy (:func:`operator_secrets`: only what that
operator legitimately holds -- the public PSK, its P-CSCFs' hop PSKs, its escrowed keys).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ims.mikey.certs import Credentials
from ims.mikey.sakke_keys import acceptable_periods
from ims.mikey.sakke_store import (
    community_doc,
    issuer_from_doc,
    kms_uri_of,
    material_doc,
    new_kms_secrets,
)
from lab import mikey_hop
from lab.matrix.credentials import LabPki, Pki, provision
from lab.topology import Topology
from li.keys import HopByHopIntermediary, MikeySecrets
from proxies.kms import PROVISIONING, KmsCore
from proxies.kms_https import append_audit
from ue import keying_mikey, keying_sakke, keying_ticket, registry
from ue.keying_mikey import PUBLIC_PSK, MikeyCredentials, aor

#: set by ``imslab up`` (inherited by the elements it starts): the lab's credentials dir. The
#: P-CSCFs run their hop-by-hop MIKEY intermediary and the LI key policies use the operators'
#: secrets only when it is set, so a lab started by other means (tests, the matrix runner,
#: which provisions its own) is unaffected.
ENV = "IMSLAB_LAB_CREDENTIALS"
FORMAT = 1
RENEW_AFTER = 300 * 86400  # the certificates are valid for 365 days
_PKI_OF_PROFILE = {
    registry.OPERATOR: Pki.OPERATOR,
    registry.EXTERNAL: Pki.EXTERNAL,
    registry.SELF_SIGNED: Pki.SELF_SIGNED,
}


class CredentialsError(RuntimeError):
    """The lab's MIKEY credentials cannot be read (or made)."""


def state_dir(topo: Topology) -> Path:
    """The lab state dir (the ``[li]`` one when the topology has it: moved labs get their
    own sub-directory there)."""
    if topo.li is not None:
        return topo.li.state()
    return Path(os.environ.get("IMSLAB_STATE") or Path(tempfile.gettempdir()) / "imslab-state")


def directory(topo: Topology) -> Path:
    return state_dir(topo) / "mikey"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    _private_dir(path)
    fd = os.open(path / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _plan(topo: Topology, bits: int) -> dict[str, Any]:
    """What the credentials must cover: a change (a new subscriber...) regenerates them.
    CAs only for the domains that have subscribers (a visited network certifies nobody)."""
    users = sorted(aor(s.sip_impu) for s in topo.subscribers.values())
    return {
        "format": FORMAT,
        "users": users,
        "domains": sorted({u.rpartition("@")[2] for u in users}),
        "profiles": registry.profiles_used(),
        "bits": bits,
    }


class LabCredentials:
    """The lab's credentials on disk: each profile is read when first asked for (a profile
    holds RSA private keys, whose loading is not free), plus the hop-by-hop network PSK."""

    def __init__(self, path: Path, network_psk: bytes) -> None:
        self.path = path
        self.network_psk = network_psk
        self._profiles: dict[str, MikeyCredentials] = {}

    @property
    def names(self) -> list[str]:
        return registry.profiles_used()

    def profile(self, name: str) -> MikeyCredentials:
        creds = self._profiles.get(name)
        if creds is None:
            try:
                creds = MikeyCredentials.load(self.path / name)
            except (OSError, ValueError, KeyError) as exc:
                raise CredentialsError(
                    f"MIKEY credentials {self.path / name} unreadable ({exc}); "
                    "`imslab up` makes them"
                ) from None
            self._profiles[name] = creds
        return creds

    @property
    def default(self) -> MikeyCredentials:
        return self.profile(registry.OPERATOR)

    def _doc(self, name: str) -> dict[str, Any]:
        try:
            doc = json.loads((self.path / name / "mikey.json").read_text())
        except (OSError, ValueError) as exc:
            raise CredentialsError(
                f"MIKEY credentials {self.path / name} unreadable ({exc})"
            ) from None
        if not isinstance(doc, dict):
            raise CredentialsError(f"MIKEY credentials {self.path / name}: not an object")
        return doc

    def link_psk(self, name: str) -> bytes:
        """The key of one link of the chain through the S-CSCFs (lab.mikey_hop.link_name)."""
        try:
            doc = json.loads((self.path / LINK_PSKS).read_text())
            return bytes.fromhex(doc[name])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CredentialsError(
                f"no link PSK {name!r} in {self.path / LINK_PSKS} ({exc}); `imslab up` makes it"
            ) from None

    def hop_psks(self) -> dict[str, bytes]:
        """Each UE's PSK with its P-CSCF (without loading any private key)."""
        return {k: bytes.fromhex(v) for k, v in self._doc(registry.OPERATOR)["hop_psk"].items()}

    def escrowed_keys(self, domain: str) -> dict[str, Any]:
        """The case C private keys the operator of ``domain`` keeps for its subscribers."""
        from ims.mikey.certs import load_private_key

        creds = self._doc(registry.ESCROW)["credentials"]
        return {
            uri: load_private_key((self.path / registry.ESCROW / c["key"]).read_bytes())
            for uri, c in creds.items()
            if uri.endswith("@" + domain)
        }

    def operator_psks(self, domain: str) -> tuple[bytes, ...]:
        """The end-to-end PSKs the operator of ``domain`` helped its subscribers set up."""
        pairs = self._doc(registry.OPERATOR_PSK)["e2e_psk"]
        return tuple(
            bytes.fromhex(v) for users, v in pairs if any(u.endswith("@" + domain) for u in users)
        )

    def install(self, profiles: Iterable[str] | None = None) -> None:
        """Make them this process's UE credentials: ``profiles`` (default: all) by name, the
        first of them also for strategies without a profile."""
        names = list(profiles) if profiles is not None else self.names
        if registry.KMS in names:  # MIKEY-SAKKE: keys per user, read when a call needs them
            keying_sakke.configure(self.path / registry.KMS)
            keying_ticket.configure(self.path / registry.KMS / "ticket")  # MIKEY-TICKET
            names.remove(registry.KMS)
        loaded = {n: self.profile(n) for n in names}
        first = loaded[names[0]] if names else None
        keying_mikey.configure(first, profiles=loaded)


def _generate(topo: Topology, bits: int, now: float) -> dict[str, MikeyCredentials]:
    plan = _plan(topo, bits)
    users, domains = plan["users"], plan["domains"]
    out: dict[str, MikeyCredentials] = {}
    pkis: dict[str, LabPki] = {}
    out[registry.KMS] = MikeyCredentials()  # no certificates: ensure_kms issues its keys
    for profile, kind in _PKI_OF_PROFILE.items():
        out[profile], pkis[profile] = provision(kind, users, domains, now=now, bits=bits)
    op, op_pki = out[registry.OPERATOR], pkis[registry.OPERATOR]
    # case C: the operator made the subscriber's key pair (and keeps it); its own CA certifies it
    escrowed: dict[str, Credentials] = {
        u: op_pki.issue(u.rpartition("@")[2], u, now=now, bits=bits) for u in users
    }
    out[registry.ESCROW] = MikeyCredentials(
        e2e_psk=op.e2e_psk,
        hop_psk=op.hop_psk,
        dhhmac_psk=op.dhhmac_psk,
        credentials=escrowed,
        trust=op.trust,
        directory={u: c.certificate for u, c in escrowed.items()},
    )
    # case B under a flat trust store: the operator profile's certificates, but every UE
    # trusts every operator CA for any name
    flat = tuple(ca.certificate for ca in op_pki.operator_cas.values())
    out[registry.FLAT] = MikeyCredentials(
        e2e_psk=op.e2e_psk,
        hop_psk=op.hop_psk,
        dhhmac_psk=op.dhhmac_psk,
        credentials=op.credentials,
        trust={d: flat for d in op.trust},
        directory=op.directory,
    )
    # study Q6: end-to-end PSKs made by the operators' key service (each pair's two home
    # operators keep a copy: operator_secrets hands them to their LI key policy)
    out[registry.OPERATOR_PSK] = MikeyCredentials(
        e2e_psk={k: secrets.token_bytes(32) for k in op.e2e_psk},
        hop_psk=op.hop_psk,
        dhhmac_psk=op.dhhmac_psk,
        credentials=op.credentials,
        trust=op.trust,
        directory=op.directory,
    )
    missing = set(registry.profiles_used()) - set(out)
    assert not missing, f"no provisioning for profiles {missing}"  # programmer error
    return out


def ensure(topo: Topology, *, bits: int = 2048, now: float | None = None) -> LabCredentials:
    """The lab's credentials, generated first when missing, stale or about to expire."""
    path = directory(topo)
    now = time.time() if now is None else now
    want = _plan(topo, bits)
    with _locked(path):
        meta_path = path / "lab.json"
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        except (OSError, ValueError):
            meta = None
        fresh = (
            isinstance(meta, dict)
            and meta.get("plan") == want
            and now - float(meta.get("generated", 0)) < RENEW_AFTER
        )
        if not fresh:
            for profile, creds in _generate(topo, bits, now).items():
                _private_dir(path / profile)
                if profile != registry.KMS:
                    creds.save(path / profile)
            _write_private(path / "network-psk", secrets.token_bytes(32))
            _write_private(meta_path, json.dumps({"plan": want, "generated": now}).encode())
        _ensure_link_psks(path / LINK_PSKS, mikey_hop.chain_links(topo), regenerate=not fresh)
        ensure_kms(topo, now=now)
        from lab import ticket_credentials  # it builds on this module

        ticket_credentials.ensure(topo)
        return load(path)


LINK_PSKS = "link-psks.json"


def _ensure_link_psks(path: Path, links: list[str], *, regenerate: bool) -> None:
    """One fresh PSK per link of the chain through the S-CSCFs (psk-hop-cscf), kept until the
    credentials are regenerated; links of a grown topology are added."""
    try:
        have = {} if regenerate else json.loads(path.read_text())
    except (OSError, ValueError):
        have = {}
    if not isinstance(have, dict):
        have = {}
    missing = [name for name in links if name not in have]
    if missing or regenerate:
        have.update({name: secrets.token_bytes(32).hex() for name in missing})
        _write_json(path, have)


def load(path: Path) -> LabCredentials:
    """Open what :func:`ensure` made in ``path`` (``imslab up`` does that first)."""
    try:
        network = (path / "network-psk").read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"no MIKEY credentials in {path} ({exc}); `imslab up` makes them"
        ) from None
    return LabCredentials(path, network)


def from_environment() -> LabCredentials | None:
    """The credentials ``imslab up`` handed its elements (:data:`ENV`), or None."""
    path = os.environ.get(ENV)
    return load(Path(path)) if path else None


def install(topo: Topology, keying: str) -> LabCredentials | None:
    """What a UE process calls first: for a MIKEY ``keying`` (:mod:`ue.registry`),
    :func:`ensure` the lab's credentials and install the profile it uses; None otherwise."""
    mode = registry.BY_NAME.get(keying)
    if mode is None or mode.profile is None:
        return None
    creds = ensure(topo)
    creds.install([mode.profile])
    return creds


# --- MIKEY-SAKKE: each operator's KMS issues its subscribers' keys ---------------------------


def kms_dir(topo: Topology, domain: str) -> Path:
    """The KMS of ``domain``: its master secrets and audit log (0700/0600)."""
    return state_dir(topo) / "kms" / domain


def _write_json(path: Path, doc: Any) -> None:
    _write_private(path, json.dumps(doc, indent=1).encode())


def kms_cores(topo: Topology) -> dict[str, KmsCore]:
    """Every home IMS operator's KMS core (master secrets made once, kept 0600), peered with
    the others: one per operator running an S-CSCF (a plain SIP service has no KMS)."""
    users = sorted(aor(s.sip_impu) for s in topo.subscribers.values())
    homes = {topo.operators[e.operator].domain for e in topo.elements.values() if e.role == "scscf"}
    domains = sorted({u.rpartition("@")[2] for u in users} & homes)
    cores: dict[str, KmsCore] = {}
    for domain in domains:
        d = _private_dir(kms_dir(topo, domain))
        _private_dir(d.parent)
        secrets_path = d / "secrets.json"
        if not secrets_path.exists():
            _write_json(secrets_path, new_kms_secrets(kms_uri_of(domain)))
        issuer = issuer_from_doc(json.loads(secrets_path.read_text()))
        mine = [u for u in users if u.endswith("@" + domain)]
        cores[domain] = KmsCore.create(domain, issuer, mine)
    for core in cores.values():
        for other in cores.values():
            core.peer(other.issuer.community)
    return cores


def ensure_kms(topo: Topology, *, now: float) -> Path:
    """Provision every subscriber's MIKEY-SAKKE keys for the periods acceptable at ``now``
    (RFC 6509 §3.3), issued by its home KMS; nothing is re-issued while nothing changed."""
    _private_dir(directory(topo))
    out = _private_dir(directory(topo) / registry.KMS)
    cores = kms_cores(topo)
    periods = sorted(acceptable_periods(now))
    plan = {
        "users": {d: sorted(c.subscribers) for d, c in cores.items()},
        "periods": periods,
        "kms": {d: c.issuer.community.kpak.hex() for d, c in cores.items()},
    }
    plan_path = out / "plan.json"
    try:
        if json.loads(plan_path.read_text()) == plan:
            return out
    except (OSError, ValueError):
        pass
    community = [community_doc(k) for c in cores.values() for k in [c.issuer.community]]
    _write_json(out / "community.json", community)
    users_dir = _private_dir(out / "users")
    for domain, core in cores.items():
        for user in sorted(core.subscribers):
            docs = [
                material_doc(core.issue(user, p, requester=PROVISIONING, now=now)) for p in periods
            ]
            _write_json(keying_sakke.user_file(out, user), docs)
        append_audit(kms_dir(topo, domain) / "audit.jsonl", core.drain_audit())
    _private_dir(users_dir)
    _write_json(plan_path, plan)
    return out


# --- the network's side ----------------------------------------------------------------------


def _subscribers_of_pcscf(topo: Topology, pcscf: str) -> set[str]:
    return {
        aor(topo.subscribers[spec.subscriber].sip_impu)
        for spec in topo.ues.values()
        if spec.pcscf == pcscf
    }


def hop_intermediary(topo: Topology, pcscf: str, creds: LabCredentials) -> HopByHopIntermediary:
    """The P-CSCF's hop-by-hop MIKEY intermediary: its UEs' hop PSKs and the network PSK."""
    hop = creds.hop_psks()
    mine = {u: hop[u] for u in _subscribers_of_pcscf(topo, pcscf) if u in hop}
    return HopByHopIntermediary(ue_psks=mine, network_psk=creds.network_psk)


def chain_intermediary(topo: Topology, name: str, creds: LabCredentials) -> HopByHopIntermediary:
    """The element's (P-CSCF or S-CSCF) intermediary of the chain through the S-CSCFs."""
    return mikey_hop.chain_intermediaries(topo, creds.hop_psks(), creds.link_psk)[name]


def ue_addresses(topo: Topology) -> dict[str, str]:
    """UE address -> its subscriber's IMPU (where a P-CSCF sends toward which UE)."""
    return {u.address: topo.subscribers[u.subscriber].sip_impu for u in topo.ues.values()}


def operator_secrets(topo: Topology, operator: str, creds: LabCredentials) -> MikeySecrets:
    """The MIKEY secrets operator ``operator`` legitimately holds (its LI key policy): the
    publicly known PSK, the hop PSKs of the UEs its P-CSCFs serve plus the network PSK (it runs
    a hop-by-hop intermediary), the keys of the links its CSCFs are on in the chain through the
    S-CSCFs, the private keys it escrowed for its own subscribers and the
    end-to-end PSKs its key service made for them (study Q6)."""
    domain = topo.operators[operator].domain
    pcscfs = [n for n, e in topo.elements.items() if e.role == "pcscf" and e.operator == operator]
    served: set[str] = set()
    for p in pcscfs:
        served |= _subscribers_of_pcscf(topo, p)
    hop = creds.hop_psks()
    return MikeySecrets(
        public_psks=(PUBLIC_PSK,),
        hop_psks={u: hop[u] for u in served if u in hop},
        network_psk=creds.network_psk if pcscfs else None,
        private_keys=creds.escrowed_keys(domain),
        operator_psks=creds.operator_psks(domain),
        link_psks=mikey_hop.chain_secrets(topo, operator, hop, creds.link_psk),
    )
