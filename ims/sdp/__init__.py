"""SDP (RFC 8866): lossless model and parser, offer/answer for audio (RFC 3264),
``a=key-mgmt`` (RFC 4567) and media-anchor rewriting."""

from ims.sdp.anchor import replace_crypto, rewrite_for_anchor, strip_crypto
from ims.sdp.errors import SdpError, SdpNegotiationError
from ims.sdp.keymgmt import KeyMgmtAttribute
from ims.sdp.model import (
    Attribute,
    Connection,
    Direction,
    Line,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)
from ims.sdp.offer_answer import (
    Answer,
    LocalAudio,
    NegotiatedAudio,
    create_answer,
    create_offer,
    process_answer,
)

__all__ = [
    "Answer",
    "Attribute",
    "Connection",
    "Direction",
    "KeyMgmtAttribute",
    "Line",
    "LocalAudio",
    "MediaDescription",
    "NegotiatedAudio",
    "Origin",
    "RtpMap",
    "SdpError",
    "SdpNegotiationError",
    "SessionDescription",
    "create_answer",
    "create_offer",
    "process_answer",
    "replace_crypto",
    "rewrite_for_anchor",
    "strip_crypto",
]
