"""MIKEY-1 PRF and key derivation (RFC 3830 §4.1.2, §4.1.3, §4.1.4).

* §4.1.2 PRF(inkey, label): split ``inkey`` into 256-bit chunks s_1..s_n (the last may be
  shorter), ``m = ceil(outkey_len / 160)``, and XOR ``P(s_i, label, m)`` over all chunks;
  ``P(s, label, m) = HMAC(s, A_1||label) || ... || HMAC(s, A_m||label)`` with
  ``A_0 = label``, ``A_i = HMAC(s, A_(i-1))`` and HMAC = HMAC-SHA-1. P is TLS 1.0's P_SHA1,
  which is how the tests check it (OpenSSL TLS1-PRF with SHA-1 for one-chunk inkeys).
  Every chunk is used with its *own* length: minisip hashes the last chunk with
  ``len % 32`` bytes, which is 0 for 32-byte multiples (every DH secret) — a bug we do not copy.
* §4.1.3 keys from the TGK for crypto session ``cs_id``:
  ``label = constant || cs_id || csb_id || RAND`` with constants 0x2AD01C64 (TEK),
  0x1B5C7973 (authentication key), 0x15798CEF (encryption key), 0x39A2C14B (salting key).
* §4.1.4 keys protecting the MIKEY message itself, from the PSK / envelope key (and the
  DHHMAC PSK, RFC 4650 §3): same label form with ``cs_id = 0xFF`` and constants 0x150533E1
  (encr_key), 0x2D22AC75 (auth_key), 0x29B88916 (salt_key).

Checked against the RFC text: §4.1.3 "label : constant || cs_id || csb_id || RAND" and Table
4.1.3 (0x2AD01C64 TEK, 0x1B5C7973 authentication key, 0x15798CEF encryption key, 0x39A2C14B
salting key), "these 32-bit constant values [...] are taken from the decimal digits of e";
§4.1.4 "label : constant || 0xFF || csb_id || RAND" and Table 4.1.4 (0x150533E1 encryption
key, 0x2D22AC75 authentication key, 0x29B88916 salt key). The cs_id of a TEK is the crypto
session's number: §6.1.1 "The stream using SSRC_i will also have Crypto Session ID equal to no
i". ``tests/ims/mikey/test_kdf.py`` also checks the e-digit relation and P against OpenSSL's
TLS1-PRF.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

CONST_TEK = 0x2AD01C64
CONST_AUTH = 0x1B5C7973
CONST_ENCR = 0x15798CEF
CONST_SALT = 0x39A2C14B
CONST_TRANSPORT_ENCR = 0x150533E1
CONST_TRANSPORT_AUTH = 0x2D22AC75
CONST_TRANSPORT_SALT = 0x29B88916
TRANSPORT_CS_ID = 0xFF

#: RFC 3830 §4.2.1 / §6.2: encr_key 128 bits (AES-CM-128, AES-KW-128), auth_key 160 bits
#: (HMAC-SHA-1-160), salt_key 112 bits (AES-CM IV, §4.2.3).
ENCR_KEY_LEN = 16
AUTH_KEY_LEN = 20
SALT_KEY_LEN = 14


def _hmac_sha1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


def p_sha1(secret: bytes, label: bytes, m: int) -> bytes:
    """The P function of RFC 3830 §4.1.2 (equal to TLS 1.0 P_SHA1), ``m`` 160-bit blocks."""
    out = bytearray()
    a = label
    for _ in range(m):
        a = _hmac_sha1(secret, a)
        out += _hmac_sha1(secret, a + label)
    return bytes(out)


def prf(inkey: bytes, label: bytes, length: int) -> bytes:
    """MIKEY-1 PRF (RFC 3830 §4.1.2): ``length`` bytes from ``inkey`` and ``label``."""
    if not inkey:
        raise ValueError("PRF inkey must not be empty")
    if length <= 0:
        raise ValueError("PRF output length must be positive")
    m = -(-length * 8 // 160)
    acc = bytearray(m * 20)
    for i in range(0, len(inkey), 32):
        block = p_sha1(inkey[i : i + 32], label, m)
        for j, b in enumerate(block):
            acc[j] ^= b
    return bytes(acc[:length])


def prf_minisip(inkey: bytes, label: bytes, length: int) -> bytes:
    """minisip's PRF *with its bug* (last chunk keyed with ``len % 32`` bytes).

    Kept only to show, in tests and docs, where minisip peers diverge from the RFC.
    """
    m = -(-length * 8 // 160)
    n = -(-len(inkey) // 32)
    acc = bytearray(m * 20)
    for i in range(n):
        if i < n - 1:
            chunk = inkey[i * 32 : i * 32 + 32]
        else:
            chunk = inkey[i * 32 : i * 32 + len(inkey) % 32]
        for j, b in enumerate(p_sha1(chunk, label, m)):
            acc[j] ^= b
    return bytes(acc[:length])


def make_label(constant: int, cs_id: int, csb_id: int, rand: bytes) -> bytes:
    """``constant || cs_id || csb_id || RAND`` (RFC 3830 §4.1.3 / §4.1.4)."""
    return constant.to_bytes(4, "big") + bytes([cs_id]) + csb_id.to_bytes(4, "big") + rand


def derive_tek(tgk: bytes, cs_id: int, csb_id: int, rand: bytes, length: int = 16) -> bytes:
    """TEK = SRTP master key for crypto session ``cs_id`` (RFC 3830 §4.1.3)."""
    return prf(tgk, make_label(CONST_TEK, cs_id, csb_id, rand), length)


def derive_salt(tgk: bytes, cs_id: int, csb_id: int, rand: bytes, length: int = 14) -> bytes:
    """Salting key = SRTP master salt for crypto session ``cs_id`` (RFC 3830 §4.1.3)."""
    return prf(tgk, make_label(CONST_SALT, cs_id, csb_id, rand), length)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportKeys:
    """encr_key, auth_key and salt_key protecting a MIKEY message (RFC 3830 §4.1.4)."""

    encr_key: bytes = field(repr=False)
    auth_key: bytes = field(repr=False)
    salt_key: bytes = field(repr=False)


def derive_transport_keys(inkey: bytes, csb_id: int, rand: bytes) -> TransportKeys:
    """Keys from a PSK, envelope key or DHHMAC PSK (RFC 3830 §4.1.4, cs_id = 0xFF)."""
    return TransportKeys(
        encr_key=prf(
            inkey, make_label(CONST_TRANSPORT_ENCR, TRANSPORT_CS_ID, csb_id, rand), ENCR_KEY_LEN
        ),
        auth_key=prf(
            inkey, make_label(CONST_TRANSPORT_AUTH, TRANSPORT_CS_ID, csb_id, rand), AUTH_KEY_LEN
        ),
        salt_key=prf(
            inkey, make_label(CONST_TRANSPORT_SALT, TRANSPORT_CS_ID, csb_id, rand), SALT_KEY_LEN
        ),
    )
