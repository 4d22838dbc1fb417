"""The user's own end-to-end layer inside the operator's SRTP (study 2.4, issue 13 item 3).

Study 2.4 wants the operator's baseline (SDES protected by IMS control-plane security) to "not
prevent (and maybe even facilitate) end users providing their own additional end-to-end
security"; the answer to Q9 quotes TS 33.106: the CSP is not responsible for decrypting "any
communication encrypted by a subscriber or customer". This module is that extra layer, in the
manner of PERC's double encryption (RFC 8723 §3: an inner end-to-end transform, an outer
hop-by-hop one), simplified to two whole SRTP transforms:

* **inner**: each RTP packet is SRTP-protected (RFC 3711) with keys derived from the PSK the two
  users agreed out of band (``MikeyCredentials.e2e_psk``), per call and per direction, with
  HKDF-SHA256 (RFC 5869): the network never sees them -- not in SDP, not in MIKEY;
* **outer**: the result (an RTP header plus the inner ciphertext and tag) is an RTP packet like
  any other, protected with the SDES keys negotiated through the operator (RFC 4568).

RTCP carries the outer layer only (PERC leaves RTCP hop by hop too). An operator that recovers
the SDES keys decrypts the outer layer and finds the inner ciphertext where the G.711 payload
would be.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ims.media.keys import SrtpKeys
from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.sdp.model import SessionDescription
from ue.keying import (
    DEFAULT_SUITE,
    KeyingContext,
    KeyingError,
    KeyingSession,
    MediaKeys,
    SdesKeying,
    SdpKeying,
)

INNER_SUITE = DEFAULT_SUITE  # AES_CM_128_HMAC_SHA1_80: 16-byte key, 14-byte salt
_LABEL = b"imslab user e2e layer v1 "


def inner_keys(psk: bytes, call_id: str, *, initiator: bool) -> tuple[SrtpKeys, SrtpKeys]:
    """(tx, rx) inner keys of one party: one key per direction, bound to the call."""

    def derive(direction: bytes) -> SrtpKeys:
        okm = HKDF(
            algorithm=hashes.SHA256(),
            length=30,
            salt=call_id.encode(),
            info=_LABEL + direction,
        ).derive(psk)
        return SrtpKeys(suite=INNER_SUITE, master_key=okm[:16], master_salt=okm[16:])

    forward, backward = derive(b"initiator->responder"), derive(b"responder->initiator")
    return (forward, backward) if initiator else (backward, forward)


class LayeredSender(SrtpSender):
    """Inner (the users' keys) then outer (the negotiated keys) SRTP on RTP; outer on RTCP."""

    def __init__(self, outer: SrtpKeys, inner: SrtpKeys) -> None:
        super().__init__(outer)
        self.inner = SrtpSender(inner)

    def protect(self, rtp: bytes) -> bytes | None:
        inner = self.inner.protect(rtp)
        return None if inner is None else super().protect(inner)


class LayeredReceiver(SrtpReceiver):
    """Outer then inner unprotect; a packet failing either is dropped (and counted)."""

    def __init__(self, outer: SrtpKeys, inner: SrtpKeys) -> None:
        super().__init__(outer)
        self.inner = SrtpReceiver(inner)

    def unprotect(self, srtp: bytes) -> bytes | None:
        outer = super().unprotect(srtp)
        return None if outer is None else self.inner.unprotect(outer)


class SdesUserLayerKeying:
    """SDES through the operator (the baseline) plus the users' own end-to-end layer."""

    def __init__(self, *, name: str = "sdes-user-layer", profile: str | None = None) -> None:
        self.name = name
        self.profile = profile
        self.sdes = SdesKeying()

    def session(self, ctx: KeyingContext) -> KeyingSession:
        return _Session(self, ctx)

    def psk(self, ctx: KeyingContext) -> bytes:
        from ue import keying_mikey

        creds = keying_mikey.credentials(self.profile)
        psk = creds.e2e_psk.get(keying_mikey.pair(ctx.local_uri, ctx.remote_uri))
        if psk is None:
            raise KeyingError(f"no end-to-end secret shared with {ctx.remote_uri}")
        return psk


class _Session:
    def __init__(self, keying: SdesUserLayerKeying, ctx: KeyingContext) -> None:
        self.keying, self.ctx = keying, ctx
        self.outer = keying.sdes.session(ctx)

    def _layered(self, keys: MediaKeys) -> MediaKeys:
        if keys.tx is None or keys.rx is None:
            raise KeyingError("the user's layer needs the operator's SRTP underneath")
        tx, rx = inner_keys(
            self.keying.psk(self.ctx), self.ctx.call_id, initiator=self.ctx.initiator
        )
        return MediaKeys(
            tx=keys.tx,
            rx=keys.rx,
            inner_tx=tx,
            inner_rx=rx,
            description=f"{keys.description} + the users' own end-to-end SRTP layer",
            details=keys.details,
        )

    def offer(self) -> SdpKeying:
        self.keying.psk(self.ctx)  # fail before the INVITE when there is no shared secret
        return self.outer.offer()

    def answer(self, offer: SessionDescription, index: int) -> tuple[SdpKeying, MediaKeys]:
        sdp, keys = self.outer.answer(offer, index)
        return sdp, self._layered(keys)

    def answer_received(self, answer: SessionDescription, index: int) -> MediaKeys:
        return self._layered(self.outer.answer_received(answer, index))
