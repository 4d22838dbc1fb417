"""Elliptic-curve arithmetic on y^2 = x^3 - 3x + B over F_p, shared by ECCSI and SAKKE.

Both identity-based schemes of MIKEY-SAKKE use a short Weierstrass curve with a = -3:
RFC 6507 §3.1 "The curve is defined by the equation y^2 = x^3 - 3*x + B modulo p" (P-256 for
MIKEY-SAKKE, RFC 6509 §2.1.1) and RFC 6508 §2.1 "y^2 = x^3 - 3 * x modulo p" (B = 0, the
supersingular curve of RFC 6509 Appendix A). ``cryptography`` exposes no point arithmetic
(only [k]G through key derivation and the x-coordinate of an ECDH product), and ECCSI needs
sums of arbitrary points ([HS]PVT + KPAK, RFC 6507 §5.2.2), so the arithmetic is here.

* Points are affine ``(x, y)`` tuples at the API, ``None`` for the identity 0 (RFC 6507 §3.1:
  "The identity point 0 will require no representation"). Inside, Jacobian coordinates
  (x = X/Z^2, y = Y/Z^3) with the a = -3 doubling (dbl-2001-b) avoid one inversion per step.
* Scalar multiplication is a Montgomery ladder over a fixed number of bits (the subgroup
  order's length, or the scalar's when longer), so the sequence of field operations does not
  depend on the scalar's bits. Python integers are not constant-time, so this is structure,
  not side-channel resistance: a lab implementation, as issue 14 allows.
* Encoding is RFC 5480 §2.2 uncompressed (RFC 6507 §3.2, RFC 6508 §4): ``0x04 || x || y``,
  each coordinate left-padded to L = Ceiling(lg(p)/8) octets; :meth:`Curve.decode_point`
  rejects anything not on the curve (RFC 6507 §5.1.2 step 1, §5.2.2 step 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from ims.errors import ImsError

Point = tuple[int, int] | None
_Jac = tuple[int, int, int]  # (X, Y, Z); Z == 0 is the identity
_INF: _Jac = (1, 1, 0)


class PointError(ImsError, ValueError):
    """An octet string is not an uncompressed point on the curve."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    """y^2 = x^3 - 3x + b over F_p with a base point (gx, gy) of prime order q."""

    name: str
    p: int
    b: int
    q: int
    gx: int
    gy: int

    @property
    def g(self) -> tuple[int, int]:
        return (self.gx, self.gy)

    @property
    def field_len(self) -> int:
        """L = Ceiling(lg(p)/8) (RFC 6507 §3.2, RFC 6508 §4)."""
        return (self.p.bit_length() + 7) // 8

    # -- predicates and encoding ------------------------------------------------------
    def contains(self, pt: Point) -> bool:
        """RFC 6507 §3.1: "Py^2 - Px^3 + 3*Px - B = 0 modulo p" (coordinates in [0, p))."""
        if pt is None:
            return False
        x, y = pt
        p = self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x * x - 3 * x + self.b)) % p == 0

    def encode_point(self, pt: Point) -> bytes:
        if pt is None:
            raise PointError("the identity has no representation")
        n = self.field_len
        return b"\x04" + pt[0].to_bytes(n, "big") + pt[1].to_bytes(n, "big")

    def decode_point(self, data: bytes) -> tuple[int, int]:
        n = self.field_len
        if len(data) != 2 * n + 1 or data[0] != 0x04:
            raise PointError(f"not an uncompressed {self.name} point ({len(data)} octets)")
        pt = (int.from_bytes(data[1 : 1 + n], "big"), int.from_bytes(data[1 + n :], "big"))
        if not self.contains(pt):
            raise PointError(f"point is not on {self.name}")
        return pt

    # -- group law ----------------------------------------------------------------------
    def neg(self, pt: Point) -> Point:
        return None if pt is None else (pt[0], (-pt[1]) % self.p)

    def add(self, a: Point, b: Point) -> Point:
        return self._affine(self.jacobian_add(self._jac(a), self._jac(b)))

    def double(self, a: Point) -> Point:
        return self._affine(self.jacobian_double(self._jac(a)))

    def mul(self, k: int, pt: Point) -> Point:
        """[k]pt by a Montgomery ladder over max(lg q, lg k) bits."""
        if k < 0:
            return self.mul(-k, self.neg(pt))
        if pt is None:
            return None
        r0, r1 = _INF, self._jac(pt)
        for i in reversed(range(max(self.q.bit_length(), k.bit_length()))):
            if (k >> i) & 1:
                r0, r1 = self.jacobian_add(r0, r1), self.jacobian_double(r1)
            else:
                r1, r0 = self.jacobian_add(r0, r1), self.jacobian_double(r0)
        return self._affine(r0)

    def mul_public(self, k: int, pt: Point) -> Point:
        """[k]pt for a *public* scalar (an Identifier, a hash in a verification): plain
        left-to-right double-and-add over k's own bits, about 2.5 times cheaper than
        :meth:`mul` for a full-length scalar and far cheaper for a short one. Never use it
        with a secret."""
        if k < 0:
            return self.mul_public(-k, self.neg(pt))
        if pt is None or k == 0:
            return None
        base = self._jac(pt)
        acc = base
        for i in reversed(range(k.bit_length() - 1)):
            acc = self.jacobian_double(acc)
            if (k >> i) & 1:
                acc = self.jacobian_add(acc, base)
        return self._affine(acc)

    def mul_add_public(self, k1: int, p1: Point, k2: int, p2: Point) -> Point:
        """[k1]p1 + [k2]p2 for public scalars (Shamir's trick: one shared doubling chain)."""
        if k1 < 0 or k2 < 0:
            return self.add(self.mul_public(k1, p1), self.mul_public(k2, p2))
        a, b = self._jac(p1), self._jac(p2)
        both = self.jacobian_add(a, b)
        acc = _INF
        for i in reversed(range(max(k1.bit_length(), k2.bit_length()))):
            acc = self.jacobian_double(acc)
            bits = ((k1 >> i) & 1, (k2 >> i) & 1)
            if bits == (1, 1):
                acc = self.jacobian_add(acc, both)
            elif bits == (1, 0):
                acc = self.jacobian_add(acc, a)
            elif bits == (0, 1):
                acc = self.jacobian_add(acc, b)
        return self._affine(acc)

    def mul_fixed(self, k: int, pt: tuple[int, int]) -> Point:
        """[k]pt for a point used again and again (a generator, a KMS public key), with a
        cached table (:class:`FixedBase`): one addition per 4 bits of ``k``, the same number
        for every scalar below the table's range, so it serves secret scalars too."""
        return fixed_base(self, pt).mul(k)

    # -- Jacobian internals -----------------------------------------------------------------
    @staticmethod
    def _jac(pt: Point) -> _Jac:
        return _INF if pt is None else (pt[0], pt[1], 1)

    def _affine(self, j: _Jac) -> Point:
        x, y, z = j
        if z % self.p == 0:
            return None
        p = self.p
        zi = pow(z, -1, p)
        zi2 = zi * zi % p
        return (x * zi2 % p, y * zi2 * zi % p)

    def jacobian_double(self, j: _Jac) -> _Jac:
        x, y, z = j
        p = self.p
        if z == 0 or y == 0:
            return _INF
        # dbl-2001-b (a = -3): alpha = 3(X - Z^2)(X + Z^2)
        delta = z * z % p
        gamma = y * y % p
        beta = x * gamma % p
        alpha = 3 * (x - delta) * (x + delta) % p
        x3 = (alpha * alpha - 8 * beta) % p
        z3 = ((y + z) * (y + z) - gamma - delta) % p
        y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
        return (x3, y3, z3)

    def jacobian_add(self, a: _Jac, b: _Jac) -> _Jac:
        x1, y1, z1 = a
        x2, y2, z2 = b
        if z1 == 0:
            return b
        if z2 == 0:
            return a
        p = self.p
        # add-2007-bl
        z1z1 = z1 * z1 % p
        z2z2 = z2 * z2 % p
        u1 = x1 * z2z2 % p
        u2 = x2 * z1z1 % p
        s1 = y1 * z2 * z2z2 % p
        s2 = y2 * z1 * z1z1 % p
        if u1 == u2:
            return self.jacobian_double(a) if s1 == s2 else _INF
        h = (u2 - u1) % p
        i = 4 * h * h % p
        jj = h * i % p
        r = 2 * (s2 - s1) % p
        v = u1 * i % p
        x3 = (r * r - jj - 2 * v) % p
        y3 = (r * (v - x3) - 2 * s1 * jj) % p
        z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % p
        return (x3, y3, z3)


class FixedBase:
    """Fixed-base comb with 4-bit windows for ``[k]pt``, 0 <= k < 2^bits.

    Row i holds [(16 + d) * 16^i]pt for d = 0..15; [k]pt is the sum over the windows of
    row_i[digit_i] minus the constant sum of row_i[0]. Every window adds one (never-identity)
    entry whatever the digit is, so the work does not depend on the scalar's digits (the
    offset of 16 keeps a zero digit from meaning "add nothing"). Table: lg(q)/4 x 16 points,
    built once per base (~ the cost of two ladders), then ~1/8 of a ladder per product.
    """

    __slots__ = ("bits", "curve", "_neg_offset", "_rows")

    def __init__(self, curve: Curve, pt: tuple[int, int], bits: int) -> None:
        self.curve = curve
        self.bits = bits
        rows: list[list[_Jac]] = []
        base = curve._jac(pt)
        offset = _INF
        for _ in range(-(-bits // 4)):
            first = base
            for _ in range(4):
                first = curve.jacobian_double(first)  # [16 * 16^i]pt
            row = [first]
            for _ in range(15):
                row.append(curve.jacobian_add(row[-1], base))
            rows.append(row)
            offset = curve.jacobian_add(offset, first)
            base = first
        self._rows = rows
        x, y, z = offset
        self._neg_offset: _Jac = (x, (-y) % curve.p, z)

    def mul(self, k: int) -> Point:
        if not 0 <= k < 1 << (4 * len(self._rows)):
            raise ValueError("scalar out of the fixed-base table's range")
        acc = self._neg_offset
        add = self.curve.jacobian_add
        for i, row in enumerate(self._rows):
            acc = add(acc, row[(k >> (4 * i)) & 0xF])
        return self.curve._affine(acc)


_TABLES: dict[tuple[str, int, int], FixedBase] = {}
_MAX_TABLES = 16  # generators plus a few KMS public keys: at most ~36 MB (2.3 MB per SAKKE base)


def fixed_base(curve: Curve, pt: tuple[int, int]) -> FixedBase:
    """The cached :class:`FixedBase` of ``pt`` (built on first use, oldest dropped beyond 16)."""
    key = (curve.name, pt[0], pt[1])
    table = _TABLES.get(key)
    if table is None:
        if not curve.contains(pt):
            raise PointError(f"fixed base is not on {curve.name}")
        table = FixedBase(curve, pt, curve.q.bit_length())
        if len(_TABLES) >= _MAX_TABLES:
            del _TABLES[next(iter(_TABLES))]
        _TABLES[key] = table
    return table


#: NIST P-256 (FIPS 186-3 D.1.2.3), as RFC 6507 Appendix A lists it ("p", "B", "q", "G").
P256 = Curve(
    name="P-256",
    p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    q=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

__all__ = ["P256", "Curve", "FixedBase", "Point", "PointError", "fixed_base"]
