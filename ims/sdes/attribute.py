"""The SDES ``a=crypto`` attribute (RFC 4568 §4, §6 and the ABNF of §9.2).

::

    a=crypto:<tag> 1*WSP <crypto-suite> 1*WSP <key-params> *(1*WSP <session-param>)
    tag          = 1*9DIGIT
    crypto-suite = 1*(ALPHA / DIGIT / "_")
    key-params   = key-param *(";" key-param)
    key-param    = key-method ":" key-info          ; key-method "inline" (others kept raw)
    srtp-key-info= key-salt ["|" lifetime] ["|" mki]
    lifetime     = ["2^"] 1*DIGIT
    mki          = mki-value ":" mki-length         ; mki-length 1*3DIGIT, 1..128 (bytes)
    session-param= "KDR=" 1*2DIGIT / "UNENCRYPTED_SRTP" / "UNENCRYPTED_SRTCP"
                 / "UNAUTHENTICATED_SRTP" / "FEC_ORDER=" ("FEC_SRTP" / "SRTP_FEC")
                 / "FEC_KEY=" key-params / "WSH=" 2*DIGIT / ["-"] extension

Parsing is purely syntactic: a suite we cannot run, an MKI, a KDR other than 0, FEC_KEY or an
unknown mandatory parameter all parse fine; :func:`unsupported_reason` says why the line cannot
be used, so the answerer declines it cleanly (RFC 4568 §7.1.2) instead of failing.
The key‖salt is decoded from base64 at parse time (a bad base64 value is a syntax error).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from ims.sdes.errors import SdesError
from ims.sdes.suites import SUITES, get_suite

_TAG = re.compile(r"[0-9]{1,9}")
_SUITE = re.compile(r"[A-Za-z0-9_]+")
_LIFETIME = re.compile(r"2\^[0-9]{1,2}|[0-9]{1,20}")  # 2^n (n <= 99) or at most 20 digits
_MKI = re.compile(r"([0-9]{1,310}):([0-9]{1,3})")  # an MKI of up to 128 bytes fits 309 digits
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_WSP = re.compile(r"[ \t]+")

KNOWN_SESSION_PARAMS = (
    "KDR",
    "UNENCRYPTED_SRTP",
    "UNENCRYPTED_SRTCP",
    "UNAUTHENTICATED_SRTP",
    "FEC_ORDER",
    "FEC_KEY",
    "WSH",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyParam:
    """One ``key-method ":" key-info``. For ``inline`` the key‖salt is decoded."""

    method: str = "inline"
    key_salt: bytes = b""
    lifetime: str | None = None  # as written: "2^31" or "1048576"
    mki: int | None = None
    mki_length: int | None = None
    raw_info: str | None = None  # key-info of a non-inline method, kept verbatim
    padded: bool = True  # base64 written with '=' padding (rtpengine omits it)

    @property
    def lifetime_value(self) -> int | None:
        if self.lifetime is None:
            return None
        if self.lifetime.startswith("2^"):
            return 1 << int(self.lifetime[2:])
        return int(self.lifetime)

    def encode(self) -> str:
        if self.method != "inline":
            return f"{self.method}:{self.raw_info or ''}"
        b64 = base64.b64encode(self.key_salt).decode("ascii")
        text = "inline:" + (b64 if self.padded else b64.rstrip("="))
        if self.lifetime is not None:
            text += "|" + self.lifetime
        if self.mki is not None:
            text += f"|{self.mki}:{self.mki_length}"
        return text

    def __repr__(self) -> str:  # never print key material
        return (
            f"KeyParam(method={self.method!r}, key_salt=<{len(self.key_salt)} bytes>, "
            f"lifetime={self.lifetime!r}, mki={self.mki!r}, mki_length={self.mki_length!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionParam:
    """A session parameter. ``name`` without the ``-`` prefix; ``optional`` when it had one."""

    name: str
    value: str | None = None
    optional: bool = False

    @property
    def known(self) -> bool:
        return self.name in KNOWN_SESSION_PARAMS

    def encode(self) -> str:
        text = ("-" if self.optional else "") + self.name
        return text if self.value is None else f"{text}={self.value}"


def _parse_key_param(text: str) -> KeyParam:
    method, sep, info = text.partition(":")
    if not sep or not method:
        raise SdesError(f"key-param without key-method: {text!r}")
    if method != "inline":
        return KeyParam(method=method, raw_info=info)
    parts = info.split("|")
    if len(parts) > 3:
        raise SdesError(f"too many '|' fields in key-info: {info!r}")
    if not _B64.fullmatch(parts[0]):
        raise SdesError(f"key-salt is not base64: {parts[0][:8]!r}...")
    try:
        key_salt = base64.b64decode(parts[0] + "=" * (-len(parts[0]) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SdesError(f"bad base64 in key-salt: {exc}") from None
    lifetime: str | None = None
    mki: int | None = None
    mki_length: int | None = None
    for field in parts[1:]:
        m = _MKI.fullmatch(field)
        if m and mki is None:
            mki, mki_length = int(m.group(1)), int(m.group(2))
            if not 1 <= mki_length <= 128:
                raise SdesError(f"MKI length {mki_length} outside 1..128")
            if mki >= 1 << (8 * mki_length):
                raise SdesError(f"MKI value does not fit in {mki_length} bytes")
        elif _LIFETIME.fullmatch(field) and lifetime is None and mki is None:
            lifetime = field
        else:
            raise SdesError(f"bad lifetime/MKI field {field!r}")
    return KeyParam(
        key_salt=key_salt,
        lifetime=lifetime,
        mki=mki,
        mki_length=mki_length,
        padded=len(parts[0]) % 4 == 0,
    )


def _parse_session_param(text: str) -> SessionParam:
    optional = text.startswith("-")
    body = text[1:] if optional else text
    name, sep, value = body.partition("=")
    if not name:
        raise SdesError(f"empty session parameter {text!r}")
    val = value if sep else None
    if not optional:
        if name == "KDR" and (val is None or not re.fullmatch(r"[0-9]{1,2}", val)):
            raise SdesError(f"bad KDR {val!r}")
        if name == "KDR" and val is not None and int(val) > 24:
            raise SdesError(f"KDR {val} outside 0..24")
        if name == "WSH" and (val is None or not re.fullmatch(r"[0-9]{2,}", val)):
            raise SdesError(f"bad WSH {val!r}")
        if name == "FEC_ORDER" and val not in ("FEC_SRTP", "SRTP_FEC"):
            raise SdesError(f"bad FEC_ORDER {val!r}")
        if name == "FEC_KEY":
            if val is None:
                raise SdesError("FEC_KEY without key-params")
            for kp in val.split(";"):
                _parse_key_param(kp)
        if name in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP") and sep:
            raise SdesError(f"{name} takes no value")
    return SessionParam(name=name, value=val, optional=optional)


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoAttribute:
    """One ``a=crypto`` line value (without ``a=crypto:``)."""

    tag: int
    suite: str
    key_params: tuple[KeyParam, ...]
    session_params: tuple[SessionParam, ...] = ()

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        fields = _WSP.split(value.strip())
        if len(fields) < 3:
            raise SdesError(f"a=crypto needs tag, suite and key-params: {value[:40]!r}")
        tag_text, suite, key_text, *params = fields
        if not _TAG.fullmatch(tag_text):
            raise SdesError(f"bad tag {tag_text!r} (1*9DIGIT)")
        if not _SUITE.fullmatch(suite):
            raise SdesError(f"bad crypto-suite {suite!r}")
        key_params = tuple(_parse_key_param(kp) for kp in key_text.split(";"))
        return cls(
            tag=int(tag_text),
            suite=suite,
            key_params=key_params,
            session_params=tuple(_parse_session_param(p) for p in params),
        )

    def encode(self) -> str:
        parts = [str(self.tag), self.suite, ";".join(kp.encode() for kp in self.key_params)]
        parts += [p.encode() for p in self.session_params]
        return " ".join(parts)

    def __str__(self) -> str:
        return self.encode()

    # -- convenience views ----------------------------------------------------------------
    def session_param(self, name: str) -> SessionParam | None:
        for p in self.session_params:
            if p.name == name:
                return p
        return None

    @property
    def kdr(self) -> int:
        p = self.session_param("KDR")
        return int(p.value) if p is not None and p.value is not None and not p.optional else 0

    @property
    def first_key(self) -> KeyParam:
        return self.key_params[0]

    @property
    def master_key(self) -> bytes:
        suite = get_suite(self.suite)
        n = suite.key_len if suite else 16
        return self.first_key.key_salt[:n]

    @property
    def master_salt(self) -> bytes:
        suite = get_suite(self.suite)
        n = suite.key_len if suite else 16
        return self.first_key.key_salt[n:]

    def flags(self) -> dict[str, bool]:
        return {
            n: self.session_param(n) is not None
            for n in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP")
        }


def unsupported_reason(attr: CryptoAttribute) -> str | None:
    """Why this lab cannot run ``attr`` (None when it can). Never raises."""
    suite = SUITES.get(attr.suite)
    if suite is None:
        return f"unknown crypto-suite {attr.suite}"
    if not suite.runnable:
        return f"crypto-suite {attr.suite} is not supported by libsrtp/pylibsrtp here"
    if len(attr.key_params) != 1:
        return "several key-params (needs MKI) are not supported"
    kp = attr.first_key
    if kp.method != "inline":
        return f"key-method {kp.method} is not supported"
    if kp.mki is not None:
        return "MKI is not supported by pylibsrtp"
    if len(kp.key_salt) != suite.key_salt_len:
        return f"key||salt is {len(kp.key_salt)} bytes, {attr.suite} needs {suite.key_salt_len}"
    if kp.lifetime_value is not None and kp.lifetime_value < 2**20:
        return f"key lifetime {kp.lifetime} too short for a lab call without re-keying"
    for p in attr.session_params:
        if p.optional:
            continue
        if p.name == "KDR" and p.value != "0":
            return f"KDR={p.value} (key derivation rate) is not supported by libsrtp"
        if p.name in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP"):
            return f"{p.name} cannot be set per direction in pylibsrtp"
        if p.name in ("FEC_KEY",):
            return "FEC_KEY is not supported"
        if p.name == "FEC_ORDER" and p.value != "FEC_SRTP":
            return "FEC_ORDER=SRTP_FEC is not supported"
        if not p.known:
            return f"unknown mandatory session parameter {p.name}"
    return None


def crypto_for(
    suite_name: str, tag: int, rng: Callable[[int], bytes] = os.urandom
) -> CryptoAttribute:
    """A fresh ``a=crypto`` line for our own send direction (new random key‖salt)."""
    suite = SUITES.get(suite_name)
    if suite is None or not suite.runnable:
        raise ValueError(f"cannot generate keys for suite {suite_name}")
    return CryptoAttribute(
        tag=tag, suite=suite_name, key_params=(KeyParam(key_salt=rng(suite.key_salt_len)),)
    )
