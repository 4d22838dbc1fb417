"""Subscriber look-ups by any spelling of a public identity."""

from __future__ import annotations

from proxies.subscribers import SubscriberDb, SubscriberRecord, normalize_identity


def test_identity_spellings() -> None:
    assert normalize_identity("sip:Alice@IMS-A.test:5060;transport=udp") == "sip:alice@ims-a.test"
    assert normalize_identity("tel:+49-30-11") == "tel:+493011"
    assert normalize_identity("sip:+493011@ims-a.test;user=phone") == "tel:+493011"


def test_lookup() -> None:
    rec = SubscriberRecord(
        impi="alice@ims-a.test", impus=("sip:alice@ims-a.test", "tel:+493011"), password="pw"
    )
    db = SubscriberDb([rec])
    assert db.by_identity("tel:+49.30.11") is rec
    assert db.by_identity("sip:alice@ims-a.test") is rec
    assert db.by_identity("sip:bob@ims-a.test") is None
    assert db.by_username("alice", "ims-a.test") is rec
    assert db.by_username("alice@ims-a.test", "other") is rec
    assert rec.default_impu == "sip:alice@ims-a.test"
