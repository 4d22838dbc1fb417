"""POI records as X2/X3 PDUs (TS 103 221-2), with the IRI event on the wire.

* A SIP message: X2, payload format 9 (SIP), direction relative to the target, address TLVs,
  the matched target identifier (TLV 17), and the event (begin/continue/end/report) in a
  proprietary conditional attribute (type 4, ``imslab-iri-event=<event>``): TS 103 221-2 has
  no field for it, receivers skip TLVs they do not know (tshark 4.0 does).
* An event without a SIP message (start of interception on an active session, content
  unavailable): X2, payload format 4 (proprietary) with MIME type
  ``application/vnd.imslab.iri-event+json`` (TLV 19) and the SDP state in TLV 22, the JSON
  body carrying event, Call-ID, matched identity, reason. In the spirit of TS 33.128's
  ``startOfInterceptionForActiveIMSSession`` and ``iMSCCUnavailable``.
* Key records: the LI-interfaces extension (``li.x2x3.keyrecord``), one PDU per record; a
  content-unavailable event also goes as a key record without keys, so the LEMF's call
  summary states the reason.
* CC: X3, payload format 8 (RTP), as intercepted (SRTP stays encrypted); content the network
  decrypted itself (an e2ae anchor, :mod:`proxies.e2ae`) carries
  :data:`li.x2x3.pdu.DECRYPTED_CONTENT`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import lru_cache

from li.keys import unavailable
from li.poi.cc import CcRecord
from li.poi.iri import IriEvent, IriRecord
from li.x2x3.exporter import SpoolFullError, X2X3Exporter
from li.x2x3.keyrecord import key_record_pdu
from li.x2x3.pdu import (
    DECRYPTED_CONTENT,
    IRI_EVENT_CONTENT_TYPE,
    Attribute,
    MatchedTargetIdentifier,
    OpaqueAttribute,
    PayloadFormat,
    Pdu,
    SdpSessionDescription,
    address_attributes,
    mime_content_type,
    x2_pdu,
    x3_pdu,
)


@lru_cache(maxsize=4096)
def _addresses(src: tuple[str, int], dst: tuple[str, int]) -> tuple[Attribute, ...]:
    """Address/port TLVs of a flow: parsed once per flow, not once per packet."""
    return address_attributes(src, dst)


EVENT_ATTRIBUTE = 4  # TS 103 221-2 conditional attribute "Proprietary"


def event_attribute(event: IriEvent) -> OpaqueAttribute:
    return OpaqueAttribute(type=EVENT_ATTRIBUTE, value=f"imslab-iri-event={event.value}".encode())


def iri_pdus(r: IriRecord) -> list[Pdu]:
    """The X2 PDUs of one IRI record (possibly none for a bare ``keys`` event)."""
    out: list[Pdu] = []
    target = MatchedTargetIdentifier(value=r.matched)
    if r.sip:
        out.append(
            x2_pdu(
                xid=r.xid,
                correlation_id=r.correlation_id,
                payload=r.sip,
                direction=int(r.direction),
                attributes=(
                    *(_addresses(tuple(r.src), tuple(r.dst)) if r.src and r.dst else ()),
                    target,
                    event_attribute(r.event),
                ),
            )
        )
    elif r.event in (IriEvent.START_OF_INTERCEPTION, IriEvent.CC_UNAVAILABLE):
        body = {
            "imslab_iri_event": 1,
            "event": r.event.value,
            "call_id": r.call_id,
            "element": r.element,
            "matched": r.matched,
            "reason": r.reason,
        }
        attrs = [mime_content_type(IRI_EVENT_CONTENT_TYPE), target, event_attribute(r.event)]
        if r.sdp_state:
            attrs.append(SdpSessionDescription(value=r.sdp_state.decode("utf-8", "replace")))
        out.append(
            x2_pdu(
                xid=r.xid,
                correlation_id=r.correlation_id,
                payload=json.dumps(body, separators=(",", ":")).encode(),
                direction=int(r.direction),
                payload_format=PayloadFormat.PROPRIETARY,
                attributes=tuple(attrs),
            )
        )
    for k in r.keys:
        out.append(key_record_pdu(r.xid, r.correlation_id, k))
    if r.event is IriEvent.CC_UNAVAILABLE:
        out.append(key_record_pdu(r.xid, r.correlation_id, unavailable(r.call_id, r.reason)))
    return out


class _CcSender:
    """``emit`` for a CC-POI (one :class:`CcRecord` at a time) with the fast path beside it:
    :meth:`x3` sends one packet as X3 from its fields, without a record object.

    With ``batch`` the packets of one event-loop iteration are gathered and handed to
    :meth:`X2X3Exporter.send_x3_many` once, at the end of the iteration (``call_soon``): one
    spool append and one link wake-up per iteration instead of per packet. The same PDUs in
    the same order, sequence-numbered when spooled. A full spool then cannot raise into the
    media path that reported the packets: the exporter alarms (``ExporterAlarm``, the log,
    ``refused_pdus``) and :attr:`refused` counts them here. Without a running loop each
    packet is sent at once."""

    __slots__ = ("flush", "refused", "x3")

    def __init__(self, exporter: X2X3Exporter, *, batch: bool = False) -> None:
        send_x3 = exporter.send_x3
        self.refused = 0

        def send_now(
            xid: uuid.UUID,
            correlation_id: int,
            direction: int,
            data: bytes,
            src: tuple[str, int],
            dst: tuple[str, int],
            clear: bool = False,
        ) -> None:
            attrs = _addresses(src, dst)
            send_x3(
                xid=xid,
                correlation_id=correlation_id,
                payload=data,
                direction=direction,
                attributes=(*attrs, DECRYPTED_CONTENT) if clear else attrs,
            )

        pending: list[tuple[uuid.UUID, int, int, bytes, tuple[Attribute, ...]]] = []
        send_many = exporter.send_x3_many

        def flush() -> None:
            """Spool what was gathered (also callable at will, e.g. before a drain)."""
            if not pending:
                return
            items = pending.copy()
            pending.clear()
            try:
                send_many(items)
            except SpoolFullError:
                self.refused += len(items)  # alarmed by the exporter

        def gather(
            xid: uuid.UUID,
            correlation_id: int,
            direction: int,
            data: bytes,
            src: tuple[str, int],
            dst: tuple[str, int],
            clear: bool = False,
        ) -> None:
            if not pending:
                try:
                    asyncio.get_running_loop().call_soon(flush)
                except RuntimeError:  # no loop: nothing would flush a batch
                    send_now(xid, correlation_id, direction, data, src, dst, clear)
                    return
            attrs = _addresses(src, dst)
            # content the network decrypted keeps its mark in a batch too (e2ae, TS 33.328)
            pending.append(
                (
                    xid,
                    correlation_id,
                    direction,
                    data,
                    (*attrs, DECRYPTED_CONTENT) if clear else attrs,
                )
            )

        self.x3 = gather if batch else send_now
        self.flush = flush

    def __call__(self, r: CcRecord) -> None:
        src, dst = r.src, r.dst  # tuples, or lists when a record was rebuilt from JSON
        self.x3(
            r.xid,
            r.correlation_id,
            int(r.direction),
            r.data,
            (str(src[0]), int(src[1])),
            (str(dst[0]), int(dst[1])),
            r.clear,
        )


def cc_sender(exporter: X2X3Exporter, *, batch: bool = False) -> _CcSender:
    """An ``emit`` for a CC-POI that hands each record to ``exporter`` as X3 without building
    a :class:`Pdu` first (the same bytes as ``exporter.send_pdu(cc_pdu(r))``, for the media
    path's per-packet cost). Raises what ``send_x3`` raises (``SpoolFullError``...); with
    ``batch`` the packets of a loop iteration go together (see :class:`_CcSender`).

    Its ``x3`` attribute (``(xid, correlation_id, direction, data, src, dst)``) is what
    :meth:`li.poi.cc.AnchorCcPoi.hook` calls when present: no :class:`CcRecord` per packet."""
    return _CcSender(exporter, batch=batch)


def cc_pdu(r: CcRecord) -> Pdu:
    attrs = _addresses(tuple(r.src), tuple(r.dst))
    return x3_pdu(
        xid=r.xid,
        correlation_id=r.correlation_id,
        payload=r.data,
        direction=int(r.direction),
        attributes=(*attrs, DECRYPTED_CONTENT) if r.clear else attrs,
    )
