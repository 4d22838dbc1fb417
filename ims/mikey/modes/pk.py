"""Public-key helpers shared by PKE, DH-SIGN and RSA-R (RFC 3830 §3.2, §3.3, §5.2, §6.5, §6.7).

* SIGN (§6.5: "always the last payload in the PK transport and DH exchange messages"): the
  signature covers the whole message up to the signature bytes, *including* the SIGN
  payload's own 2-byte S type/length header. §5.2: "create and concatenate the MAC/signature
  payload without the MAC/signature field filled in [...] Calculate the MAC/signature over
  the entire MIKEY message, except the MAC/Signature field". ``extra`` is appended after it
  (RSA-R SIGNr: "|| IDi || IDr || T", RFC 4738 §3.6).
* CERT payloads (§6.7) carry the sender's DER certificate (leaf first), or, with cert type
  "X.509v3 URL" (Table 6.7.b: "plain ASCII URL to the location of the Cert"), a URL that a
  caller-supplied ``resolve_url`` turns into DER (RFC 4738 §3.8; the HTTP resolver is in
  :mod:`ims.mikey.aio_certurl`, this module stays sans-I/O). The receiver validates the chain
  against its trust anchors at ``now`` (``Invalid Cert`` on failure) and then checks the
  signature (``Authentication failure`` on failure).
* In PK and RSA-R the KEMAC MAC covers only the KEMAC payload (§5.2: "The MAC is calculated
  over the entire Key data transport payload except the MAC field. Before calculating the
  MAC, the Next payload field is set to zero."; §6.2 likewise).
* NULL MAC (§4.2.3: "If the key wrap function is used in the public key method, the NULL MAC
  is RECOMMENDED to be used, as the key wrap itself will provide integrity of the encrypted
  content"): accepted with AES-KW-128; with another encryption a NULL MAC leaves the envelope
  unbound to the KEMAC, so it is refused as ``Invalid MAC``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

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
from ims.mikey.constants import CertType, EncrAlg, ErrorNo, MacAlg, SignType
from ims.mikey.crypto import (
    DEFAULT_SIGN_HASH,
    SignHash,
    hmac_sha1_160,
    mac_equal,
    sign,
    verify,
)
from ims.mikey.errors import MikeyError
from ims.mikey.kdf import TransportKeys
from ims.mikey.message import MikeyMessage
from ims.mikey.payloads import (
    CertPayload,
    HdrPayload,
    IdPayload,
    KemacPayload,
    Payload,
    SignPayload,
)

#: URL -> DER certificate (or None when it cannot be fetched); see the module docstring.
UrlResolver = Callable[[str], bytes | None]


def cert_payloads(creds: Credentials, url: str | None = None) -> list[CertPayload]:
    """CERT payloads for ``creds``: the DER chain, or one X.509v3 URL payload."""
    if url is not None:
        return [CertPayload(cert_type=CertType.X509V3_URL, data=url.encode("ascii"))]
    return [CertPayload(cert_type=CertType.X509V3, data=certificate_der(c)) for c in creds.chain]


def peer_chain(msg: MikeyMessage, resolve_url: UrlResolver | None = None) -> list[x509.Certificate]:
    chain = []
    for c in msg.find_all(CertPayload):
        if c.cert_type is CertType.X509V3_URL:
            chain.append(load_certificate(_fetch(c.data, resolve_url)))
        elif c.cert_type in (CertType.X509V3, CertType.X509V3_SIGN, CertType.X509V3_ENCR):
            chain.append(load_certificate(c.data))
    return chain


def _fetch(url_bytes: bytes, resolve_url: UrlResolver | None) -> bytes:
    try:
        url = url_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise MikeyError("certificate URL is not ASCII", mikey_error=ErrorNo.INVALID_CERT) from None
    if resolve_url is None:
        raise MikeyError(
            f"certificate by URL {url!r} and no URL resolver", mikey_error=ErrorNo.INVALID_CERT
        )
    der = resolve_url(url)
    if der is None:
        raise MikeyError(f"certificate URL {url!r} not fetched", mikey_error=ErrorNo.INVALID_CERT)
    return der


def validated_peer(
    msg: MikeyMessage,
    trust: TrustStore,
    now: float,
    pinned: x509.Certificate | None = None,
    resolve_url: UrlResolver | None = None,
) -> x509.Certificate:
    """The sender's certificate from its CERT payloads (or ``pinned``), validated at ``now``."""
    chain = peer_chain(msg, resolve_url)
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


def clear_idi(msg: MikeyMessage) -> bytes | None:
    """The clear IDi of an I_MESSAGE (``[IDi|CERTi], [IDr]`` order of RFC 3830 §3.2/§3.3 and
    RFC 4738 §3.1): the first ID payload when there are two, or when the only one comes
    before any CERT payload; None when the initiator sent only a certificate."""
    kinds = [p for p in msg.payloads if isinstance(p, IdPayload | CertPayload)]
    ids = [p for p in kinds if isinstance(p, IdPayload)]
    if len(ids) >= 2 or (len(ids) == 1 and isinstance(kinds[0], IdPayload)):
        return ids[0].data
    return None


def certificate_identities(cert: x509.Certificate) -> set[bytes]:
    """Every identity ``cert`` vouches for: its CN and its SAN URIs."""
    out = {certificate_identity(cert)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return out
    out |= {u.encode() for u in san.get_values_for_type(x509.UniformResourceIdentifier)}
    return out


def signed_message(
    hdr: HdrPayload,
    payloads: Sequence[Payload],
    creds: Credentials,
    sign_type: SignType,
    extra: bytes = b"",
    sign_hash: SignHash = DEFAULT_SIGN_HASH,
) -> bytes:
    """Encode ``hdr + payloads + SIGN`` with the signature over everything before the
    signature field, SIGN header included (§5.2), followed by ``extra``."""
    siglen = creds.private_key.key_size // 8
    placeholder = SignPayload(sign_type=sign_type, signature=b"\x00" * siglen)
    data = MikeyMessage(hdr=hdr, payloads=(*payloads, placeholder)).encode()
    body = data[:-siglen]
    return body + sign(creds.private_key, body + extra, sign_type, sign_hash)


def signed_data(data: bytes, msg: MikeyMessage) -> bytes:
    """The message bytes a SIGN covers: all but the signature field (SIGN header included)."""
    sig = msg.payloads[-1] if msg.payloads else None
    if not isinstance(sig, SignPayload):
        raise MikeyError("SIGN payload missing", mikey_error=ErrorNo.AUTH_FAILURE)
    return data[: len(data) - len(sig.signature)]


def check_signature(
    data: bytes,
    msg: MikeyMessage,
    public_key: rsa.RSAPublicKey,
    extra: bytes = b"",
    sign_hash: SignHash = DEFAULT_SIGN_HASH,
) -> None:
    body = signed_data(data, msg)
    sig = msg.payloads[-1]
    assert isinstance(sig, SignPayload)
    verify(public_key, sig.signature, body + extra, sig.sign_type, sign_hash)


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


def check_pk_kemac_mac(kemac: KemacPayload, keys: TransportKeys) -> None:
    """The KEMAC MAC of PK/RSA-R (§5.2), or a NULL MAC with AES-KW (§4.2.3, module doc)."""
    if kemac.mac_alg is MacAlg.NULL:
        if kemac.encr_alg is not EncrAlg.AES_KW_128:
            raise MikeyError(
                "NULL MAC without AES key wrap leaves the KEMAC unauthenticated",
                mikey_error=ErrorNo.INVALID_MAC,
            )
        return
    if not mac_equal(hmac_sha1_160(keys.auth_key, kemac_mac_input(kemac)), kemac.mac):
        raise MikeyError("KEMAC MAC is wrong", mikey_error=ErrorNo.INVALID_MAC)


def certificate_sha1(cert: x509.Certificate) -> bytes:
    """CHASH value with hash func SHA-1 (RFC 3830 §6.8): the hash of the DER certificate."""
    return hashlib.sha1(certificate_der(cert)).digest()


def certificate_md5(cert: x509.Certificate) -> bytes:
    return hashlib.md5(certificate_der(cert)).digest()


def public_key_of(cert: x509.Certificate) -> rsa.RSAPublicKey:
    return rsa_public_key(cert)
