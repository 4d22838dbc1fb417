"""UE keying ``sakke``: MIKEY-SAKKE (RFC 6509) calls through the in-process lab.

Keys are issued by each home operator's KMS core and provisioned as ``imslab up`` does
(:func:`lab.credentials.ensure_kms`). Each SAKKE exchange costs ~0.3 s of CPU in pure Python,
so the module keeps to three calls.
"""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ims.mikey.constants import DataType
from ims.mikey.message import decode_message
from ims.mikey.modes.sakke import SakkeInitiator
from ims.mikey.payloads_kms import IdRole, IdrPayload
from ims.sdp.model import SessionDescription
from lab import credentials, topology
from lab.callflow import run_call
from lab.orchestrator import Lab
from proxies.hooks import Direction, SipMessageEvent
from ue import keying, keying_sakke
from ue.keying import KeyingContext, KeyingError

SUBNET = "127.0.47"


@pytest.fixture
def topo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> topology.Topology:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    return topology.load(subnet=SUBNET)


@pytest.fixture
def keys(topo: topology.Topology) -> Iterator[Path]:
    path = credentials.ensure_kms(topo, now=time.time())
    keying_sakke.configure(path)
    yield path
    keying_sakke.configure(None)


@pytest.fixture
async def lab(topo: topology.Topology, keys: Path) -> AsyncIterator[Lab]:
    async with Lab(topo) as running:
        yield running


def test_provisioning_is_private_and_per_home_operator(topo: topology.Topology, keys: Path) -> None:
    """RFC 6509 §2.1.2: the KMS issues each of its users an (SSK, PVT) and RSK per period;
    §3.4 "MUST provide confidentiality to all secret keys": every file 0600, dir 0700."""
    state = credentials.state_dir(topo)
    for p in [keys, *keys.rglob("*"), state / "kms", *(state / "kms").rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    community = json.loads((keys / "community.json").read_text())
    # one KMS per home IMS operator; the Internet SIP service runs none
    assert sorted(c["kms"] for c in community) == ["kms.ims-a.test", "kms.ims-b.test"]
    users = sorted(p.stem for p in (keys / "users").iterdir())
    assert users == ["alice@ims-a.test", "bob@ims-b.test", "carol@ims-a.test", "erin@ims-b.test"]
    alice = json.loads((keys / "users" / "alice@ims-a.test.json").read_text())
    assert {d["kms"]["kms"] for d in alice} == {"kms.ims-a.test"}
    # the audit log names every issuance, without key material (RFC 6508 §7)
    audit = (state / "kms" / "ims-a.test" / "audit.jsonl").read_text().splitlines()
    issued = [json.loads(line) for line in audit]
    assert {(r["action"], r["user"]) for r in issued} >= {
        ("issued", "sip:alice@ims-a.test"),
        ("issued", "sip:carol@ims-a.test"),
    }
    ssk = alice[0]["ssk"]
    assert all(ssk not in line and alice[0]["rsk"] not in line for line in audit)
    # nothing changed: nothing re-issued
    credentials.ensure_kms(topo, now=time.time())
    assert len((state / "kms" / "ims-a.test" / "audit.jsonl").read_text().splitlines()) == len(
        audit
    )


def _invite_mikey(seen: list[tuple[str, SipMessageEvent]], element: str) -> bytes:
    for name, ev in seen:
        msg = ev.message
        if (
            name == element
            and ev.direction == Direction.OUT
            and getattr(msg, "method", "") == "INVITE"
        ):
            sdp = SessionDescription.parse(msg.body)
            for km in (*sdp.media[0].key_mgmt, *sdp.key_mgmt):
                if km.protocol == "mikey":
                    return km.data
    raise AssertionError(f"no INVITE with MIKEY left {element}")


async def test_sakke_call_between_operators_has_srtp_both_ways(lab: Lab) -> None:
    """RFC 6509 §2.1: one I_MESSAGE from the Initiator, no response; both directions keyed
    (the TGK is the SSV, §3.1) -- the tones cross both ways over SRTP."""
    seen: list[tuple[str, SipMessageEvent]] = []
    for name in ("pcscf-a", "pcscf-b"):
        lab.element(name).sip_hooks.add(lambda ev, n=name: seen.append((n, ev)))
    report = await run_call(
        lab.topology, "alice", "bob", keying="sakke", duration=1.0, progress=lambda _: None
    )
    assert report.ok, report
    assert report.keys is not None and "sakke" in report.keys
    assert report.stats.get("auth_failures") == 0
    data = _invite_mikey(seen, "pcscf-b")  # what reached bob's side
    msg = decode_message(data)
    assert msg.data_type is DataType.SAKKE
    assert msg.hdr.v_flag is False  # §2.2.1 "The V bit ... MUST be set to '0'"
    roles = {p.role: p.data.decode() for p in msg.find_all(IdrPayload)}
    assert roles[IdRole.INITIATOR] == "sip:alice@ims-a.test"
    assert roles[IdRole.RESPONDER_KMS] == "kms.ims-b.test"  # encapsulated for bob's KMS


def test_the_callee_takes_the_caller_from_the_asserted_identity(keys: Path) -> None:
    """RFC 6509 §2.2.2: the Responder verifies the signature for the Initiator's identity; an
    I_MESSAGE signed by carol but asserted (P-Asserted-Identity) as alice is refused."""
    now = time.time()
    carol = keying_sakke.keyring("sip:carol@ims-a.test", now)
    data = SakkeInitiator(
        keyring=carol, responder_uri="sip:erin@ims-b.test", responder_kms="kms.ims-b.test"
    ).initiate(now)
    sdp = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/SAVP 0\r\na=key-mgmt:mikey " + base64.b64encode(data) + b"\r\n"
    )

    def ctx(remote: str, asserted: str) -> KeyingContext:
        return KeyingContext(
            call_id="x",
            local_uri="sip:erin@ims-b.test",
            remote_uri=remote,
            initiator=False,
            asserted_uri=asserted,
        )

    sakke = keying.get("sakke")
    with pytest.raises(KeyingError, match="rejected"):
        sakke.session(ctx("sip:alice@ims-a.test", "<sip:alice@ims-a.test>")).answer(sdp, 0)
    _, keys_ = sakke.session(ctx("sip:carol@ims-a.test", "sip:carol@ims-a.test")).answer(sdp, 0)
    assert keys_.secure and keys_.description == "MIKEY sakke"


def test_a_peer_without_a_kms_cannot_be_keyed(keys: Path) -> None:
    """RFC 6509 §2.1: the Initiator needs the Responder's KMS Public Key; dave (a plain SIP
    service on the Internet) has no KMS, so the offer fails with a clear error."""
    ctx = KeyingContext(
        call_id="x",
        local_uri="sip:alice@ims-a.test",
        remote_uri="sip:dave@internet.test",
        initiator=True,
    )
    with pytest.raises(KeyingError, match="no MIKEY-SAKKE KMS"):
        keying.get("sakke").session(ctx).offer()
