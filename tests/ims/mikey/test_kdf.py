"""MIKEY-1 PRF and key derivation checked against an independent computation.

The independent side is OpenSSL's TLS1-PRF with SHA-1 (``openssl kdf``), which is P_SHA1, the
RFC 3830 §4.1.2 P function. For inkeys longer than 256 bits the PRF is the XOR of P over each
256-bit chunk, so the expected value is the XOR of one OpenSSL run per chunk.
"""

from __future__ import annotations

import subprocess

import pytest

from ims.mikey import kdf
from tests.conftest import require_tool

LABEL = kdf.make_label(kdf.CONST_TEK, 1, 0x12345678, bytes(range(16)))


def openssl_p_sha1(secret: bytes, seed: bytes, length: int) -> bytes:
    openssl = require_tool("openssl")
    out = subprocess.run(
        [
            openssl,
            "kdf",
            "-keylen",
            str(length),
            "-kdfopt",
            "digest:SHA1",
            "-kdfopt",
            f"hexsecret:{secret.hex()}",
            "-kdfopt",
            f"hexseed:{seed.hex()}",
            "TLS1-PRF",
        ],
        capture_output=True,
        check=True,
        text=True,
        timeout=20,
    ).stdout
    return bytes.fromhex(out.strip().replace(":", ""))


@pytest.mark.parametrize("inkey_len", [16, 32, 96, 128, 192])
@pytest.mark.parametrize("out_len", [14, 16, 20, 30, 64])
def test_prf_matches_openssl(inkey_len: int, out_len: int) -> None:
    inkey = bytes((7 * i + inkey_len) & 0xFF for i in range(inkey_len))
    expected = bytearray(out_len)
    for off in range(0, inkey_len, 32):
        chunk = openssl_p_sha1(inkey[off : off + 32], LABEL, out_len)
        expected = bytearray(a ^ b for a, b in zip(expected, chunk, strict=True))
    assert kdf.prf(inkey, LABEL, out_len) == bytes(expected)


def test_p_sha1_matches_openssl_multi_block() -> None:
    secret = b"\x01" * 20
    assert kdf.p_sha1(secret, LABEL, 4)[:77] == openssl_p_sha1(secret, LABEL, 77)


def test_minisip_bug_only_for_32_byte_multiples() -> None:
    for n, same in ((16, True), (20, True), (33, True), (32, False), (96, False), (192, False)):
        inkey = bytes(range(n))
        assert (kdf.prf_minisip(inkey, LABEL, 16) == kdf.prf(inkey, LABEL, 16)) is same, n


def test_constants_are_digits_of_e() -> None:
    # e = 2.718281828 459045235 360287471 352662497 757247093 699959574 966967627
    digits = [718281828, 459045235, 360287471, 352662497, 757247093, 699959574, 966967627]
    consts = [
        kdf.CONST_TEK,
        kdf.CONST_AUTH,
        kdf.CONST_ENCR,
        kdf.CONST_TRANSPORT_ENCR,
        kdf.CONST_TRANSPORT_AUTH,
        kdf.CONST_TRANSPORT_SALT,
        kdf.CONST_SALT,
    ]
    assert consts == digits


def test_label_layout() -> None:
    label = kdf.make_label(0x2AD01C64, 2, 0xDEADBEEF, b"R" * 16)
    assert label == bytes.fromhex("2ad01c6402deadbeef") + b"R" * 16


def test_transport_keys_lengths_and_distinct() -> None:
    tk = kdf.derive_transport_keys(b"k" * 16, 1, b"r" * 16)
    assert (len(tk.encr_key), len(tk.auth_key), len(tk.salt_key)) == (16, 20, 14)
    assert tk.encr_key == kdf.prf(b"k" * 16, kdf.make_label(0x150533E1, 0xFF, 1, b"r" * 16), 16)
    assert tk.auth_key == kdf.prf(b"k" * 16, kdf.make_label(0x2D22AC75, 0xFF, 1, b"r" * 16), 20)
    assert tk.salt_key == kdf.prf(b"k" * 16, kdf.make_label(0x29B88916, 0xFF, 1, b"r" * 16), 14)


def test_tek_and_salt_depend_on_cs_id() -> None:
    tgk = b"t" * 16
    assert kdf.derive_tek(tgk, 1, 5, b"r") != kdf.derive_tek(tgk, 2, 5, b"r")
    assert kdf.derive_salt(tgk, 1, 5, b"r") == kdf.prf(
        tgk, kdf.make_label(0x39A2C14B, 1, 5, b"r"), 14
    )


def test_prf_rejects_empty_inkey() -> None:
    with pytest.raises(ValueError):
        kdf.prf(b"", LABEL, 16)
