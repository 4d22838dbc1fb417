"""MIKEY cryptographic transforms on ``cryptography`` (RFC 3830 §4.2, RFC 3394, RFC 3526).

Everything here is a pure function over bytes and keys, so a MITM can reuse it leg by leg:
open an envelope with one private key and seal it to another public key, re-MAC a KEMAC,
re-sign a message, run DH with its own key pair on each leg.

* KEMAC encryption (RFC 3830 §4.2.3, Table 6.2.a):
  NULL; AES-CM-128 with key encr_key and ``IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000``
  where T is the 64-bit T payload value (§6.6: "COUNTER SHALL be padded (with leading zeros)
  to a 64-bit value"); AES-KW-128 = the RFC 3394 §2.2.1 key wrap with encr_key and, as §4.2.3
  says, "a 64-bit salt, S, [...] derived in accordance to Section 4.1.4 and the key wrap IV is
  then set to S" (not RFC 3394's default A6A6A6A6A6A6A6A6, so ``cryptography``'s
  ``aes_key_wrap``, which has no IV argument, cannot be used: :func:`aes_kw_wrap` is the
  §2.2.1 index form over AES-ECB). The 64-bit S is the first 8 bytes of the 112-bit
  salt_key: the §4.1.2 PRF output for outkey_len 64 is a prefix of the one for 112
  (both take m = 1 block), which ``tests/ims/mikey/test_rfc_items.py`` asserts.
  **No RFC defines AES-KW padding**: RFC 3394 wraps n >= 2 whole 64-bit blocks and RFC 3830
  says nothing about a Key data chain of another length. Our rule: zero bytes up to a
  multiple of 8 (and at least 16); the unwrapping side drops them because the chain ends
  itself (its last next-payload byte is 0).
* MAC and V (RFC 3830 §4.2.4, §6.2, §6.9): HMAC-SHA-1 with auth_key, 160-bit output.
* Envelope (RFC 3830 §4.2.5, §6.3): "It is MANDATORY to support RSA PKCS#1, v1.5, and it is
  RECOMMENDED to also support RSA OAEP": PKCS#1 v1.5 by default, OAEP selectable.
* Signatures (RFC 3830 §4.2.6, §6.5 S type): RSA PKCS#1 v1.5 (0) and RSASSA-PSS (1). **No RFC
  names the signature hash**: §4.2.6 says the algorithm "is defined by, and dependent on the
  certificate used", and §4.2.1 makes SHA-1 MIKEY's default hash; we default to SHA-1 (as
  minisip does) and let the caller select another (``sign_hash``).
* DH (RFC 3830 §4.2.7, Table 6.4): OAKLEY 5 = RFC 3526 group 5 (1536 bit), OAKLEY 1/2 =
  RFC 2409 §6.1/§6.2 (768/1024 bit), generator 2. The shared secret g^(xi*xr) mod p is always
  the big-endian value left-padded to the group width (the TGK, §3.3), never stripped.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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


# ------------------------------------------------------------------- RFC 3394 key wrap
KW_DEFAULT_IV = bytes.fromhex("A6A6A6A6A6A6A6A6")  # RFC 3394 §2.2.3.1


def _aes_ecb(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.AES(key), modes.ECB())


def aes_kw_wrap(kek: bytes, plaintext: bytes, iv: bytes = KW_DEFAULT_IV) -> bytes:
    """RFC 3394 §2.2.1 key wrap (index form) with an explicit 64-bit ``iv``."""
    if len(iv) != 8:
        raise ValueError("the key wrap IV is 64 bits")
    if len(plaintext) < 16 or len(plaintext) % 8:
        raise ValueError("key wrap input must be n >= 2 whole 64-bit blocks")
    enc = _aes_ecb(kek).encryptor()
    n = len(plaintext) // 8
    a = iv
    r = [plaintext[i * 8 : i * 8 + 8] for i in range(n)]
    for j in range(6):
        for i in range(n):
            b = enc.update(a + r[i])
            t = n * j + i + 1
            a = (int.from_bytes(b[:8], "big") ^ t).to_bytes(8, "big")
            r[i] = b[8:]
    return a + b"".join(r)


def aes_kw_unwrap(kek: bytes, ciphertext: bytes, iv: bytes = KW_DEFAULT_IV) -> bytes:
    """RFC 3394 §2.2.2 key unwrap with the §2.2.3 integrity check against ``iv``.

    Raises ValueError when the recovered initial value is not ``iv`` (wrong key, wrong S,
    or tampered data).
    """
    if len(ciphertext) < 24 or len(ciphertext) % 8:
        raise ValueError("wrapped data must be n+1 >= 3 whole 64-bit blocks")
    dec = _aes_ecb(kek).decryptor()
    n = len(ciphertext) // 8 - 1
    a = ciphertext[:8]
    r = [ciphertext[8 + i * 8 : 16 + i * 8] for i in range(n)]
    for j in range(5, -1, -1):
        for i in range(n - 1, -1, -1):
            t = n * j + i + 1
            b = dec.update((int.from_bytes(a, "big") ^ t).to_bytes(8, "big") + r[i])
            a = b[:8]
            r[i] = b[8:]
    if not hmac.compare_digest(a, iv):
        raise ValueError("key unwrap integrity check failed")
    return b"".join(r)


def kw_iv(keys: TransportKeys) -> bytes:
    """S, the 64-bit salt of RFC 3830 §4.2.3 ("the key wrap IV is then set to S")."""
    return keys.salt_key[:8]


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
        return aes_kw_wrap(keys.encr_key, padded, kw_iv(keys))
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
            return aes_kw_unwrap(keys.encr_key, ciphertext, kw_iv(keys))
        except ValueError as exc:
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


#: The signature hash: not on the wire and named by no RFC (see the module docstring).
SignHash = Literal["sha1", "sha256", "sha384", "sha512"]
SIGN_HASHES: tuple[SignHash, ...] = get_args(SignHash)
DEFAULT_SIGN_HASH: SignHash = "sha1"


def _hash(name: SignHash) -> hashes.HashAlgorithm:
    return {
        "sha1": hashes.SHA1(),
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }[name]


def _sig_padding(stype: SignType, hash_name: SignHash) -> padding.AsymmetricPadding:
    if stype is SignType.RSA_PSS:
        h = _hash(hash_name)
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


def sign(
    private_key: rsa.RSAPrivateKey,
    data: bytes,
    stype: SignType,
    hash_name: SignHash = DEFAULT_SIGN_HASH,
) -> bytes:
    """RSA signature of ``data`` (RFC 3830 §6.5 S type 0 = PKCS#1 v1.5, 1 = PSS)."""
    return private_key.sign(data, _sig_padding(stype, hash_name), _hash(hash_name))


def verify(
    public_key: rsa.RSAPublicKey,
    signature: bytes,
    data: bytes,
    stype: SignType,
    hash_name: SignHash = DEFAULT_SIGN_HASH,
) -> None:
    """Raise MikeyError(Authentication failure) unless ``signature`` is valid."""
    try:
        public_key.verify(signature, data, _sig_padding(stype, hash_name), _hash(hash_name))
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
