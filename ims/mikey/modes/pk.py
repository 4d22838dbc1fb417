"""Public-key helpers shared by PKE, DH-SIGN and RSA-R (RFC 3830 §3.2, §3.3, §5.2, §6.5, §6.7).

* SIGN (§6.5) is the last payload; the signature covers the whole message up to the signature
  bytes, *including* the SIGN payload's own 2-byte type/length header (§5.2: "the entire MIKEY
  message, except the signature field itself").
* CERT payloads (§6.7) carry the sender's DER certificate (leaf first); the receiver validates
  it against its trust anchors at ``now`` (``Invalid Cert`` on failure) and then checks the
  signature (``Authentication failure`` on failure).
* In PK and RSA-R the KEMAC MAC (§3.2, §6.2) covers only the KEMAC payload, up to the MAC
  field, computed with its next-payload byte set to 0 (as minisip does in every revision
  looked at; a KEMAC cannot be the last payload in these modes, so the byte would otherwise
  depend on what follows). **Unverified against the RFC text**: the IETF 62 MSEC slides of
  the RFC 4738 authors give "KEMAC = E(encr_key, IDi || {TGK}) || MAC" but not what the MAC
  covers, and §3.2/§5.2/§6.2 could not be read here.
* The SIGN coverage quoted above from §5.2 is likewise the first author's recollection, not
  re-read; the SIGN payload layout and its place (last) are confirmed by tshark dissecting
  our messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ims.buffer import Buffer
from ims.mikey.certs import (
    Credentials,
    TrustStore,
    certificate_der,
    load_certificate,
    rsa_public_key,
)
from ims.mikey.constants import CertType, ErrorNo, SignType
from ims.mikey.crypto import hmac_sha1_160, sign, verify
from ims.mikey.errors import MikeyError
from ims.mikey.message import MikeyMessage
from ims.mikey.payloads import CertPayload, HdrPayload, KemacPayload, Payload, SignPayload


def cert_payloads(creds: Credentials) -> list[CertPayload]:
    return [CertPayload(cert_type=CertType.X509V3, data=certificate_der(c)) for c in creds.chain]


def peer_chain(msg: MikeyMessage) -> list[x509.Certificate]:
    return [
        load_certificate(c.data)
        for c in msg.find_all(CertPayload)
        if c.cert_type in (CertType.X509V3, CertType.X509V3_SIGN, CertType.X509V3_ENCR)
    ]


def validated_peer(
    msg: MikeyMessage,
    trust: TrustStore,
    now: float,
    pinned: x509.Certificate | None = None,
) -> x509.Certificate:
    """The sender's certificate from its CERT payloads (or ``pinned``), validated at ``now``."""
    chain = peer_chain(msg)
    if not chain:
        if pinned is None:
            raise MikeyError(
                "no CERT payload and no known certificate", mikey_error=ErrorNo.INVALID_CERT
            )
        chain = [pinned]
    return trust.verify(chain, now)


def certificate_identity(cert: x509.Certificate) -> bytes:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return value.encode() if isinstance(value, str) else bytes(value)


def signed_message(
    hdr: HdrPayload,
    payloads: Sequence[Payload],
    creds: Credentials,
    sign_type: SignType,
    extra: bytes = b"",
) -> bytes:
    """Encode ``hdr + payloads + SIGN`` with the signature over everything before it (+extra)."""
    siglen = creds.private_key.key_size // 8
    placeholder = SignPayload(sign_type=sign_type, signature=b"\x00" * siglen)
    data = MikeyMessage(hdr=hdr, payloads=(*payloads, placeholder)).encode()
    body = data[:-siglen]
    return body + sign(creds.private_key, body + extra, sign_type)


def check_signature(
    data: bytes, msg: MikeyMessage, public_key: rsa.RSAPublicKey, extra: bytes = b""
) -> None:
    sig = msg.payloads[-1] if msg.payloads else None
    if not isinstance(sig, SignPayload):
        raise MikeyError("SIGN payload missing", mikey_error=ErrorNo.AUTH_FAILURE)
    n = len(sig.signature)
    verify(public_key, sig.signature, data[: len(data) - n] + extra, sig.sign_type)


def kemac_mac_input(kemac: KemacPayload) -> bytes:
    """KEMAC payload bytes up to its MAC, next-payload byte forced to 0 (see module doc)."""
    buf = Buffer()
    buf.push_uint8(0)
    buf.push_uint8(kemac.encr_alg)
    buf.push_uint16(len(kemac.encr_data))
    buf.push_bytes(kemac.encr_data)
    buf.push_uint8(kemac.mac_alg)
    return buf.data()


def kemac_with_mac(kemac: KemacPayload, auth_key: bytes) -> KemacPayload:
    return KemacPayload(
        encr_alg=kemac.encr_alg,
        encr_data=kemac.encr_data,
        mac_alg=kemac.mac_alg,
        mac=hmac_sha1_160(auth_key, kemac_mac_input(kemac)) if kemac.mac else b"",
    )


def certificate_sha1(cert: x509.Certificate) -> bytes:
    """CHASH value with hash func SHA-1 (RFC 3830 §6.8): the hash of the DER certificate."""
    return hashlib.sha1(certificate_der(cert)).digest()


def certificate_md5(cert: x509.Certificate) -> bytes:
    return hashlib.md5(certificate_der(cert)).digest()


def public_key_of(cert: x509.Certificate) -> rsa.RSAPublicKey:
    return rsa_public_key(cert)
