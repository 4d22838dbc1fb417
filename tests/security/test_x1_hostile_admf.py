"""Issue 11 finding 11: X1 input that is hostile or merely wrong, over the real mTLS X1 server.

Before the fix: ``encoding="x-bogus"`` raised an undeclared LookupError (the connection
dropped with a traceback); invalid targets (``sip:``, ``tel:abc``, empty, 100 KB) were
acknowledged and arming the POI then failed; the handler ran on the event loop (one 1 MB
request of 3,000 GetAllDetails took 81 s and built a response of hundreds of MB).
Now: every body gets an X1 answer (1010 for a bad document), targets are validated before
anything is stored, a request holds at most ``MAX_MESSAGES`` messages, the handler runs off
the event loop, and overload is answered (HTTP 503 + X1 error document) instead of queueing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from li.x1.client import X1Client, X1ErrorResponse, X1TransportError
from li.x1.handler import MAX_MESSAGES
from li.x1.model import (
    DeliveryType,
    DestinationDetails,
    ErrorCode,
    MessageType,
    TargetIdentifier,
    TaskDetails,
    TopLevelError,
    X1Request,
)
from li.x1.ne import NetworkElementLI
from li.x1.tlsutil import make_lab_pki
from li.x1.xml import decode_response, encode_request

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.7.2"
NE = "pcscf-x1"
DID = uuid.UUID("0b5e55ed-0000-4000-8000-0000000001d1")


async def started_ne(tmp_path: Path) -> tuple[NetworkElementLI, X1Client]:
    pki = make_lab_pki(tmp_path / "pki", server_name=NE, client_name="admf-1", hosts=(HOST,))
    ne = NetworkElementLI(
        ne_id=NE, state_dir=tmp_path / "ne", x1_host=HOST, x1_tls=pki.server_context()
    )
    await ne.start()
    client = X1Client(
        HOST, ne.x1_port, ssl=pki.client_context(), admf_id="admf-1", ne_id=NE, timeout=20
    )
    await client.create_destination(
        DestinationDetails(did=DID, delivery_type=DeliveryType.X2_AND_X3, host="127.0.7.3", port=9)
    )
    return ne, client


async def test_bogus_encoding_is_answered_with_1010(tmp_path: Path) -> None:
    ne, client = await started_ne(tmp_path)
    try:
        for enc in (b"x-bogus", b"utf-0", b"UTF-7", b"utf-16"):
            body = b'<?xml version="1.0" encoding="' + enc + b'"?><X1Request/>'
            answer = decode_response(await client.post(body))
            assert isinstance(answer, TopLevelError), enc
            assert answer.error.code == ErrorCode.SYNTAX
        await client.ping()
    finally:
        await ne.close()


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("sipUri", "sip:"),
        ("sipUri", "sip:@"),
        ("telUri", "tel:abc"),
        ("sipUri", ""),
        ("e164Number", ""),
        ("sipUri", "sip:alice@" + "a" * 100_000),
        ("impu", "mailto:alice@ims.test"),
    ],
)
async def test_invalid_target_refused_and_not_stored(tmp_path: Path, kind: str, value: str) -> None:
    ne, client = await started_ne(tmp_path)
    try:
        xid = uuid.uuid4()
        task = TaskDetails(
            xid=xid,
            targets=(TargetIdentifier(kind=kind, value=value),),
            delivery_type=DeliveryType.X2_AND_X3,
            dids=(DID,),
        )
        with pytest.raises(X1ErrorResponse) as info:
            await client.activate_task(task)
        assert info.value.code == ErrorCode.UNSUPPORTED_TARGET_TYPE
        listed = await client.request(
            X1Request(message_type=MessageType.LIST_ALL_DETAILS, header=client.header())
        )
        assert xid not in listed.xids
        assert xid not in ne.tasks
        await client.ping()
    finally:
        await ne.close()


async def test_huge_request_is_bounded_and_the_loop_stays_free(tmp_path: Path) -> None:
    """3,000 GetAllDetails in one ~1 MB body: answered with 1010 (too many messages), and
    while the NE parses it, another connection's Ping is answered."""
    ne, client = await started_ne(tmp_path)
    try:
        reqs = [
            X1Request(message_type=MessageType.GET_ALL_DETAILS, header=client.header())
            for _ in range(3000)
        ]
        body = encode_request(reqs)
        assert len(body) > 500_000 and MAX_MESSAGES < 3000
        t0 = time.monotonic()
        big = asyncio.ensure_future(client.post(body))
        pings = 0
        while not big.done():
            await asyncio.wait_for(client.ping(), 5.0)
            pings += 1
        answer = decode_response(big.result())
        assert isinstance(answer, TopLevelError)  # the XSD's answer to a refused document
        assert b"X1 error 1010: request holds 3000 messages" in big.result()
        assert pings >= 1
        assert time.monotonic() - t0 < 20
    finally:
        await ne.close()


async def test_overload_is_answered_with_an_x1_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More concurrent requests than the NE queues: the excess is answered at once with HTTP
    503 (an X1 top-level error document, nothing acted on: retry), the rest are served."""
    ne, client = await started_ne(tmp_path)
    ne.server.max_pending = 2
    real = ne.handler.handle_collect

    def slow(*a: object, **kw: object) -> object:
        time.sleep(0.3)  # a busy NE (runs in the X1 worker thread)
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ne.handler, "handle_collect", slow)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(client.ping() for _ in range(10)), return_exceptions=True), 20
        )
        busy = [r for r in results if isinstance(r, X1TransportError)]
        ok = [r for r in results if not isinstance(r, BaseException)]
        assert busy and ok, results
        assert all("503" in str(b) for b in busy)
        assert len(busy) + len(ok) == 10
        assert ne.server.overloaded == len(busy)
    finally:
        await ne.close()


def test_stored_tasks_and_destinations_are_bounded() -> None:
    """An NE stores at most max_tasks tasks (3000) and max_destinations destinations (6000):
    what GetAllDetails returns is bounded too."""
    from li.x1.handler import X1Handler
    from li.x1.model import X1Header
    from li.x1.store import X1Store

    handler = X1Handler(X1Store(":memory:"), ne_id=NE, max_tasks=2, max_destinations=1)
    h = X1Header(admf_id="admf-1", ne_id=NE, timestamp="2023-11-14T22:13:20.000000Z")

    def run(req: X1Request) -> int | None:
        resp = handler.handle_request(req, now=1.0, peer_admf="admf-1")
        return None if resp.error is None else int(resp.error.code)

    dest = DestinationDetails(did=DID, delivery_type=DeliveryType.X2_AND_X3, host=HOST, port=9)
    other = DestinationDetails(
        did=uuid.uuid4(), delivery_type=DeliveryType.X2_AND_X3, host=HOST, port=9
    )
    assert (
        run(X1Request(message_type=MessageType.CREATE_DESTINATION, header=h, destination=dest))
        is None
    )
    assert (
        run(X1Request(message_type=MessageType.CREATE_DESTINATION, header=h, destination=other))
        == ErrorCode.CREATE_DESTINATION_FAILED
    )
    codes = []
    for _ in range(3):
        task = TaskDetails(
            xid=uuid.uuid4(),
            targets=(TargetIdentifier(kind="sipUri", value="sip:alice@ims.test"),),
            delivery_type=DeliveryType.X2_AND_X3,
            dids=(DID,),
        )
        codes.append(run(X1Request(message_type=MessageType.ACTIVATE_TASK, header=h, task=task)))
    assert codes == [None, None, ErrorCode.ACTIVATE_FAILED]
    assert len(handler.store.task_ids()) == 2
