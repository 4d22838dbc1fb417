"""X1: XML codec, NE handler error codes, XXE/billion-laughs refusal, mutual TLS, persistence."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import uuid
from pathlib import Path

import pytest

from li.x1.client import X1Client, X1ErrorResponse
from li.x1.handler import DestinationCreated, TaskActivated, X1Event, X1Handler
from li.x1.model import (
    DeliveryType,
    DestinationDetails,
    ErrorCode,
    ImslabTaskExtension,
    KeyDelivery,
    KeyDeliveryMode,
    MessageType,
    MitmAuthorisation,
    TargetIdentifier,
    TaskDetails,
    TopLevelError,
    X1Header,
    X1Request,
)
from li.x1.server import X1Server
from li.x1.store import X1Store
from li.x1.tlsutil import client_context, make_lab_pki
from li.x1.xml import decode_request, decode_response, encode_request

HOST = "127.0.6.3"
NE = "pcscf-1"
ADMF = "admf-1"
XID = uuid.UUID("29f28e1c-f230-486a-a860-f5a784ab9172")
DID = uuid.UUID("19867c20-8c94-473e-b9cd-8b72b7b05fd4")
NOW = 1_700_000_000.0


def header(ne: str = NE, version: str = "v1.6.1") -> X1Header:
    return X1Header(
        admf_id=ADMF, ne_id=ne, timestamp="2023-11-14T22:13:20.000000Z", version=version
    )


def dest(did: uuid.UUID = DID, dt: DeliveryType = DeliveryType.X2_AND_X3) -> DestinationDetails:
    return DestinationDetails(
        did=did, delivery_type=dt, host="127.0.6.4", port=50100, friendly_name="lemf"
    )


def task(xid: uuid.UUID = XID, kind: str = "sipUri", ext: bool = True) -> TaskDetails:
    return TaskDetails(
        xid=xid,
        targets=(
            TargetIdentifier(kind=kind, value="sip:alice@ims.test"),
            TargetIdentifier(kind="telUri", value="tel:+15551234"),
        ),
        delivery_type=DeliveryType.X2_AND_X3,
        dids=(DID,),
        extension=ImslabTaskExtension(
            key_delivery=KeyDelivery(mode=KeyDeliveryMode.KEY_RECORDS, mikey_psk=b"\x01" * 16),
            mitm=MitmAuthorisation(reference="warrant-42", signalling=True, media=False),
        )
        if ext
        else None,
    )


def req(mtype: MessageType, **kw: object) -> X1Request:
    return X1Request(message_type=mtype, header=header(), **kw)  # type: ignore[arg-type]


def test_request_round_trip_every_type() -> None:
    reqs = [
        req(MessageType.ACTIVATE_TASK, task=task()),
        req(MessageType.MODIFY_TASK, task=task(ext=False)),
        req(MessageType.DEACTIVATE_TASK, xid=XID),
        req(MessageType.DEACTIVATE_ALL_TASKS),
        req(MessageType.GET_TASK_DETAILS, xid=XID),
        req(MessageType.CREATE_DESTINATION, destination=dest()),
        req(MessageType.MODIFY_DESTINATION, destination=dest()),
        req(MessageType.REMOVE_DESTINATION, did=DID),
        req(MessageType.REMOVE_ALL_DESTINATIONS),
        req(MessageType.GET_DESTINATION_DETAILS, did=DID),
        req(MessageType.GET_ALL_DETAILS),
        req(MessageType.LIST_ALL_DETAILS),
        req(MessageType.PING),
        req(MessageType.KEEPALIVE),
    ]
    data = encode_request(reqs)
    assert b"http://uri.etsi.org/03221/X1/2017/10" in data
    assert decode_request(data) == reqs


ETSI_STYLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<x1:X1Request xmlns:x1="http://uri.etsi.org/03221/X1/2017/10"
              xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <x1:x1RequestMessage xsi:type="x1:ActivateTaskRequest">
    <x1:admfIdentifier>admf-1</x1:admfIdentifier>
    <x1:neIdentifier>pcscf-1</x1:neIdentifier>
    <x1:messageTimestamp>2023-11-14T22:13:20.000000Z</x1:messageTimestamp>
    <x1:version>v1.6.1</x1:version>
    <x1:x1TransactionId>3741800e-971b-4aa9-85f4-466d2b1adc7f</x1:x1TransactionId>
    <x1:taskDetails>
      <x1:xId>29f28e1c-f230-486a-a860-f5a784ab9172</x1:xId>
      <x1:targetIdentifiers>
        <x1:targetIdentifier><x1:e164Number>15551234</x1:e164Number></x1:targetIdentifier>
      </x1:targetIdentifiers>
      <x1:deliveryType>X2andX3</x1:deliveryType>
      <x1:listOfDIDs><x1:dId>19867c20-8c94-473e-b9cd-8b72b7b05fd4</x1:dId></x1:listOfDIDs>
    </x1:taskDetails>
  </x1:x1RequestMessage>
</x1:X1Request>
"""


def make_handler(store: X1Store | None = None, events: list[X1Event] | None = None) -> X1Handler:
    return X1Handler(
        store or X1Store(), ne_id=NE, listener=None if events is None else events.append
    )


def answer(h: X1Handler, r: X1Request) -> tuple[int | None, object]:
    out = decode_response(h.handle(encode_request(r), now=NOW))
    assert not isinstance(out, TopLevelError)
    (resp,) = out
    return (resp.error.code if resp.error else None), resp


def test_prefixed_etsi_document_and_handler_flow() -> None:
    events: list[X1Event] = []
    h = make_handler(events=events)
    assert answer(h, req(MessageType.CREATE_DESTINATION, destination=dest()))[0] is None
    out = decode_response(h.handle(ETSI_STYLE, now=NOW))
    assert not isinstance(out, TopLevelError) and out[0].ok == "AcknowledgedAndCompleted"
    assert out[0].header.transaction_id == uuid.UUID("3741800e-971b-4aa9-85f4-466d2b1adc7f")
    assert [type(e) for e in events] == [DestinationCreated, TaskActivated]
    code, resp = answer(h, req(MessageType.GET_TASK_DETAILS, xid=XID))
    assert code is None
    assert resp.task.targets == (TargetIdentifier(kind="e164Number", value="15551234"),)  # type: ignore[attr-defined]
    code, resp = answer(h, req(MessageType.LIST_ALL_DETAILS))
    assert resp.xids == (XID,) and resp.dids == (DID,)  # type: ignore[attr-defined]


def test_standard_error_codes() -> None:
    h = make_handler()
    other = uuid.uuid4()
    assert answer(h, req(MessageType.ACTIVATE_TASK, task=task()))[0] == ErrorCode.DID_NOT_FOUND
    answer(h, req(MessageType.CREATE_DESTINATION, destination=dest()))
    assert (
        answer(h, req(MessageType.CREATE_DESTINATION, destination=dest()))[0]
        == ErrorCode.DID_EXISTS
    )
    assert answer(h, req(MessageType.ACTIVATE_TASK, task=task()))[0] is None
    # duplicate XID
    assert answer(h, req(MessageType.ACTIVATE_TASK, task=task()))[0] == ErrorCode.XID_EXISTS
    # unknown XID
    for m in (MessageType.DEACTIVATE_TASK, MessageType.GET_TASK_DETAILS):
        assert answer(h, req(m, xid=other))[0] == ErrorCode.XID_NOT_FOUND
    assert answer(h, req(MessageType.MODIFY_TASK, task=task(other)))[0] == ErrorCode.XID_NOT_FOUND
    # bad target type (a known X1 type this IMS NE does not support)
    assert answer(h, req(MessageType.ACTIVATE_TASK, task=task(other, kind="imsi")))[0] == (
        ErrorCode.UNSUPPORTED_TARGET_TYPE
    )
    # delivery type the destinations cannot carry
    x2only = uuid.uuid4()
    answer(h, req(MessageType.CREATE_DESTINATION, destination=dest(x2only, DeliveryType.X2_ONLY)))
    t = TaskDetails(
        xid=other, targets=task().targets, delivery_type=DeliveryType.X2_AND_X3, dids=(x2only,)
    )
    assert (
        answer(h, req(MessageType.ACTIVATE_TASK, task=t))[0]
        == ErrorCode.INVALID_DELIVERY_COMBINATION
    )
    # destination in use, unknown destination
    assert (
        answer(h, req(MessageType.REMOVE_DESTINATION, did=DID))[0] == ErrorCode.DESTINATION_IN_USE
    )
    assert answer(h, req(MessageType.REMOVE_DESTINATION, did=other))[0] == ErrorCode.DID_NOT_FOUND
    # wrong NE and unsupported version
    r = X1Request(message_type=MessageType.PING, header=header(ne="scscf-9"))
    assert answer(h, r)[0] == ErrorCode.UNEXPECTED_NE_ID
    r = X1Request(message_type=MessageType.PING, header=header(version="v2.0.0"))
    assert answer(h, r)[0] == ErrorCode.UNSUPPORTED_VERSION
    # unsupported request type
    data = encode_request(req(MessageType.PING)).replace(b"PingRequest", b"CreateObjectRequest")
    out = decode_response(h.handle(data, now=NOW))
    assert not isinstance(out, TopLevelError) and out[0].error is not None
    assert out[0].error.code == ErrorCode.UNSUPPORTED_REQUEST
    # secrets given to the task are never echoed back
    code, resp = answer(h, req(MessageType.GET_TASK_DETAILS, xid=XID))
    ext = resp.task.extension  # type: ignore[attr-defined]
    assert ext.key_delivery.mikey_psk is None and ext.mitm.reference == "warrant-42"
    assert b"AQEBAQ" not in h.handle(encode_request(req(MessageType.GET_ALL_DETAILS)), now=NOW)


def top_level_code(h: X1Handler, data: bytes) -> int:
    out = decode_response(h.handle(data, now=NOW))
    assert isinstance(out, TopLevelError)
    return out.error.code


def test_not_xml_and_wrong_root() -> None:
    h = make_handler()
    assert top_level_code(h, b"<X1Request") == ErrorCode.SYNTAX
    assert top_level_code(h, b"<Other xmlns='urn:x'/>") == ErrorCode.SYNTAX
    assert top_level_code(h, b"\xff\xfe garbage") == ErrorCode.SYNTAX


def test_billion_laughs_refused() -> None:
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE X1Request [<!ENTITY a "lol">'
        + b"".join(
            f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9)
        )
        + b']><X1Request xmlns="http://uri.etsi.org/03221/X1/2017/10">&j;</X1Request>'
    )
    h = make_handler()
    assert top_level_code(h, lol) == ErrorCode.SYNTAX
    assert h.store.task_ids() == []


def test_xxe_refused_and_nothing_read(tmp_path: Path) -> None:
    """The external entity points at a FIFO and at a listening socket: had the parser tried
    to read either, the handler thread would block on the FIFO or the socket would see a
    connection. Neither happens, and the answer is a 1010 top-level error."""
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(1)
    lsock.settimeout(0.2)
    url = f"http://{HOST}:{lsock.getsockname()[1]}/x"
    h = make_handler()
    results: list[int] = []
    for system_id in (fifo.as_uri(), url):
        doc = (
            f'<?xml version="1.0"?><!DOCTYPE X1Request [<!ENTITY xxe SYSTEM "{system_id}">]>'
            '<X1Request xmlns="http://uri.etsi.org/03221/X1/2017/10">&xxe;</X1Request>'
        ).encode()
        t = threading.Thread(target=lambda d=doc: results.append(top_level_code(h, d)), daemon=True)
        t.start()
        t.join(timeout=5)
        assert not t.is_alive(), "the parser tried to read the external entity"
    with pytest.raises(TimeoutError):
        lsock.accept()
    lsock.close()
    assert results == [ErrorCode.SYNTAX, ErrorCode.SYNTAX]


async def test_mutual_tls_and_restart(tmp_path: Path) -> None:
    pki = make_lab_pki(tmp_path / "pki", server_name=NE, client_name=ADMF, hosts=(HOST,))
    other = make_lab_pki(tmp_path / "other", client_name=ADMF, hosts=(HOST,))
    db = tmp_path / "ne" / "x1.sqlite"
    store = X1Store(db)
    async with X1Server(X1Handler(store, ne_id=NE), host=HOST, ssl=pki.server_context()) as srv:
        good = X1Client(HOST, srv.port, ssl=pki.client_context(), admf_id=ADMF, ne_id=NE)
        assert (await good.ping()).ok == "AcknowledgedAndCompleted"
        await good.create_destination(dest())
        await good.activate_task(task())
        with pytest.raises(X1ErrorResponse) as ei:
            await good.activate_task(task())
        assert ei.value.code == ErrorCode.XID_EXISTS
        # no client certificate: the TLS handshake is refused, no X1 answer
        handled = srv.handler.requests
        no_cert = X1Client(HOST, srv.port, ssl=client_context(pki.ca), admf_id=ADMF, ne_id=NE)
        with pytest.raises((ssl.SSLError, ConnectionError, Exception)) as e2:
            await no_cert.ping()
        assert not isinstance(e2.value, X1ErrorResponse)
        # a certificate from an untrusted CA: refused too
        untrusted = X1Client(
            HOST,
            srv.port,
            ssl=client_context(pki.ca, other.client.cert, other.client.key),
            admf_id=ADMF,
            ne_id=NE,
        )
        with pytest.raises(Exception) as e3:
            await untrusted.ping()
        assert not isinstance(e3.value, X1ErrorResponse)
        assert srv.handler.requests == handled  # neither reached the X1 handler
        # trusted certificate, but the request claims another ADMF identity
        liar = X1Client(HOST, srv.port, ssl=pki.client_context(), admf_id="admf-evil", ne_id=NE)
        with pytest.raises(X1ErrorResponse) as e4:
            await liar.ping()
        assert e4.value.code == ErrorCode.ADMF_ID_CERT_MISMATCH
    store.close()
    assert (db.stat().st_mode & 0o777) == 0o600
    # NE restart: a new store on the same file, a new server: the task is still there
    events: list[X1Event] = []
    h2 = X1Handler(X1Store(db), ne_id=NE, listener=events.append)
    h2.replay()
    assert [type(e) for e in events] == [DestinationCreated, TaskActivated]
    async with X1Server(h2, host=HOST, ssl=pki.server_context()) as srv2:
        c = X1Client(HOST, srv2.port, ssl=pki.client_context(), admf_id=ADMF, ne_id=NE)
        got = await c.get_task_details(XID)
        assert got.task is not None and got.task.targets == task().targets
        assert got.task.extension is not None and got.task.extension.mitm == task().extension.mitm  # type: ignore[union-attr]
        await c.deactivate_task(XID)
        with pytest.raises(X1ErrorResponse) as e5:
            await c.deactivate_task(XID)
        assert e5.value.code == ErrorCode.XID_NOT_FOUND
    # the secrets survived in the NE's store (only there)
    t, _ = X1Store(db).get_task(XID) or (None, None)
    assert t is None  # deactivated
    await asyncio.sleep(0)


def test_mitm_authorisation_validity() -> None:
    m = MitmAuthorisation(reference="w", signalling=True, valid_until="2023-11-14T22:13:20Z")
    assert m.valid_at(NOW) and not m.valid_at(NOW + 1)
    assert MitmAuthorisation(reference="w").valid_at(NOW * 2)
    assert not MitmAuthorisation(reference="w", valid_until="tomorrow").valid_at(NOW)
