"""SAKKE: Sakai-Kasahara Key Encryption (RFC 6508) over MIKEY-SAKKE Parameter Set 1.

The key transport of MIKEY-SAKKE (RFC 6509 §4.2): the Initiator encapsulates a Shared Secret
Value (SSV, the MIKEY TGK) to the Responder's *Identifier*; only the holder of that
Identifier's Receiver Secret Key (RSK) - and the KMS that derived it - can recover the SSV.
That second clause is why SAKKE lets LI work without a MITM: the operator's KMS can derive
every RSK it issued (RFC 6508 §7: "The KMS ... can create RSKs for arbitrary Identifiers").

* Parameters (RFC 6509 Appendix A, Parameter Set 1): n = 128, 1024-bit p = 3 mod 4, q | p+1,
  P on y^2 = x^3 - 3x, g = <P,P>, SHA-256.
* HashToIntegerRange(s, n, hashfn) (RFC 6508 §5.1): A = hash(s), h_0 = 0^hashlen,
  h_i = hash(h_(i-1)), v_i = hash(h_i || A), v = (v_1 || ... || v_l) mod n,
  l = Ceiling(lg(n)/hashlen).
* KMS (§6.1): master secret z in [2, q-1], Z = [z]P; RSK for Identifier a (§6.1.1):
  K_a = [(a + z)^-1 mod q]P. Users verify an RSK (§6.1.2): <[a]P + Z, K_a> == g.
* Sender (§6.2.1): r = HashToIntegerRange(SSV || b, q), R = [r]([b]P + Z),
  H = SSV XOR HashToIntegerRange(g^r, 2^n); Encapsulated Data = R || H (§4: 2L + n/8 + 1
  octets; "2*L + n + 1" in the RFC counts n in octets, here 16).
* Receiver (§6.2.2): w = <R, K_b>, SSV = H XOR HashToIntegerRange(w, 2^n), then recompute
  r and TEST = [r]([b]P + Z) and refuse the SSV unless TEST == R.
* Pairing (§3.2): the Tate-Lichtenbaum pairing <R,Q> = f_R([i]Q)^c / F_p*, c = (p+1)/q,
  by Miller's loop over the bits of q-1 with Barreto's denominator elimination, exactly the
  RFC's pseudocode line for line. C is kept in Jacobian coordinates and each line value is
  multiplied by a non-zero element of F_p (2*Y*Z^3 for a tangent, Z^3*(X - Rx*Z^2) for a
  chord) to clear its denominators; the result lives in PF_p = (F_p^2)*/(F_p)*, where such
  factors are the identity, so the representative b/a is unchanged.
* PF_p (§2.1): an element x of F_p stands for the coset of 1 + i*x; the RFC's product
  (a + b)/(1 - a*b) is the product of 1 + i*a and 1 + i*b read back as imag/real. g^r is
  therefore computed as (1 + i*g)^r in F_p^2 and read back the same way (§6.2.1 step 4a).

Identifiers are octet strings (RFC 6509 §3.2 "2011-02\\0tel:+447700900123\\0") "interpreted
as an integer" (§6.2) big-endian. Ephemerals (z, SSV) may be passed in only to replay the
RFC 6508 Appendix A vector.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from ims.errors import ImsError
from ims.mikey.ecmath import Curve, Point, PointError

#: RFC 6509 Appendix A, Parameter Set 1 (curve y^2 = x^3 - 3x, so B = 0).
CURVE = Curve(
    name="SAKKE parameter set 1",
    p=int(
        "997ABB1F0A563FDA65C61198DAD0657A416C0CE19CB48261BE9AE358B3E01A2E"
        "F40AAB27E2FC0F1B228730D531A59CB0E791B39FF7C88A19356D27F4A666A6D0"
        "E26C6487326B4CD4512AC5CD65681CE1B6AFF4A831852A82A7CF3C521C3C09AA"
        "9F94D6AF56971F1FFCE3E82389857DB080C5DF10AC7ACE87666D807AFEA85FEB",
        16,
    ),
    b=0,
    q=int(
        "265EAEC7C2958FF69971846636B4195E905B0338672D20986FA6B8D62CF8068B"
        "BD02AAC9F8BF03C6C8A1CC354C69672C39E46CE7FDF222864D5B49FD2999A9B4"
        "389B1921CC9AD335144AB173595A07386DABFD2A0C614AA0A9F3CF14870F026A"
        "A7E535ABD5A5C7C7FF38FA08E2615F6C203177C42B1EB3A1D99B601EBFAA17FB",
        16,
    ),
    gx=int(
        "53FC09EE332C29AD0A7990053ED9B52A2B1A2FD60AEC69C698B2F204B6FF7CBF"
        "B5EDB6C0F6CE2308AB10DB9030B09E1043D5F22CDB9DFA55718BD9E7406CE890"
        "9760AF765DD5BCCB337C86548B72F2E1A702C3397A60DE74A7C1514DBA66910D"
        "D5CFB4CC80728D87EE9163A5B63F73EC80EC46C4967E0979880DC8ABEAE63895",
        16,
    ),
    gy=int(
        "0A8249063F6009F1F9F1F0533634A135D3E82016029906963D778D821E141178"
        "F5EA69F4654EC2B9E7F7F5E5F0DE55F66B598CCF9A140B2E416CFF0CA9E032B9"
        "70DAE117AD547C6CCAD696B5B7652FE0AC6F1E80164AA989492D979FC5A4D5F2"
        "13515AD7E9CB99A980BDAD5AD5BB4636ADB9B5706A67DCDE75573FD71BEF16D7",
        16,
    ),
)
#: g = <P,P> (RFC 6509 Appendix A), an element of PF_p[q] represented in F_p.
G_PAIRING = int(
    "66FC2A432B6EA392148F15867D623068C6A87BD1FB94C41E27FABE658E015A87"
    "371E94744C96FEDA449AE9563F8BC446CBFDA85D5D00EF577072DA8F541721BE"
    "EE0FAED1828EAB90B99DFB0138C7843355DF0460B4A9FD74B4F1A32BCAFA1FFA"
    "D682C033A7942BCCE3720F20B9B7B0403C8CAE87B7A0042ACDE0FAB36461EA46",
    16,
)
N_BITS = 128  # n: the SSV is an integer in [0, 2^n)
SSV_LEN = N_BITS // 8
L = CURVE.field_len  # 128 octets
ENCAPSULATED_LEN = 2 * L + 1 + SSV_LEN  # R_(b,S) || H
PARAMETER_SET_1 = 1  # RFC 6509 §4.2 Table 4 "SAKKE params"
_HASHLEN = 256  # SHA-256 output bits


class SakkeError(ImsError, ValueError):
    """Encapsulated Data or key material failed an RFC 6508 check."""


# ------------------------------------------------------------------ §5.1 hashing to a range
@dataclass(frozen=True, slots=True, kw_only=True)
class HashToRangeSteps:
    """The intermediate values of RFC 6508 §5.1 (named as in its Appendix A example)."""

    a: bytes
    h: tuple[bytes, ...]  # h_0 .. h_l
    v: tuple[bytes, ...]  # v_1 .. v_l
    value: int


def hash_to_integer_range_steps(s: bytes, n: int) -> HashToRangeSteps:
    """RFC 6508 §5.1 with SHA-256, keeping every intermediate value."""
    a = hashlib.sha256(s).digest()  # 1) A = hashfn( s )
    h = [b"\x00" * (_HASHLEN // 8)]  # 2) h_0 = 00...00
    lg_n = (n - 1).bit_length()  # Ceiling(lg(n)) for n >= 2
    count = -(-lg_n // _HASHLEN)  # 3) l = Ceiling(lg(n)/hashlen)
    v = []
    for _ in range(count):  # 4)
        h.append(hashlib.sha256(h[-1]).digest())  # a) h_i = hashfn(h_(i - 1))
        v.append(hashlib.sha256(h[-1] + a).digest())  # b) v_i = hashfn(h_i || A)
    value = int.from_bytes(b"".join(v), "big") % n  # 5) 6)
    return HashToRangeSteps(a=a, h=tuple(h), v=tuple(v), value=value)


def hash_to_integer_range(s: bytes, n: int) -> int:
    return hash_to_integer_range_steps(s, n).value


# ------------------------------------------------------------ F_p^2, PF_p and the pairing
_Fp2 = tuple[int, int]  # a + i*b


def _f2mul(x: _Fp2, y: _Fp2, p: int) -> _Fp2:
    a, b = x
    c, d = y
    return ((a * c - b * d) % p, (a * d + b * c) % p)


def _f2sqr(x: _Fp2, p: int) -> _Fp2:
    a, b = x
    return ((a + b) * (a - b) % p, 2 * a * b % p)


def _f2pow(x: _Fp2, e: int, p: int) -> _Fp2:
    acc: _Fp2 = (1, 0)
    for i in reversed(range(e.bit_length())):
        acc = _f2sqr(acc, p)
        if (e >> i) & 1:
            acc = _f2mul(acc, x, p)
    return acc


def _pf_representative(t: _Fp2, p: int) -> int:
    """§3.2 "Represent t as a + i*b, with a,b in F_p; return b/a"."""
    a, b = t
    if a % p == 0:
        raise SakkeError("pairing value is the element of order 2 of PF_p")
    return b * pow(a, -1, p) % p


def pf_mul(a: int, b: int) -> int:
    """A * B in PF_p[q] as RFC 6508 §2.1 defines it: (a + b)/(1 - a*b) in F_p."""
    p = CURVE.p
    return (a + b) * pow(1 - a * b, -1, p) % p


def pf_pow(g: int, e: int) -> int:
    """g^e in PF_p[q] (§6.2.1 step 4a): (1 + i*g)^e in F_p^2, read back as imag/real."""
    p = CURVE.p
    return _pf_representative(_f2pow((1, g), e, p), p)


def pairing(r_pt: tuple[int, int], q_pt: tuple[int, int]) -> int:
    """<R,Q> (RFC 6508 §3.2), returned as its representative in F_p.

    The loop is the RFC's; the point arithmetic is inlined so the tangent shares its terms
    with the doubling (dbl-2001-b: alpha = 3(X^2 - Z^4) is also the tangent's numerator) and
    the chord with the mixed addition (madd-2007-bl: H = Rx*Z^2 - X, S2 - Y = Ry*Z^3 - Y),
    and F_p^2 products use three multiplications (Karatsuba). A point of small order given as
    R (peer input) only makes the value wrong, never raises: decapsulation's TEST catches it.
    """
    p, q = CURVE.p, CURVE.q
    rx, ry = r_pt
    qx, qy = q_pt
    va, vb = 1, 0  # v = (F_p)*
    x, y, z = rx, ry, 1  # C = R, Jacobian
    e = q - 1
    for i in reversed(range(e.bit_length() - 1)):  # from the second most significant bit
        # tangent at C at [i]Q = (-Qx, i*Qy), scaled by 2*Y*Z^3 (an F_p* factor):
        # l*(Qx + Cx) + (i*Qy - Cy) -> 3(X^2 - Z^4)(Qx*Z^2 + X) - 2Y^2 + i*2*Y*Z^3*Qy
        z2 = z * z % p
        gamma = y * y % p
        alpha = 3 * (x - z2) * (x + z2) % p
        yz = y * z % p
        la = (alpha * (qx * z2 + x) - 2 * gamma) % p
        lb = 2 * yz * z2 % p * qy % p
        # v = v^2 * line
        sa, sb = (va + vb) * (va - vb) % p, 2 * va * vb % p
        ac, bd = sa * la % p, sb * lb % p
        va, vb = (ac - bd) % p, ((sa + sb) * (la + lb) - ac - bd) % p
        # C = [2]C
        beta = x * gamma % p
        x = (alpha * alpha - 8 * beta) % p
        y = (alpha * (4 * beta - x) - 8 * gamma * gamma) % p
        z = 2 * yz % p
        if (e >> i) & 1:
            # chord through C and R, scaled by -Z^3*(X - Rx*Z^2) = Z^3*H:
            # (Ry*Z^3 - Y)(Qx*Z^2 + X) - Y*H + i*Qy*Z^3*H
            z2 = z * z % p
            z3 = z2 * z % p
            h = (rx * z2 - x) % p
            s2y = (ry * z3 - y) % p
            la = (s2y * (qx * z2 + x) - y * h) % p
            lb = qy * z3 % p * h % p
            ac, bd = va * la % p, vb * lb % p
            va, vb = (ac - bd) % p, ((va + vb) * (la + lb) - ac - bd) % p
            # C = C + R (madd-2007-bl, R affine)
            hh = h * h % p
            i4 = 4 * hh % p
            j = h * i4 % p
            r = 2 * s2y % p
            vv = x * i4 % p
            x3 = (r * r - j - 2 * vv) % p
            y = (r * (vv - x3) - 2 * y * j) % p
            z = ((z + h) * (z + h) - z2 - hh) % p
            x = x3
    t = _f2pow((va, vb), (p + 1) // q, p)  # t = v^c
    return _pf_representative(t, p)


# ------------------------------------------------------------------------------- keys
def identifier_int(identifier: bytes) -> int:
    """An Identifier "interpreted as an integer" (RFC 6508 §6.2), in [2, q-1] (§2.2)."""
    a = int.from_bytes(identifier, "big")
    if not 2 <= a < CURVE.q:
        raise SakkeError("Identifier out of the range 2 to q-1 (RFC 6508 §2.2)")
    return a


def _id_point(identifier: bytes, kms_public: tuple[int, int]) -> tuple[int, int]:
    """[b]P + Z_S, the Identifier's public key."""
    # the Identifier is public: a plain double-and-add over its own ~200 bits
    pt = CURVE.add(CURVE.mul_public(identifier_int(identifier), CURVE.g), kms_public)
    if pt is None:
        raise SakkeError("[b]P + Z is the identity")
    return pt


def _r_times_id_point(r: int, identifier: bytes, kms_public: tuple[int, int]) -> Point:
    """[r]([b]P + Z) as the equal [r*b mod q]P + [r]Z (P has order q; r < q), both by cached
    fixed-base tables: r is secret (it determines the SSV's mask), and P and a KMS's Z are
    used for every call."""
    b = identifier_int(identifier)
    return CURVE.add(CURVE.mul_fixed(r * b % CURVE.q, CURVE.g), CURVE.mul_fixed(r, kms_public))


def decode_kms_public(data: bytes) -> tuple[int, int]:
    try:
        return CURVE.decode_point(data)
    except PointError as exc:
        raise SakkeError(f"KMS Public Key rejected: {exc}") from None


class SakkeKms:
    """KMS_T (RFC 6508 §6.1): holds the Master Secret z_T, publishes Z_T, derives RSKs."""

    def __init__(self, master_secret: int | None = None) -> None:
        q = CURVE.q
        self._z = 2 + secrets.randbelow(q - 2) if master_secret is None else master_secret
        if not 2 <= self._z < q:
            raise SakkeError("Master Secret must be in the range 2 to q-1 (RFC 6508 §6.1)")
        self.public_key = CURVE.encode_point(CURVE.mul_fixed(self._z, CURVE.g))

    def receiver_secret_key(self, identifier: bytes) -> bytes:
        """K_(a,T) = [(a + z_T)^-1]P (RFC 6508 §6.1.1), encoded as a point."""
        q = CURVE.q
        k = (identifier_int(identifier) + self._z) % q
        if k == 0:
            raise SakkeError("a + z_T is zero modulo q: no RSK exists for this Identifier")
        return CURVE.encode_point(CURVE.mul_fixed(pow(k, -1, q), CURVE.g))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverKey:
    """A user's validated RSK for one Identifier and the KMS Public Key it belongs to."""

    identifier: bytes
    rsk: tuple[int, int] = field(repr=False)
    kms_public: bytes


def validate_rsk(identifier: bytes, rsk: bytes, kms_public: bytes) -> ReceiverKey:
    """RFC 6508 §6.1.2: "< [a]P + Z, K_(a,T) > = g" must hold before the RSK is used."""
    z_pt = decode_kms_public(kms_public)
    try:
        k_pt = CURVE.decode_point(rsk)
    except PointError as exc:
        raise SakkeError(f"RSK rejected: {exc}") from None
    if pairing(_id_point(identifier, z_pt), k_pt) != G_PAIRING:
        raise SakkeError("RSK does not verify: <[a]P + Z, K> != g")
    return ReceiverKey(identifier=identifier, rsk=k_pt, kms_public=kms_public)


# ----------------------------------------------------------------- §6.2 key exchange
@dataclass(frozen=True, slots=True, kw_only=True)
class Encapsulation:
    """What the Sender computes (§6.2.1): Encapsulated Data and the SSV it carries."""

    data: bytes  # R_(b,S) || H
    ssv: bytes = field(repr=False)
    r: int = field(repr=False)


def encapsulate(identifier: bytes, kms_public: bytes, *, ssv: bytes | None = None) -> Encapsulation:
    """RFC 6508 §6.2.1: encapsulate a random (or given) n-bit SSV to ``identifier``."""
    z_pt = decode_kms_public(kms_public)
    value = secrets.token_bytes(SSV_LEN) if ssv is None else ssv  # 1)
    if len(value) != SSV_LEN:
        raise SakkeError(f"SSV must be {SSV_LEN} octets")
    r = hash_to_integer_range(value + identifier, CURVE.q)  # 2)
    r_pt = _r_times_id_point(r, identifier, z_pt)  # 3) R = [r]([b]P + Z_S)
    if r_pt is None:
        raise SakkeError("R is the identity (r = 0)")
    g_r = pf_pow(G_PAIRING, r)  # 4a)
    mask = hash_to_integer_range(g_r.to_bytes(L, "big"), 1 << N_BITS)
    h = int.from_bytes(value, "big") ^ mask  # 4b) H = SSV XOR mask
    data = CURVE.encode_point(r_pt) + h.to_bytes(SSV_LEN, "big")  # 5)
    return Encapsulation(data=data, ssv=value, r=r)


def decapsulate(data: bytes, key: ReceiverKey) -> bytes:
    """RFC 6508 §6.2.2: the SSV, or :class:`SakkeError` if the Encapsulated Data is bad."""
    if len(data) != ENCAPSULATED_LEN:
        raise SakkeError(f"Encapsulated Data of {len(data)} octets, not {ENCAPSULATED_LEN}")
    try:  # 1) parse
        r_pt = CURVE.decode_point(data[: 2 * L + 1])
    except PointError as exc:
        raise SakkeError(f"R_(b,S) rejected: {exc}") from None
    h = int.from_bytes(data[2 * L + 1 :], "big")
    w = pairing(r_pt, key.rsk)  # 2) w = <R, K>
    mask = hash_to_integer_range(w.to_bytes(L, "big"), 1 << N_BITS)
    ssv = (h ^ mask).to_bytes(SSV_LEN, "big")  # 3)
    r = hash_to_integer_range(ssv + key.identifier, CURVE.q)  # 4)
    test = _r_times_id_point(r, key.identifier, decode_kms_public(key.kms_public))  # 5)
    if test != r_pt:
        raise SakkeError("TEST != R_(b,S): Encapsulated Data not for this RSK, or altered")
    return ssv  # 6)


__all__ = [
    "CURVE",
    "ENCAPSULATED_LEN",
    "G_PAIRING",
    "N_BITS",
    "PARAMETER_SET_1",
    "SSV_LEN",
    "Encapsulation",
    "HashToRangeSteps",
    "ReceiverKey",
    "SakkeError",
    "SakkeKms",
    "decapsulate",
    "encapsulate",
    "hash_to_integer_range",
    "hash_to_integer_range_steps",
    "identifier_int",
    "pairing",
    "pf_mul",
    "pf_pow",
    "validate_rsk",
]
