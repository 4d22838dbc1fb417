"""The location service on a shared store: two registrar instances over one store behave as
one registrar (RFC 3261 §10.3), on both backends, and the bindings outlive a restart."""

from __future__ import annotations

import time

import pytest

from ims.sip.registrar import BindingStore, ContactRequest, RegistrarError
from tests.store_backends import Backend

NOW = time.time()


@pytest.fixture(autouse=True)
def _wall_clock_now() -> None:
    """``now`` near the real clock for each test: the Redis server reclaims records at their
    wall-clock ``expires_at``, so a time taken at import would be stale by the later tests."""
    global NOW
    NOW = time.time()


AOR = "sip:alice@ims.example"


def c(uri: str, **kw: object) -> ContactRequest:
    return ContactRequest(key=uri, uri=uri, **kw)  # type: ignore[arg-type]


def test_a_binding_made_on_one_instance_routes_on_the_other(backend: Backend) -> None:
    one, two = BindingStore(backend.open()), BindingStore(backend.open())
    one.apply(
        AOR,
        [c("sip:alice@10.0.0.1:5060", q=0.5, path=("<sip:term@pcscf;lr>",))],
        call_id="reg-1",
        cseq=1,
        now=NOW,
        expires_header=600,
    )
    [b] = two.lookup(AOR, NOW + 1)
    assert (b.uri, b.q, b.path, b.expires_in(NOW + 1)) == (
        "sip:alice@10.0.0.1:5060",
        0.5,
        ("<sip:term@pcscf;lr>",),
        599,
    )
    assert list(two.aors(NOW)) == [AOR]


def test_cseq_rule_holds_across_instances(backend: Backend) -> None:
    """§10.3 step 7: "If the binding does exist, the registrar checks the Call-ID value ... If
    they are the same, the registrar compares the CSeq value. If the value is higher than that
    of the existing binding, it MUST update or remove the binding as above. If not, the update
    MUST be aborted and the request fails." """
    one, two = BindingStore(backend.open()), BindingStore(backend.open())
    one.apply(AOR, [c("sip:a@h")], call_id="x", cseq=5, now=NOW, expires_header=600)
    with pytest.raises(RegistrarError) as e:
        two.apply(
            AOR, [c("sip:a@h"), c("sip:b@h")], call_id="x", cseq=5, now=NOW, expires_header=600
        )
    assert e.value.status == 400
    assert [b.uri for b in one.lookup(AOR, NOW)] == ["sip:a@h"]  # atomic: b@h not added
    two.apply(AOR, [c("sip:a@h")], call_id="x", cseq=6, now=NOW, expires_header=0)
    assert one.lookup(AOR, NOW) == []


def test_contact_keys_compare_the_same_after_the_round_trip(backend: Backend) -> None:
    """Tuple keys (ims.sip.registrar.contact_key) come back hashable and equal."""
    s = BindingStore(backend.open())
    key = ("sip", "alice", None, "10.0.0.1", 5060, (("transport", "tcp"),), ())
    s.apply(
        AOR,
        [ContactRequest(key=key, uri="sip:alice@10.0.0.1;transport=tcp")],
        call_id="r",
        cseq=1,
        now=NOW,
    )
    [b] = s.lookup(AOR, NOW)
    assert b.key == key
    # the same contact again with a different Call-ID: one binding, updated (not two)
    s.apply(
        AOR,
        [ContactRequest(key=key, uri="sip:alice@10.0.0.1;transport=TCP", expires=120)],
        call_id="other",
        cseq=1,
        now=NOW,
    )
    [b] = s.lookup(AOR, NOW)
    assert (b.uri, b.call_id, b.expires_in(NOW)) == (
        "sip:alice@10.0.0.1;transport=TCP",
        "other",
        120,
    )


def test_bindings_survive_a_restart_and_expire_on_time(backend: Backend) -> None:
    s = BindingStore(backend.open())
    s.apply(
        AOR,
        [c("sip:a@h", expires=300), c("sip:b@h")],
        call_id="r",
        cseq=1,
        now=NOW,
        expires_header=900,
    )
    backend.restart_server()
    again = BindingStore(backend.open())
    assert [b.uri for b in again.lookup(AOR, NOW + 299)] == ["sip:a@h", "sip:b@h"]
    assert [b.uri for b in again.lookup(AOR, NOW + 300)] == ["sip:b@h"]
    assert again.next_expiry(NOW + 300) == pytest.approx(NOW + 900)
    assert again.expire(NOW + 300) == 1
    assert again.expire(NOW + 900) == 1
    assert list(again.aors(NOW)) == []
