"""RFC 3261 §10.3 binding rules of the registrar's location service (sans-I/O, explicit now)."""

from __future__ import annotations

import pytest

from ims.sip.registrar import BindingStore, ContactRequest, RegistrarError

AOR = "sip:alice@example.com"


def c(uri: str, **kw: object) -> ContactRequest:
    return ContactRequest(key=uri, uri=uri, **kw)  # type: ignore[arg-type]


def test_add_several_contacts_with_q_and_expires() -> None:
    s = BindingStore()
    got = s.apply(
        AOR,
        [c("sip:a@1.1.1.1", q=0.5), c("sip:a@2.2.2.2", q=1.0, expires=120)],
        call_id="c1",
        cseq=1,
        now=1000.0,
        expires_header=600,
    )
    assert [b.uri for b in got] == ["sip:a@2.2.2.2", "sip:a@1.1.1.1"]  # highest q first
    assert {b.uri: b.expires_in(1000.0) for b in got} == {
        "sip:a@2.2.2.2": 120,
        "sip:a@1.1.1.1": 600,
    }
    assert got[0].contact_value(1000.0) == "<sip:a@2.2.2.2>;q=1.0;expires=120"
    # expiry: the 120 s contact disappears, the 600 s one stays
    assert [b.uri for b in s.lookup(AOR, 1121.0)] == ["sip:a@1.1.1.1"]
    assert s.next_expiry(1121.0) == 1600.0
    # lookups only read (the store is shared): both expired bindings are still held until now
    assert s.expire(1600.0) == 2
    assert s.lookup(AOR, 1600.0) == []


def test_default_and_max_expires() -> None:
    s = BindingStore(default_expires=3600, max_expires=7200)
    (b,) = s.apply(AOR, [c("sip:a@h")], call_id="x", cseq=1, now=0.0)
    assert b.expires_in(0.0) == 3600
    (b,) = s.apply(AOR, [c("sip:a@h", expires=99999)], call_id="x", cseq=2, now=0.0)
    assert b.expires_in(0.0) == 7200


def test_the_200_reports_the_granted_expiry_not_one_second_more() -> None:
    """§10.3 step 8: the 2xx lists each binding with its expiry. At this (monotonic) now,
    now + 600 - now is 600.0000000000002 in floating point and must still read 600."""
    now = 4008.440846806064
    (b,) = BindingStore().apply(AOR, [c("sip:a@h", expires=600)], call_id="x", cseq=1, now=now)
    assert b.expires_at - now > 600  # the float error this guards against
    assert b.expires_in(now) == 600
    assert b.expires_in(now + 0.5) == 600  # partly elapsed seconds still round up
    assert b.expires_in(now + 1) == 599


def test_interval_too_brief_423_with_min_expires() -> None:
    s = BindingStore(min_expires=60)
    with pytest.raises(RegistrarError) as e:
        s.apply(AOR, [c("sip:a@h")], call_id="x", cseq=1, now=0.0, expires_header=30)
    assert e.value.status == 423
    assert ("Min-Expires", "60") in e.value.headers
    assert s.lookup(AOR, 0.0) == []


def test_refresh_same_call_id_needs_higher_cseq_and_is_atomic() -> None:
    s = BindingStore()
    s.apply(AOR, [c("sip:a@h")], call_id="x", cseq=5, now=0.0)
    with pytest.raises(RegistrarError) as e:
        # a new contact plus an out-of-order refresh: nothing at all may change
        s.apply(AOR, [c("sip:new@h"), c("sip:a@h")], call_id="x", cseq=5, now=1.0)
    assert e.value.status == 400
    assert [b.uri for b in s.lookup(AOR, 1.0)] == ["sip:a@h"]
    (b,) = s.apply(AOR, [c("sip:a@h", expires=100)], call_id="x", cseq=6, now=1.0)
    assert b.cseq == 6 and b.expires_in(1.0) == 100


def test_other_call_id_may_update_with_any_cseq() -> None:
    s = BindingStore()
    s.apply(AOR, [c("sip:a@h")], call_id="x", cseq=50, now=0.0)
    (b,) = s.apply(AOR, [c("sip:a@h", expires=70)], call_id="y", cseq=1, now=0.0)
    assert (b.call_id, b.cseq, b.expires_in(0.0)) == ("y", 1, 70)


def test_expires_zero_removes_one_binding() -> None:
    s = BindingStore()
    s.apply(AOR, [c("sip:a@h"), c("sip:b@h")], call_id="x", cseq=1, now=0.0)
    got = s.apply(AOR, [c("sip:a@h", expires=0)], call_id="x", cseq=2, now=0.0)
    assert [b.uri for b in got] == ["sip:b@h"]
    # removing an unknown contact is not an error and adds nothing
    assert [
        b.uri for b in s.apply(AOR, [c("sip:z@h")], call_id="x", cseq=3, now=0.0, expires_header=0)
    ] == ["sip:b@h"]


def test_wildcard_rules() -> None:
    s = BindingStore()
    s.apply(AOR, [c("sip:a@h"), c("sip:b@h")], call_id="x", cseq=10, now=0.0)
    with pytest.raises(RegistrarError) as e:
        s.apply(AOR, [], wildcard=True, call_id="y", cseq=1, now=0.0, expires_header=3600)
    assert e.value.status == 400
    with pytest.raises(RegistrarError):
        s.apply(AOR, [c("sip:a@h")], wildcard=True, call_id="y", cseq=1, now=0.0, expires_header=0)
    with pytest.raises(RegistrarError):  # same Call-ID, CSeq not higher
        s.apply(AOR, [], wildcard=True, call_id="x", cseq=10, now=0.0, expires_header=0)
    assert len(s.lookup(AOR, 0.0)) == 2
    assert s.apply(AOR, [], wildcard=True, call_id="x", cseq=11, now=0.0, expires_header=0) == []
    assert list(s.aors(0.0)) == []


def test_parameters_kept_in_contact_value() -> None:
    s = BindingStore()
    (b,) = s.apply(
        AOR,
        [
            c(
                "sip:a@h;transport=tcp",
                display_name="Al",
                params=(("+sip.instance", '"<urn:x>"'), ("flag", None)),
            )
        ],
        call_id="x",
        cseq=1,
        now=0.0,
        expires_header=300,
    )
    assert b.contact_value(0.0) == (
        '"Al" <sip:a@h;transport=tcp>;+sip.instance="<urn:x>";flag;expires=300'
    )
