"""MIKEY-TICKET key derivation (RFC 6043 §5.1, §6.1, Appendix A.2): the KMS's and peers' PRF inputs.

* PRF-HMAC-SHA-256, PRF func 1 (§6.1 Table 6.3): "constructed as described in Section 4.1.2 of
  [RFC3830] with the differences that HMAC-SHA-256 ... SHALL be used instead of HMAC-SHA-1 and
  the value 256 SHALL be used instead of 160": the inkey in 256-bit chunks, each through
  P_SHA256, the outputs XORed; PRF func 0 stays MIKEY-1 (:func:`ims.mikey.kdf.prf`).
* Labels (every length field counts bytes; "The labels in the key derivations SHALL NOT include
  entire RANDR payloads, only the fields RAND length and RAND"):

  ========================================= ===================================================
  forking MPKr / TGK (§5.1.1)               const || 0xFF || 0xFFFFFFFF || 0x00 ||
                                            len(ID Data) (16 bits) || ID Data ||
                                            len(RANDRkms) (8) || RANDRkms; out = inkey length
  message keys (§5.1.2)                     const || 0xFF || CSB ID || 0x01 (initial) or 0x02
                                            (response) || len RANDRi || [RANDRi] ||
                                            len RANDRr || [RANDRr]
  session keys from TGK/GTGK (§5.1.3)       const || CS ID || 0xFFFFFFFF || 0x03 ||
                                            len RANDRi || [RANDRi] || len RANDRr || [RANDRr]
  keys from a TPK (App. A.2.1)              const || 0xFF || 0xFFFFFFFF || 0x05 || len RAND || RAND
  MPKi / MPKr from the MPK (App. A.2.2)     const || 0xFF || 0xFFFFFFFF || 0x06 || len RAND || RAND
  ========================================= ===================================================

  with RFC 3830's constants (§4.1.3 TEK/auth/encr/salt, §4.1.4 encr/auth/salt message keys) and
  the new ones: MPKr' 0x2B288856, TGK' 0x1512B54A (Table 5.1), MPKi 0x220E99A2, MPKr 0x1F4D675B
  (Table A.1) - "taken from the decimal digits of e", the groups after RFC 3830's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from ims.mikey import kdf
from ims.mikey.constants import PrfFunc
from ims.mikey.kdf import TransportKeys

CONST_FORK_MPKR = 0x2B288856  # Table 5.1 MPKr'
CONST_FORK_TGK = 0x1512B54A  # Table 5.1 TGK'
CONST_MPKI = 0x220E99A2  # Table A.1
CONST_MPKR = 0x1F4D675B  # Table A.1
PRF_HMAC_SHA_256 = 1  # §6.1 Table 6.3 "PRF-HMAC-SHA-256 | 1"
_ALL_ONES = b"\xff\xff\xff\xff"

Prf = Callable[[bytes, bytes, int], bytes]


def p_sha256(secret: bytes, label: bytes, m: int) -> bytes:
    """RFC 3830 §4.1.2's P with HMAC-SHA-256: ``m`` 256-bit blocks (TLS 1.2's P_SHA256)."""
    out = bytearray()
    a = label
    for _ in range(m):
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + label, hashlib.sha256).digest()
    return bytes(out)


def prf_hmac_sha256(inkey: bytes, label: bytes, length: int) -> bytes:
    """PRF-HMAC-SHA-256 (RFC 6043 §6.1): 256-bit inkey chunks, P_SHA256 each, XORed."""
    if not inkey:
        raise ValueError("PRF inkey must not be empty")
    if length <= 0:
        raise ValueError("PRF output length must be positive")
    m = -(-length * 8 // 256)
    acc = bytearray(m * 32)
    for i in range(0, len(inkey), 32):
        for j, b in enumerate(p_sha256(inkey[i : i + 32], label, m)):
            acc[j] ^= b
    return bytes(acc[:length])


def prf_of(func: int) -> Prf:
    """The PRF named by a PRF func value (HDR, Ticket Policy): 0 MIKEY-1, 1 HMAC-SHA-256."""
    if func == PrfFunc.MIKEY_1:
        return kdf.prf
    if func == PRF_HMAC_SHA_256:
        return prf_hmac_sha256
    raise ValueError(f"unknown PRF func {func}")


def _len8(data: bytes) -> bytes:
    if len(data) > 0xFF:
        raise ValueError("RAND longer than 255 bytes")
    return bytes([len(data)]) + data


def _rands(randri: bytes | None, randrr: bytes | None) -> bytes:
    """``len RANDRi || [RANDRi] || len RANDRr || [RANDRr]`` (omitted: length 0)."""
    if not randri and not randrr:
        raise ValueError("at least one of RANDRi and RANDRr is always used (RFC 6043 §5.1.2)")
    return _len8(randri or b"") + _len8(randrr or b"")


def fork_label(constant: int, id_data: bytes, randrkms: bytes) -> bytes:
    """§5.1.1 label; "Length ID Data ... as a 16-bit unsigned integer"."""
    if len(id_data) > 0xFFFF:
        raise ValueError("ID Data longer than 65535 bytes")
    return (
        constant.to_bytes(4, "big")
        + b"\xff"
        + _ALL_ONES
        + b"\x00"
        + len(id_data).to_bytes(2, "big")
        + id_data
        + _len8(randrkms)
    )


def fork_key(
    inkey: bytes, constant: int, *, id_data: bytes, randrkms: bytes, prf: Prf = kdf.prf
) -> bytes:
    """MPKr' or TGK' (§5.1.1): "outkey_len ... SHALL be equal to inkey_len"."""
    return prf(inkey, fork_label(constant, id_data, randrkms), len(inkey))


def message_key_label(
    constant: int, csb_id: int, *, response: bool, randri: bytes | None, randrr: bytes | None
) -> bytes:
    """§5.1.2 label: 0x01 for initial messages, 0x02 for response messages."""
    return (
        constant.to_bytes(4, "big")
        + b"\xff"
        + csb_id.to_bytes(4, "big")
        + (b"\x02" if response else b"\x01")
        + _rands(randri, randrr)
    )


def message_keys(
    inkey: bytes,
    csb_id: int,
    *,
    response: bool,
    randri: bytes | None,
    randrr: bytes | None = None,
    prf: Prf = kdf.prf,
    encr_len: int = kdf.ENCR_KEY_LEN,
    auth_len: int = kdf.AUTH_KEY_LEN,
    salt_len: int = kdf.SALT_KEY_LEN,
) -> TransportKeys:
    """encr/auth/salt keys protecting a MIKEY-TICKET message, from a PSK, envelope key, MPKi or
    MPKr' (§5.1.2; RFC 3830 §4.1.4 constants). HMAC-SHA-256-256 needs ``auth_len=32``
    (§6.2 "It SHALL be used with a 256-bit authentication key"), AES-CM-256 ``encr_len=32``."""

    def one(constant: int, n: int) -> bytes:
        label = message_key_label(constant, csb_id, response=response, randri=randri, randrr=randrr)
        return prf(inkey, label, n)

    return TransportKeys(
        encr_key=one(kdf.CONST_TRANSPORT_ENCR, encr_len),
        auth_key=one(kdf.CONST_TRANSPORT_AUTH, auth_len),
        salt_key=one(kdf.CONST_TRANSPORT_SALT, salt_len),
    )


def session_key_label(
    constant: int, cs_id: int, *, randri: bytes | None, randrr: bytes | None
) -> bytes:
    """§5.1.3 label: constant || CS ID || 0xFFFFFFFF || 0x03 || RANDRi/RANDRr fields."""
    return (
        constant.to_bytes(4, "big") + bytes([cs_id]) + _ALL_ONES + b"\x03" + _rands(randri, randrr)
    )


def session_key(
    tgk: bytes,
    cs_id: int,
    constant: int,
    length: int,
    *,
    randri: bytes | None,
    randrr: bytes | None = None,
    prf: Prf = kdf.prf,
) -> bytes:
    """A TEK (constant ``kdf.CONST_TEK``), salting key (``kdf.CONST_SALT``) etc. for crypto
    session ``cs_id`` from a TGK, TGK' or GTGK (§5.1.3). RANDRi only under the H flag, RANDRr
    only under the G flag: the caller passes None otherwise."""
    return prf(tgk, session_key_label(constant, cs_id, randri=randri, randrr=randrr), length)


def _ticket_label(constant: int, kind: int, rand: bytes) -> bytes:
    return constant.to_bytes(4, "big") + b"\xff" + _ALL_ONES + bytes([kind]) + _len8(rand)


def tpk_keys(
    tpk: bytes,
    rand: bytes,
    *,
    prf: Prf = kdf.prf,
    encr_len: int = kdf.ENCR_KEY_LEN,
    auth_len: int = kdf.AUTH_KEY_LEN,
    salt_len: int = kdf.SALT_KEY_LEN,
) -> TransportKeys:
    """Keys protecting a MIKEY base ticket's Ticket Data, from the Ticket Protection Key
    (Appendix A.2.1, kind 0x05)."""
    return TransportKeys(
        encr_key=prf(tpk, _ticket_label(kdf.CONST_TRANSPORT_ENCR, 5, rand), encr_len),
        auth_key=prf(tpk, _ticket_label(kdf.CONST_TRANSPORT_AUTH, 5, rand), auth_len),
        salt_key=prf(tpk, _ticket_label(kdf.CONST_TRANSPORT_SALT, 5, rand), salt_len),
    )


def mpk_pair(mpk: bytes, rand: bytes, *, prf: Prf = kdf.prf) -> tuple[bytes, bytes]:
    """(MPKi, MPKr) from the MPK in a base ticket's KEMAC (Appendix A.2.2, kind 0x06);
    "outkey_len ... SHALL be equal to inkey_len"."""
    return (
        prf(mpk, _ticket_label(CONST_MPKI, 6, rand), len(mpk)),
        prf(mpk, _ticket_label(CONST_MPKR, 6, rand), len(mpk)),
    )


__all__ = [
    "CONST_FORK_MPKR",
    "CONST_FORK_TGK",
    "CONST_MPKI",
    "CONST_MPKR",
    "PRF_HMAC_SHA_256",
    "fork_key",
    "fork_label",
    "message_key_label",
    "message_keys",
    "mpk_pair",
    "p_sha256",
    "prf_hmac_sha256",
    "prf_of",
    "session_key",
    "session_key_label",
    "tpk_keys",
]
