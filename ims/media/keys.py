"""SRTP master keys for one direction, as produced by SDES (RFC 4568) or MIKEY (RFC 3830 TEK+salt).

A tiny dependency-free module so that :mod:`ims.sdes`, :mod:`ims.mikey` and the LI side can all
hand keys to :mod:`ims.media.srtp` without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class SrtpKeys:
    """Master key and salt for one SRTP direction, and the crypto-suite (SDES name) they are for."""

    suite: str
    master_key: bytes
    master_salt: bytes
    roc: int = 0  # initial rollover counter (MIKEY CS ID map carries it; SDES implies 0)

    @property
    def key_salt(self) -> bytes:
        return self.master_key + self.master_salt

    def __repr__(self) -> str:  # never print key material
        return f"SrtpKeys(suite={self.suite!r}, master_key=<redacted>, roc={self.roc})"
