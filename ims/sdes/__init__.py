"""SDP Security Descriptions for media streams (RFC 4568): the ``a=crypto`` attribute,
the crypto-suite table and the offer/answer rules of §7."""

from ims.sdes.attribute import (
    CryptoAttribute,
    KeyParam,
    SessionParam,
    crypto_for,
    unsupported_reason,
)
from ims.sdes.errors import SdesError, SdesNegotiationError
from ims.sdes.negotiation import (
    SdesAnswerer,
    SdesChoice,
    SdesKeys,
    keys_of,
    make_offer,
    select_answer,
)
from ims.sdes.suites import RUNNABLE_SUITES, SUITES, CryptoSuite, get_suite

__all__ = [
    "RUNNABLE_SUITES",
    "SUITES",
    "CryptoAttribute",
    "CryptoSuite",
    "KeyParam",
    "SdesAnswerer",
    "SdesChoice",
    "SdesError",
    "SdesKeys",
    "SdesNegotiationError",
    "SessionParam",
    "crypto_for",
    "get_suite",
    "keys_of",
    "make_offer",
    "select_answer",
    "unsupported_reason",
]
