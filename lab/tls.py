"""A throw-away lab PKI for SIP over TLS on the UE hop (P-CSCF server certificates, UE trust).

``ensure_ca(dir)`` creates a CA once (``ca.pem``/``ca.key``); ``server_context(dir, name,
address)`` issues (and caches) a certificate for an element with its IP address as
subjectAltName and returns a server :class:`ssl.SSLContext`; ``client_context(dir)`` trusts
only that CA (certificate verified; the address is checked through the IP SAN when the
connecting code passes a server hostname). Keys are EC P-256; nothing here is for production.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise PKI creation across processes: lab elements started together (``imslab up
    --subprocess``, netns runs) would otherwise each mint a CA, and a UE could end up trusting
    a CA other than the one that signed its P-CSCF's certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _install(
    directory: Path,
    stem: str,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    key_path: Path,
    cert_path: Path,
) -> None:
    """Write key and certificate under unique temporary names, then rename into place."""
    tmp_key = directory / f".{stem}.{os.getpid()}.key.tmp"
    tmp_pem = directory / f".{stem}.{os.getpid()}.pem.tmp"
    _write_key(tmp_key, key)
    tmp_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_key, key_path)
    os.replace(tmp_pem, cert_path)


def ensure_ca(directory: Path) -> tuple[Path, Path]:
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    with _locked(directory):
        if cert_path.exists() and key_path.exists():  # another process made it meanwhile
            return cert_path, key_path
        return _make_ca(directory, cert_path, key_path)


def _make_ca(directory: Path, cert_path: Path, key_path: Path) -> tuple[Path, Path]:
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
    _install(directory, "ca", key, cert, key_path, cert_path)
    return cert_path, key_path


def issue(directory: Path, name: str, address: str) -> tuple[Path, Path]:
    """Certificate + key for element ``name`` at ``address`` (cached by name and address)."""
    ca_cert_path, ca_key_path = ensure_ca(directory)
    cert_path = directory / f"{name}-{address}.pem"
    key_path = directory / f"{name}-{address}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    with _locked(directory):
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        return _make_cert(directory, name, address, ca_cert_path, ca_key_path, cert_path, key_path)


def issue_identity(directory: Path, name: str) -> tuple[Path, Path]:
    """A client certificate + key whose subject CN is ``name`` (a UE's AoR, an LI function's
    name) from the lab CA, for services that authenticate their clients by it (the KMS)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a usable certificate name: {name!r}")
    ca_cert_path, ca_key_path = ensure_ca(directory)
    stem = "id-" + name.replace(":", "_")
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    with _locked(directory):
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        return _make_cert(directory, name, None, ca_cert_path, ca_key_path, cert_path, key_path)


def _make_cert(
    directory: Path,
    name: str,
    address: str | None,
    ca_cert_path: Path,
    ca_key_path: Path,
    cert_path: Path,
    key_path: Path,
) -> tuple[Path, Path]:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
    )
    if address is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(address))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    _install(directory, cert_path.stem, key, cert, key_path, cert_path)
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
