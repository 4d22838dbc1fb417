"""X.509 credentials for MIKEY CERT payloads (RFC 3830 §4.3, §6.7) and their validation.

A :class:`TrustStore` holds the configured trust anchors. A peer certificate is accepted when
it *is* an anchor (the study's case D: self-signed certificates pinned out of band) or when a
chain from the CERT payloads leads to an anchor by issuer name and signature (cases A-C: an
external or operator CA); every issuing certificate must be a CA (basic constraints), so an
end-entity certificate cannot mint others. Validity periods are checked against the ``now``
passed in, never the clock. Failure raises :class:`~ims.mikey.errors.MikeyError` with
``Invalid Cert``
(RFC 3830 §6.12, error 8).

Helpers to mint keys, CAs and leaf certificates are here too: the lab, tests and a MITM
(case B: a fake certificate from an operator CA) all need them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ims.mikey.constants import ErrorNo
from ims.mikey.errors import MikeyError


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC)


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Trust anchors: CA certificates or pinned self-signed end-entity certificates."""

    anchors: tuple[x509.Certificate, ...] = field(default_factory=tuple)

    def verify(self, chain: Sequence[x509.Certificate], now: float) -> x509.Certificate:
        """Validate ``chain`` (leaf first, then intermediates) at ``now``; return the leaf."""
        if not chain:
            raise MikeyError("no certificate", mikey_error=ErrorNo.INVALID_CERT)
        when = _utc(now)
        for c in chain:
            if not c.not_valid_before_utc <= when <= c.not_valid_after_utc:
                raise MikeyError(
                    f"certificate {c.subject.rfc4514_string()} outside its validity",
                    mikey_error=ErrorNo.INVALID_CERT,
                )
        current = chain[0]
        pool = list(chain[1:])
        for _ in range(len(chain) + 1):
            if current in self.anchors:
                return chain[0]
            for anchor in self.anchors:
                if anchor.subject == current.issuer and _signed_by(current, anchor):
                    if not anchor.not_valid_before_utc <= when <= anchor.not_valid_after_utc:
                        break
                    return chain[0]
            nxt = next(
                (c for c in pool if c.subject == current.issuer and _signed_by(current, c)), None
            )
            if nxt is None:
                break
            pool.remove(nxt)
            current = nxt
        raise MikeyError(
            f"certificate {chain[0].subject.rfc4514_string()} is not trusted",
            mikey_error=ErrorNo.INVALID_CERT,
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer`` is a CA certificate (RFC 5280 §4.2.1.9) whose key signed ``cert``."""
    if not _is_ca(issuer):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A party's RSA key and certificate chain (leaf first) for PKE, DH-SIGN and RSA-R."""

    private_key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]


def rsa_public_key(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise MikeyError("certificate key is not RSA", mikey_error=ErrorNo.INVALID_CERT)
    return key


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from DER (CERT payload) or PEM."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
        # cryptography parses lazily: touch every field we use so that a malformed
        # certificate fails here, as Invalid Cert, and not later as a bare ValueError.
        _ = (cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.extensions)
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_key())
        _ = (cert.signature, cert.signature_hash_algorithm, cert.tbs_certificate_bytes)
        _ = (cert.version, cert.serial_number)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise MikeyError(f"bad certificate: {exc}", mikey_error=ErrorNo.INVALID_CERT) from None
    return cert


def load_private_key(pem: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA private keys are supported")
    return key


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificate(
    *,
    subject: str,
    public_key: rsa.RSAPublicKey,
    issuer_key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None = None,
    ca: bool = False,
    not_before: float,
    days: int = 365,
    uris: Iterable[str] = (),
) -> x509.Certificate:
    """Issue a certificate; with ``issuer=None`` it is self-signed (by ``issuer_key``)."""
    start = _utc(not_before)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    uri_list = [x509.UniformResourceIdentifier(u) for u in uris]
    if uri_list:
        builder = builder.add_extension(x509.SubjectAlternativeName(uri_list), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def self_signed_credentials(subject: str, *, now: float, bits: int = 2048) -> Credentials:
    """A key and a self-signed certificate (the study's case D)."""
    key = generate_rsa_key(bits)
    cert = make_certificate(
        subject=subject, public_key=key.public_key(), issuer_key=key, not_before=now - 60
    )
    return Credentials(private_key=key, chain=(cert,))


def make_ca(subject: str, *, now: float, bits: int = 2048) -> Credentials:
    """An (operator or external) CA: key plus self-signed CA certificate."""
    key = generate_rsa_key(bits)
    cert = make_certificate(
        subject=subject, public_key=key.public_key(), issuer_key=key, ca=True, not_before=now - 60
    )
    return Credentials(private_key=key, chain=(cert,))


def issue_credentials(
    ca: Credentials, subject: str, *, now: float, bits: int = 2048, days: int = 365
) -> Credentials:
    """A fresh key and a certificate for ``subject`` issued by ``ca`` (cases A-C)."""
    key = generate_rsa_key(bits)
    cert = make_certificate(
        subject=subject,
        public_key=key.public_key(),
        issuer_key=ca.private_key,
        issuer=ca.certificate,
        not_before=now - 60,
        days=days,
    )
    return Credentials(private_key=key, chain=(cert,))
