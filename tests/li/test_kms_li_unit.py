"""li.kms_li without a lab: the KMS LI opener's decisions and the deferred key policy.

One SAKKE exchange and a few recoveries (each a pairing, ~0.3 s in pure Python).
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from ims.mikey.modes.sakke import SakkeInitiator, SakkeResponder
from ims.mikey.sakke_keys import KmsKeyIssuer, SakkeKeyring, key_period
from li.keys import KeyRecord, KeySource, OperatorKeyPolicy, Sender
from li.kms_li import DeferredKeyPolicy, KmsLiOpener, is_sakke_offer
from proxies.kms import KmsCore

ALICE, CAROL, BOB = "sip:alice@ims-a.test", "sip:carol@ims-a.test", "sip:bob@ims-b.test"


def sdp(mikey: bytes) -> bytes:
    return (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/SAVP 0\r\na=key-mgmt:mikey " + base64.b64encode(mikey) + b"\r\n"
    )


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    now = time.time()
    period = key_period(now)
    a = KmsCore.create("ims-a.test", KmsKeyIssuer("kms.ims-a.test"), [ALICE, CAROL])
    b = KmsCore.create("ims-b.test", KmsKeyIssuer("kms.ims-b.test"), [BOB])
    rings = {}
    for core, users in ((a, (ALICE, CAROL)), (b, (BOB,))):
        for u in users:
            ring = SakkeKeyring(u, trusted=[a.issuer.community, b.issuer.community])
            ring.install(core.issue(u, period, requester="provisioning", now=now))
            rings[u] = ring
    to_carol = SakkeInitiator(keyring=rings[ALICE], responder_uri=CAROL).initiate(now)
    to_bob = SakkeInitiator(
        keyring=rings[ALICE], responder_uri=BOB, responder_kms="kms.ims-b.test"
    ).initiate(now)
    carol = SakkeResponder(keyring=rings[CAROL], initiator_uri=ALICE).receive(to_carol, now)
    a.drain_audit()
    return {"a": a, "b": b, "to_carol": to_carol, "to_bob": to_bob, "carol": carol}


def test_the_responders_kms_delivers_both_directions(
    world: dict[str, object], tmp_path: Path
) -> None:
    """RFC 6508 §6.2.2 at the KMS (it can derive the RSK, §7): the keys equal the responder's;
    the audit line is written, without key material."""
    a = world["a"]
    assert isinstance(a, KmsCore)
    audit = tmp_path / "audit.jsonl"
    opener = KmsLiOpener(kms=a, targets=lambda: [ALICE], audit_path=audit)
    records = opener("c1", world["to_carol"], None)  # type: ignore[arg-type]
    assert {r.sender for r in records} == {Sender.OFFERER, Sender.ANSWERER}
    assert all(r.source is KeySource.MIKEY_SAKKE_KMS and r.keys is not None for r in records)
    carol = world["carol"]
    want = {k.master_key for k in carol.result.keys}  # type: ignore[attr-defined]
    assert {r.keys.master_key for r in records if r.keys} == want
    text = audit.read_text()
    assert '"recovered"' in text and all(k.hex() not in text for k in want)


def test_no_task_or_another_operators_callee_gives_a_reason(world: dict[str, object]) -> None:
    """Only the Responder's KMS can decapsulate (RFC 6508 §6.2.1), and only under a task."""
    a = world["a"]
    assert isinstance(a, KmsCore)
    untasked = KmsLiOpener(kms=a, targets=lambda: ["sip:nobody@ims-a.test"])
    (r,) = untasked("c2", world["to_carol"], None)  # type: ignore[arg-type]
    assert not r.available and "no active task" in r.reason
    tasked = KmsLiOpener(kms=a, targets=lambda: [ALICE])
    (r,) = tasked("c3", world["to_bob"], None)  # type: ignore[arg-type]
    assert not r.available and "kms.ims-a.test cannot recover" in r.reason
    # a non-SAKKE message goes to the operator's other secrets
    seen: list[bytes] = []

    def fallback(call_id: str, offer: bytes, answer: bytes | None) -> list[KeyRecord]:
        seen.append(offer)
        return []

    other = KmsLiOpener(kms=a, targets=lambda: [ALICE], fallback=fallback)
    assert other("c4", b"\x01\x00garbage", None) == [] and seen == [b"\x01\x00garbage"]


def test_the_deferred_policy_runs_sakke_off_the_caller(world: dict[str, object]) -> None:
    """The recovery (a pairing) runs on the worker thread: the caller gets a Future; other
    offers are answered in place."""
    a = world["a"]
    assert isinstance(a, KmsCore)
    to_carol = world["to_carol"]
    assert isinstance(to_carol, bytes)
    assert is_sakke_offer(sdp(to_carol)) and not is_sakke_offer(b"v=0\r\n")
    policy = DeferredKeyPolicy(OperatorKeyPolicy(mikey=KmsLiOpener(kms=a, targets=lambda: [CAROL])))
    got = policy("c5", sdp(to_carol), None)
    assert isinstance(got, Future)
    records = got.result(timeout=30)
    assert len(records) == 2 and all(r.available for r in records)
    plain = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    answered = policy("c6", plain, None)
    assert not isinstance(answered, Future) and answered[0].reason == "media not encrypted"
