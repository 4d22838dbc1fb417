"""SDES a=crypto: the full RFC 4568 grammar, round trips, clean declines of what we cannot run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ims.sdes import (
    CryptoAttribute,
    SdesAnswerer,
    SdesError,
    SdesNegotiationError,
    crypto_for,
    make_offer,
    select_answer,
    unsupported_reason,
)

KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # RFC 4568 §4 example key


@pytest.mark.parametrize(
    "text",
    [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4",  # RFC 4568 §4 example
        f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^20|1:32",
        f"2 F8_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4;inline:{KEY}|2^20|2:4 FEC_ORDER=FEC_SRTP",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=0 UNENCRYPTED_SRTCP WSH=128",
        f"3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1048576 UNENCRYPTED_SRTP UNAUTHENTICATED_SRTP",
        f"4 AES_CM_128_HMAC_SHA1_80 inline:{KEY} FEC_KEY=inline:{KEY}|2^20|1:4 -VENDOR_X=1",
        f"123456789 AES_256_CM_HMAC_SHA1_80 inline:{KEY}{KEY[:22]}",
        "1 AES_CM_128_HMAC_SHA1_80 otherkm:opaque-data",
    ],
)
def test_grammar_round_trip(text: str) -> None:
    attr = CryptoAttribute.parse(text)
    assert attr.encode() == text
    assert CryptoAttribute.parse(attr.encode()) == attr


def test_fields() -> None:
    a = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4 KDR=5 -FOO")
    kp = a.first_key
    assert (a.tag, a.suite, kp.lifetime_value, kp.mki, kp.mki_length) == (
        1,
        "AES_CM_128_HMAC_SHA1_80",
        2**20,
        1,
        4,
    )
    assert len(a.master_key) == 16 and len(a.master_salt) == 14
    assert a.kdr == 5 and a.session_params[1].optional
    assert "key_salt=<30 bytes>" in repr(kp) and KEY not in repr(a)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4", "MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=3", "KDR"),
        (f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}{KEY[:22]}", "not supported"),
        (f"1 F8_128_HMAC_SHA1_80 inline:{KEY}", "not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} FEC_KEY=inline:{KEY}", "FEC_KEY"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} NEW_PARAM", "unknown mandatory"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY[:20]}", "bytes"),
        (f"1 SOMETHING_NEW inline:{KEY}", "unknown crypto-suite"),
        ("1 AES_CM_128_HMAC_SHA1_80 other:x", "key-method"),
    ],
)
def test_unsupported_lines_are_declined_with_a_reason(text: str, reason: str) -> None:
    attr = CryptoAttribute.parse(text)
    why = unsupported_reason(attr)
    assert why is not None and reason in why
    with pytest.raises(SdesNegotiationError):
        SdesAnswerer().answer([attr])


def test_optional_unknown_param_and_kdr0_are_fine() -> None:
    attr = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=0 -X_NEW=1 WSH=64")
    assert unsupported_reason(attr) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1 AES_CM_128_HMAC_SHA1_80",
        f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
        f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
        f"1 AES-CM inline:{KEY}",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:200",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4|2^20",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=99",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} FEC_ORDER=BOTH",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} WSH=x",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP=1",
        f"1 AES_CM_128_HMAC_SHA1_80 :{KEY}",
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(SdesError):
        CryptoAttribute.parse(text)


def test_negotiation_rfc4568_section_7() -> None:
    offer = list(make_offer())
    offer.insert(0, CryptoAttribute.parse(f"9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"))
    choice = SdesAnswerer().answer(offer)
    assert choice.answer.tag == 1 and choice.answer.suite == "AES_CM_128_HMAC_SHA1_80"
    assert choice.declined and choice.declined[0][0] == 9
    assert choice.answer.first_key.key_salt != offer[1].first_key.key_salt
    keys = select_answer(offer, [choice.answer])
    assert keys.tx.master_key == offer[1].master_key  # offerer sends with its own offered key
    assert keys.rx.master_key == choice.answer.master_key
    with pytest.raises(SdesNegotiationError):
        select_answer(offer, [crypto_for("AES_CM_128_HMAC_SHA1_80", tag=77)])
    with pytest.raises(SdesNegotiationError):
        select_answer(offer, [crypto_for("AES_CM_128_HMAC_SHA1_32", tag=1)])  # suite changed
    with pytest.raises(SdesNegotiationError):
        select_answer(offer, [])


@given(st.text(max_size=120))
def test_parser_only_raises_sdes_error(text: str) -> None:
    try:
        attr = CryptoAttribute.parse(text)
    except SdesError:
        return
    unsupported_reason(attr)  # never raises
    CryptoAttribute.parse(attr.encode())


def test_duplicate_tags_are_refused() -> None:
    a, b = make_offer(("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"))
    dup = CryptoAttribute(tag=a.tag, suite=b.suite, key_params=b.key_params)
    with pytest.raises(SdesNegotiationError, match="duplicate"):
        SdesAnswerer().answer([a, dup])


@pytest.mark.parametrize("field", ["9" * 5000 + ":4", "9" * 5000, "2^99999999", "300:1"])
def test_huge_lifetime_or_mki_is_a_syntax_error(field: str) -> None:
    with pytest.raises(SdesError):
        CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|{field}")
