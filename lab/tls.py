"""A throw-away lab PKI for SIP over TLS on the UE hop (P-CSCF server certificates, UE trust).

``ensure_ca(dir)`` creates a CA once (``ca.pem``/``ca.key``); ``server_context(dir, name,
address)`` issues (and caches) a certificate for an element with its IP address as
subjectAltName and returns a server :class:`ssl.SSLContext`; ``client_context(dir)`` trusts
only that CA (certificate verified; the address is checked through the IP SAN when the
connecting code passes a server hostname). Keys are EC P-256; nothing here is for production.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def default_dir() -> Path:
    return Path(os.environ.get("IMSLAB_PKI", Path(tempfile.gettempdir()) / "imslab-pki"))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def ensure_ca(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imslab lab CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    tmp = directory / f".ca.{os.getpid()}"
    _write_key(tmp.with_suffix(".key"), key)
    tmp.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp.with_suffix(".key"), key_path)
    os.replace(tmp.with_suffix(".pem"), cert_path)
    return cert_path, key_path


def issue(directory: Path, name: str, address: str) -> tuple[Path, Path]:
    """Certificate + key for element ``name`` at ``address`` (cached by name and address)."""
    ca_cert_path, ca_key_path = ensure_ca(directory)
    cert_path = directory / f"{name}-{address}.pem"
    key_path = directory / f"{name}-{address}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(address))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    tmp = directory / f".{name}.{os.getpid()}"
    _write_key(tmp.with_suffix(".key"), key)
    tmp.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp.with_suffix(".key"), key_path)
    os.replace(tmp.with_suffix(".pem"), cert_path)
    return cert_path, key_path


def server_context(directory: Path, name: str, address: str) -> ssl.SSLContext:
    cert, key = issue(directory, name, address)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(directory: Path) -> ssl.SSLContext:
    ca_cert, _ = ensure_ca(directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # peers are addressed by IP; the chain is still verified
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca_cert)
    return ctx
