"""Digest authentication, server side (RFC 7616 with MD5, qop=auth; RFC 2617 compatible).

Nonces are stateless: ``<timestamp>.<hmac(secret, timestamp)>`` so any response to a nonce this
server issued can be checked without a nonce table; a nonce older than ``lifetime`` gives
``stale`` (the client retries without asking the user, §3.3 of RFC 7616).

Kept inside ``proxies/`` because the registrar needs exactly this small part; the full digest
client lives with the UE (``ue/digest.py``) and both compute the same RFC 7616 §3.4.1 response.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Literal

Verdict = Literal["ok", "stale", "bad"]


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """RFC 7616 §3.4.1 (and RFC 2617 §3.2.2.1 when ``qop`` is None), algorithm MD5."""
    ha1 = md5_hex(f"{username}:{realm}:{password}")
    ha2 = md5_hex(f"{method}:{uri}")
    if qop:
        return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5_hex(f"{ha1}:{nonce}:{ha2}")


class DigestServer:
    def __init__(self, realm: str, *, lifetime: float = 300.0, secret: bytes | None = None) -> None:
        self.realm = realm
        self.lifetime = lifetime
        self._secret = secret or secrets.token_bytes(32)
        self.opaque = secrets.token_hex(8)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self, now: float) -> str:
        stamp = f"{now:.3f}"
        return f"{stamp}.{self._sign(stamp)}"

    def challenge(self, now: float, *, stale: bool = False) -> str:
        value = (
            f'Digest realm="{self.realm}", nonce="{self.nonce(now)}", '
            f'opaque="{self.opaque}", algorithm=MD5, qop="auth"'
        )
        return value + (", stale=true" if stale else "")

    def verify(self, auth: Any, method: str, password: str, now: float) -> Verdict:
        """Check an ``Authorization``/``Proxy-Authorization`` (an ``AuthHeader``)."""
        nonce = auth.get("nonce") or ""
        stamp, _, sig = nonce.rpartition(".")
        if not sig or not hmac.compare_digest(sig, self._sign(stamp)):
            return "bad"
        if (auth.get("realm") or "") != self.realm:
            return "bad"
        algorithm = (auth.get("algorithm") or "MD5").upper()
        if algorithm != "MD5":
            return "bad"
        qop = auth.get("qop")
        if qop is not None and qop != "auth":
            return "bad"
        expected = digest_response(
            username=auth.get("username") or "",
            realm=self.realm,
            password=password,
            method=method,
            uri=auth.get("uri") or "",
            nonce=nonce,
            qop=qop,
            nc=auth.get("nc"),
            cnonce=auth.get("cnonce"),
        )
        if not hmac.compare_digest(expected, (auth.get("response") or "").lower()):
            return "bad"
        try:
            issued = float(stamp)
        except ValueError:
            return "bad"
        if now - issued > self.lifetime:
            return "stale"
        return "ok"
