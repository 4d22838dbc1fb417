"""MIKEY cryptographic transforms on ``cryptography`` (RFC 3830 §4.2, RFC 3394, RFC 3526).

Everything here is a pure function over bytes and keys, so a MITM can reuse it leg by leg:
open an envelope with one private key and seal it to another public key, re-MAC a KEMAC,
re-sign a message, run DH with its own key pair on each leg.

* KEMAC encryption (RFC 3830 §4.2.3, Table 6.2.a):
  NULL; AES-CM-128 with key encr_key and ``IV = (salt_key XOR (0x0000 || CSB ID || T)) ||
  0x0000`` where T is the 64-bit T payload value (a 32-bit COUNTER is zero-extended);
  AES-KW-128 = RFC 3394 key wrap with encr_key. RFC 3394 needs a multiple of 64 bits, so the
  sub-payload chain is padded with zero bytes before wrapping; the padding is dropped after
  unwrapping because the chain ends itself (its last next-payload byte is 0). This padding
  rule is our choice and **unverified against the RFC text** (§4.2.3/§6.2 could not be read
  here; minisip leaves AES-KW as ``//TODO`` and GStreamer has none).
* MAC and V (RFC 3830 §4.2.2, §6.2, §6.9): HMAC-SHA-1 with auth_key, 160-bit output.
* Envelope (RFC 3830 §4.2.4, §6.3): env_key encrypted with the peer's RSA public key;
  RSAES-PKCS1-v1_5 by default (what minisip and OpenSSL's default do), RSAES-OAEP selectable.
* Signatures (RFC 3830 §4.2.5 / §6.5 S type): RSA PKCS#1 v1.5 (0) and RSASSA-PSS (1), both
  over SHA-1 (as minisip; selectable for experiments). SHA-1 is **unverified against the RFC
  text** (§4.2.5/§6.5 could not be read here).
* DH (RFC 3830 §4.2.7, Table 6.4): OAKLEY 5 = RFC 3526 group 5 (1536 bit), OAKLEY 1/2 =
  RFC 2409 §6.1/§6.2 (768/1024 bit), generator 2. The shared secret g^(xi*xr) mod p is always
  the big-endian value left-padded to the group width (the TGK, §3.3), never stripped.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from ims.mikey.constants import DhGroup, EncrAlg, ErrorNo, SignType
from ims.mikey.errors import MikeyError
from ims.mikey.kdf import TransportKeys

MAC_LEN = 20


# ------------------------------------------------------------------------ HMAC / KEMAC
def hmac_sha1_160(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-1-160 (RFC 3830 §4.2.2)."""
    return hmac.new(key, data, hashlib.sha1).digest()


def mac_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def aes_cm_iv(salt_key: bytes, csb_id: int, t_value: bytes) -> bytes:
    """``(salt_key XOR (0x0000 || CSB ID || T)) || 0x0000`` (RFC 3830 §4.2.3)."""
    t64 = t_value.rjust(8, b"\x00")
    mask = b"\x00\x00" + csb_id.to_bytes(4, "big") + t64
    return bytes(a ^ b for a, b in zip(salt_key[:14], mask, strict=True)) + b"\x00\x00"


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def kemac_encrypt(
    alg: EncrAlg, keys: TransportKeys, plaintext: bytes, *, csb_id: int, t_value: bytes
) -> bytes:
    """Encrypt a KEMAC sub-payload chain (RFC 3830 §4.2.3)."""
    if alg is EncrAlg.NULL:
        return plaintext
    if alg is EncrAlg.AES_CM_128:
        return _aes_ctr(keys.encr_key, aes_cm_iv(keys.salt_key, csb_id, t_value), plaintext)
    if alg is EncrAlg.AES_KW_128:
        padded = plaintext + b"\x00" * (-len(plaintext) % 8)
        if len(padded) < 16:
            padded += b"\x00" * (16 - len(padded))
        return aes_key_wrap(keys.encr_key, padded)
    raise MikeyError(f"encryption {alg!r} not supported", mikey_error=ErrorNo.INVALID_EA)


def kemac_decrypt(
    alg: EncrAlg, keys: TransportKeys | None, ciphertext: bytes, *, csb_id: int, t_value: bytes
) -> bytes:
    """Decrypt KEMAC encr data; AES-KW integrity failures raise Invalid MAC."""
    if alg is EncrAlg.NULL:
        return ciphertext
    if keys is None:
        raise MikeyError("KEMAC is encrypted and no key is known", mikey_error=ErrorNo.INVALID_EA)
    if alg is EncrAlg.AES_CM_128:
        return _aes_ctr(keys.encr_key, aes_cm_iv(keys.salt_key, csb_id, t_value), ciphertext)
    if alg is EncrAlg.AES_KW_128:
        try:
            return aes_key_unwrap(keys.encr_key, ciphertext)
        except (InvalidUnwrap, ValueError) as exc:
            raise MikeyError(
                f"AES key unwrap failed: {exc}", mikey_error=ErrorNo.INVALID_MAC
            ) from None
    raise MikeyError(f"encryption {alg!r} not supported", mikey_error=ErrorNo.INVALID_EA)


# ------------------------------------------------------------------------------ RSA
EnvelopePadding = Literal["pkcs1v15", "oaep"]


def _env_padding(scheme: EnvelopePadding) -> padding.AsymmetricPadding:
    if scheme == "oaep":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return padding.PKCS1v15()


def envelope_encrypt(
    public_key: rsa.RSAPublicKey, env_key: bytes, scheme: EnvelopePadding = "pkcs1v15"
) -> bytes:
    """Encrypt the envelope key to ``public_key`` (RFC 3830 §4.2.4, PKE payload §6.3)."""
    return public_key.encrypt(env_key, _env_padding(scheme))


def envelope_decrypt(
    private_key: rsa.RSAPrivateKey, data: bytes, scheme: EnvelopePadding = "pkcs1v15"
) -> bytes:
    """Open a PKE envelope; failure is an authentication failure (no oracle detail).

    With PKCS#1 v1.5, OpenSSL's implicit rejection turns a wrong key into a random plaintext
    of random length instead of an error, and that length can be zero: an empty envelope key
    is refused here too, since the PRF cannot take it (RFC 3830 §4.1.2 needs an inkey).
    """
    try:
        env_key = private_key.decrypt(data, _env_padding(scheme))
    except ValueError:
        env_key = b""
    if not env_key:
        raise MikeyError("PKE envelope cannot be opened", mikey_error=ErrorNo.AUTH_FAILURE)
    return env_key


def _sig_padding(stype: SignType) -> padding.AsymmetricPadding:
    if stype is SignType.RSA_PSS:
        return padding.PSS(mgf=padding.MGF1(hashes.SHA1()), salt_length=20)
    return padding.PKCS1v15()


def sign(private_key: rsa.RSAPrivateKey, data: bytes, stype: SignType) -> bytes:
    """RSA signature of ``data`` (RFC 3830 §6.5 S type 0 = PKCS#1 v1.5, 1 = PSS; SHA-1)."""
    return private_key.sign(data, _sig_padding(stype), hashes.SHA1())


def verify(public_key: rsa.RSAPublicKey, signature: bytes, data: bytes, stype: SignType) -> None:
    """Raise MikeyError(Authentication failure) unless ``signature`` is valid."""
    try:
        public_key.verify(signature, data, _sig_padding(stype), hashes.SHA1())
    except InvalidSignature:
        raise MikeyError("signature check failed", mikey_error=ErrorNo.AUTH_FAILURE) from None


# ------------------------------------------------------------------------------- DH
_OAKLEY_COMMON = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9"
)
DH_PRIMES: dict[DhGroup, int] = {
    # RFC 2409 §6.1 (768-bit MODP, OAKLEY group 1)
    DhGroup.OAKLEY_1: int(_OAKLEY_COMMON + "A63A3620FFFFFFFFFFFFFFFF", 16),
    # RFC 2409 §6.2 (1024-bit MODP, OAKLEY group 2)
    DhGroup.OAKLEY_2: int(
        _OAKLEY_COMMON + "A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651"
        "ECE65381FFFFFFFFFFFFFFFF",
        16,
    ),
    # RFC 3526 §2 (1536-bit MODP, group 5)
    DhGroup.OAKLEY_5: int(
        _OAKLEY_COMMON + "A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651"
        "ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356"
        "208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
        16,
    ),
}
DH_GENERATOR = 2
DH_WIDTH = {g: (p.bit_length() + 7) // 8 for g, p in DH_PRIMES.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class DhKeyPair:
    """A DH key pair in an OAKLEY group; ``public`` is the fixed-width DH value (§6.4)."""

    group: DhGroup
    private: int = field(repr=False)
    public: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # g^x mod p once (a 1536-bit modexp costs ~1 ms in Python); frozen, so via object.
        p = DH_PRIMES[self.group]
        value = pow(DH_GENERATOR, self.private, p).to_bytes(DH_WIDTH[self.group], "big")
        object.__setattr__(self, "public", value)

    @classmethod
    def generate(cls, group: DhGroup, *, bits: int = 256) -> DhKeyPair:
        """Private exponent of ``bits`` random bits (2x the strength of AES-128, RFC 3526 §8)."""
        return cls(group=group, private=secrets.randbits(bits) | (1 << (bits - 1)))

    def shared_secret(self, peer_value: bytes) -> bytes:
        """g^(xi*xr) mod p, left-padded to the group width; rejects degenerate peer values."""
        p = DH_PRIMES[self.group]
        if len(peer_value) != DH_WIDTH[self.group]:
            raise MikeyError("DH value has the wrong width", mikey_error=ErrorNo.INVALID_DH)
        y = int.from_bytes(peer_value, "big")
        if not 1 < y < p - 1:
            raise MikeyError("degenerate DH value", mikey_error=ErrorNo.INVALID_DH)
        return pow(y, self.private, p).to_bytes(DH_WIDTH[self.group], "big")


def random_bytes(n: int) -> bytes:
    return secrets.token_bytes(n)
