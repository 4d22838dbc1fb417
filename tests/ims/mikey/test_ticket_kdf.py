"""MIKEY-TICKET key derivation (RFC 6043 §5.1, §6.1, Appendix A.2).

The PRF is checked against OpenSSL's TLS1-PRF with SHA-256 (``openssl kdf``), which is the
P_SHA256 function RFC 6043 §6.1 builds PRF-HMAC-SHA-256 from; the labels byte for byte against
the clauses that define them; the new constants against the digits of e.
"""

from __future__ import annotations

import subprocess
from decimal import Decimal, getcontext

import pytest

from ims.mikey import kdf, ticket_kdf
from tests.conftest import require_tool

RI, RR, RKMS = bytes(range(16)), bytes(range(100, 116)), b"\x55" * 16
CSB = 0x01020304


def openssl_p_sha256(secret: bytes, seed: bytes, length: int) -> bytes:
    openssl = require_tool("openssl")
    out = subprocess.run(
        [
            openssl,
            "kdf",
            "-keylen",
            str(length),
            "-kdfopt",
            "digest:SHA256",
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


@pytest.mark.parametrize("inkey_len", [16, 32, 48, 64])
@pytest.mark.parametrize("out_len", [16, 32, 45])
def test_prf_hmac_sha256_matches_openssl(inkey_len: int, out_len: int) -> None:
    """§6.1 "The new PRF SHALL be constructed as described in Section 4.1.2 of [RFC3830] with
    the differences that HMAC-SHA-256 ... SHALL be used instead of HMAC-SHA-1 and the value 256
    SHALL be used instead of 160": XOR over 256-bit inkey chunks of P_SHA256."""
    inkey = bytes((5 * i + inkey_len) & 0xFF for i in range(inkey_len))
    label = ticket_kdf.message_key_label(
        kdf.CONST_TRANSPORT_AUTH, CSB, response=False, randri=RI, randrr=None
    )
    expected = bytearray(out_len)
    for off in range(0, inkey_len, 32):
        chunk = openssl_p_sha256(inkey[off : off + 32], label, out_len)
        expected = bytearray(a ^ b for a, b in zip(expected, chunk, strict=True))
    assert ticket_kdf.prf_hmac_sha256(inkey, label, out_len) == bytes(expected)
    assert ticket_kdf.prf_of(1) is ticket_kdf.prf_hmac_sha256 and ticket_kdf.prf_of(0) is kdf.prf


def test_new_constants_are_the_next_digits_of_e() -> None:
    """Table 5.1 / Table A.1: "The constants are taken from the decimal digits of e as
    described in [RFC3830]" - the 8th to 11th nine-digit groups, after RFC 3830's seven."""
    getcontext().prec = 120
    digits = str(Decimal(1).exp()).replace(".", "")[1:]
    groups = [int(digits[i : i + 9]) for i in range(0, 99, 9)]
    assert groups[:7] == [
        kdf.CONST_TEK,
        kdf.CONST_AUTH,
        kdf.CONST_ENCR,
        kdf.CONST_TRANSPORT_ENCR,
        kdf.CONST_TRANSPORT_AUTH,
        kdf.CONST_TRANSPORT_SALT,
        kdf.CONST_SALT,
    ]
    assert groups[7:11] == [
        ticket_kdf.CONST_FORK_MPKR,  # MPKr' 0x2B288856
        ticket_kdf.CONST_FORK_TGK,  # TGK'  0x1512B54A
        ticket_kdf.CONST_MPKI,  # MPKi  0x220E99A2
        ticket_kdf.CONST_MPKR,  # MPKr  0x1F4D675B
    ]


def test_message_key_labels() -> None:
    """§5.1.2 "label : constant || 0xFF || CSB ID || 0x01 || length RANDRi || [RANDRi] ||
    length RANDRr || [RANDRr]" (0x02 for responses); "If RANDRi is omitted, length RANDRi SHALL
    be 0"; "Note that at least one of RANDRi and RANDRr is always used"."""
    initial = ticket_kdf.message_key_label(
        kdf.CONST_TRANSPORT_ENCR, CSB, response=False, randri=RI, randrr=None
    )
    assert initial == bytes.fromhex("150533e1ff010203040110") + RI + b"\x00"
    response = ticket_kdf.message_key_label(
        kdf.CONST_TRANSPORT_AUTH, CSB, response=True, randri=None, randrr=RR
    )
    assert response == bytes.fromhex("2d22ac75ff010203040200") + b"\x10" + RR
    with pytest.raises(ValueError):
        ticket_kdf.message_key_label(1, CSB, response=False, randri=None, randrr=None)


def test_message_keys_separate_direction_and_rands() -> None:
    """§5.1.2: initial and response messages are protected with different keys; RANDRr enters
    the response keys of the Ticket Resolve exchange; HMAC-SHA-256-256 takes a 256-bit
    auth_key (§6.2)."""
    psk = b"\x0f" * 16
    a = ticket_kdf.message_keys(psk, CSB, response=False, randri=RI)
    b = ticket_kdf.message_keys(psk, CSB, response=True, randri=RI)
    c = ticket_kdf.message_keys(psk, CSB, response=True, randri=RI, randrr=RR)
    assert len({a.auth_key, b.auth_key, c.auth_key}) == 3
    assert (len(a.encr_key), len(a.auth_key), len(a.salt_key)) == (16, 20, 14)
    wide = ticket_kdf.message_keys(
        psk, CSB, response=False, randri=RI, prf=ticket_kdf.prf_hmac_sha256, auth_len=32
    )
    assert len(wide.auth_key) == 32 and wide.auth_key != a.auth_key


def test_session_key_label_and_values() -> None:
    """§5.1.3 "label : constant || CS ID || 0xFFFFFFFF || 0x03 || length RANDRi || [RANDRi] ||
    length RANDRr || [RANDRr]" with RFC 3830 §4.1.3's TEK/salt constants."""
    label = ticket_kdf.session_key_label(kdf.CONST_TEK, 2, randri=RI, randrr=None)
    assert label == bytes.fromhex("2ad01c6402ffffffff03") + b"\x10" + RI + b"\x00"
    tgk = b"\x33" * 16
    tek1 = ticket_kdf.session_key(tgk, 1, kdf.CONST_TEK, 16, randri=RI)
    tek2 = ticket_kdf.session_key(tgk, 2, kdf.CONST_TEK, 16, randri=RI)
    salt1 = ticket_kdf.session_key(tgk, 1, kdf.CONST_SALT, 14, randri=RI)
    assert len({tek1, tek2, salt1[:14]}) == 3 and len(salt1) == 14
    # with the G flag, RANDRr from TRANSFER_RESP enters too
    assert ticket_kdf.session_key(tgk, 1, kdf.CONST_TEK, 16, randri=RI, randrr=RR) != tek1


def test_forking() -> None:
    """§5.1.1 "label : constant || 0xFF || 0xFFFFFFFF || 0x00 || length ID Data || ID Data ||
    length RANDRkms || RANDRkms", "Length ID Data ... as a 16-bit unsigned integer", "outkey_len
    ... SHALL be equal to inkey_len": each responder identity gets its own MPKr' and TGK'."""
    label = ticket_kdf.fork_label(ticket_kdf.CONST_FORK_TGK, b"sip:bob@ims.lab", RKMS)
    assert label == (
        bytes.fromhex("1512b54affffffffff00000f") + b"sip:bob@ims.lab" + b"\x10" + RKMS
    )
    tgk = b"\x44" * 32
    bob = ticket_kdf.fork_key(
        tgk, ticket_kdf.CONST_FORK_TGK, id_data=b"sip:bob@ims.lab", randrkms=RKMS
    )
    bob2 = ticket_kdf.fork_key(
        tgk, ticket_kdf.CONST_FORK_TGK, id_data=b"sip:bob2@ims.lab", randrkms=RKMS
    )
    assert len(bob) == len(tgk) and bob != bob2 and bob != tgk


def test_base_ticket_keys() -> None:
    """Appendix A.2.1 "label : constant || 0xFF || 0xFFFFFFFF || 0x05 || length RAND || RAND"
    (TPK -> encr/auth/salt) and A.2.2 "... || 0x06 || length RAND || RAND" (MPK -> MPKi, MPKr,
    "outkey_len ... SHALL be equal to inkey_len")."""
    rand = b"\x77" * 16
    tpk = b"\x01" * 32
    keys = ticket_kdf.tpk_keys(tpk, rand)
    label = bytes.fromhex("2d22ac75ffffffffff05") + b"\x10" + rand
    assert keys.auth_key == kdf.prf(tpk, label, 20)
    mpki, mpkr = ticket_kdf.mpk_pair(b"\x02" * 16, rand)
    assert mpki == kdf.prf(b"\x02" * 16, bytes.fromhex("220e99a2ffffffffff06") + b"\x10" + rand, 16)
    assert len(mpkr) == 16 and mpki != mpkr
