"""Secrets every instance of one element must hold alike, created once in the store.

The digest nonces are self-validating (an HMAC over their issue time, :mod:`ims.sip.auth`): a
nonce issued by one S-CSCF instance verifies on another only if both hold the same key. The
first instance to start creates it (one atomic update); the others, and restarted ones, read
it. It never leaves the store (0600 file / the lab's private Redis socket) nor reaches a log.
"""

from __future__ import annotations

import secrets

from ims.store.base import Store, Write, keep

NAMESPACE = "secrets"


def shared_secret(store: Store, name: str, now: float, *, size: int = 32) -> bytes:
    def create(raw: bytes | None) -> tuple[Write, bytes]:
        if raw is not None and len(raw) == size:
            return keep, raw
        fresh = secrets.token_bytes(size)
        return Write(fresh), fresh

    return store.update(NAMESPACE, name, now, create)
