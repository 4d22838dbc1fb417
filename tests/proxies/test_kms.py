"""The MIKEY-SAKKE KMS as a network element: its core and its HTTPS (mutual TLS) adapter.

Real TLS on loopback, real ECCSI/SAKKE keys (each issuance ~0.1 s, each recovery ~0.3 s in
pure Python, so the module keeps to a handful).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ims.mikey.modes.sakke import SakkeInitiator, SakkeResponder
from ims.mikey.policy import Sender
from ims.mikey.sakke_keys import KmsKeyIssuer, SakkeKeyring, key_period
from ims.mikey.sakke_store import material_from_doc
from li.x1.tlsutil import LabPki, client_context, make_lab_pki
from proxies.kms import PROVISIONING, KmsCore, KmsRefusedError
from proxies.kms_https import KmsHttpsServer

KMS = "kms.ims-a.test"
ALICE, CAROL = "sip:alice@ims-a.test", "sip:carol@ims-a.test"


@pytest.fixture
def pki(tmp_path: Path) -> LabPki:
    # the server's certificate also serves as the operator's LI/provisioning client (its
    # EKU has clientAuth); alice's is a UE's, CN = her AoR
    return make_lab_pki(tmp_path / "pki", server_name=KMS, client_name=ALICE)


@pytest.fixture
async def kms(tmp_path: Path, pki: LabPki) -> AsyncIterator[KmsHttpsServer]:
    core = KmsCore.create("ims-a.test", KmsKeyIssuer(KMS), [ALICE, CAROL])
    server = KmsHttpsServer(
        core,
        ssl_context=pki.server_context(),
        audit_path=tmp_path / "audit.jsonl",
        provisioning=[KMS],
        li=[KMS],
    )
    async with server:
        yield server


async def request(
    server: KmsHttpsServer, ctx: ssl.SSLContext, method: str, target: str, body: bytes = b""
) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx)
    writer.write(
        f"{method} {target} HTTP/1.1\r\nHost: kms\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def as_server_cn(pki: LabPki) -> ssl.SSLContext:
    return client_context(pki.ca, pki.server.cert, pki.server.key)


async def test_a_ue_gets_its_own_keys_over_mutual_tls(kms: KmsHttpsServer, pki: LabPki) -> None:
    """RFC 6509 §2.1.2: the KMS issues the user an (SSK, PVT) and RSK for the key period;
    §3.4 "mutual authentication of the device and the KMS": the device is its certificate."""
    period = key_period(time.time())
    status, doc = await request(kms, pki.client_context(), "GET", f"/v1/keys/{period}")
    assert status == 200
    material = material_from_doc(doc["material"])
    assert material.uri == ALICE and material.period == period
    ring = SakkeKeyring(ALICE)
    ring.install(material)  # RFC 6507 §5.1.2 and RFC 6508 §6.1.2 validation pass
    assert ring.periods == (period,)
    # the query is the provisioning agent's: a UE still gets only its own keys
    status, doc = await request(kms, pki.client_context(), "GET", f"/v1/keys/{period}?user={CAROL}")
    assert status == 200 and doc["material"]["uri"] == ALICE
    # §3.3: only the periods a device may hold now, not next year's
    status, doc = await request(kms, pki.client_context(), "GET", "/v1/keys/2099-01")
    assert status == 403 and "not current" in doc["error"]
    status, doc = await request(kms, pki.client_context(), "GET", "/v1/community")
    assert status == 200 and [c["kms"] for c in doc["community"]] == [KMS]


async def test_a_client_without_certificate_is_refused(kms: KmsHttpsServer, pki: LabPki) -> None:
    """RFC 6509 §3.4: mutual authentication -- no client certificate, no TLS session."""
    ctx = client_context(pki.ca)
    answer = b""
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        reader, writer = await asyncio.open_connection("127.0.0.1", kms.port, ssl=ctx)
        writer.write(b"GET /v1/community HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # TLS 1.3: the alert comes here
        writer.close()
    assert answer == b""  # no HTTP answer at all


async def test_li_recovery_needs_the_li_identity_and_a_task(
    kms: KmsHttpsServer, pki: LabPki, tmp_path: Path
) -> None:
    """RFC 6508 §7 (the KMS can derive any RSK) and §6.2.2: the Responder's KMS recovers the
    SSV of an I_MESSAGE -- only for its LI function and an active task; audited, no keys."""
    now = time.time()
    period = key_period(now)
    rings = {}
    for user in (ALICE, CAROL):
        status, doc = await request(kms, as_server_cn(pki), "GET", f"/v1/keys/{period}?user={user}")
        assert status == 200
        rings[user] = SakkeKeyring(user)
        rings[user].install(material_from_doc(doc["material"]))
    i_message = SakkeInitiator(keyring=rings[ALICE], responder_uri=CAROL).initiate(now)
    carol = SakkeResponder(keyring=rings[CAROL], initiator_uri=ALICE).receive(i_message, now)
    assert carol.result is not None
    body = json.dumps(
        {"i_message": base64.b64encode(i_message).decode(), "targets": [ALICE], "responder": None}
    ).encode()
    status, doc = await request(kms, pki.client_context(), "POST", "/v1/li/recover", body)
    assert status == 403  # alice is not the operator's LI function
    no_task = body.replace(ALICE.encode(), b"sip:nobody@ims-a.test")
    status, doc = await request(kms, as_server_cn(pki), "POST", "/v1/li/recover", no_task)
    assert status == 403 and "no active task" in doc["error"]
    status, doc = await request(kms, as_server_cn(pki), "POST", "/v1/li/recover", b"{")
    assert status == 400
    status, doc = await request(kms, as_server_cn(pki), "POST", "/v1/li/recover", body)
    assert status == 200 and doc["responder"] == CAROL
    got = {(k["sender"], k["master_key"]) for k in doc["keys"]}
    want = {(str(k.sender), k.master_key.hex()) for k in carol.result.keys}
    assert got == want and {s for s, _ in got} == {str(Sender.INITIATOR), str(Sender.RESPONDER)}
    audit = tmp_path / "audit.jsonl"
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [r["action"] for r in lines].count("recovered") == 1
    assert {r["action"] for r in lines} >= {"issued", "refused", "recovery-failed"}
    text = audit.read_text()
    assert all(k["master_key"] not in text for k in doc["keys"])


def test_the_core_issues_only_to_its_subscribers() -> None:
    """RFC 6509 §2.1.2: a KMS provisions the users of its own domain; a user only itself."""
    core = KmsCore.create("ims-a.test", KmsKeyIssuer(KMS), [ALICE])
    now = time.time()
    period = key_period(now)
    with pytest.raises(KmsRefusedError, match="not a subscriber"):
        core.issue("sip:mallory@ims-a.test", period, requester=PROVISIONING, now=now)
    with pytest.raises(KmsRefusedError, match="only its own"):
        core.issue(ALICE, period, requester=CAROL, now=now)
    with pytest.raises(KmsRefusedError):
        core.issue("sip:alice@ims-a.test:5060", period, requester=PROVISIONING, now=now)
    with pytest.raises(KmsRefusedError, match="outside"):
        KmsCore.create("ims-a.test", KmsKeyIssuer(KMS), ["sip:bob@ims-b.test"])
    assert [r.action for r in core.drain_audit()] == ["refused"] * 3
    assert core.drain_audit() == []
