"""SDES crypto-suite table (IANA "SDP Security Descriptions" registry; RFC 4568 §6.2,
RFC 6188, RFC 7714) mapped to what this lab can run.

``srtp_profile`` is the libsrtp profile number pylibsrtp accepts, or ``None`` when neither
pylibsrtp nor our own decryptor (:mod:`ims.media.srtp_crypto`) runs the suite: such suites are
parsed and declined in answers, never crashed on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoSuite:
    name: str
    key_len: int  # master key bytes
    salt_len: int  # master salt bytes
    rtp_tag_len: int  # SRTP authentication tag bytes (AEAD: GCM tag)
    rtcp_tag_len: int  # SRTCP tag bytes (_32 suites keep the 80-bit tag for SRTCP, RFC 4568 §6.2.2)
    aead: bool = False
    null_cipher: bool = False
    srtp_profile: int | None = None  # libsrtp profile id, None = not runnable here
    rfc: str = ""

    @property
    def runnable(self) -> bool:
        return self.srtp_profile is not None

    @property
    def key_salt_len(self) -> int:
        return self.key_len + self.salt_len


def _s(
    name: str,
    key: int,
    salt: int,
    tag: int,
    rtcp: int,
    *,
    aead: bool = False,
    null_cipher: bool = False,
    srtp_profile: int | None = None,
    rfc: str = "",
) -> CryptoSuite:
    return CryptoSuite(
        name=name,
        key_len=key,
        salt_len=salt,
        rtp_tag_len=tag,
        rtcp_tag_len=rtcp,
        aead=aead,
        null_cipher=null_cipher,
        srtp_profile=srtp_profile,
        rfc=rfc,
    )


SUITES: dict[str, CryptoSuite] = {
    s.name: s
    for s in (
        _s("AES_CM_128_HMAC_SHA1_80", 16, 14, 10, 10, srtp_profile=1, rfc="RFC 4568"),
        _s("AES_CM_128_HMAC_SHA1_32", 16, 14, 4, 10, srtp_profile=2, rfc="RFC 4568"),
        _s("F8_128_HMAC_SHA1_80", 16, 14, 10, 10, rfc="RFC 4568"),
        _s("F8_128_HMAC_SHA1_32", 16, 14, 4, 10, rfc="rtpengine"),
        _s("AES_192_CM_HMAC_SHA1_80", 24, 14, 10, 10, rfc="RFC 6188"),
        _s("AES_192_CM_HMAC_SHA1_32", 24, 14, 4, 10, rfc="RFC 6188"),
        _s("AES_256_CM_HMAC_SHA1_80", 32, 14, 10, 10, rfc="RFC 6188"),
        _s("AES_256_CM_HMAC_SHA1_32", 32, 14, 4, 10, rfc="RFC 6188"),
        _s("AEAD_AES_128_GCM", 16, 12, 16, 16, aead=True, srtp_profile=7, rfc="RFC 7714"),
        _s("AEAD_AES_256_GCM", 32, 12, 16, 16, aead=True, srtp_profile=8, rfc="RFC 7714"),
        # NULL cipher + HMAC-SHA1-80: libsrtp profile 5 runs it; never offered by default
        # (no confidentiality), but accepted when a peer (rtpengine) offers nothing better.
        _s("NULL_HMAC_SHA1_80", 16, 14, 10, 10, null_cipher=True, srtp_profile=5, rfc="rtpengine"),
        _s("NULL_HMAC_SHA1_32", 16, 14, 4, 10, null_cipher=True, rfc="rtpengine"),
        _s("SEED_CTR_128_HMAC_SHA1_80", 16, 14, 10, 10, rfc="RFC 5669"),
        _s("SEED_128_CCM_80", 16, 12, 10, 10, aead=True, rfc="RFC 5669"),
        _s("SEED_128_GCM_96", 16, 12, 12, 12, aead=True, rfc="RFC 5669"),
    )
}

# Suites every pylibsrtp build runs, in our order of preference for offers.
RUNNABLE_SUITES: tuple[str, ...] = (
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
)


def get_suite(name: str) -> CryptoSuite | None:
    return SUITES.get(name)
