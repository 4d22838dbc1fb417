"""The MIKEY-TICKET KMS (RFC 6043): its core (proxies.kms_ticket) and ``POST /v1/mikey`` over
real mutual TLS between two operators' KMSs, resolution forwarded to the issuing KMS (§10)."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ims.mikey.aio_kms import KmsClient
from ims.mikey.constants import DataType, ErrorNo
from ims.mikey.message import decode_message
from ims.mikey.modes.ticket import TicketRequester, TicketResolver
from ims.mikey.modes.ticket_transfer import TicketTransferInitiator, TicketTransferResponder
from ims.mikey.payloads import ErrPayload
from ims.mikey.sakke_keys import KmsKeyIssuer
from li.x1.tlsutil import client_context, issue_client_cert, make_lab_pki
from proxies.kms import KmsCore, KmsRefusedError
from proxies.kms_https import KmsHttpsServer
from proxies.kms_ticket import TicketService

A, B = "kms.ims-a.test", "kms.ims-b.test"
ALICE, CAROL, BOB = "sip:alice@ims-a.test", "sip:carol@ims-a.test", "sip:bob@ims-b.test"
PSK = {ALICE: b"a" * 16, CAROL: b"c" * 16, BOB: b"b" * 16}
PEER = b"p" * 16
NOW = 1_780_000_000.0


def services() -> tuple[TicketService, TicketService]:
    a = TicketService(
        kms_id=A, user_psks={ALICE: PSK[ALICE], CAROL: PSK[CAROL]}, peer_psks={B: PEER}
    )
    b = TicketService(kms_id=B, user_psks={BOB: PSK[BOB]}, peer_psks={A: PEER})
    return a, b


def error_of(message: bytes | None) -> ErrorNo:
    assert message is not None
    msg = decode_message(message)
    assert msg.data_type is DataType.ERROR
    err = msg.find(ErrPayload)
    assert err is not None
    return err.error_no


def ticket_for(a: TicketService, responder: str) -> tuple[TicketTransferInitiator, bytes]:
    req = TicketRequester(identity=ALICE, kms_id=A, psk=PSK[ALICE], responders=[responder])
    out = a.handle(req.initiate(NOW), requester=ALICE, now=NOW)
    granted = req.receive(out.message or b"", NOW)
    ini = TicketTransferInitiator(granted=granted, identity=ALICE, responder=responder)
    return ini, ini.initiate(NOW)


def test_the_mikey_identity_must_be_the_tls_identity() -> None:
    """§4.2.1.1 IDRi names the requester; the KMS answers only the subscriber the transport
    authenticated: carol's TLS session cannot ask in alice's name, even with alice's PSK."""
    a, _ = services()
    req = TicketRequester(identity=ALICE, kms_id=A, psk=PSK[ALICE], responders=[BOB])
    out = a.handle(req.initiate(NOW), requester=CAROL, now=NOW)
    assert out.forward is None and error_of(out.message) is ErrorNo.INVALID_ID
    audit = a.drain_audit()
    assert [r.action.value for r in audit] == ["refused"] and audit[0].requester == CAROL


def test_resolution_is_forwarded_to_the_issuing_kms() -> None:
    """§10: "If KMS R did not issue the ticket, KMS R would normally be unable to directly
    resolve the ticket and must hence ask another KMS to resolve it (typically the issuing
    KMS)"; "The IDRr and TICKET payloads from the previous RESOLVE_INIT message SHOULD be
    reused. Note that IDRr cannot be used to look up the pre-shared key" (IDRpsk names KMS R)."""
    a, b = services()
    ini, init = ticket_for(a, BOB)
    bob = TicketTransferResponder(identity=BOB)
    ticket = bob.early_check(init, NOW)
    res = TicketResolver(identity=BOB, kms_id=B, psk=PSK[BOB], ticket=ticket)
    out = b.handle(res.initiate(NOW), requester=BOB, now=NOW)
    assert out.forward is not None and out.forward.kms_id == A
    fwd = decode_message(out.forward.message)
    assert fwd.data_type is DataType.RESOLVE_INIT_PSK
    # the peer KMS must be the TLS peer too
    wrong = a.handle(out.forward.message, requester="kms.ims-c.test", now=NOW)
    assert error_of(wrong.message) is ErrorNo.INVALID_ID
    answer = a.handle(out.forward.message, requester=B, now=NOW)
    reply = b.forwarded(out.forward, answer.message, requester=BOB, now=NOW)
    keys = res.receive(reply, NOW)
    done = bob.complete(init, keys, NOW)
    assert done.ok and done.message is not None
    assert ini.receive(done.message, NOW).keys == done.result.keys  # type: ignore[union-attr]
    # an unreachable issuer: the Responder gets an Error message, not a hang
    again = TicketResolver(identity=BOB, kms_id=B, psk=PSK[BOB], ticket=ticket)
    out2 = b.handle(again.initiate(NOW + 1), requester=BOB, now=NOW + 1)
    assert out2.forward is not None
    assert decode_message(
        b.forwarded(out2.forward, None, requester=BOB, now=NOW + 1)
    ).data_type is (DataType.ERROR)


def test_li_recovery_by_the_issuing_or_the_resolving_kms_only() -> None:
    """The LI function of a KMS derives the call keys from an intercepted TRANSFER_INIT when it
    issued the ticket (TPK) or resolved it for a subscriber; a third KMS cannot. The V MAC is
    checked with MPKi first (§4.2.3.6), and an active task must name a party."""
    a, b = services()
    ini, init = ticket_for(a, BOB)
    with pytest.raises(KmsRefusedError, match="none of our subscribers resolved"):
        b.recover(init, requester="li.ims-b.test", targets=[BOB], now=NOW)
    bob = TicketTransferResponder(identity=BOB)
    ticket = bob.early_check(init, NOW)
    res = TicketResolver(identity=BOB, kms_id=B, psk=PSK[BOB], ticket=ticket)
    out = b.handle(res.initiate(NOW), requester=BOB, now=NOW)
    assert out.forward is not None
    answer = a.handle(out.forward.message, requester=B, now=NOW)
    keys = res.receive(b.forwarded(out.forward, answer.message, requester=BOB, now=NOW), NOW)
    want = bob.complete(init, keys, NOW).result
    assert want is not None
    got_a = a.recover(init, requester="li.ims-a.test", targets=[ALICE], now=NOW)
    got_b = b.recover(init, requester="li.ims-b.test", targets=[BOB], now=NOW)
    assert got_a.keys == got_b.keys == want.keys
    with pytest.raises(KmsRefusedError, match="no active task"):
        a.recover(init, requester="li.ims-a.test", targets=[CAROL], now=NOW)
    forged = init[:-1] + bytes([init[-1] ^ 1])
    with pytest.raises(KmsRefusedError, match="V MAC"):
        a.recover(forged, requester="li.ims-a.test", targets=[ALICE], now=NOW)
    actions = [r.action.value for r in a.drain_audit()]
    assert actions.count("recovered") == 1 and actions.count("recovery-failed") == 2


@pytest.fixture
async def two_kms(tmp_path: Path) -> AsyncIterator[tuple[KmsHttpsServer, KmsHttpsServer, Path]]:
    pki = make_lab_pki(tmp_path / "pki", server_name=A, client_name=ALICE)
    d = tmp_path / "pki"

    def ctx_of(name: str) -> KmsClient:
        files = issue_client_cert(d, name)
        return KmsClient("127.0.0.1", 0, client_context(pki.ca, files.cert, files.key))

    a_svc, b_svc = services()
    servers = []
    for kms, svc in ((A, a_svc), (B, b_svc)):
        core = KmsCore.create(kms.removeprefix("kms."), KmsKeyIssuer(kms), [])
        servers.append(
            KmsHttpsServer(
                core,
                ssl_context=pki.server_context(),
                audit_path=tmp_path / f"{kms}.audit.jsonl",
                li=[f"li.{kms.removeprefix('kms.')}"],
                tickets=svc,
            )
        )
    for s in servers:
        await s.start()
    a_srv, b_srv = servers
    peer = ctx_of(B)
    b_srv.peers = {A: KmsClient("127.0.0.1", a_srv.port, peer.ssl_context)}
    try:
        yield a_srv, b_srv, d
    finally:
        for s in servers:
            await s.close()


def client(server: KmsHttpsServer, pki_dir: Path, name: str) -> KmsClient:
    files = issue_client_cert(pki_dir, name)
    ctx = client_context(pki_dir / "ca.pem", files.cert, files.key)
    return KmsClient("127.0.0.1", server.port, ctx)


async def test_ticket_exchanges_over_mutual_tls(
    two_kms: tuple[KmsHttpsServer, KmsHttpsServer, Path], tmp_path: Path
) -> None:
    """The whole MIKEY-TICKET key flow over HTTPS: alice's REQUEST at A, bob's RESOLVE at B
    forwarded to A (§10) over mutual TLS, both LI functions recover; audits 0600, no keys."""
    a_srv, b_srv, d = two_kms
    now = time.time()
    req = TicketRequester(identity=ALICE, kms_id=A, psk=PSK[ALICE], responders=[BOB])
    resp = await asyncio.to_thread(client(a_srv, d, ALICE).mikey, req.initiate(now))
    granted = req.receive(resp, now)
    ini = TicketTransferInitiator(granted=granted, identity=ALICE, responder=BOB)
    init = ini.initiate(now)
    bob = TicketTransferResponder(identity=BOB)
    res = TicketResolver(identity=BOB, kms_id=B, psk=PSK[BOB], ticket=bob.early_check(init, now))
    answer = await asyncio.to_thread(client(b_srv, d, BOB).mikey, res.initiate(now))
    done = bob.complete(init, res.receive(answer, now), now)
    assert done.ok and done.result is not None
    body = json.dumps(
        {"i_message": base64.b64encode(init).decode(), "targets": [BOB], "responder": None}
    ).encode()
    status, doc = await asyncio.to_thread(
        client(b_srv, d, "li.ims-b.test").request, "POST", "/v1/li/recover", body
    )
    assert status == 200 and doc["method"] == "mikey-ticket"
    assert {bytes.fromhex(k["master_key"]) for k in doc["keys"]} == {
        k.master_key for k in done.result.keys
    }
    # alice is no LI function
    status, _ = await asyncio.to_thread(
        client(b_srv, d, ALICE).request, "POST", "/v1/li/recover", body
    )
    assert status == 403
    for kms in (A, B):
        path = tmp_path / f"{kms}.audit.jsonl"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert all(k.master_key.hex() not in text for k in done.result.keys)
    acts_a = [
        json.loads(x)["action"] for x in (tmp_path / f"{A}.audit.jsonl").read_text().splitlines()
    ]
    assert "issued" in acts_a and "resolved" in acts_a
