"""ECCSI (RFC 6507) against its Appendix A test vector, value by value, and its §5 checks.

RFC 6507 Appendix A: "This appendix provides test data built from the NIST P-256 curve and
base point.  SHA-256 ... is used as the hash function.  The keys and ephemerals -- KSAK, v,
and j -- are arbitrary and for illustration only."
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.mikey import eccsi
from ims.mikey.ecmath import P256, PointError


def h(text: str) -> bytes:
    """Hex as printed in the RFC (spaces and line breaks ignored)."""
    return bytes.fromhex("".join(text.split()))


def i(text: str) -> int:
    return int.from_bytes(h(text), "big")


# ---- RFC 6507 Appendix A, verbatim ---------------------------------------------------
KSAK = 0x12345
KPAK = h("""04
    50D4670B DE75244F 28D2838A 0D25558A 7A72686D 4522D4C8 273FB644 2AEBFA93
    DBDD3755 1AFD263B 5DFD617F 3960C65A 8C298850 FF99F203 66DCE7D4 367217F4""")
ID = b"2011-02\0tel:+447700900123\0"
ID_HEX = h("3230 31312D30 32007465 6C3A2B34 34373730 30393030 31323300")
V = 0x23456
PVT = h("""04
    758A1427 79BE89E8 29E71984 CB40EF75 8CC4AD77 5FC5B9A3 E1C8ED52 F6FA36D9
    A79D2476 92F4EDA3 A6BDAB77 D6AA6474 A464AE49 34663C52 65BA7018 BA091F79""")
HS = i("490F3FEB BC1C902F 6289723D 7F8CBF79 DB889308 49D19F38 F0295B5C 276C14D1")
SSK = i("23F374AE 1F4033F3 E9DBDDAA EF20F4CF 0B86BBD5 A138A5AE 9E7E006B 34489A0D")
M = b"message\0"
J_EPH = 0x34567
J = h("""04
    269D4C8F DEB66A74 E4EF8C0D 5DCC597D DFE6029C 2AFFC493 6008CD2C C1045D81
    6DDA6A13 10F4B067 BD5DABDA D741B7CE F36457E1 96B1BFA9 7FD5F8FB B3926ADB""")
R = i("269D4C8F DEB66A74 E4EF8C0D 5DCC597D DFE6029C 2AFFC493 6008CD2C C1045D81")
HE = i("111F90EA E8271C96 DF9B3D67 26768D9E E9B18145 D7EC152C FA9C23D1 C4F02285")
S_PRIME = i("E09B528D 0EF8D6DF 1AA3ECBF 80110CFC EC9FC682 52CEBB67 9F413484 6940CCFD")
SIG = h("""
    269D4C8F DEB66A74 E4EF8C0D 5DCC597D DFE6029C 2AFFC493 6008CD2C C1045D81
    E09B528D 0EF8D6DF 1AA3ECBF 80110CFC EC9FC682 52CEBB67 9F413484 6940CCFD
    04
    758A1427 79BE89E8 29E71984 CB40EF75 8CC4AD77 5FC5B9A3 E1C8ED52 F6FA36D9
    A79D2476 92F4EDA3 A6BDAB77 D6AA6474 A464AE49 34663C52 65BA7018 BA091F79""")
Y = h("""04
    833898D9 39C0013B B0502728 6F95CCE0 37C11BD2 5799423C 76E48362 A4959978
    95D0473A 1CD6186E E9F0C104 B472499E 1A24D6CE 3D85173F 02EBBD94 5C25F604""")
G = h("""04
    6B17D1F2 E12C4247 F8BCE6E5 63A440F2 77037D81 2DEB33A0 F4A13945 D898C296
    4FE342E2 FE1A7F9B 8EE7EB4A 7C0F9E16 2BCE3357 6B315ECE CBB64068 37BF51F5""")


@pytest.fixture(scope="module")
def kms() -> eccsi.EccsiKms:
    return eccsi.EccsiKms(KSAK)


def test_global_and_community_parameters() -> None:
    """Appendix A "Global parameters" / "Community parameters": p, B, q, G of P-256."""
    assert P256.p == i("FFFFFFFF 00000001 00000000 00000000 00000000 FFFFFFFF FFFFFFFF FFFFFFFF")
    assert P256.b == i("5AC635D8 AA3A93E7 B3EBBD55 769886BC 651D06B0 CC53B0F6 3BCE3C3E 27D2604B")
    assert P256.q == i("FFFFFFFF 00000000 FFFFFFFF FFFFFFFF BCE6FAAD A7179E84 F3B9CAC2 FC632551")
    assert P256.encode_point(P256.g) == G
    assert P256.mul(P256.q, P256.g) is None  # "q ... the order of G in E over F_p" (§4.1)
    assert ID == ID_HEX  # ID := "2011-02\0tel:+447700900123\0" = 0x 3230 31312D30 ...


def test_kpak_is_ksak_times_g(kms: eccsi.EccsiKms) -> None:
    """§4.2 "The KMS MUST fix the KPAK to be KPAK = [KSAK]G"; Appendix A KPAK."""
    assert kms.kpak == KPAK


def test_ssk_pvt_construction_matches_appendix_a(kms: eccsi.EccsiKms) -> None:
    """§5.1.1 steps 2-4: PVT = [v]G, HS = hash( G || KPAK || ID || PVT ),
    SSK = ( KSAK + HS * v ) modulo q; Appendix A "Creating SSK and PVT"."""
    key = kms.issue(ID, v=V)
    assert key.pvt == PVT
    # the HS preimage exactly as Appendix A prints it
    assert hashlib.sha256(G + KPAK + ID + PVT).digest() == HS.to_bytes(32, "big")
    assert eccsi.hash_hs(KPAK, ID, PVT) == HS
    assert key.ssk == SSK


def test_ssk_validation_returns_hs(kms: eccsi.EccsiKms) -> None:
    """§5.1.2: "Validate that KPAK = [SSK]G - [HS]PVT"; HS "SHOULD be stored with the SSK"."""
    key = eccsi.SigningKey(identifier=ID, ssk=SSK, pvt=PVT)
    assert eccsi.validate_signing_key(key, KPAK) == HS


def test_signature_matches_appendix_a(kms: eccsi.EccsiKms) -> None:
    """§5.2.1 steps 2-7 with j = 0x34567: J, r = Jx, HE = hash( HS || r || M ), s', s, Sig."""
    signer = eccsi.EccsiSigner(eccsi.SigningKey(identifier=ID, ssk=SSK, pvt=PVT), KPAK)
    assert P256.encode_point(P256.mul(J_EPH, P256.g)) == J
    assert hashlib.sha256(HS.to_bytes(32, "big") + R.to_bytes(32, "big") + M).digest() == (
        HE.to_bytes(32, "big")
    )
    assert eccsi.hash_he(HS, R, M) == HE
    assert pow(HE + R * SSK, -1, P256.q) * J_EPH % P256.q == S_PRIME  # step 5
    sig = signer.sign(M, j=J_EPH)
    assert sig == SIG  # s = s' here: s' fits in N octets (step 6)
    assert len(sig) == eccsi.SIGNATURE_LEN == 129  # §3.3 "4N+1 octets"


def test_verification_intermediates_and_result() -> None:
    """§5.2.2 steps 4-6: Y = [HS]PVT + KPAK, J = [s]( [HE]G + [r]Y ), "Jx = r modulo p"."""
    pvt = P256.decode_point(PVT)
    y = P256.add(P256.mul(HS, pvt), P256.decode_point(KPAK))
    assert P256.encode_point(y) == Y
    j = P256.mul_public(S_PRIME, P256.mul_add_public(HE, P256.g, R, y))
    assert P256.encode_point(j) == J
    assert eccsi.verify(SIG, M, ID, KPAK)


def test_signature_binds_message_identifier_and_kpak() -> None:
    """§5.2.2: verification is "against a Signer's Identifier (ID), a message (M), and a
    pre-installed root of trust (KPAK)": changing any of them must fail."""
    assert not eccsi.verify(SIG, b"message\1", ID, KPAK)
    assert not eccsi.verify(SIG, M, b"2011-02\0tel:+447700900124\0", KPAK)
    other_kpak = eccsi.EccsiKms(KSAK + 1).kpak
    assert not eccsi.verify(SIG, M, ID, other_kpak)
    for pos in (0, 40, 70, 128):  # r, s, PVT x, PVT y
        bad = bytearray(SIG)
        bad[pos] ^= 1
        assert not eccsi.verify(bytes(bad), M, ID, KPAK)
    assert not eccsi.verify(SIG[:-1], M, ID, KPAK)


def test_pvt_off_curve_is_refused() -> None:
    """§5.1.2 step 1 "Validate that the PVT lies on the elliptic curve E" and §5.2.2 step 1
    "The Verifier MUST check that the PVT lies on the elliptic curve E"."""
    off = PVT[:-1] + bytes([PVT[-1] ^ 1])
    with pytest.raises(eccsi.EccsiError, match="PVT"):
        eccsi.validate_signing_key(eccsi.SigningKey(identifier=ID, ssk=SSK, pvt=off), KPAK)
    assert not eccsi.verify(SIG[:64] + off, M, ID, KPAK)
    with pytest.raises(PointError):
        P256.decode_point(b"\x02" + PVT[1:])  # compressed/other forms are not §3.2


def test_kpak_off_curve_is_refused() -> None:
    """§4.2 "Before use, each device MUST check that the supplied KPAK lies on the elliptic
    curve E"."""
    with pytest.raises(eccsi.EccsiError, match="KPAK"):
        eccsi.check_kpak(KPAK[:-1] + b"\x00")
    assert not eccsi.verify(SIG, M, ID, KPAK[:-1] + b"\x00")


def test_ssk_for_another_identifier_or_kms_is_refused(kms: eccsi.EccsiKms) -> None:
    """§5.1.2: "Every SSK MUST be validated before being installed as a signing key"."""
    wrong_id = eccsi.SigningKey(identifier=b"2011-02\0tel:+447700900999\0", ssk=SSK, pvt=PVT)
    with pytest.raises(eccsi.EccsiError, match="does not validate"):
        eccsi.EccsiSigner(wrong_id, KPAK)
    with pytest.raises(eccsi.EccsiError, match="does not validate"):
        eccsi.EccsiSigner(eccsi.SigningKey(identifier=ID, ssk=SSK, pvt=PVT), eccsi.EccsiKms(7).kpak)
    with pytest.raises(eccsi.EccsiError, match="does not validate"):
        eccsi.validate_signing_key(eccsi.SigningKey(identifier=ID, ssk=SSK + 1, pvt=PVT), KPAK)


def test_random_keys_sign_and_verify() -> None:
    """§5.1.1 and §5.2.1 with fresh random KSAK, v and j: a KMS-issued key validates and its
    signatures verify; two signatures of one message differ (j is ephemeral)."""
    kms = eccsi.EccsiKms()
    ident = b"2026-12\0tel:+15550001\0"
    signer = eccsi.EccsiSigner(kms.issue(ident), kms.kpak)
    a, b = signer.sign(b"m"), signer.sign(b"m")
    assert a != b
    assert eccsi.verify(a, b"m", ident, kms.kpak) and eccsi.verify(b, b"m", ident, kms.kpak)
    # §2.1.2 / RFC 6509 §2.3: several (SSK, PVT) pairs may exist for one Identifier
    other = eccsi.EccsiSigner(kms.issue(ident), kms.kpak)
    assert other.key.pvt != signer.key.pvt
    assert eccsi.verify(other.sign(b"m"), b"m", ident, kms.kpak)


def test_point_arithmetic_agrees_with_openssl() -> None:
    """[k]G from our ladder equals the public key OpenSSL derives for private key k (P-256),
    and the group law holds: [a]G + [b]G == [a+b]G."""
    for k in (1, 2, 3, 0x12345, P256.q - 1, 2**255 + 12345):
        pub = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
        assert P256.mul(k, P256.g) == (pub.x, pub.y)
    a, b = 0xDEADBEEF, 0xC0FFEE << 200
    assert P256.add(P256.mul(a, P256.g), P256.mul(b, P256.g)) == P256.mul(a + b, P256.g)
    assert P256.add(P256.g, P256.neg(P256.g)) is None
    assert P256.double(P256.g) == P256.add(P256.g, P256.g)
    # the fixed-base table agrees with the ladder, zero digits and the range's ends included
    for k in (0, 1, 15, 16, 17, 0x100F, P256.q - 1, 2**256 - 1):
        assert P256.mul_fixed(k, P256.g) == P256.mul(k, P256.g)
    with pytest.raises(ValueError):
        P256.mul_fixed(2**256, P256.g)
    # the variable-time paths for public scalars agree with the ladder
    y = P256.mul(0x12345, P256.g)
    for k1, k2 in ((0, 0), (1, 0), (0, 1), (a, b), (P256.q - 1, 3), (-5, 7)):
        assert P256.mul_public(k1, P256.g) == P256.mul(k1, P256.g)
        assert P256.mul_add_public(k1, P256.g, k2, y) == P256.add(
            P256.mul(k1, P256.g), P256.mul(k2, y)
        )


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=200))
def test_verify_never_raises_on_hostile_signatures(data: bytes) -> None:
    """A signature from the wire is peer input: verify() answers False, never raises."""
    assert eccsi.verify(data, M, ID, KPAK) is False
