"""Digest authentication, client side (RFC 7616 MD5 with qop=auth, RFC 2617 fallback).

Answers a ``WWW-Authenticate`` (401, registrar) or ``Proxy-Authenticate`` (407, proxy)
challenge with the matching ``Authorization`` / ``Proxy-Authorization`` value.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestClient:
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._nc: dict[str, int] = {}

    def authorization(self, challenge: Any, method: str, uri: str) -> str:
        """The credentials header value for ``challenge`` (an ``ims.sip.headers.AuthHeader``)."""
        realm = challenge.get("realm") or ""
        nonce = challenge.get("nonce") or ""
        opaque = challenge.get("opaque")
        algorithm = (challenge.get("algorithm") or "MD5").upper()
        if algorithm != "MD5":
            raise ValueError(f"digest algorithm {algorithm} is not supported")
        qops = [q.strip() for q in (challenge.get("qop") or "").split(",") if q.strip()]
        ha1 = _md5(f"{self.username}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        parts = [
            f'username="{self.username}"',
            f'realm="{realm}"',
            f'nonce="{nonce}"',
            f'uri="{uri}"',
            "algorithm=MD5",
        ]
        if "auth" in qops:
            nc = self._nc.get(nonce, 0) + 1
            self._nc[nonce] = nc
            ncs = f"{nc:08x}"
            cnonce = secrets.token_hex(8)
            response = _md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
            parts += ["qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        parts.append(f'response="{response}"')
        if opaque is not None:
            parts.append(f'opaque="{opaque}"')
        return "Digest " + ", ".join(parts)
