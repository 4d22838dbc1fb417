"""MIKEY-TICKET in the running lab: each home operator's KMS service and its users' credentials.

RFC 6043 §4.2.1/§4.2.3 (PSK variants): every subscriber shares a PSK with its home operator's
KMS; §10: KMSs of different operators "SHALL be mutually authenticated and signaling between
them SHALL be integrity and confidentiality protected" -- a PSK per pair of KMSs (IDRpsk names
the asking KMS) inside mutual TLS. The lab CA (:mod:`lab.tls`) certifies each KMS element (CN =
its KMS identity ``kms.<domain>``, SAN its address), each UE (CN = its AoR) and each operator's
LI function (CN ``li.<domain>``).

Layout under the lab state dir (dirs 0700, files 0600)::

    kms/<domain>/ticket.json     the KMS's TPK and its subscribers' PSKs
    kms/peers.json               the PSK of each pair of KMSs
    mikey/kms/ticket/<user>@<host>.json
                                 one user's: identity, KMS identity and address, PSK, TLS files

:func:`ensure` makes what is missing (``imslab up`` and ``imslab call`` call it); a new
subscriber gets a PSK, nothing else changes.
"""

from __future__ import annotations

import json
import secrets
import ssl
from pathlib import Path
from typing import Any

from ims.mikey.aio_kms import KmsClient
from ims.mikey.sakke_store import kms_uri_of
from lab import tls
from lab.topology import KMS_PORT, Element, Topology
from proxies.kms_ticket import TicketService
from ue.keying_mikey import aor

from . import credentials as creds


def kms_elements(topo: Topology) -> dict[str, Element]:
    """Home domain -> its KMS element (``role = "kms"``), for the domains with subscribers."""
    users = {aor(s.sip_impu).rpartition("@")[2] for s in topo.subscribers.values()}
    out = {}
    for e in topo.by_role("kms"):
        domain = topo.operators[e.operator].domain
        if domain in users:
            out[domain] = e
    return out


def pki(topo: Topology) -> Path:
    return tls.default_dir()


def li_identity(domain: str) -> str:
    """The TLS identity of the operator's LI function at its KMS."""
    return f"li.{domain}"


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _kms_secrets(topo: Topology, domain: str) -> dict[str, Any]:
    """TPK and subscribers' PSKs of ``domain``'s KMS (made once; new subscribers added)."""
    d = creds._private_dir(creds.kms_dir(topo, domain))
    path = d / "ticket.json"
    doc = _json(path)
    changed = not doc
    doc.setdefault("tpk", secrets.token_hex(32))
    users = doc.setdefault("users", {})
    for s in topo.subscribers.values():
        uri = aor(s.sip_impu)
        if uri.endswith("@" + domain) and uri not in users:
            users[uri] = secrets.token_hex(16)
            changed = True
    if changed:
        creds._write_json(path, doc)
    return doc


def _peer_psks(topo: Topology, domain: str) -> dict[str, bytes]:
    """The PSK ``domain``'s KMS shares with every other home KMS (RFC 6043 §10)."""
    others = sorted(d for d in kms_elements(topo) if d != domain)
    path = creds._private_dir(creds.state_dir(topo) / "kms") / "peers.json"
    doc = _json(path)
    out = {}
    for other in others:
        key = "|".join(sorted((kms_uri_of(domain), kms_uri_of(other))))
        if key not in doc:
            doc[key] = secrets.token_hex(16)
            creds._write_json(path, doc)
        out[kms_uri_of(other)] = bytes.fromhex(doc[key])
    return out


def service(topo: Topology, domain: str) -> TicketService:
    """``domain``'s MIKEY-TICKET KMS service, with its secrets from the lab state."""
    doc = _kms_secrets(topo, domain)
    return TicketService(
        kms_id=kms_uri_of(domain),
        user_psks={u: bytes.fromhex(p) for u, p in doc["users"].items()},
        peer_psks=_peer_psks(topo, domain),
        tpk=bytes.fromhex(doc["tpk"]),
    )


def server_context(topo: Topology, element: Element) -> ssl.SSLContext:
    """The KMS element's TLS server context: its certificate, client certificates required."""
    domain = topo.operators[element.operator].domain
    ctx = tls.server_context(pki(topo), kms_uri_of(domain), element.address)
    ca, _ = tls.ensure_ca(pki(topo))
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client(topo: Topology, element: Element, identity: str) -> KmsClient:
    """A client of ``element`` presenting the lab certificate of ``identity``."""
    if identity.startswith("kms."):  # a peer KMS presents its own element certificate
        me = next(e for d, e in kms_elements(topo).items() if kms_uri_of(d) == identity)
        cert, key = tls.issue(pki(topo), identity, me.address)
    else:
        cert, key = tls.issue_identity(pki(topo), identity)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ca, _ = tls.ensure_ca(pki(topo))
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return KmsClient(element.address, KMS_PORT, ctx)


def peer_clients(topo: Topology, domain: str) -> dict[str, KmsClient]:
    """How ``domain``'s KMS reaches every other KMS (presenting its own certificate)."""
    me = kms_uri_of(domain)
    return {
        kms_uri_of(d): client(topo, e, me) for d, e in kms_elements(topo).items() if d != domain
    }


def user_dir(topo: Topology) -> Path:
    return creds.directory(topo) / "kms" / "ticket"


def ensure(topo: Topology) -> Path:
    """Every subscriber's MIKEY-TICKET credentials (PSK with its home KMS, TLS client
    certificate, where its KMS listens); returns the directory :mod:`ue.keying_ticket` reads."""
    creds._private_dir(creds.directory(topo))
    creds._private_dir(creds.directory(topo) / "kms")
    out = creds._private_dir(user_dir(topo))
    ca, _ = tls.ensure_ca(pki(topo))
    for domain, element in kms_elements(topo).items():
        doc = _kms_secrets(topo, domain)
        for uri, psk in sorted(doc["users"].items()):
            cert, key = tls.issue_identity(pki(topo), uri)
            user = {
                "identity": uri,
                "kms": kms_uri_of(domain),
                "host": element.address,
                "port": KMS_PORT,
                "psk": psk,
                "ca": str(ca),
                "cert": str(cert),
                "key": str(key),
            }
            path = out / f"{uri.partition(':')[2]}.json"
            if _json(path) != user:
                creds._write_json(path, user)
    return out


__all__ = [
    "client",
    "ensure",
    "kms_elements",
    "li_identity",
    "peer_clients",
    "server_context",
    "service",
    "user_dir",
]
