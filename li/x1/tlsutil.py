"""TLS with mutual certificates for X1 (HTTPS) and X2/X3: contexts and a lab PKI.

TS 103 221-1/-2 run over TLS with both ends authenticated by certificates (as OpenLI's
X2/X3 listener: TLS 1.3, peer certificate required). ``make_lab_pki`` creates a private CA
and leaf certificates (ECDSA P-256, SAN with the lab's loopback addresses) for tests and
the demo; real deployments load their own files into the same contexts.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def server_context(cert: str | Path, key: str | Path, ca: str | Path) -> ssl.SSLContext:
    """A server context that *requires* a client certificate issued by ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None
) -> ssl.SSLContext:
    """A client context trusting ``ca``, presenting ``cert`` when given (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The authenticated identity of a TLS peer: its verified certificate's subject CN.

    Only meaningful on a context with ``CERT_REQUIRED`` (every context :func:`server_context`
    makes): the handshake has then checked the chain against the trusted CA, so the CN is one
    the CA issued. The X2/X3 receiver binds this identity to the NFIDs a POI may use.
    """
    return peer_common_name(ssl_object)


def peer_common_name(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The subject CN of the verified peer certificate, if any."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    subject: tuple[tuple[tuple[str, str], ...], ...] = cert.get("subject", ())  # type: ignore[assignment]
    for rdn in subject:
        for pair in rdn:
            if pair[0] == "commonName":
                return str(pair[1])
    return None


@dataclass(frozen=True, slots=True)
class CertFiles:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class LabPki:
    ca: Path
    server: CertFiles
    client: CertFiles

    def server_context(self) -> ssl.SSLContext:
        return server_context(self.server.cert, self.server.key, self.ca)

    def client_context(self) -> ssl.SSLContext:
        return client_context(self.ca, self.client.cert, self.client.key)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _issue(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    server: bool,
    hosts: tuple[str, ...] = (),
) -> x509.Certificate:
    now = _dt.datetime.now(_dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer if not ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        # The NE's certificate serves X1 (server) and X2/X3 towards the LEMF (client).
        usages = (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_lab_pki(
    directory: str | Path,
    *,
    server_name: str = "ne-1",
    client_name: str = "admf-1",
    hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost"),
    ca_name: str = "imslab LI lab CA",
) -> LabPki:
    """Create ``ca.pem``, ``server.pem``/``server.key``, ``client.pem``/``client.key``.

    The server certificate's SAN covers ``hosts`` (add the lab addresses you use); the
    client certificate's CN is the ADMF identifier the NE checks (X1 error 1030).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name_x = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = _issue(ca_name, ca_key, ca_name_x, ca_key, ca=True, server=False)
    (d / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    # kept (0600) so that :func:`issue_client_cert` can add one certificate per POI later;
    # certificates of a previous CA in this directory are worthless now
    _write_key(d / "ca.key", ca_key)
    shutil.rmtree(d / "clients", ignore_errors=True)
    out = {}
    for role, name in (("server", server_name), ("client", client_name)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(name, key, ca_name_x, ca_key, ca=False, server=role == "server", hosts=hosts)
        (d / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(d / f"{role}.key", key)
        out[role] = CertFiles(cert=d / f"{role}.pem", key=d / f"{role}.key")
    return LabPki(ca=d / "ca.pem", server=out["server"], client=out["client"])


def issue_client_cert(directory: str | Path, name: str) -> CertFiles:
    """A client certificate with CN ``name`` from the lab CA in ``directory`` (made by
    :func:`make_lab_pki`), as ``clients/<name>.pem``/``.key``; reused when it exists.

    X2/X3 delivery gives every POI its own certificate whose CN is its Network Function ID:
    the LEMF accepts from a connection only PDUs naming that NFID (docs/security.md).
    """
    d = Path(directory)
    out = d / "clients"
    out.mkdir(exist_ok=True, mode=0o700)
    cert_path, key_path = out / f"{name}.pem", out / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        return CertFiles(cert=cert_path, key=key_path)
    if "/" in name or name.startswith(".") or not name:
        raise ValueError(f"not a usable certificate name: {name!r}")
    ca_cert = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the lab CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(name, key, ca_cert.subject, ca_key, ca=False, server=False)
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertFiles(cert=cert_path, key=key_path)
