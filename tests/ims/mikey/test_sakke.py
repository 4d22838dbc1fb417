"""SAKKE (RFC 6508) against its Appendix A test vector, value by value, and its §6 checks.

RFC 6508 Appendix A: "This appendix provides test data for SAKKE with the public parameters
defined in Appendix A of [RFC6509].  'b' represents the Identifier of the Responder.  The
value "mask" is the value used to mask the SSV and is defined to be
HashToIntegerRange( g^r, 2^n, Hash )."
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.mikey import sakke
from ims.mikey.sakke import CURVE


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def i(text: str) -> int:
    return int.from_bytes(h(text), "big")


# ---- RFC 6508 Appendix A, verbatim ------------------------------------------------------
Z_SECRET = i("AFF429D3 5F84B110 D094803B 3595A6E2 998BC99F")
ZX = i("""5958EF1B 1679BF09 9B3A030D F255AA6A 23C1D8F1 43D4D23F 753E69BD 27A832F3
    8CB4AD53 DDEF4260 B0FE8BB4 5C4C1FF5 10EFFE30 0367A37B 61F701D9 14AEF097
    24825FA0 707D61A6 DFF4FBD7 273566CD DE352A0B 04B7C16A 78309BE6 40697DE7
    47613A5F C195E8B9 F328852A 579DB8F9 9B1D0034 479EA9C5 595F47C4 B2F54FF2""")
ZY = i("""1508D375 14DCF7A8 E143A605 8C09A6BF 2C9858CA 37C25806 5AE6BF75 32BC8B5B
    63383866 E0753C5A C0E72709 F8445F2E 6178E065 857E0EDA 10F68206 B63505ED
    87E534FB 2831FF95 7FB7DC61 9DAE6130 1EEACC2F DA3680EA 4999258A 833CEA8F
    C67C6D19 487FB449 059F26CC 8AAB655A B58B7CC7 96E24E9A 39409575 4F5F8BAE""")
B_ID = h("3230 31312D30 32007465 6C3A2B34 34373730 30393030 31323300")
SSV = h("12345678 9ABCDEF0 12345678 9ABCDEF0")
R_EPH = i("""13EE3E1B 8DAC5DB1 68B1CEB3 2F0566A4 C273693F 78BAFFA2 A2EE6A68 6E6BD90F
    8206CCAB 84E7F42E D39BD4FB 131012EC CA2ECD21 19414560 C17CAB46 B956A80F
    58A3302E B3E2C9A2 28FBA7ED 34D8ACA2 392DA1FF B0B17B23 20AE09AA EDFD0235
    F6FE0EB6 5337A63F 9CC97728 B8E5AD04 60FADE14 4369AA5B 21662132 47712096""")
RBX = i("""44E8AD44 AB8592A6 A5A3DDCA 5CF896C7 18043606 A01D650D EF37A01F 37C228C3
    32FC3173 54E2C274 D4DAF8AD 001054C7 6CE57971 C6F4486D 57230432 61C506EB
    F5BE438F 53DE04F0 67C776E0 DD3B71A6 29013328 3725A532 F21AF145 126DC1D7
    77ECC27B E50835BD 28098B8A 73D9F801 D893793A 41FF5C49 B87E79F2 BE4D56CE""")
RBY = i("""557E134A D85BB1D4 B9CE4F8B E4B08A12 BABF55B1 D6F1D7A6 38019EA2 8E15AB1C
    9F76375F DD1210D4 F4351B9A 009486B7 F3ED46C9 65DED2D8 0DADE4F3 8C6721D5
    2C3AD103 A10EBD29 59248B4E F006836B F097448E 6107C9ED EE9FB704 823DF199
    F832C905 AE45F8A2 47A072D8 EF729EAB C5E27574 B07739B3 4BE74A53 2F747B86""")
G_R = i("""7D2A8438 E6291C64 9B6579EB 3B79EAE9 48B1DE9E 5F7D1F40 70A08F8D B6B3C515
    6F2201AF FBB5CB9D 82AA3EC0 D0398B89 ABC78A13 A760C0BF 3F77E63D 0DF3F1A3
    41A41B88 11DF197F D6CD0F00 3125606F 4F109F40 0F7292A1 0D255E3C 0EBCCB42
    53FB182C 68F09CF6 CD9C4A53 DA6C74AD 007AF36B 8BCA979D 5895E282 F483FCD6""")
MASK = i("9BD4EA1E 801D37E6 2AD2FAB0 D4F5BBF7")
H_HINT = h("89E0BC66 1AA1E916 38E6ACC8 4E496507")
KBX = i("""93AF67E5 007BA6E6 A80DA793 DA300FA4 B52D0A74 E25E6E7B 2B3D6EE9 D18A9B5C
    5023597B D82D8062 D3401956 3BA1D25C 0DC56B7B 979D74AA 50F29FBF 11CC2C93
    F5DFCA61 5E609279 F6175CEA DB00B58C 6BEE1E7A 2A47C4F0 C456F052 59A6FA94
    A634A40D AE1DF593 D4FECF68 8D5FC678 BE7EFC6D F3D68353 25B83B2C 6E69036B""")
KBY = i("""155F0A27 241094B0 4BFB0BDF AC6C670A 65C325D3 9A069F03 659D44CA 27D3BE8D
    F311172B 55416018 1CBE94A2 A783320C ED590BC4 2644702C F371271E 496BF20F
    588B78A1 BC01ECBB 6559934B DD2FB65D 2884318A 33D1A42A DF5E33CC 5800280B
    28356497 F87135BA B9612A17 26042440 9AC15FEE 996B744C 33215123 5DECB0F5""")
# "HashToIntegerRange( M, q, SHA-256 ) example"
HTIR_M = SSV + B_ID
HTIR_A = h("E04D4EF6 9DF86893 22B39AE3 80284617 4A93BEDB 1E3D2A2C 5F2C7EA0 05513EBA")
HTIR_H = [
    bytes(32),
    h("66687AAD F862BD77 6C8FC18B 8E9F8E20 08971485 6EE233B3 902A591D 0D5F2925"),
    h("2B32DB6C 2C0A6235 FB1397E8 225EA85E 0F0E6E8C 7B126D00 16CCBDE0 E667151E"),
    h("12771355 E46CD47C 71ED1721 FD5319B3 83CCA3A1 F9FCE3AA 1C8CD3BD 37AF20D7"),
    h("FE15C0D3 EBE314FA D720A08B 839A004C 2E6386F5 AECC19EC 74807D19 20CB6AEB"),
]
HTIR_V = [
    h("FA2656CA 1D2DBD79 015AE918 773DFEDC 24957C91 E3C9C335 40D6BF6D 7C3C0055"),
    h("F016CD67 59620AD7 87669E3A DD887DF6 25895A91 0CEE1486 91A06735 B2F0A248"),
    h("AC45C6F9 7F83BCE0 A2BBD0A1 4CF4D7F4 CB3590FB FAF93AE7 1C64E426 185710B5"),
    h("E65D50BD 551A54EF 981F535E 072DE98D 2223ACAD 4621E026 3B0A61EA C56DB078"),
]


def point(x: int, y: int) -> bytes:
    return CURVE.encode_point((x, y))


@pytest.fixture(scope="module")
def kms() -> sakke.SakkeKms:
    return sakke.SakkeKms(Z_SECRET)


@pytest.fixture(scope="module")
def receiver(kms: sakke.SakkeKms) -> sakke.ReceiverKey:
    return sakke.validate_rsk(B_ID, kms.receiver_secret_key(B_ID), kms.public_key)


def test_parameter_set_1_is_consistent() -> None:
    """RFC 6508 §2.1: "p ... is always congruent to 3 modulo 4", "q An odd prime that divides
    p + 1", "lg(q) MUST be greater than 2*n"; P on E, [q]P = 0; RFC 6509 Appendix A g = <P,P>."""
    p, q = CURVE.p, CURVE.q
    assert p % 4 == 3 and (p + 1) % q == 0 and q % 2 == 1
    assert q.bit_length() - 1 > 2 * sakke.N_BITS
    assert pow(2, q - 1, q) == 1 and pow(3, p - 1, p) == 1  # Fermat: both prime-looking
    assert CURVE.contains(CURVE.g) and CURVE.mul(q, CURVE.g) is None
    assert sakke.pairing(CURVE.g, CURVE.g) == sakke.G_PAIRING


def test_hash_to_integer_range_example() -> None:
    """§5.1 steps 1-6 on Appendix A's "HashToIntegerRange( M, q, SHA-256 ) example": A, h0..h4,
    v1..v4 (l = Ceiling(lg(q)/256) = 4) and "v mod q"."""
    steps = sakke.hash_to_integer_range_steps(HTIR_M, CURVE.q)
    assert steps.a == HTIR_A
    assert list(steps.h) == HTIR_H
    assert list(steps.v) == HTIR_V
    assert steps.value == R_EPH


def test_kms_public_key(kms: sakke.SakkeKms) -> None:
    """§6.1 "Z_T = [z_T]P"; Appendix A "The KMS generates" z, Zx, Zy."""
    assert kms.public_key == point(ZX, ZY)


def test_receiver_secret_key(kms: sakke.SakkeKms) -> None:
    """§6.1.1 "K_(a,T) = [(a + z_T)^-1]P"; Appendix A "Device receives Kb from the KMS"."""
    assert kms.receiver_secret_key(B_ID) == point(KBX, KBY)


def test_rsk_verification(kms: sakke.SakkeKms) -> None:
    """§6.1.2 "Upon receipt of key material, each user MUST verify its RSK ... < [a]P + Z,
    K_(a,T) > = g": the right RSK passes, another Identifier's or KMS's RSK fails."""
    key = sakke.validate_rsk(B_ID, point(KBX, KBY), kms.public_key)
    assert key.rsk == (KBX, KBY)
    other = kms.receiver_secret_key(b"2011-02\0tel:+447700900124\0")
    with pytest.raises(sakke.SakkeError, match="does not verify"):
        sakke.validate_rsk(B_ID, other, kms.public_key)
    with pytest.raises(sakke.SakkeError, match="does not verify"):
        sakke.validate_rsk(B_ID, point(KBX, KBY), sakke.SakkeKms(12345).public_key)
    with pytest.raises(sakke.SakkeError, match="RSK rejected"):
        sakke.validate_rsk(B_ID, point(KBX, KBY ^ 1), kms.public_key)


def test_encapsulation_matches_appendix_a(kms: sakke.SakkeKms) -> None:
    """§6.2.1 steps 2-5: r = HashToIntegerRange( SSV || b, q, Hash ), R_(b,S) = [r]([b]P + Z_S),
    g^r, mask, H := SSV XOR HashToIntegerRange( g^r, 2^n, Hash ); Appendix A "Creating
    Encapsulated Data"."""
    enc = sakke.encapsulate(B_ID, kms.public_key, ssv=SSV)
    assert enc.r == R_EPH
    assert sakke.pf_pow(sakke.G_PAIRING, R_EPH) == G_R
    assert sakke.hash_to_integer_range(G_R.to_bytes(128, "big"), 2**128) == MASK
    assert int.from_bytes(SSV, "big") ^ MASK == int.from_bytes(H_HINT, "big")
    # §4 "Encapsulated Data MUST be represented as an elliptic curve point concatenated with
    # an integer in the range 0 to (2 ^ n) - 1"
    assert enc.data == point(RBX, RBY) + H_HINT
    assert len(enc.data) == sakke.ENCAPSULATED_LEN == 2 * 128 + 1 + 16
    assert enc.ssv == SSV


def test_decapsulation_matches_appendix_a(receiver: sakke.ReceiverKey) -> None:
    """§6.2.2 steps 2-6: w := < R_(b,S), K_(b,S) > (= g^r), SSV = H XOR HashToIntegerRange( w,
    2^n, Hash ), r, TEST == R_(b,S); Appendix A "Device processes Encapsulated Data"."""
    assert sakke.pairing((RBX, RBY), (KBX, KBY)) == G_R  # w
    rb = CURVE.mul(R_EPH, CURVE.add(CURVE.mul(int.from_bytes(B_ID, "big"), CURVE.g), (ZX, ZY)))
    assert rb == (RBX, RBY)  # TEST
    assert sakke.decapsulate(point(RBX, RBY) + H_HINT, receiver) == SSV


def test_pf_p_product_rule_and_bilinearity() -> None:
    """§2.1 "A * B in PF_p[q] is represented by (a + b)/(1 - a * b) in F_p" agrees with our
    F_p^2 exponentiation; §3.2 "<[x]R,Q> = <R,[x]Q> = <R,Q>^x"."""
    g = sakke.G_PAIRING
    assert sakke.pf_mul(g, g) == sakke.pf_pow(g, 2)
    assert sakke.pf_mul(sakke.pf_pow(g, 5), g) == sakke.pf_pow(g, 6)
    assert sakke.pf_pow(g, CURVE.q) == 0  # g has order q: g^q is the identity (x2 = 0)
    x = 0x1234567
    xp = CURVE.mul(x, CURVE.g)
    assert xp is not None
    assert sakke.pairing(xp, CURVE.g) == sakke.pairing(CURVE.g, xp) == sakke.pf_pow(g, x)


def test_fixed_base_products_equal_the_ladder(kms: sakke.SakkeKms) -> None:
    """The fixed-base tables used for [z]P, the RSK and [r]([b]P + Z) = [r*b]P + [r]Z give the
    ladder's results (RFC 6508 §6.2.1 step 3 computed two ways)."""
    z_pt = CURVE.decode_point(kms.public_key)
    for k in (0, 1, 16, R_EPH, CURVE.q - 1):
        assert CURVE.mul_fixed(k, CURVE.g) == CURVE.mul(k, CURVE.g)
        assert CURVE.mul_fixed(k, z_pt) == CURVE.mul(k, z_pt)
    b = int.from_bytes(B_ID, "big")
    direct = CURVE.mul(R_EPH, CURVE.add(CURVE.mul(b, CURVE.g), z_pt))
    assert direct == (RBX, RBY)


def test_tampered_encapsulated_data_is_refused(receiver: sakke.ReceiverKey) -> None:
    """§6.2.2 step 5 "If TEST does not equal R_(b,S), then B MUST NOT use the SSV": a flipped
    hint bit changes the SSV and so r; a point off the curve is refused while parsing."""
    good = point(RBX, RBY) + H_HINT
    with pytest.raises(sakke.SakkeError, match="TEST"):
        sakke.decapsulate(good[:-1] + bytes([good[-1] ^ 1]), receiver)
    with pytest.raises(sakke.SakkeError, match="R_"):
        sakke.decapsulate(point(RBX, RBY ^ 2)[:257] + H_HINT, receiver)
    with pytest.raises(sakke.SakkeError, match="octets"):
        sakke.decapsulate(good[:-1], receiver)
    # (0, 0) is on y^2 = x^3 - 3x with order 2 (the cofactor is 4): a valid point but not of
    # order q; the pairing is then meaningless and the TEST refuses it
    assert CURVE.contains((0, 0)) and CURVE.double((0, 0)) is None
    with pytest.raises(sakke.SakkeError):
        sakke.decapsulate(point(0, 0) + H_HINT, receiver)


def test_only_the_addressed_identifier_decapsulates(kms: sakke.SakkeKms) -> None:
    """§6.2: data formed for Identifier b with Z_S is processed with K_(b,S); the RSK of any
    other Identifier fails the TEST (or decodes garbage and is refused)."""
    other_id = b"2011-02\0tel:+447700900124\0"
    other = sakke.validate_rsk(other_id, kms.receiver_secret_key(other_id), kms.public_key)
    enc = sakke.encapsulate(B_ID, kms.public_key)
    with pytest.raises(sakke.SakkeError, match="TEST"):
        sakke.decapsulate(enc.data, other)


def test_random_round_trip_and_kms_escrow(kms: sakke.SakkeKms) -> None:
    """§6.2 with a random SSV; and §7 "The KMS ... can create RSKs for arbitrary
    Identifiers": the KMS recovers the SSV of any exchange to a user it provisions (the
    property LI through the KMS rests on)."""
    ident = b"2026-12\0tel:+15550002\0"
    enc = sakke.encapsulate(ident, kms.public_key)
    user = sakke.validate_rsk(ident, kms.receiver_secret_key(ident), kms.public_key)
    assert sakke.decapsulate(enc.data, user) == enc.ssv
    escrow = sakke.ReceiverKey(
        identifier=ident,
        rsk=CURVE.decode_point(kms.receiver_secret_key(ident)),
        kms_public=kms.public_key,
    )
    assert sakke.decapsulate(enc.data, escrow) == enc.ssv


def test_parameter_ranges() -> None:
    """§2.2 "An Identifier is an integer in the range 2 to q-1"; §6.1 the Master Secret is "in
    the range 2 to q-1"; §2.2 "The SSV is an integer in the range 0 to (2^n) - 1"."""
    with pytest.raises(sakke.SakkeError):
        sakke.identifier_int(b"\x01")
    with pytest.raises(sakke.SakkeError):
        sakke.identifier_int(CURVE.q.to_bytes(128, "big"))
    with pytest.raises(sakke.SakkeError):
        sakke.SakkeKms(1)
    with pytest.raises(sakke.SakkeError):
        sakke.encapsulate(B_ID, point(ZX, ZY), ssv=b"\x00" * 17)


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=sakke.ENCAPSULATED_LEN, max_size=sakke.ENCAPSULATED_LEN))
def test_decapsulate_refuses_hostile_data(receiver: sakke.ReceiverKey, data: bytes) -> None:
    """Encapsulated Data from the wire is peer input: SakkeError, never another exception."""
    with pytest.raises(sakke.SakkeError):
        sakke.decapsulate(data, receiver)
