"""X1 XML codec: requests and responses to and from bytes (TS 103 221-1 clause 6, the XSD).

Parsing uses defusedxml with DTDs, entity declarations and external references forbidden:
a document with a ``<!DOCTYPE`` (the carrier of XXE and of billion-laughs) is refused when
the parser meets the declaration, before any entity is defined, expanded or fetched. Every
refusal is an :class:`X1DecodeError` carrying X1 error code 1010 (syntax/schema error), which
the handler turns into an ``X1TopLevelErrorResponse``.

Encoding builds an ElementTree in the X1 namespace (elements qualified, as in the ETSI
examples), with ``xsi:type`` naming the message type.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from ims.errors import DecodeError
from li.x1.model import (
    COMMON_NS,
    IMSLAB_NS,
    X1_NS,
    XSI_NS,
    DeliveryType,
    DestinationDetails,
    ErrorCode,
    ErrorInformation,
    ImslabTaskExtension,
    KeyDelivery,
    KeyDeliveryMode,
    MessageType,
    MitmAuthorisation,
    TargetIdentifier,
    TaskDetails,
    TaskStatus,
    TopLevelError,
    X1Header,
    X1Request,
    X1Response,
)

MAX_DOCUMENT = 1 << 20

ET.register_namespace("", X1_NS)
ET.register_namespace("xsi", XSI_NS)
ET.register_namespace("etsi280", COMMON_NS)
ET.register_namespace("imslab", IMSLAB_NS)


class X1DecodeError(DecodeError):
    """An X1 document that cannot be accepted; ``code`` is the X1 error code to answer."""

    def __init__(self, message: str, *, code: int = ErrorCode.SYNTAX) -> None:
        super().__init__(message)
        self.code = code


def x1_timestamp(now: float) -> str:
    """xs:dateTime in UTC with microseconds, as in the ETSI examples."""
    return _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- helpers ----------------------------------------------------------------------------------


def _q(name: str, ns: str = X1_NS) -> str:
    return f"{{{ns}}}{name}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _sub(parent: ET.Element, name: str, text: str | None = None, ns: str = X1_NS) -> ET.Element:
    el = ET.SubElement(parent, _q(name, ns))
    if text is not None:
        el.text = text
    return el


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element, name: str, *, required: bool = True) -> str | None:
    c = _child(el, name)
    if c is None or c.text is None or not c.text.strip():
        if required:
            raise X1DecodeError(f"missing <{name}> in <{_local(el.tag)}>")
        return None
    return c.text.strip()


def _req_text(el: ET.Element, name: str) -> str:
    value = _text(el, name)
    assert value is not None
    return value


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise X1DecodeError(f"{what} is not a UUID: {value!r}") from exc


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise X1DecodeError(f"not an xs:boolean: {value!r}")


def _xsi_type(el: ET.Element) -> str:
    t = el.get(_q("type", XSI_NS))
    if t is None:
        raise X1DecodeError(f"<{_local(el.tag)}> without xsi:type")
    return t.rsplit(":", 1)[-1]


def _parse(data: bytes, root_names: Iterable[str]) -> ET.Element:
    if len(data) > MAX_DOCUMENT:
        raise X1DecodeError(f"X1 document larger than {MAX_DOCUMENT} bytes")
    try:
        root: ET.Element = DET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise X1DecodeError(f"forbidden XML construct: {type(exc).__name__}") from exc
    except ET.ParseError as exc:
        raise X1DecodeError(f"not well-formed XML: {exc}") from exc
    except (LookupError, ValueError) as exc:
        # an encoding declaration naming no codec Python has (LookupError from expat's
        # unknown-encoding handler), or one that cannot decode the bytes: a syntax error too
        raise X1DecodeError(f"unusable XML encoding: {exc}") from exc
    names = {_q(n) for n in root_names}
    if root.tag not in names:
        raise X1DecodeError(f"unexpected root element {root.tag}")
    return root


# -- header -----------------------------------------------------------------------------------


def _put_header(el: ET.Element, h: X1Header) -> None:
    _sub(el, "admfIdentifier", h.admf_id)
    _sub(el, "neIdentifier", h.ne_id)
    _sub(el, "messageTimestamp", h.timestamp)
    _sub(el, "version", h.version)
    _sub(el, "x1TransactionId", str(h.transaction_id))


def _get_header(el: ET.Element) -> X1Header:
    return X1Header(
        admf_id=_req_text(el, "admfIdentifier"),
        ne_id=_req_text(el, "neIdentifier"),
        timestamp=_req_text(el, "messageTimestamp"),
        version=_req_text(el, "version"),
        transaction_id=_uuid(_req_text(el, "x1TransactionId"), "x1TransactionId"),
    )


# -- task details -----------------------------------------------------------------------------


def _put_extension(parent: ET.Element, ext: ImslabTaskExtension) -> None:
    wrap = _sub(parent, "taskDetailsExtensions")
    root = _sub(wrap, "imslabTaskExtension", ns=IMSLAB_NS)
    if ext.key_delivery is not None:
        kd = ext.key_delivery
        k = _sub(root, "keyDelivery", ns=IMSLAB_NS)
        _sub(k, "mode", kd.mode.value, ns=IMSLAB_NS)
        if kd.mikey_psk is not None:
            _sub(k, "mikeyPsk", base64.b64encode(kd.mikey_psk).decode(), ns=IMSLAB_NS)
        if kd.mikey_private_key_pem is not None:
            _sub(k, "mikeyPrivateKeyPem", kd.mikey_private_key_pem, ns=IMSLAB_NS)
    if ext.mitm is not None:
        m = _sub(root, "mitmAuthorisation", ns=IMSLAB_NS)
        _sub(m, "authorisationReference", ext.mitm.reference, ns=IMSLAB_NS)
        _sub(m, "signalling", "true" if ext.mitm.signalling else "false", ns=IMSLAB_NS)
        _sub(m, "media", "true" if ext.mitm.media else "false", ns=IMSLAB_NS)
        if ext.mitm.valid_until is not None:
            _sub(m, "validUntil", ext.mitm.valid_until, ns=IMSLAB_NS)


def _get_extension(wrap: ET.Element) -> ImslabTaskExtension | None:
    root = next((c for c in wrap if c.tag == _q("imslabTaskExtension", IMSLAB_NS)), None)
    if root is None:
        return None  # another party's extension: ignored, as the XSD's extension point allows
    kd = mitm = None
    if (k := _child(root, "keyDelivery")) is not None:
        mode_s = _text(k, "mode", required=False) or KeyDeliveryMode.KEY_RECORDS.value
        try:
            mode = KeyDeliveryMode(mode_s)
        except ValueError as exc:
            raise X1DecodeError(f"unknown imslab keyDelivery mode {mode_s!r}") from exc
        psk_s = _text(k, "mikeyPsk", required=False)
        try:
            psk = None if psk_s is None else base64.b64decode(psk_s, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise X1DecodeError("imslab mikeyPsk is not base64") from exc
        kd = KeyDelivery(
            mode=mode,
            mikey_psk=psk,
            mikey_private_key_pem=_text(k, "mikeyPrivateKeyPem", required=False),
        )
    if (m := _child(root, "mitmAuthorisation")) is not None:
        mitm = MitmAuthorisation(
            reference=_req_text(m, "authorisationReference"),
            signalling=bool(_bool(_text(m, "signalling", required=False) or "false")),
            media=bool(_bool(_text(m, "media", required=False) or "false")),
            valid_until=_text(m, "validUntil", required=False),
        )
    return ImslabTaskExtension(key_delivery=kd, mitm=mitm)


def _put_task(parent: ET.Element, t: TaskDetails) -> None:
    el = _sub(parent, "taskDetails")
    _sub(el, "xId", str(t.xid))
    tis = _sub(el, "targetIdentifiers")
    for ti in t.targets:
        _sub(_sub(tis, "targetIdentifier"), ti.kind, ti.value)
    _sub(el, "deliveryType", t.delivery_type.value)
    dids = _sub(el, "listOfDIDs")
    for d in t.dids:
        _sub(dids, "dId", str(d))
    if t.correlation_id is not None:
        _sub(el, "correlationID", t.correlation_id)
    if t.implicit_deactivation_allowed is not None:
        _sub(el, "implicitDeactivationAllowed", str(t.implicit_deactivation_allowed).lower())
    if t.extension is not None:
        _put_extension(el, t.extension)


def _delivery_type(value: str) -> DeliveryType:
    try:
        return DeliveryType(value)
    except ValueError as exc:
        raise X1DecodeError(f"unknown deliveryType {value!r}") from exc


def _get_task(el: ET.Element) -> TaskDetails:
    targets: list[TargetIdentifier] = []
    tis = _child(el, "targetIdentifiers")
    if tis is None:
        raise X1DecodeError("missing <targetIdentifiers>")
    for ti in _children(tis, "targetIdentifier"):
        kids = list(ti)
        if len(kids) != 1:
            raise X1DecodeError("a targetIdentifier holds exactly one identifier")
        kind = _local(kids[0].tag)
        targets.append(TargetIdentifier(kind=kind, value=(kids[0].text or "").strip()))
    if not targets:
        raise X1DecodeError("no targetIdentifier")
    dids_el = _child(el, "listOfDIDs")
    dids = tuple(
        _uuid((d.text or "").strip(), "dId")
        for d in (_children(dids_el, "dId") if dids_el is not None else [])
    )
    ext_el = _child(el, "taskDetailsExtensions")
    return TaskDetails(
        xid=_uuid(_req_text(el, "xId"), "xId"),
        targets=tuple(targets),
        delivery_type=_delivery_type(_req_text(el, "deliveryType")),
        dids=dids,
        correlation_id=_text(el, "correlationID", required=False),
        implicit_deactivation_allowed=_bool(
            _text(el, "implicitDeactivationAllowed", required=False)
        ),
        extension=None if ext_el is None else _get_extension(ext_el),
    )


def encode_task_details(task: TaskDetails) -> bytes:
    """A standalone ``<taskDetails>`` document (the NE's store keeps tasks this way)."""
    holder = ET.Element(_q("holder"))
    _put_task(holder, task)
    return bytes(ET.tostring(holder[0], encoding="utf-8"))


def decode_task_details(data: bytes) -> TaskDetails:
    return _get_task(_parse(data, ["taskDetails"]))


# -- destinations -----------------------------------------------------------------------------


def _put_destination(parent: ET.Element, d: DestinationDetails) -> None:
    el = _sub(parent, "destinationDetails")
    _sub(el, "dId", str(d.did))
    if d.friendly_name is not None:
        _sub(el, "friendlyName", d.friendly_name)
    _sub(el, "deliveryType", d.delivery_type.value)
    addr = _sub(_sub(el, "deliveryAddress"), "ipAddressAndPort")
    a = _sub(addr, "address")
    _sub(a, "IPv6Address" if ":" in d.host else "IPv4Address", d.host, ns=COMMON_NS)
    p = _sub(addr, "port")
    _sub(p, "TCPPort", str(d.port), ns=COMMON_NS)


def _get_destination(el: ET.Element) -> DestinationDetails:
    da = _child(el, "deliveryAddress")
    if da is None:
        raise X1DecodeError("missing <deliveryAddress>")
    ipp = _child(da, "ipAddressAndPort")
    if ipp is None:
        raise X1DecodeError(
            "only ipAddressAndPort delivery addresses are supported",
            code=ErrorCode.UNSUPPORTED_DELIVERY_ADDRESS,
        )
    a, p = _child(ipp, "address"), _child(ipp, "port")
    if a is None or p is None or len(a) != 1 or len(p) != 1:
        raise X1DecodeError("ipAddressAndPort needs one address and one port")
    host = (a[0].text or "").strip()
    try:
        port = int((p[0].text or "").strip())
    except ValueError as exc:
        raise X1DecodeError("port is not a number") from exc
    if not 0 < port < 65536:
        raise X1DecodeError(f"port {port} out of range")
    return DestinationDetails(
        did=_uuid(_req_text(el, "dId"), "dId"),
        delivery_type=_delivery_type(_req_text(el, "deliveryType")),
        host=host,
        port=port,
        friendly_name=_text(el, "friendlyName", required=False),
    )


def encode_destination_details(dest: DestinationDetails) -> bytes:
    holder = ET.Element(_q("holder"))
    _put_destination(holder, dest)
    return bytes(ET.tostring(holder[0], encoding="utf-8"))


def decode_destination_details(data: bytes) -> DestinationDetails:
    return _get_destination(_parse(data, ["destinationDetails"]))


# -- requests ---------------------------------------------------------------------------------


def encode_request(requests: X1Request | Iterable[X1Request]) -> bytes:
    reqs = [requests] if isinstance(requests, X1Request) else list(requests)
    root = ET.Element(_q("X1Request"))
    for r in reqs:
        el = _sub(root, "x1RequestMessage")
        el.set(_q("type", XSI_NS), f"{r.message_type.value}Request")
        _put_header(el, r.header)
        if r.task is not None:
            _put_task(el, r.task)
        if r.xid is not None:
            _sub(el, "xId", str(r.xid))
        if r.destination is not None:
            _put_destination(el, r.destination)
        if r.did is not None:
            _sub(el, "dId", str(r.did))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _message_type(el: ET.Element, suffix: str) -> MessageType:
    t = _xsi_type(el)
    if not t.endswith(suffix):
        raise X1DecodeError(f"xsi:type {t!r} is not a {suffix}")
    try:
        return MessageType(t.removesuffix(suffix))
    except ValueError as exc:
        raise X1DecodeError(f"unsupported request {t}", code=ErrorCode.UNSUPPORTED_REQUEST) from exc


def decode_request_message(el: ET.Element) -> X1Request:
    header = _get_header(el)
    mtype = _message_type(el, "Request")
    task = dest = None
    xid = did = None
    if mtype in (MessageType.ACTIVATE_TASK, MessageType.MODIFY_TASK):
        t = _child(el, "taskDetails")
        if t is None:
            raise X1DecodeError(f"{mtype.value}Request without taskDetails")
        task = _get_task(t)
    elif mtype in (MessageType.DEACTIVATE_TASK, MessageType.GET_TASK_DETAILS):
        xid = _uuid(_req_text(el, "xId"), "xId")
    elif mtype in (MessageType.CREATE_DESTINATION, MessageType.MODIFY_DESTINATION):
        d = _child(el, "destinationDetails")
        if d is None:
            raise X1DecodeError(f"{mtype.value}Request without destinationDetails")
        dest = _get_destination(d)
    elif mtype in (MessageType.REMOVE_DESTINATION, MessageType.GET_DESTINATION_DETAILS):
        did = _uuid(_req_text(el, "dId"), "dId")
    return X1Request(
        message_type=mtype, header=header, task=task, xid=xid, destination=dest, did=did
    )


def parse_request_document(data: bytes) -> list[ET.Element]:
    """Parse (safely) and return the ``x1RequestMessage`` elements, undecoded."""
    root = _parse(data, ["X1Request"])
    msgs = _children(root, "x1RequestMessage")
    if not msgs:
        raise X1DecodeError("X1Request without x1RequestMessage")
    return msgs


def decode_request(data: bytes) -> list[X1Request]:
    return [decode_request_message(m) for m in parse_request_document(data)]


# -- responses --------------------------------------------------------------------------------


def _put_status(parent: ET.Element, s: TaskStatus) -> None:
    el = _sub(parent, "taskStatus")
    _sub(el, "provisioningStatus", s.provisioning_status)
    _sub(el, "numberOfModifications", str(s.number_of_modifications))
    if s.time_of_last_modification is not None:
        _sub(el, "timeOfLastModification", s.time_of_last_modification)


def _get_status(el: ET.Element) -> TaskStatus:
    n = _text(el, "numberOfModifications", required=False)
    return TaskStatus(
        provisioning_status=_text(el, "provisioningStatus", required=False) or "complete",
        number_of_modifications=int(n) if n and n.isdigit() else 0,
        time_of_last_modification=_text(el, "timeOfLastModification", required=False),
    )


def encode_response(responses: X1Response | Iterable[X1Response]) -> bytes:
    resps = [responses] if isinstance(responses, X1Response) else list(responses)
    root = ET.Element(_q("X1Response"))
    for r in resps:
        el = _sub(root, "x1ResponseMessage")
        mtype = r.message_type.value if isinstance(r.message_type, MessageType) else r.message_type
        el.set(_q("type", XSI_NS), "ErrorResponse" if r.error else f"{mtype}Response")
        _put_header(el, r.header)
        if r.error is not None:
            _sub(el, "requestMessageType", mtype)
            ei = _sub(el, "errorInformation")
            _sub(ei, "errorCode", str(r.error.code))
            _sub(ei, "errorDescription", r.error.description)
            continue
        if r.task is not None:
            trd = _sub(el, "taskResponseDetails")
            _put_task(trd, r.task)
            if r.task_status is not None:
                _put_status(trd, r.task_status)
        if r.destination is not None:
            drd = _sub(el, "destinationResponseDetails")
            _put_destination(drd, r.destination)
        if r.tasks or mtype == MessageType.GET_ALL_DETAILS:
            lt = _sub(el, "listOfTaskResponseDetails")
            for task, status in r.tasks:
                trd = _sub(lt, "taskResponseDetails")
                _put_task(trd, task)
                _put_status(trd, status)
        if r.destinations or mtype == MessageType.GET_ALL_DETAILS:
            ld = _sub(el, "listOfDestinationResponseDetails")
            for d in r.destinations:
                _put_destination(_sub(ld, "destinationResponseDetails"), d)
        if mtype == MessageType.LIST_ALL_DETAILS:
            lx = _sub(el, "listOfXIDs")
            for x in r.xids:
                _sub(lx, "xId", str(x))
            ldid = _sub(el, "listOfDIDs")
            for did in r.dids:
                _sub(ldid, "dId", str(did))
        if r.ok is not None:
            _sub(el, "oK", r.ok)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def encode_top_level_error(err: TopLevelError) -> bytes:
    """``X1TopLevelErrorResponse``: per the XSD only admfIdentifier, neIdentifier,
    messageTimestamp and version; the error code and reason go in an XML comment (schema
    neutral) for the human reading it. A receiver treats any top-level error as 1010."""
    root = ET.Element(_q("X1TopLevelErrorResponse"))
    _sub(root, "admfIdentifier", err.header.admf_id)
    _sub(root, "neIdentifier", err.header.ne_id)
    _sub(root, "messageTimestamp", err.header.timestamp)
    _sub(root, "version", err.header.version)
    text = f" X1 error {err.error.code}: {err.error.description} "
    root.append(ET.Comment(text.replace("--", "- -")))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def decode_response(data: bytes) -> list[X1Response] | TopLevelError:
    """Decode an ``X1Response`` (list of messages) or an ``X1TopLevelErrorResponse``."""
    root = _parse(data, ["X1Response", "X1TopLevelErrorResponse"])
    if _local(root.tag) == "X1TopLevelErrorResponse":
        ei = _child(root, "errorInformation")  # not in the XSD; read if a peer adds it
        return TopLevelError(
            header=X1Header(
                admf_id=_text(root, "admfIdentifier", required=False) or "",
                ne_id=_text(root, "neIdentifier", required=False) or "",
                timestamp=_text(root, "messageTimestamp", required=False) or "",
                version=_text(root, "version", required=False) or "",
            ),
            error=ErrorInformation(
                code=int(_req_text(ei, "errorCode")) if ei is not None else ErrorCode.SYNTAX,
                description=(_text(ei, "errorDescription", required=False) or "")
                if ei is not None
                else "the NE refused the request document (top-level error)",
            ),
        )
    out: list[X1Response] = []
    for el in _children(root, "x1ResponseMessage"):
        header = _get_header(el)
        t = _xsi_type(el)
        if t == "ErrorResponse":
            ei = _child(el, "errorInformation")
            if ei is None:
                raise X1DecodeError("ErrorResponse without errorInformation")
            out.append(
                X1Response(
                    message_type=_text(el, "requestMessageType", required=False) or "",
                    header=header,
                    error=ErrorInformation(
                        code=int(_req_text(ei, "errorCode")),
                        description=_text(ei, "errorDescription", required=False) or "",
                    ),
                )
            )
            continue
        name = t.removesuffix("Response")
        try:
            mtype: MessageType | str = MessageType(name)
        except ValueError:
            mtype = name
        task = status = dest = None
        if (trd := _child(el, "taskResponseDetails")) is not None:
            td = _child(trd, "taskDetails")
            task = _get_task(td) if td is not None else None
            ts = _child(trd, "taskStatus")
            status = _get_status(ts) if ts is not None else None
        if (drd := _child(el, "destinationResponseDetails")) is not None:
            dd = _child(drd, "destinationDetails")
            dest = _get_destination(dd) if dd is not None else None
        tasks: list[tuple[TaskDetails, TaskStatus]] = []
        if (lt := _child(el, "listOfTaskResponseDetails")) is not None:
            for trd in _children(lt, "taskResponseDetails"):
                td, ts = _child(trd, "taskDetails"), _child(trd, "taskStatus")
                if td is not None:
                    tasks.append(
                        (_get_task(td), _get_status(ts) if ts is not None else TaskStatus())
                    )
        dests: list[DestinationDetails] = []
        if (ld := _child(el, "listOfDestinationResponseDetails")) is not None:
            for drd in _children(ld, "destinationResponseDetails"):
                dd = _child(drd, "destinationDetails")
                if dd is not None:
                    dests.append(_get_destination(dd))
        xids = tuple(
            _uuid((x.text or "").strip(), "xId")
            for x in _children(_child(el, "listOfXIDs") or ET.Element("x"), "xId")
        )
        dids = tuple(
            _uuid((x.text or "").strip(), "dId")
            for x in _children(_child(el, "listOfDIDs") or ET.Element("x"), "dId")
        )
        out.append(
            X1Response(
                message_type=mtype,
                header=header,
                ok=_text(el, "oK", required=False),
                task=task,
                task_status=status,
                destination=dest,
                tasks=tuple(tasks),
                destinations=tuple(dests),
                xids=xids,
                dids=dids,
            )
        )
    return out
