"""SRTP/SRTCP transforms on ``cryptography`` with an explicit rollover counter.

Why this exists next to pylibsrtp (the fast path, :mod:`ims.media.srtp`): libsrtp keeps the
rollover counter (ROC) private and pylibsrtp cannot set it (``srtp_set_stream_roc`` is not
bound). A receiver that starts after the sender's sequence number wrapped (ROC ≥ 1: an LI tap
joining a call late, a UE after a re-INVITE to a new anchor) or that misses more than 2^15
packets in a row computes the wrong packet index and every packet fails authentication. Here
the caller passes the ROC (or guesses several and lets authentication decide), which is all
the LI side needs to decrypt any stream from any packet.

Implements, for one master key of one direction:

- Key derivation, RFC 3711 §4.3.1/§4.3.3 (AES-CM PRF, key derivation rate 0): labels 0..5 for the
  SRTP/SRTCP encryption, authentication and salting keys. For the AEAD suites the 12-byte master
  salt is zero-padded to 14 bytes for the PRF (what libsrtp does; RFC 7714 §11 keeps the RFC 3711
  KDF) and the session salt is 12 bytes.
- AES-CM (RFC 3711 §4.1.1): IV = k_s·2^16 ⊕ SSRC·2^64 ⊕ i·2^16; HMAC-SHA1 over the packet ‖ ROC
  (§4.2), truncated to 80 or 32 bits (SRTCP always 80, RFC 4568 §6.2.2).
- NULL cipher + HMAC-SHA1 (libsrtp profile 5).
- AEAD_AES_128/256_GCM (RFC 7714 §8, §9): IV = (0x0000 ‖ SSRC ‖ ROC ‖ SEQ) ⊕ salt for SRTP and
  (0x0000 ‖ SSRC ‖ 0x0000 ‖ SRTCP index) ⊕ salt for SRTCP; AAD is the RTP header, or the
  RTCP header ‖ E-flag ‖ SRTCP index; 16-byte tag.

Sans-I/O, no clock. Errors: :class:`SrtpAuthError` (authentication failed: wrong key, wrong
ROC guess or tampering) and :class:`SrtpFormatError` (too short, not RTP).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ims.errors import DecodeError, ImsError
from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpError, header_length
from ims.sdes.suites import SUITES, CryptoSuite

LABEL_RTP_ENCRYPTION = 0
LABEL_RTP_AUTH = 1
LABEL_RTP_SALT = 2
LABEL_RTCP_ENCRYPTION = 3
LABEL_RTCP_AUTH = 4
LABEL_RTCP_SALT = 5
AUTH_KEY_LEN = 20  # HMAC-SHA1 session authentication key (RFC 3711 §8.2: n_a = 160)
SRTCP_E_FLAG = 0x80000000


class SrtpFormatError(DecodeError):
    """Not an SRTP/SRTCP packet we can process (too short, bad RTP header)."""


class SrtpAuthError(ImsError):
    """Authentication failed: tampered packet, wrong key, or wrong ROC/index guess."""


def aes_cm_prf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 §4.3.3 key derivation with key_derivation_rate 0 (r = 0)."""
    salt = master_salt.ljust(14, b"\x00")[:14]
    x = bytearray(salt)
    x[7] ^= label  # key_id = label ‖ r(48 bits, 0), right-aligned against the 112-bit salt
    iv = bytes(x) + b"\x00\x00"
    enc = Cipher(algorithms.AES(master_key), modes.CTR(iv)).encryptor()
    return enc.update(bytes(length)) + enc.finalize()


@dataclass(frozen=True, slots=True)
class SessionKeys:
    rtp_key: bytes
    rtp_salt: bytes
    rtp_auth: bytes
    rtcp_key: bytes
    rtcp_salt: bytes
    rtcp_auth: bytes

    def __repr__(self) -> str:
        return "SessionKeys(<redacted>)"


def derive_session_keys(keys: SrtpKeys, suite: CryptoSuite | None = None) -> SessionKeys:
    suite = suite or SUITES[keys.suite]
    salt_len = 12 if suite.aead else 14
    mk, ms = keys.master_key, keys.master_salt
    if len(mk) != suite.key_len or len(ms) != suite.salt_len:
        raise ValueError(f"{suite.name} needs a {suite.key_len}+{suite.salt_len} byte key+salt")
    auth_len = 0 if suite.aead else AUTH_KEY_LEN
    return SessionKeys(
        rtp_key=aes_cm_prf(mk, ms, LABEL_RTP_ENCRYPTION, suite.key_len),
        rtp_salt=aes_cm_prf(mk, ms, LABEL_RTP_SALT, salt_len),
        rtp_auth=aes_cm_prf(mk, ms, LABEL_RTP_AUTH, auth_len) if auth_len else b"",
        rtcp_key=aes_cm_prf(mk, ms, LABEL_RTCP_ENCRYPTION, suite.key_len),
        rtcp_salt=aes_cm_prf(mk, ms, LABEL_RTCP_SALT, salt_len),
        rtcp_auth=aes_cm_prf(mk, ms, LABEL_RTCP_AUTH, auth_len) if auth_len else b"",
    )


def aes_cm_iv(session_salt: bytes, ssrc: int, index: int) -> bytes:
    """RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)."""
    iv = int.from_bytes(session_salt, "big") << 16
    iv ^= (ssrc << 64) ^ (index << 16)
    return iv.to_bytes(16, "big")


def gcm_srtp_iv(session_salt: bytes, ssrc: int, roc: int, seq: int) -> bytes:
    """RFC 7714 §8.1."""
    iv = struct.pack("!HIIH", 0, ssrc, roc, seq)
    return bytes(a ^ b for a, b in zip(iv, session_salt, strict=True))


def gcm_srtcp_iv(session_salt: bytes, ssrc: int, index: int) -> bytes:
    """RFC 7714 §9.1."""
    iv = struct.pack("!HIHI", 0, ssrc, 0, index & 0x7FFFFFFF)
    return bytes(a ^ b for a, b in zip(iv, session_salt, strict=True))


class SrtpCryptoContext:
    """SRTP + SRTCP for one direction (one master key), any SSRC, explicit ROC / index."""

    def __init__(self, keys: SrtpKeys, session_keys: SessionKeys | None = None) -> None:
        suite = SUITES.get(keys.suite)
        if suite is None or not suite.runnable:
            raise ValueError(f"crypto-suite {keys.suite} is not supported")
        self.suite = suite
        self.keys = session_keys or derive_session_keys(keys, suite)
        self.tag_len = suite.rtp_tag_len
        self.rtcp_tag_len = suite.rtcp_tag_len
        if suite.aead:
            self._gcm_rtp = AESGCM(self.keys.rtp_key)
            self._gcm_rtcp = AESGCM(self.keys.rtcp_key)
        else:
            self._rtp_aes = algorithms.AES(self.keys.rtp_key)
            self._rtcp_aes = algorithms.AES(self.keys.rtcp_key)
            self._hmac_rtp = hmac.new(self.keys.rtp_auth, digestmod=hashlib.sha1)
            self._hmac_rtcp = hmac.new(self.keys.rtcp_auth, digestmod=hashlib.sha1)

    # -- helpers ----------------------------------------------------------------------------
    def _ctr(self, aes: algorithms.AES, iv: bytes, data: bytes) -> bytes:
        if self.suite.null_cipher or not data:
            return data
        enc = Cipher(aes, modes.CTR(iv)).encryptor()
        return enc.update(data) + enc.finalize()

    def _rtp_tag(self, authenticated: bytes, roc: int) -> bytes:
        h = self._hmac_rtp.copy()
        h.update(authenticated)
        h.update(struct.pack("!I", roc & 0xFFFFFFFF))
        return h.digest()[: self.tag_len]

    @staticmethod
    def _split(data: bytes) -> tuple[int, int, int]:
        try:
            hlen = header_length(data)
        except RtpError as exc:
            raise SrtpFormatError(str(exc)) from None
        if data[0] >> 6 != 2:
            raise SrtpFormatError("not RTP version 2")
        seq, ssrc = struct.unpack_from("!H4xI", data, 2)
        return hlen, seq, ssrc

    # -- SRTP -------------------------------------------------------------------------------
    def protect(self, rtp: bytes, roc: int) -> bytes:
        hlen, seq, ssrc = self._split(rtp)
        header, payload = rtp[:hlen], rtp[hlen:]
        if self.suite.aead:
            iv = gcm_srtp_iv(self.keys.rtp_salt, ssrc, roc, seq)
            return header + self._gcm_rtp.encrypt(iv, payload, header)
        index = (roc << 16) | seq
        iv = aes_cm_iv(self.keys.rtp_salt, ssrc, index)
        body = header + self._ctr(self._rtp_aes, iv, payload)
        return body + self._rtp_tag(body, roc)

    def authenticate(self, srtp: bytes, roc: int) -> bool:
        """Does ``srtp`` authenticate with this ROC? (cheap for AES-CM: one HMAC)."""
        try:
            self.unprotect(srtp, roc)
        except (SrtpAuthError, SrtpFormatError):
            return False
        return True

    def unprotect(self, srtp: bytes, roc: int) -> bytes:
        hlen, seq, ssrc = self._split(srtp)
        if len(srtp) < hlen + self.tag_len:
            raise SrtpFormatError("SRTP packet shorter than header + tag")
        if self.suite.aead:
            iv = gcm_srtp_iv(self.keys.rtp_salt, ssrc, roc, seq)
            try:
                plain = self._gcm_rtp.decrypt(iv, srtp[hlen:], srtp[:hlen])
            except InvalidTag:
                raise SrtpAuthError("SRTP GCM tag mismatch") from None
            return srtp[:hlen] + plain
        body, tag = srtp[: -self.tag_len], srtp[-self.tag_len :]
        if not hmac.compare_digest(self._rtp_tag(body, roc), tag):
            raise SrtpAuthError("SRTP authentication tag mismatch")
        index = (roc << 16) | seq
        iv = aes_cm_iv(self.keys.rtp_salt, ssrc, index)
        return body[:hlen] + self._ctr(self._rtp_aes, iv, body[hlen:])

    # -- SRTCP ------------------------------------------------------------------------------
    def protect_rtcp(self, rtcp: bytes, index: int, *, encrypt: bool = True) -> bytes:
        if len(rtcp) < 8:
            raise SrtpFormatError("RTCP packet shorter than 8 bytes")
        ssrc = struct.unpack_from("!I", rtcp, 4)[0]
        index &= 0x7FFFFFFF
        encrypt = encrypt and not self.suite.null_cipher  # libsrtp sends E=0 with NULL cipher
        e_index = struct.pack("!I", (SRTCP_E_FLAG if encrypt else 0) | index)
        header, payload = rtcp[:8], rtcp[8:]
        if self.suite.aead:
            iv = gcm_srtcp_iv(self.keys.rtcp_salt, ssrc, index)
            if encrypt:
                return header + self._gcm_rtcp.encrypt(iv, payload, header + e_index) + e_index
            tag = self._gcm_rtcp.encrypt(iv, b"", rtcp + e_index)
            return rtcp + tag + e_index
        if encrypt:
            iv = aes_cm_iv(self.keys.rtcp_salt, ssrc, index)
            payload = self._ctr(self._rtcp_aes, iv, payload)
        body = header + payload + e_index
        h = self._hmac_rtcp.copy()
        h.update(body)
        return body + h.digest()[: self.rtcp_tag_len]

    def unprotect_rtcp(self, srtcp: bytes) -> tuple[bytes, int]:
        """Returns (plain RTCP, SRTCP index)."""
        tag_len = 0 if self.suite.aead else self.rtcp_tag_len
        if len(srtcp) < 8 + 4 + tag_len + (16 if self.suite.aead else 0):
            raise SrtpFormatError("SRTCP packet too short")
        ssrc = struct.unpack_from("!I", srtcp, 4)[0]
        if self.suite.aead:
            e_index_b = srtcp[-4:]
            e_index = struct.unpack("!I", e_index_b)[0]
            index = e_index & 0x7FFFFFFF
            iv = gcm_srtcp_iv(self.keys.rtcp_salt, ssrc, index)
            try:
                if e_index & SRTCP_E_FLAG:
                    plain = self._gcm_rtcp.decrypt(iv, srtcp[8:-4], srtcp[:8] + e_index_b)
                    return srtcp[:8] + plain, index
                body = srtcp[:-20]
                self._gcm_rtcp.decrypt(iv, srtcp[-20:-4], body + e_index_b)
                return body, index
            except InvalidTag:
                raise SrtpAuthError("SRTCP GCM tag mismatch") from None
        body, tag = srtcp[:-tag_len], srtcp[-tag_len:]
        h = self._hmac_rtcp.copy()
        h.update(body)
        if not hmac.compare_digest(h.digest()[:tag_len], tag):
            raise SrtpAuthError("SRTCP authentication tag mismatch")
        e_index = struct.unpack("!I", body[-4:])[0]
        index = e_index & 0x7FFFFFFF
        payload = body[8:-4]
        if e_index & SRTCP_E_FLAG:
            iv = aes_cm_iv(self.keys.rtcp_salt, ssrc, index)
            payload = self._ctr(self._rtcp_aes, iv, payload)
        return body[:8] + payload, index
