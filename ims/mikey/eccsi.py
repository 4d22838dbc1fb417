"""ECCSI: Elliptic Curve-based Certificateless Signatures for Identity-based encryption (RFC 6507).

The signature scheme of MIKEY-SAKKE (RFC 6509 §4.3, S type 2), over the parameters RFC 6509
§2.1.1 fixes: "the P-256 elliptic curve and base point [FIPS186-3] and SHA-256 [FIPS180-3]
MUST be used" (so N = 32 octets, RFC 6507 §4.1).

* KMS (RFC 6507 §4.2): KSAK random in [1, q), KPAK = [KSAK]G.
* User key issuance (§5.1.1): v random non-zero in F_q, PVT = [v]G,
  HS = hash(G || KPAK || ID || PVT), SSK = (KSAK + HS*v) mod q; restart when SSK or HS is 0 mod q.
* SSK validation (§5.1.2): PVT on E, HS recomputed, KPAK == [SSK]G - [HS]PVT. A signer built
  from unvalidated material refuses to exist (:class:`EccsiSigner` validates in its constructor).
* Signing (§5.2.1): j random, J = [j]G, r = Jx, HE = hash(HS || r || M),
  s' = ((HE + r*SSK)^-1 * j) mod q, s = q - s' when s' does not fit in N octets;
  Signature = r || s || PVT (§3.3, 4N+1 = 129 octets).
* Verification (§5.2.2): PVT on E, HS, HE, Y = [HS]PVT + KPAK, J = [s]([HE]G + [r]Y),
  accept iff Jx = r mod p and Jx != 0.

Every "hash" input is the canonical octet form of §3.2 (points 0x04||x||y, integers N octets).
The ephemerals (v, j) may be passed in only so the RFC 6507 Appendix A vector can be
replayed; production callers leave them out and get ``secrets`` randomness.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from ims.errors import ImsError
from ims.mikey.ecmath import P256, Curve, PointError

CURVE: Curve = P256
N = 32  # octets of r, s and of the SHA-256 output (RFC 6507 §4.1: N = Ceiling(n/8))
SIGNATURE_LEN = 4 * N + 1  # RFC 6507 §3.3: "a total signature length of 4N+1 octets"


class EccsiError(ImsError, ValueError):
    """Key material failed an RFC 6507 check (bad KPAK, PVT not on E, SSK does not validate)."""


def _hash(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def _int(value: int) -> bytes:
    return value.to_bytes(N, "big")


def _random_nonzero(q: int) -> int:
    return 1 + secrets.randbelow(q - 1)


def check_kpak(kpak: bytes) -> tuple[int, int]:
    """RFC 6507 §4.2: "each device MUST check that the supplied KPAK lies on the elliptic
    curve E"."""
    try:
        return CURVE.decode_point(kpak)
    except PointError as exc:
        raise EccsiError(f"KPAK rejected: {exc}") from None


def hash_hs(kpak: bytes, identifier: bytes, pvt: bytes) -> int:
    """HS = hash( G || KPAK || ID || PVT ) (RFC 6507 §5.1.1 step 3, §5.1.2 step 2)."""
    return int.from_bytes(_hash(CURVE.encode_point(CURVE.g), kpak, identifier, pvt), "big")


def hash_he(hs: int, r: int, message: bytes) -> int:
    """HE = hash( HS || r || M ) (RFC 6507 §5.2.1 step 3, §5.2.2 step 3)."""
    return int.from_bytes(_hash(_int(hs), _int(r), message), "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A user's (SSK, PVT) pair for one Identifier (RFC 6507 §5.1); the SSK is secret."""

    identifier: bytes
    ssk: int = field(repr=False)
    pvt: bytes


class EccsiKms:
    """The KMS side of ECCSI: holds the KSAK, publishes the KPAK, issues (SSK, PVT) pairs."""

    def __init__(self, ksak: int | None = None) -> None:
        q = CURVE.q
        self._ksak = _random_nonzero(q) if ksak is None else ksak
        if not 0 < self._ksak < q:
            raise EccsiError("KSAK must be a non-zero integer modulo q (RFC 6507 §4.2)")
        self.kpak = CURVE.encode_point(CURVE.mul_fixed(self._ksak, CURVE.g))

    def issue(self, identifier: bytes, *, v: int | None = None) -> SigningKey:
        """Construct an (SSK, PVT) pair for ``identifier`` (RFC 6507 §5.1.1)."""
        q = CURVE.q
        while True:
            eph = _random_nonzero(q) if v is None else v  # 1) v non-zero in F_q
            if not 0 < eph < q:
                raise EccsiError("v must be a non-zero element of F_q")
            pvt = CURVE.encode_point(CURVE.mul_fixed(eph, CURVE.g))  # 2) PVT = [v]G
            hs = hash_hs(self.kpak, identifier, pvt)  # 3)
            ssk = (self._ksak + hs * eph) % q  # 4)
            if ssk != 0 and hs % q != 0:  # 5) "restart ... with a fresh value of v"
                return SigningKey(identifier=identifier, ssk=ssk, pvt=pvt)
            if v is not None:
                raise EccsiError("SSK or HS is zero modulo q for this v")


def validate_signing_key(key: SigningKey, kpak: bytes) -> int:
    """RFC 6507 §5.1.2: check a received (SSK, PVT) against ID and KPAK; returns HS.

    "1) Validate that the PVT lies on the elliptic curve E; 2) Compute HS = hash( G || KPAK ||
    ID || PVT ) ... 3) Validate that KPAK = [SSK]G - [HS]PVT."
    """
    kpak_pt = check_kpak(kpak)
    try:
        pvt_pt = CURVE.decode_point(key.pvt)
    except PointError as exc:
        raise EccsiError(f"PVT rejected: {exc}") from None
    if not 0 < key.ssk < CURVE.q:
        raise EccsiError("SSK out of range")
    hs = hash_hs(kpak, key.identifier, key.pvt)
    # [SSK]G by the fixed-base table (SSK is secret), [HS]PVT is public
    if CURVE.add(CURVE.mul_fixed(key.ssk, CURVE.g), CURVE.mul_public(-hs, pvt_pt)) != kpak_pt:
        raise EccsiError("SSK does not validate against KPAK, ID and PVT")
    return hs


class EccsiSigner:
    """A validated signing key; :meth:`sign` makes RFC 6507 §5.2.1 signatures."""

    def __init__(self, key: SigningKey, kpak: bytes) -> None:
        self.hs = validate_signing_key(key, kpak)  # "MUST be validated before being installed"
        self.key = key
        self.kpak = kpak

    @property
    def identifier(self) -> bytes:
        return self.key.identifier

    def sign(self, message: bytes, *, j: int | None = None) -> bytes:
        """Signature = r || s || PVT (RFC 6507 §5.2.1, §3.3)."""
        q = CURVE.q
        while True:
            eph = _random_nonzero(q) if j is None else j  # 1)
            point = CURVE.mul_fixed(eph, CURVE.g)  # 2) J = [j]G, r = Jx
            assert point is not None  # 0 < j < q and G has order q
            r = point[0]
            he = hash_he(self.hs, r, message)  # 3)
            t = (he + r * self.key.ssk) % q  # 4) must be non-zero
            if t != 0:
                break
            if j is not None:
                raise EccsiError("HE + r*SSK is zero modulo q for this j")
        s_prime = pow(t, -1, q) * eph % q  # 5)
        s = q - s_prime if s_prime >> (8 * N) else s_prime  # 6)
        return _int(r) + _int(s) + self.key.pvt  # 7)


def verify(signature: bytes, message: bytes, identifier: bytes, kpak: bytes) -> bool:
    """RFC 6507 §5.2.2; False for any malformed or wrong signature, never raises for input."""
    if len(signature) != SIGNATURE_LEN:
        return False
    r = int.from_bytes(signature[:N], "big")
    s = int.from_bytes(signature[N : 2 * N], "big")
    pvt = signature[2 * N :]
    try:
        kpak_pt = check_kpak(kpak)
        pvt_pt = CURVE.decode_point(pvt)  # 1) "MUST check that the PVT lies on ... E"
    except (EccsiError, PointError):
        return False
    hs = hash_hs(kpak, identifier, pvt)  # 2)
    he = hash_he(hs, r, message)  # 3)
    # every scalar of a verification is public: the variable-time multiplications serve
    y = CURVE.add(CURVE.mul_public(hs, pvt_pt), kpak_pt)  # 4) Y = [HS]PVT + KPAK
    # 5) J = [s]( [HE]G + [r]Y ), computed as the equal [s*HE mod q]G + [s*r mod q]Y (G and
    # Y lie in the order-q group: P-256 has cofactor 1) - §5.2.2 asks for "a procedure
    # equivalent to the following"
    q = CURVE.q
    j = CURVE.add(CURVE.mul_fixed(s * he % q, CURVE.g), CURVE.mul_public(s * r % q, y))
    if j is None:
        return False
    jx = j[0] % CURVE.p
    return jx != 0 and jx == r % CURVE.p  # 6)


__all__ = [
    "CURVE",
    "SIGNATURE_LEN",
    "EccsiError",
    "EccsiKms",
    "EccsiSigner",
    "SigningKey",
    "check_kpak",
    "hash_he",
    "hash_hs",
    "validate_signing_key",
    "verify",
]
