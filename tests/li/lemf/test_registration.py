"""The LEMF files an intercepted REGISTER as a registration, and calls stay calls.

A real registration: the lab runs in-process with its ``[li]`` (LEMF, operator A's X1 NEs and
POIs) on 127.0.80-89 (``--net-offset 70``); ``imslab li task add`` tasks alice over X1; alice's
UE registers through pcscf-a (digest: 401, then 200), refreshes, calls bob (SDES) and
deregisters. The LEMF must hold the registration with the granted contact, expiry, POIs and
timestamps -- and exactly one call directory, the call's.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from li.lemf.registration import Registrations, contacts, is_registration
from li.lemf.sipinfo import summarise
from li.x2x3.pdu import Pdu, x2_pdu

OFFSET = 70
LAB = ["--net-offset", str(OFFSET)]

pytestmark = pytest.mark.timeout(120)


async def imslab(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lab.cli",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(errors="replace")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_real_registration_is_filed_as_a_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "sip-pki"))
    topo = topology.load(net_offset=OFFSET)
    assert topo.li is not None
    lemf_out = topo.li.lemf_out()
    names = ["pcscf-a", "scscf-a", "anchor-a", "pcscf-b", "scscf-b", "anchor-m"]
    t0 = time.time()
    async with Lab(topo, mode="inprocess", names=names, li=True):
        rc, out = await imslab(
            "li", "task", "add", *LAB, "--operator", "a", "--target", "sip:alice@ims-a.test"
        )
        assert rc == 0, out
        xid = json.loads(out.splitlines()[0])["xid"]
        alice, bob = user_agent(topo, "alice"), user_agent(topo, "bob")
        async with alice, bob:
            await alice.register()
            t_registered = time.time()
            await alice.register()  # a refresh: same Call-ID, CSeq + 1 (RFC 3261 §10.2.4)
            await bob.register()
            call = alice.dial("sip:bob@ims-b.test", audio="tone:440")
            await call.answered(timeout=10)
            await asyncio.sleep(0.5)
            await call.hangup()
            await alice.unregister()
            contact = alice.contact
            expires = alice.config.expires
        await asyncio.sleep(0.5)  # the last PDUs reach the LEMF
    t1 = time.time()

    task_dir = lemf_out / xid
    # calls stay calls: exactly one call directory, the INVITE's, with its keys
    summaries = [json.loads(p.read_text()) for p in task_dir.glob("*/summary.json")]
    assert [s["call_id"] for s in summaries] == [call.call_id], summaries
    assert summaries[0]["keys_available"] and summaries[0]["keys_unavailable_reason"] is None
    assert not any("no SDP seen" in json.dumps(s) for s in summaries)
    call_iri = lines(next(task_dir.glob("*/iri.jsonl")))
    assert not any("REGISTER" in json.dumps(r) for r in call_iri)

    # the registration's files
    for name in ("registrations.jsonl", "registrations.json", "registrations.pcap"):
        assert stat.S_IMODE((task_dir / name).stat().st_mode) == 0o600, name
    records = lines(task_dir / "registrations.jsonl")
    sip = [r for r in records if r["type"] == "sip"]
    # REGISTER, 401, REGISTER, 200 (+ refresh, + deregistration), seen by both IRI-POIs
    assert {r["poi"] for r in sip} == {"pcscf-a", "scscf-a"}
    assert any(r["sip"].get("status") == 401 for r in sip)
    assert {r["aor"] for r in sip} == {"sip:alice@ims-a.test"}
    requests = [r for r in sip if r["sip"].get("method") == "REGISTER"]
    assert any(r["expires_requested"] == [expires] for r in requests)

    outcomes = [r for r in records if r["type"] == "registration"]
    by_poi: dict[str, list[str]] = {}
    for r in outcomes:
        by_poi.setdefault(r["poi"], []).append(r["event"])
    assert by_poi == {p: ["registered", "refreshed", "deregistered"] for p in by_poi}
    # the P-CSCF relays the registrar's responses; the S-CSCF's POI sees the requests it
    # receives (the responses its own registrar makes are not relayed through its hooks)
    assert "pcscf-a" in by_poi
    first = next(r for r in outcomes if r["event"] == "registered")
    assert first["aor"] == "sip:alice@ims-a.test" and first["status"] == 200
    assert first["associated_uris"]  # the implicit registration set (P-Associated-URI)
    assert t0 <= first["time"] <= t_registered + 1
    assert [c["uri"] for c in first["contacts"]] == [contact.strip("<>")]
    granted = first["contacts"][0]
    assert 0 < granted["expires"] <= expires
    assert granted["expires_at"] == pytest.approx(first["time"] + granted["expires"])
    last = outcomes[-1]
    assert last["event"] == "deregistered" and last["contacts"] == []

    state = json.loads((task_dir / "registrations.json").read_text())
    alice_state = state["registrations"]["sip:alice@ims-a.test"]
    assert alice_state["state"] == "deregistered" and alice_state["contacts"] == []
    assert "pcscf-a" in alice_state["pois"]
    assert t0 <= alice_state["registered_at"] <= alice_state["deregistered_at"] <= t1


# --- the parser and filer on hostile or unusual input ------------------------------------------

OK_TWO_BINDINGS = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@ims-a.test>;tag=1\r\n"
    b"To: <sip:alice@ims-a.test>;tag=2\r\n"
    b"Call-ID: reg-1\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b'Contact: "A, B" <sip:alice@127.0.0.1:5060;transport=udp>;expires=600,\r\n'
    b" <sip:alice@10.0.0.1>;q=0.5;Expires=30\r\n"
    b"m: <sip:alice@10.0.0.2>\r\n"
    b"Expires: 120\r\n"
    b"P-Associated-URI: <sip:alice@ims-a.test>, <tel:+493011>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_contacts_every_binding_with_its_expiry() -> None:
    """RFC 3261 §10.3 step 8: the 200 lists every binding, each with its expires parameter;
    §20.10: a comma inside a quoted display name does not split; compact ``m`` counts."""
    assert contacts(summarise(OK_TWO_BINDINGS)) == [
        {"uri": "sip:alice@127.0.0.1:5060;transport=udp", "expires": 600},
        {"uri": "sip:alice@10.0.0.1", "expires": 30},
        {"uri": "sip:alice@10.0.0.2", "expires": 120},
    ]
    assert is_registration(summarise(OK_TWO_BINDINGS))
    invite_ok = OK_TWO_BINDINGS.replace(b"2 REGISTER", b"2 INVITE")
    assert not is_registration(summarise(invite_ok))


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"REGISTER",
        b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\nContact: <unterminated\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\nContact: <sip:x>;expires=99999999999\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\n" + b"Contact: <sip:a>,\r\n" * 500 + b"\r\n",
        b"\xff\xfe REGISTER \x00\r\n\r\n",
    ],
)
def test_odd_registrations_are_filed_never_raised(message: bytes, tmp_path: Path) -> None:
    regs = Registrations(tmp_path / "xid", xid="xid", lemf_addr=("127.0.0.1", 1))
    pdu = x2_pdu(xid=__import__("uuid").uuid4(), correlation_id=1, payload=message, direction=3)
    regs.on_sip(pdu, summarise(message), b"raw", 1.0, "pcscf-a", 1, ("127.0.0.2", 5))
    regs.close()
    assert len(contacts(summarise(message))) <= 32
    assert (tmp_path / "xid" / "registrations.jsonl").exists()


def test_a_restarted_lemf_continues_the_registration_state(tmp_path: Path) -> None:
    import uuid

    pdu = x2_pdu(xid=uuid.uuid4(), correlation_id=1, payload=OK_TWO_BINDINGS, direction=2)
    regs = Registrations(tmp_path, xid="x", lemf_addr=("127.0.0.1", 1))
    regs.on_sip(pdu, summarise(OK_TWO_BINDINGS), b"r", 10.0, "scscf-a", 1, ("127.0.0.2", 5))
    regs.close()
    again = Registrations(tmp_path, xid="x", lemf_addr=("127.0.0.1", 1))
    again.on_sip(pdu, summarise(OK_TWO_BINDINGS), b"r", 20.0, "scscf-a", 2, ("127.0.0.2", 5))
    again.close()
    events = [r["event"] for r in lines(tmp_path / "registrations.jsonl") if "event" in r]
    assert events == ["registered", "refreshed"]  # not "registered" twice
    state = json.loads((tmp_path / "registrations.json").read_text())["registrations"]
    alice = state["sip:alice@ims-a.test"]
    assert alice["registered_at"] == 10.0 and alice["last_time"] == 20.0
    assert alice["expires_at"] == 20.0 + 600
    assert alice["associated_uris"] == ["sip:alice@ims-a.test", "tel:+493011"]


def test_only_registrations_are_routed_to_the_registration_files() -> None:
    import uuid

    from li.lemf.registration import registration_summary

    def pdu(message: bytes) -> Pdu:
        return x2_pdu(xid=uuid.uuid4(), correlation_id=1, payload=message, direction=2)

    assert registration_summary(pdu(OK_TWO_BINDINGS)) is not None
    register = b"REGISTER sip:ims-a.test SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n"
    assert registration_summary(pdu(register)) is not None
    # an INVITE that merely mentions REGISTER (Allow) is a call's
    invite = (
        b"INVITE sip:bob@ims-b.test SIP/2.0\r\nAllow: INVITE, REGISTER\r\ncseq: 1 INVITE\r\n\r\n"
    )
    assert registration_summary(pdu(invite)) is None
    ok = OK_TWO_BINDINGS.replace(b"CSeq: 2 REGISTER", b"cseq:2 INVITE")
    assert registration_summary(pdu(ok)) is None
