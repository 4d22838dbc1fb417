"""SP payload <-> SRTP crypto suite, and the SRTP key material MIKEY hands to the media plane.

SRTP policy parameters are RFC 3830 §6.10.1 (Table 6.10.1.a types, 6.10.1.b encryption
algorithms, 6.10.1.c authentication algorithms). Defaults when a parameter is absent
(§6.10.1): AES-CM, 128-bit key, HMAC-SHA-1, 112-bit salt, 80-bit tag, encryption and
authentication on, KDR 0.

Quirk tolerated on input (shared reference §1.5; GStreamer, RTSP cameras): parameter 3
"session auth key length" holding the *tag* length (10 or 4 bytes) instead of 20; when
parameter 11 (tag length) is absent we read the tag length from it.

Which side sends on which crypto session is not on the wire. Our rule (documented in
docs/mikey-api.md): CS ID 1 is the initiator's stream, CS ID 2 the responder's, further CSs
alternate (odd = initiator sends, even = responder sends).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from ims.media.keys import SrtpKeys
from ims.mikey.constants import ErrorNo, ProtType, SrtpAuthAlg, SrtpEncrAlg, SrtpParam
from ims.mikey.errors import MikeyError
from ims.mikey.payloads import SpParam, SpPayload


class SrtpSuite(StrEnum):
    """SRTP transforms MIKEY can select; names follow the SDES (RFC 4568) suite names."""

    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
    NULL_HMAC_SHA1_80 = "NULL_HMAC_SHA1_80"
    AEAD_AES_128_GCM = "AEAD_AES_128_GCM"


#: suite -> (master key bytes, master salt bytes, pylibsrtp profile int)
SUITE_PARAMS: dict[SrtpSuite, tuple[int, int, int]] = {
    SrtpSuite.AES_CM_128_HMAC_SHA1_80: (16, 14, 1),
    SrtpSuite.AES_CM_128_HMAC_SHA1_32: (16, 14, 2),
    SrtpSuite.NULL_HMAC_SHA1_80: (16, 14, 5),
    SrtpSuite.AEAD_AES_128_GCM: (16, 12, 7),
}


def sp_for_suite(suite: SrtpSuite, policy_no: int = 0) -> SpPayload:
    """The SP payload we send for ``suite`` (explicit values for every parameter we rely on)."""

    def p(t: SrtpParam, v: int) -> SpParam:
        return SpParam(type=t, value=bytes([v]))

    key_len, salt_len, _ = SUITE_PARAMS[suite]
    if suite is SrtpSuite.AEAD_AES_128_GCM:
        params = [
            p(SrtpParam.ENCR_ALG, SrtpEncrAlg.AES_GCM),
            p(SrtpParam.ENCR_KEY_LEN, key_len),
            p(SrtpParam.AUTH_ALG, SrtpAuthAlg.NULL),
            p(SrtpParam.SALT_KEY_LEN, salt_len),
            p(SrtpParam.PRF, 0),
            p(SrtpParam.KDR, 0),
            p(SrtpParam.SRTP_ENCR, 1),
            p(SrtpParam.SRTCP_ENCR, 1),
            p(SrtpParam.SRTP_AUTH, 1),
            p(SrtpParam.AUTH_TAG_LEN, 16),
        ]
    else:
        encr = SrtpEncrAlg.NULL if suite is SrtpSuite.NULL_HMAC_SHA1_80 else SrtpEncrAlg.AES_CM
        tag = 4 if suite is SrtpSuite.AES_CM_128_HMAC_SHA1_32 else 10
        params = [
            p(SrtpParam.ENCR_ALG, encr),
            p(SrtpParam.ENCR_KEY_LEN, key_len),
            p(SrtpParam.AUTH_ALG, SrtpAuthAlg.HMAC_SHA1),
            p(SrtpParam.AUTH_KEY_LEN, 20),
            p(SrtpParam.SALT_KEY_LEN, salt_len),
            p(SrtpParam.PRF, 0),
            p(SrtpParam.KDR, 0),
            p(SrtpParam.SRTP_ENCR, 0 if encr is SrtpEncrAlg.NULL else 1),
            p(SrtpParam.SRTCP_ENCR, 0 if encr is SrtpEncrAlg.NULL else 1),
            p(SrtpParam.FEC_ORDER, 0),
            p(SrtpParam.SRTP_AUTH, 1),
            p(SrtpParam.AUTH_TAG_LEN, tag),
            p(SrtpParam.PREFIX_LEN, 0),
        ]
    return SpPayload(policy_no=policy_no, prot_type=ProtType.SRTP, params=tuple(params))


def _int(sp: SpPayload, t: SrtpParam, default: int) -> int:
    v = sp.get(t)
    return default if v is None or not v else int.from_bytes(v, "big")


def suite_from_sp(sp: SpPayload) -> SrtpSuite:
    """Map a received SP payload to a suite; unsupported combinations -> Invalid SPpar."""
    if sp.prot_type is not ProtType.SRTP:
        raise MikeyError("only SRTP policies are supported", mikey_error=ErrorNo.INVALID_SP)
    encr = _int(sp, SrtpParam.ENCR_ALG, SrtpEncrAlg.AES_CM)
    key_len = _int(sp, SrtpParam.ENCR_KEY_LEN, 16)
    auth = _int(sp, SrtpParam.AUTH_ALG, SrtpAuthAlg.HMAC_SHA1)
    auth_key_len = _int(sp, SrtpParam.AUTH_KEY_LEN, 20)
    tag = sp.get(SrtpParam.AUTH_TAG_LEN)
    tag_len = (
        int.from_bytes(tag, "big") if tag else (auth_key_len if auth_key_len in (4, 10) else 10)
    )
    kdr = _int(sp, SrtpParam.KDR, 0)
    srtp_encr = _int(sp, SrtpParam.SRTP_ENCR, 1)
    if kdr != 0:
        raise MikeyError("key derivation rate is not supported", mikey_error=ErrorNo.INVALID_SPPAR)
    if encr == SrtpEncrAlg.AES_GCM and key_len == 16:
        return SrtpSuite.AEAD_AES_128_GCM
    if auth != SrtpAuthAlg.HMAC_SHA1:
        raise MikeyError("SRTP without authentication", mikey_error=ErrorNo.INVALID_SPPAR)
    if encr == SrtpEncrAlg.NULL or srtp_encr == 0:
        if tag_len == 10:
            return SrtpSuite.NULL_HMAC_SHA1_80
    elif encr == SrtpEncrAlg.AES_CM and key_len == 16:
        if tag_len == 10:
            return SrtpSuite.AES_CM_128_HMAC_SHA1_80
        if tag_len == 4:
            return SrtpSuite.AES_CM_128_HMAC_SHA1_32
    raise MikeyError(
        f"unsupported SRTP policy (encr {encr}, key {key_len}, tag {tag_len})",
        mikey_error=ErrorNo.INVALID_SPPAR,
    )


class Sender(Enum):
    """Which party sends the stream of a crypto session."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


def sender_of(cs_id: int) -> Sender:
    """Our CS convention: odd CS IDs are the initiator's streams, even ones the responder's."""
    return Sender.INITIATOR if cs_id % 2 == 1 else Sender.RESPONDER


@dataclass(frozen=True, slots=True, kw_only=True)
class SrtpKeyMaterial:
    """SRTP master key and salt for one crypto session, ready for pylibsrtp.

    ``ssrc`` 0 means "not known when the offer was made" (use SSRC_ANY_* on that side).
    """

    cs_id: int
    policy_no: int
    ssrc: int
    roc: int
    sender: Sender
    suite: SrtpSuite
    master_key: bytes
    master_salt: bytes

    @property
    def key_salt(self) -> bytes:
        """master key || master salt: what ``pylibsrtp.Policy(key=...)`` wants."""
        return self.master_key + self.master_salt

    @property
    def srtp_profile(self) -> int:
        """The pylibsrtp / libsrtp2 profile number for ``suite``."""
        return SUITE_PARAMS[self.suite][2]

    def media_keys(self) -> SrtpKeys:
        """The same key as :class:`ims.media.keys.SrtpKeys` (what ims.media sessions take)."""
        return SrtpKeys(
            suite=self.suite.value,
            master_key=self.master_key,
            master_salt=self.master_salt,
            roc=self.roc,
        )

    def __repr__(self) -> str:  # never print key material by accident
        return (
            f"SrtpKeyMaterial(cs_id={self.cs_id}, ssrc={self.ssrc:#010x}, roc={self.roc}, "
            f"sender={self.sender.value}, suite={self.suite.value}, key=<redacted>)"
        )
