"""Issue 13 item 6, the intermediaries: MIKEY-PSK hop by hop through the S-CSCFs as well as
the P-CSCFs (study 2.2.2, seed line 89: "If all or some of the involved P-CSCFs and S-CSCFs act
as intermediaries, then this case has the same LI characteristics and issues as the use of
SDES").

The chain UE - P-CSCF - S-CSCF - S-CSCF - P-CSCF - UE, each link its own PSK
(:func:`lab.mikey_hop.chain_intermediaries`), is checked twice: sans-I/O, message by message
(each intermediary re-protects for the next link, and without the S-CSCFs' step the callee
cannot open the offer: they are really on the chain), and as matrix rows (real calls through
the in-process lab), on the LEMF's own files: the keys the LEMF filed came from the hop chain
(source ``mikey-psk-hop``), and each direction's WAV holds its sender's tone.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ims.mikey.errors import MikeyError
from ims.mikey.inspect import open_message
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from lab import topology
from lab.matrix.combine import direction_tones
from lab.matrix.parallel import run_rows
from lab.matrix.report import CallResult
from lab.mikey_hop import chain_intermediaries, chain_links, chain_secrets, link_name
from li.keys import KeySource, MikeySecrets, Unavailable
from li.study import HOP_ROWS
from ue.keying_mikey import chain_psk

CALLER, CALLEE = 440.0, 1000.0
TARGET_CALLS = {"from-target": CALLER, "to-target": CALLEE}
TARGET_ANSWERS = {"from-target": CALLEE, "to-target": CALLER}
ALICE, BOB = "sip:alice@ims-a.test", "sip:bob@ims-b.test"


def _chain() -> tuple[topology.Topology, dict[str, bytes], dict[str, bytes]]:
    topo = topology.load()
    hop = {ALICE: os.urandom(32), BOB: os.urandom(32)}
    links = {name: os.urandom(32) for name in chain_links(topo)}
    return topo, hop, links


def test_the_chain_reprotects_at_every_cscf_and_needs_the_s_cscfs() -> None:
    topo, hop, links = _chain()
    inters = chain_intermediaries(topo, hop, links.__getitem__)
    addr = {n: topo.element(n).address for n in ("pcscf-a", "scscf-a", "scscf-b", "pcscf-b")}
    first = chain_psk(hop[ALICE])
    offer = PskInitiator(psk=first, idi="alice@ims-a.test", idr="bob@ims-b.test").initiate(0.0)
    path = [
        ("pcscf-a", None, addr["scscf-a"], links[link_name("a", "a")]),
        ("scscf-a", None, addr["scscf-b"], links[link_name("a", "b")]),
        ("scscf-b", None, addr["pcscf-b"], links[link_name("b", "b")]),
        ("pcscf-b", BOB, None, chain_psk(hop[BOB])),
    ]
    msg = offer
    seen = [msg]
    for element, toward_ue, toward, key in path:
        out = inters[element].reprotect(msg, toward_ue=toward_ue, now=0.0, toward=toward)
        assert out is not None and out != msg, element
        # the same TGK (so the same SRTP keys at both ends), under the next link's key
        assert open_message(out, psk=key).tgk == open_message(offer, psk=first).tgk
        msg = out
        seen.append(msg)
    bob = PskResponder(psk=chain_psk(hop[BOB]), idr="bob@ims-b.test")
    assert bob.receive(msg, 0.0) is not None
    # without the S-CSCFs' step the P-CSCF of the callee cannot open what reaches it
    assert inters["pcscf-b"].reprotect(seen[1], toward_ue=BOB, now=0.0) is None
    with pytest.raises(MikeyError):
        open_message(seen[1], psk=chain_psk(hop[BOB]))
    # the chains side by side: the P-CSCF-only chain's key (psk-hop) opens none of these
    for m in seen:
        with pytest.raises(MikeyError):
            open_message(m, psk=hop[ALICE])
    # what each operator holds opens the hops its elements are on, and only those
    a = MikeySecrets(link_psks=chain_secrets(topo, "a", hop, links.__getitem__))
    b = MikeySecrets(link_psks=chain_secrets(topo, "b", hop, links.__getitem__))
    for i, m in enumerate(seen):
        ka, kb = a("c", m, None), b("c", m, None)
        assert (ka[0].source is KeySource.MIKEY_PSK_HOP) == (i <= 2), i  # A: alice..S-CSCF B
        assert (kb[0].source is KeySource.MIKEY_PSK_HOP) == (i >= 2), i  # B: S-CSCF A..bob


def test_dhhmac_is_re_maced_hop_by_hop_and_no_hop_learns_the_tgk() -> None:
    """Study 2.3.4: "running the HMAC authentication between the end users and
    intermediaries". Each intermediary checks the MAC with the previous link's key and redoes
    it with the next one's (RFC 4650 §4.2: the HMAC covers the whole message but the MAC); the
    R_MESSAGE goes back the same way; both UEs get the same TGK, and an operator holding its
    hops' keys authenticates what crosses them but opens no key (PFS)."""
    topo, hop, links = _chain()
    inters = chain_intermediaries(topo, hop, links.__getitem__)
    addr = {n: topo.element(n).address for n in ("scscf-a", "scscf-b", "pcscf-b")}
    alice = DhHmacInitiator(psk=chain_psk(hop[ALICE]), idi=ALICE, idr=BOB)
    msg = alice.initiate(0.0)
    path = [
        ("pcscf-a", None, addr["scscf-a"]),
        ("scscf-a", None, addr["scscf-b"]),
        ("scscf-b", None, addr["pcscf-b"]),
        ("pcscf-b", BOB, None),
    ]
    crossing = [msg]
    for element, toward_ue, toward in path:
        out = inters[element].reprotect(msg, toward_ue=toward_ue, now=0.0, toward=toward)
        assert out is not None and out[:-20] == msg[:-20] and out[-20:] != msg[-20:], element
        msg = out
        crossing.append(msg)
    reply = DhHmacResponder(psk=chain_psk(hop[BOB]), idr=BOB, idi=ALICE).receive(msg, 0.0)
    assert reply.result is not None and reply.message is not None
    r: bytes = reply.message
    for element, _, _ in reversed(path):
        back = inters[element].answer(r)
        assert back is not None and back != r, element
        r = back
    assert alice.receive(r, 0.0).tgk == reply.result.tgk
    # skipping the S-CSCFs: the callee's P-CSCF does not authenticate what reaches it
    assert inters["pcscf-b"].reprotect(crossing[1], toward_ue=BOB, now=0.0) is None
    # A authenticates alice's first hop and its links, yet recovers no key: DH (PFS)
    a = MikeySecrets(link_psks=chain_secrets(topo, "a", hop, links.__getitem__))
    b = MikeySecrets(link_psks=chain_secrets(topo, "b", hop, links.__getitem__))
    assert [k.reason for k in a("c", crossing[0], None)] == [str(Unavailable.PFS)]
    assert [k.reason for k in b("c", crossing[0], None)] == [str(Unavailable.USER_HMAC_PSK)]
    assert all(not k.available for m in crossing for k in a("c", m, None) + b("c", m, None))


def test_running_lab_link_keys_per_operator_pair() -> None:
    topo = topology.load()
    assert chain_links(topo) == ["a|a", "a|b", "a|v", "b|b", "b|v", "v|v"]
    inters = chain_intermediaries(topo, {}, lambda name: name.encode().ljust(32, b"."))
    # S-CSCF A: to its P-CSCF, to the visited P-CSCF and to S-CSCF B, each link's own key
    links = inters["scscf-a"].link_psks
    assert links[topo.element("pcscf-a").address].startswith(b"a|a")
    assert links[topo.element("pcscf-v").address].startswith(b"a|v")
    assert links[topo.element("scscf-b").address].startswith(b"a|b")
    assert inters["pcscf-a"].network_psk is None and "scscf-a" in inters


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CallResult]]:
    work = tmp_path_factory.mktemp("hops")
    results = asyncio.run(
        run_rows(list(HOP_ROWS), work, jobs=3, subnet_base=240, media_seconds=1.0, bits=1024)
    )
    yield {r.key: r for r in results}


def _key_sources(call_dir: Path) -> set[str]:
    path = call_dir / "keys.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line).get("source", "") for line in path.read_text().splitlines() if line}


@pytest.mark.slow
@pytest.mark.parametrize("key", [e.key for e in HOP_ROWS])
def test_hop_chain_row_reproduces_the_study(rows: dict[str, CallResult], key: str) -> None:
    r = rows[key]
    assert r.differences == [], (r.differences, [o.summary() for o in r.rungs])
    for o in r.rungs:
        if not o.skipped:
            assert o.xids and o.lemf_dirs, o


@pytest.mark.slow
@pytest.mark.parametrize("key", ["psk-hop-cscf/home", "psk-hop-cscf/home-target-answers"])
def test_psk_through_the_s_cscfs_is_read_by_the_own_pois(
    rows: dict[str, CallResult], key: str
) -> None:
    """The first rung (own POIs) already has the keys, from the hop chain, in A's delivery."""
    own = rows[key].rungs[0]
    assert own.rung == "own-pois" and own.call_ok and own.audio_ok, own.summary()
    a_dir = Path(own.lemf_dirs["a"])
    assert _key_sources(a_dir) == {"mikey-psk-hop"}, a_dir
    expected = TARGET_CALLS if key.endswith("/home") else TARGET_ANSWERS
    tones = direction_tones(a_dir, expected)
    assert set(tones) == set(expected) and all(t["ok"] for t in tones.values()), tones


@pytest.mark.slow
def test_dhhmac_through_intermediaries_needs_the_mitm_of_one_operator(
    rows: dict[str, CallResult],
) -> None:
    """DH-HMAC via intermediaries: A authenticates the hops yet holds no key (the LEMF files
    ciphertext and the PFS reason) on every rung below the MITM; at ``mitm-media`` A's own
    P-CSCF, holding alice's link key and its link to the S-CSCF, runs the MITM alone (no
    substitute from any operator) and the LEMF's keys (source ``mitm``) give both tones."""
    r = rows["dhhmac-hop/home"]
    by = {o.rung: o for o in r.rungs}
    own = by["own-pois"]
    assert own.call_ok, own.summary()
    a_dir = Path(own.lemf_dirs["a"])
    assert _key_sources(a_dir) == set()
    summary = json.loads((a_dir / "summary.json").read_text())
    assert summary["keys_unavailable_reason"].endswith(str(Unavailable.PFS)), summary
    assert not any(t["ok"] for t in direction_tones(a_dir, TARGET_CALLS).values())
    mitm = by["mitm-media"]
    assert mitm.call_ok and mitm.audio_ok, mitm.summary()
    assert mitm.substitutes_from == [] and mitm.media_rekeyed > 0, mitm
    m_dir = Path(mitm.lemf_dirs["a"])
    assert _key_sources(m_dir) == {"mitm"}, m_dir
    tones = direction_tones(m_dir, TARGET_CALLS)
    assert set(tones) == set(TARGET_CALLS) and all(t["ok"] for t in tones.values()), tones
