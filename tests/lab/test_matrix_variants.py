"""Issue 13 item 6: the study's case variants as matrix rows, checked on the LEMF's own files.

One run of :data:`li.study.CASE_VARIANTS` (each row a ladder of real calls in its own worker
process on 127.0.<220+i>.0/24, 1024-bit keys): RSA-R (study 2.3.2, "quite similar
considerations as in section 3.3.1 apply") under cases A, C and D; DH-SIGN with the users' own
CA (2.3.3, line 210); case B and DH-SIGN with a non-IMS Internet peer (no second operator
exists); case B under a flat trust store beside the name-bound one; and (item 4, study Q6) the
users' PSK set up with an operator's help, lent under an X1 task; (item 3, study 2.4) the users'
own end-to-end layer inside the operator's SDES-keyed SRTP; (item 5, clause 3) the home network
intercepting its roamer. Each test reads what the
agency received -- ``keys.jsonl``, ``summary.json``, the WAVs of each direction, the encrypted
CC -- not only the runner's verdict.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.matrix.combine import direction_tones
from lab.matrix.parallel import run_rows
from lab.matrix.report import CallResult, RungOutcome
from li.study import CASE_VARIANTS, OPERATOR_PSK_ROWS, ROAMING_ROWS, USER_LAYER_ROWS, Need

pytestmark = pytest.mark.slow

ROWS = [*CASE_VARIANTS, *OPERATOR_PSK_ROWS, *USER_LAYER_ROWS, *ROAMING_ROWS]
CALLER, CALLEE = 440.0, 1000.0
TARGET_CALLS = {"from-target": CALLER, "to-target": CALLEE}
TARGET_ANSWERS = {"from-target": CALLEE, "to-target": CALLER}


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CallResult]]:
    work = tmp_path_factory.mktemp("variants")
    results = asyncio.run(
        run_rows(ROWS, work, jobs=4, subnet_base=220, media_seconds=1.0, bits=1024)
    )
    yield {r.key: r for r in results}


def _rung(r: CallResult, name: str) -> RungOutcome:
    return next(o for o in r.rungs if o.rung == name)


def _key_sources(call_dir: Path) -> set[str]:
    """The sources of the keys the LEMF filed for the call (its keys.jsonl)."""
    path = call_dir / "keys.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line).get("source", "") for line in path.read_text().splitlines() if line}


def _ciphertext_only(o: RungOutcome, op: str) -> None:
    """The operator's delivery for this call: encrypted CC, no key, no decrypted direction."""
    d = Path(o.lemf_dirs[op])
    assert (d / "cc-encrypted.pcap").stat().st_size > 0, d
    assert _key_sources(d) == set(), d
    assert not any(t["ok"] for t in direction_tones(d, TARGET_CALLS).values()), d


@pytest.mark.parametrize("key", [e.key for e in ROWS])
def test_variant_reproduces_the_study(rows: dict[str, CallResult], key: str) -> None:
    r = rows[key]
    assert r.differences == [], (r.differences, [o.summary() for o in r.rungs])
    for o in r.rungs:
        if not o.skipped:
            assert o.xids and o.lemf_dirs, o


def test_rsa_r_case_c_the_initiators_operator_holds_the_key(rows: dict[str, CallResult]) -> None:
    """RFC 4738 reverse mode: "the responder sends the envelope key encrypted with the
    initiator's public key" (study line 153) -- so case C's helper is the *initiator's*
    operator, the reverse of PKE case C."""
    calls = rows["rsa-r-c/home"]  # the target alice initiates: her own operator A suffices
    last = calls.rungs[-1]
    assert last.rung == "operator-keys" and last.audio_from == {"keys": "a", "media": "a"}
    a_dir, b_dir = Path(last.lemf_dirs["a"]), Path(last.lemf_dirs["b"])
    assert _key_sources(a_dir) == {"mikey-pke-escrow"}
    assert _key_sources(b_dir) == set()  # bob's key (B's loan) does not open an RSA-R answer
    tones = direction_tones(a_dir, TARGET_CALLS)
    assert tones and all(t["ok"] for t in tones.values()), tones
    assert _rung(calls, "other-pois").audio_ok is False  # no key lent: ciphertext only
    _ciphertext_only(_rung(calls, "own-pois"), "a")

    answers = rows["rsa-r-c/home-target-answers"]  # bob initiates: B holds the key
    last = answers.rungs[-1]
    assert last.rung == "operator-keys" and last.audio_from == {"keys": "b", "media": "a"}
    assert _key_sources(Path(last.lemf_dirs["b"])) == {"mikey-pke-escrow"}
    assert _key_sources(Path(last.lemf_dirs["a"])) == set()
    joined = Path(last.lemf_dirs["a"]) / "joined-b"  # the agency's join of B's keys, A's CC
    tones = direction_tones(joined, TARGET_ANSWERS)
    assert tones and all(t["ok"] for t in tones.values()), tones
    assert answers.needs == [Need.OTHER_NETWORK.value, Need.OPERATOR_KEY.value]


def test_rsa_r_case_d_one_operators_mitm(rows: dict[str, CallResult]) -> None:
    r = rows["rsa-r-d/home"]
    last = r.rungs[-1]
    assert last.rung == "mitm-one" and last.substitutes_from == [] and last.media_rekeyed == 0
    assert _key_sources(Path(last.lemf_dirs["a"])) == {"mitm"}
    tones = direction_tones(Path(last.lemf_dirs["a"]), TARGET_CALLS)
    assert tones and all(t["ok"] for t in tones.values()), tones


@pytest.mark.parametrize("key", ["rsa-r-a/home", "dh-a/home"])
def test_users_own_ca_ciphertext_and_a_visible_mitm(rows: dict[str, CallResult], key: str) -> None:
    """Case A (line 98 / 210): the passive call works and the LEMF holds ciphertext only; the
    operators' substitutes are rejected by the UE that trusts only the users' CA: 488."""
    r = rows[key]
    assert r.rung is None and r.call_succeeded
    first = _rung(r, "own-pois")
    assert first.call_ok
    _ciphertext_only(first, "a")
    both = _rung(r, "mitm-media")
    assert not both.call_ok and "488" in both.failure, both.failure
    assert both.substitutes_from == ["a", "b"]
    assert "encryption by the user" in r.ts33106


@pytest.mark.parametrize("key", ["pke-b/non-ims-peer", "dh/non-ims-peer"])
def test_non_ims_peer_has_no_second_operator(rows: dict[str, CallResult], key: str) -> None:
    r = rows[key]
    assert r.rung is None and r.call_succeeded
    for name in ("other-pois", "mitm-both"):
        assert "no other network on the path" in _rung(r, name).skipped
    _ciphertext_only(_rung(r, "own-pois"), "a")
    media = _rung(r, "mitm-media")
    assert media.call_ok and not media.audio_ok
    assert any(
        "no substitute certificate" in n and "dave@internet.test" in n for n in media.notes
    ), media.notes
    assert _key_sources(Path(media.lemf_dirs["a"])) == set()


def test_flat_trust_store_one_operator_suffices(rows: dict[str, CallResult]) -> None:
    """Case B under a flat trust store: operator A's CA vouches for bob too, so A's MITM alone
    decrypts (B is tasked at this rung but never issues anything)."""
    r = rows["pke-b-flat/home"]
    last = r.rungs[-1]
    assert last.rung == "mitm-one" and last.substitutes_from == ["a"]
    assert set(last.xids) == {"a", "b", "m"}
    assert _key_sources(Path(last.lemf_dirs["a"])) == {"mitm"}
    tones = direction_tones(Path(last.lemf_dirs["a"]), TARGET_CALLS)
    assert tones and all(t["ok"] for t in tones.values()), tones


def test_flat_and_name_bound_trust_differ_only_in_whom_a_ca_may_vouch_for() -> None:
    """The same A-issued certificate for bob: rejected under name-bound trust (study case B,
    "both operators"), accepted under the flat store."""
    from lab.matrix.credentials import Pki, provision
    from ue.keying import KeyingError
    from ue.keying_mikey import aor

    now = time.time()
    users = ["sip:alice@ims-a.test", "sip:bob@ims-b.test"]
    domains = ["ims-a.test", "ims-b.test"]
    bound, pki = provision(Pki.OPERATOR, users, domains, now=now, bits=1024)
    flat, flat_pki = provision(Pki.OPERATOR_FLAT, users, domains, now=now, bits=1024)
    fake = flat_pki.issue("ims-a.test", aor(users[1]), now=now, bits=1024).certificate
    flat.check_peer(fake, users[1], now)  # A vouches for B's subscriber: accepted
    with pytest.raises(KeyingError):
        bound.check_peer(
            pki.issue("ims-a.test", aor(users[1]), now=now, bits=1024).certificate, users[1], now
        )
    assert flat.trust["ims-b.test"] == flat.trust["ims-a.test"]
    assert len(flat.trust["ims-b.test"]) == len(domains)


def test_psk_set_up_with_the_operators_help_is_lent_under_a_task(
    rows: dict[str, CallResult],
) -> None:
    """Q6 (line 82): the operator that helped set up the PSK can be required to provide it.
    Without the task's key loan the LEMF gets the end-to-end PSK's ciphertext; with it, A's own
    delivery holds the keys (source ``mikey-psk-operator``) and both directions' tones."""
    r = rows["psk-operator/home"]
    first = _rung(r, "own-pois")
    _ciphertext_only(first, "a")
    assert any("end-to-end PSK" in n for n in first.notes), first.notes
    last = r.rungs[-1]
    assert last.rung == "operator-keys" and last.audio_from == {"keys": "a", "media": "a"}
    assert _key_sources(Path(last.lemf_dirs["a"])) == {"mikey-psk-operator"}
    assert _key_sources(Path(last.lemf_dirs["b"])) == set()  # B did not help: holds nothing
    tones = direction_tones(Path(last.lemf_dirs["a"]), TARGET_CALLS)
    assert tones and all(t["ok"] for t in tones.values()), tones
    assert "shall provide the keys to the LEA" in r.ts33106

    # bob calls the target: his operator B helped him, so B's delivery holds the key
    answers = rows["psk-operator/home-target-answers"]
    last = answers.rungs[-1]
    assert last.rung == "operator-keys" and last.audio_from == {"keys": "b", "media": "a"}
    assert _key_sources(Path(last.lemf_dirs["b"])) == {"mikey-psk-operator"}
    assert _key_sources(Path(last.lemf_dirs["a"])) == set()
    tones = direction_tones(Path(last.lemf_dirs["a"]) / "joined-b", TARGET_ANSWERS)
    assert tones and all(t["ok"] for t in tones.values()), tones


def test_the_users_own_layer_leaves_li_the_outer_layer_only(rows: dict[str, CallResult]) -> None:
    """Study 2.4 / TS 33.106 (Q9): the operator delivers what it can decrypt. A's delivery
    holds the SDES keys and the outer layer decrypts (a WAV per direction), but what it holds
    is the users' inner ciphertext: neither tone, on any rung; the users heard each other."""
    from ims.media.audio import read_wav
    from ims.media.tone import detect_tone

    r = rows["sdes-user-layer/home"]
    assert r.rung is None and r.call_succeeded
    for o in (o for o in r.rungs if not o.skipped):
        assert o.call_ok, o.summary()  # the inner layer works end to end
        d = Path(o.lemf_dirs["a"])
        assert _key_sources(d) == {"sdes"}, d
        for direction in TARGET_CALLS:
            rate, pcm = read_wav(d / f"audio-{direction}.wav")
            assert len(pcm) > rate // 2, (o.rung, direction)  # the outer layer decrypted
            assert not detect_tone(pcm, CALLER, rate) and not detect_tone(pcm, CALLEE, rate)
    assert "encrypted by the user" in r.ts33106 and "delivers the layer it encrypted" in r.ts33106


def test_the_home_network_intercepts_its_roamer_with_the_visited_networks_cc(
    rows: dict[str, CallResult],
) -> None:
    """Clause 3 (line 249): the home network may intercept services executed in the home
    network. Carol roams on the visited P-CSCF: home A's S-CSCF delivers IRI with the SDES keys
    but no media (the media never touches A); joined with the visited network's CC, the audio."""
    r = rows["sdes/roaming-home-network"]
    first = _rung(r, "own-pois")
    a_dir = Path(first.lemf_dirs["a"])
    assert first.call_ok and not first.audio_ok
    assert _key_sources(a_dir) == {"sdes"}  # the home network has the keys ...
    assert not (a_dir / "cc-encrypted.pcap").exists()  # ... and no CC of its own
    last = r.rungs[-1]
    assert last.rung == "other-pois" and last.audio_from == {"keys": "a", "media": "v"}
    joined = Path(last.wavs["from-target"]).parent  # the agency's join: A's keys, V's CC
    assert joined.name == "joined-a", joined
    tones = direction_tones(joined, TARGET_CALLS)
    assert tones and all(t["ok"] for t in tones.values()), tones
    assert "delivers the IRI and the keys it holds" in r.ts33106
