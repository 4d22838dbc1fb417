"""UE keying ``ticket``: MIKEY-TICKET (RFC 6043) calls through the in-process lab, with each
operator's KMS element reached over HTTPS with mutual TLS (``[elements.kms-a]``/``kms-b``)."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ims.mikey.constants import DataType, MapType
from ims.mikey.message import decode_message
from ims.mikey.payloads import GenericCsEntry
from ims.mikey.payloads_kms import IdRole, IdrPayload, TicketPayload
from ims.mikey.ticket import tp_data_view
from ims.sdp.model import SessionDescription
from lab import credentials, ticket_credentials, topology
from lab.callflow import run_call
from lab.orchestrator import Lab
from proxies.hooks import Direction, SipMessageEvent
from ue import keying_ticket
from ue.keying import KeyingError

SUBNET = "127.0.48"


@pytest.fixture
def topo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> topology.Topology:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    return topology.load(subnet=SUBNET)


@pytest.fixture
def users(topo: topology.Topology) -> Iterator[Path]:
    path = ticket_credentials.ensure(topo)
    keying_ticket.configure(path)
    yield path
    keying_ticket.configure(None)


@pytest.fixture
async def lab(topo: topology.Topology, users: Path) -> AsyncIterator[Lab]:
    async with Lab(topo, names=[n for n in topo.elements]) as running:
        yield running


def _mikey(seen: list[tuple[str, SipMessageEvent]], element: str, method: str | None) -> bytes:
    for name, ev in seen:
        msg = ev.message
        is_req = hasattr(msg, "method")
        if name != element or ev.direction != Direction.OUT:
            continue
        if (method is not None and getattr(msg, "method", "") != method) or (
            method is None and (is_req or getattr(msg, "status", 0) != 200)
        ):
            continue
        if not msg.body:  # e.g. the 200 to a REGISTER
            continue
        sdp = SessionDescription.parse(msg.body)
        for km in (*sdp.media[0].key_mgmt, *sdp.key_mgmt):
            if km.protocol == "mikey":
                return km.data
    raise AssertionError(f"no MIKEY left {element}")


def test_provisioning_is_private(topo: topology.Topology, users: Path) -> None:
    """RFC 6043 §4.2.1: each user shares a PSK with its KMS; files 0600, dirs 0700; one KMS per
    home operator, a non-IMS user (dave) has none."""
    state = credentials.state_dir(topo)
    for p in [users, *users.iterdir(), state / "kms" / "ims-a.test" / "ticket.json"]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    names = sorted(p.stem for p in users.iterdir())
    assert names == ["alice@ims-a.test", "bob@ims-b.test", "carol@ims-a.test", "erin@ims-b.test"]
    alice = json.loads((users / "alice@ims-a.test.json").read_text())
    kms = topo.elements["kms-a"]
    assert (alice["kms"], alice["host"], alice["port"]) == ("kms.ims-a.test", kms.address, 8444)
    secrets = json.loads((state / "kms" / "ims-a.test" / "ticket.json").read_text())
    assert secrets["users"]["sip:alice@ims-a.test"] == alice["psk"]
    assert "sip:bob@ims-b.test" not in secrets["users"]  # B's subscriber: B's KMS only


async def test_ticket_call_between_operators(lab: Lab, topo: topology.Topology) -> None:
    """RFC 6043 §4.2.2: TRANSFER_INIT in the offer, TRANSFER_RESP in the answer; alice's ticket
    is issued by her KMS (A) and bob resolves it at his (B), which asks A (§10). SRTP both
    ways, and both KMSs audit what they did (never keys)."""
    seen: list[tuple[str, SipMessageEvent]] = []
    for name in ("pcscf-a", "pcscf-b"):
        lab.element(name).sip_hooks.add(lambda ev, n=name: seen.append((n, ev)))
    report = await run_call(
        topo, "alice", "bob", keying="ticket", duration=1.0, progress=lambda _: None
    )
    assert report.ok, report
    assert report.keys is not None and "ticket" in report.keys
    assert report.stats.get("auth_failures") == 0
    init = decode_message(_mikey(seen, "pcscf-b", "INVITE"))
    assert init.data_type is DataType.TRANSFER_INIT
    assert init.hdr.map_type is MapType.GENERIC_ID  # §6.1 "SRTP-ID SHALL NOT be used"
    ticket = init.find(TicketPayload)
    assert ticket is not None
    view = tp_data_view(ticket.tp_data)
    assert (view.kms, view.responders) == (b"kms.ims-a.test", (b"sip:bob@ims-b.test",))
    roles = {p.role: p.data.decode() for p in init.find_all(IdrPayload)}
    assert roles[IdRole.INITIATOR] == "sip:alice@ims-a.test"
    resp = decode_message(_mikey(seen, "pcscf-a", None))
    assert resp.data_type is DataType.TRANSFER_RESP
    assert all(isinstance(c, GenericCsEntry) and len(c.policies) == 1 for c in resp.hdr.cs_map)
    state = credentials.state_dir(topo)
    audit_a = (state / "kms" / "ims-a.test" / "audit.jsonl").read_text()
    audit_b = (state / "kms" / "ims-b.test" / "audit.jsonl").read_text()
    acts_a = [(r["action"], r["requester"]) for r in map(json.loads, audit_a.splitlines())]
    acts_b = [(r["action"], r["requester"]) for r in map(json.loads, audit_b.splitlines())]
    assert ("issued", "sip:alice@ims-a.test") in acts_a
    assert ("resolved", "kms.ims-b.test") in acts_a  # §10: B asked A, mutually authenticated
    assert ("forwarded", "sip:bob@ims-b.test") in acts_b
    assert ("resolved", "sip:bob@ims-b.test") in acts_b
    psk = json.loads((state / "kms" / "ims-a.test" / "ticket.json").read_text())["tpk"]
    assert psk not in audit_a


async def test_ticket_call_inside_one_operator(lab: Lab, topo: topology.Topology) -> None:
    """Both users on one KMS: alice's ticket resolved by carol at the same KMS (§4.2.3)."""
    report = await run_call(
        topo, "alice", "carol", keying="ticket", duration=1.0, progress=lambda _: None
    )
    assert report.ok, report
    assert report.stats.get("auth_failures") == 0


async def test_a_peer_without_a_kms_cannot_resolve(lab: Lab, topo: topology.Topology) -> None:
    """RFC 6043 §4.2.3: the Responder needs a KMS to resolve the ticket; dave (a plain SIP
    service on the Internet) has none, so the call is refused (488) after alice's KMS issued
    her a ticket naming dave -- audited at A."""
    report = await run_call(
        topo, "alice", "dave", keying="ticket", duration=0.5, progress=lambda _: None
    )
    assert not report.ok
    state = credentials.state_dir(topo)
    audit = (state / "kms" / "ims-a.test" / "audit.jsonl").read_text().splitlines()
    issued = [json.loads(x) for x in audit if json.loads(x)["action"] == "issued"]
    assert issued and "sip:dave@internet.test" in issued[-1]["detail"]
    with pytest.raises(KeyingError, match="no MIKEY-TICKET KMS"):
        keying_ticket.user("sip:dave@internet.test")
