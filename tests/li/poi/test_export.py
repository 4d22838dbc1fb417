"""POI records -> X2/X3 PDUs: event attribute, event-only PDUs, key records, CC."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from li.keys import KeyRecord, KeySource, Sender
from li.poi.cc import CcRecord
from li.poi.export import IRI_EVENT_CONTENT_TYPE, cc_pdu, cc_sender, iri_pdus
from li.poi.iri import IriEvent, IriRecord, TargetDirection
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.framing import split_pdus
from li.x2x3.keyrecord import decode_key_record, is_key_record
from li.x2x3.pdu import (
    AttributeType,
    MatchedTargetIdentifier,
    PayloadFormat,
    PduType,
    SdpSessionDescription,
    decode_pdu,
    encode_pdu,
)
from li.x2x3.spool import Spool
from tests.li.poi.sipmsgs import KEY_A, call, sdp

XID = uuid.UUID(int=9)


def rec(event: IriEvent, **kw: object) -> IriRecord:
    base: dict[str, object] = dict(
        xid=XID,
        correlation_id=77,
        call_id="c1",
        event=event,
        direction=TargetDirection.FROM_TARGET,
        element="pcscf-a",
        time=1.0,
        matched="sip:alice@ims-a.test",
    )
    base.update(kw)
    return IriRecord(**base)  # type: ignore[arg-type]


def roundtrip(pdu: object) -> object:
    return decode_pdu(encode_pdu(pdu))  # type: ignore[arg-type]


def test_sip_message_with_event_attribute() -> None:
    invite = call("c1")[0][0]
    (pdu,) = iri_pdus(
        rec(IriEvent.BEGIN, sip=invite, src=("127.0.8.1", 5060), dst=("127.0.8.2", 5060))
    )
    got = roundtrip(pdu)
    assert got.pdu_type is PduType.X2 and got.payload_format == PayloadFormat.SIP_MESSAGE
    assert got.payload == invite and got.correlation_id == 77
    assert got.opaque(4) == b"imslab-iri-event=begin"
    assert got.find(MatchedTargetIdentifier).value == "sip:alice@ims-a.test"


def test_start_of_interception_and_cc_unavailable() -> None:
    state = sdp("127.0.8.10", 4000, KEY_A)
    (pdu,) = iri_pdus(
        rec(
            IriEvent.START_OF_INTERCEPTION,
            sdp_state=state,
            direction=TargetDirection.NOT_APPLICABLE,
        )
    )
    got = roundtrip(pdu)
    assert got.payload_format == PayloadFormat.PROPRIETARY
    assert got.opaque(AttributeType.MIME_CONTENT_TYPE) == IRI_EVENT_CONTENT_TYPE.encode()
    assert json.loads(got.payload)["event"] == "start-of-interception"
    assert got.find(SdpSessionDescription).value == state.decode()
    pdus = iri_pdus(rec(IriEvent.CC_UNAVAILABLE, reason="end-to-end PSK"))
    assert len(pdus) == 2 and is_key_record(pdus[1])
    unavailable = decode_key_record(roundtrip(pdus[1]))  # type: ignore[arg-type]
    assert unavailable is not None and unavailable.keys is None
    assert unavailable.reason == "end-to-end PSK"


def test_keys_and_cc() -> None:
    from ims.media.keys import SrtpKeys

    k = KeyRecord(
        call_id="c1",
        source=KeySource.SDES,
        sender=Sender.OFFERER,
        keys=SrtpKeys(
            suite="AES_CM_128_HMAC_SHA1_80", master_key=KEY_A[:16], master_salt=KEY_A[16:]
        ),
    )
    pdus = iri_pdus(rec(IriEvent.KEYS, keys=(k,)))
    assert len(pdus) == 1 and decode_key_record(roundtrip(pdus[0])) == k  # type: ignore[arg-type]
    cc = roundtrip(
        cc_pdu(
            CcRecord(
                xid=XID,
                correlation_id=77,
                call_id="c1",
                direction=TargetDirection.TO_TARGET,
                element="anchor-a",
                time=0.0,
                data=b"\x80" * 12,
                src=("127.0.8.20", 5000),
                dst=("127.0.8.10", 4000),
            )
        )
    )
    assert cc.pdu_type is PduType.X3 and cc.payload_format == PayloadFormat.RTP_PACKET
    assert int(cc.payload_direction) == 2


def test_cc_sender_writes_the_bytes_of_send_pdu_cc_pdu(tmp_path: Path) -> None:
    """The media path's shortcut (no Pdu object per packet) spools exactly what
    ``send_pdu(cc_pdu(r))`` spools: same header, addresses, sequence numbers, timestamp."""
    did = uuid.UUID(int=1)
    spooled = []
    for name, make in (("slow", None), ("fast", cc_sender)):
        exp = X2X3Exporter(tmp_path / name, nf_id="anchor-a", clock=lambda: 1234.5)
        exp.add_destination(DeliveryDestination(did=did, host="127.0.8.1", port=9))
        exp.bind_task(XID, [did])
        emit = make(exp) if make is not None else (lambda r, e=exp: e.send_pdu(cc_pdu(r)))
        for i in range(3):
            emit(
                CcRecord(
                    xid=XID,
                    correlation_id=77,
                    call_id="c1",
                    direction=TargetDirection.FROM_TARGET if i % 2 else TargetDirection.TO_TARGET,
                    element="anchor-a",
                    time=0.0,
                    data=bytes([0x80, 0, 0, i]) + bytes(20),
                    src=("127.0.8.20", 5000 + i),
                    dst=("127.0.8.10", 4000),
                )
            )
        exp._links[did].spool.close()  # flushed to disk
        spool = Spool(tmp_path / name / str(did))
        spooled.append(spool.read(0, 1 << 20))
        spool.close()
    assert spooled[0] == spooled[1]
    pdus = split_pdus(spooled[1])
    assert [p.sequence_number for p in pdus] == [0, 1, 2]
    assert [int(p.payload_direction) for p in pdus] == [2, 3, 2]


def test_anchor_poi_hook_fast_path_spools_what_the_record_path_spools(tmp_path: Path) -> None:
    """With ``cc_sender``'s emit the anchor CC-POI's hook skips the CcRecord (issue 19): the
    X3 bytes, directions (by target media address, and the access-leg fallback) and
    sequence numbers must be the record path's, and untriggered calls stay unreported."""
    from types import SimpleNamespace

    from li.poi.cc import AnchorCcPoi
    from li.poi.iri import CcTrigger
    from li.targets import Side

    did = uuid.UUID(int=1)
    target = ("127.0.8.10", 4000)
    events = [
        SimpleNamespace(
            call_id=call_id, direction=d, src=src, dst=dst, data=bytes([0x80, 0, 0, i]), rtcp=rtcp
        )
        for i, (call_id, d, src, dst, rtcp) in enumerate(
            [
                ("c1", "from_access", target, ("127.0.8.20", 5000), False),
                ("c1", "from_core", ("127.0.8.20", 5000), target, False),
                ("c1", "from_access", (target[0], target[1] + 1), ("127.0.8.20", 5001), True),
                ("c2", "from_core", ("127.0.8.21", 6000), ("127.0.8.11", 4100), False),
                ("c3", "from_access", ("127.0.8.12", 4200), ("127.0.8.22", 6100), False),
            ]
        )
    ]
    spooled = []
    for name in ("record", "fast"):
        exp = X2X3Exporter(tmp_path / name, nf_id="anchor-a", clock=lambda: 1234.5)
        exp.add_destination(DeliveryDestination(did=did, host="127.0.8.1", port=9))
        exp.bind_task(XID, [did])
        emit = cc_sender(exp) if name == "fast" else (lambda r, e=exp: e.send_pdu(cc_pdu(r)))
        poi = AnchorCcPoi(element="anchor-a", emit=emit)
        for call_id, cid, media in (("c1", 77, target), ("c2", 78, None)):
            poi.trigger(
                CcTrigger(
                    xid=XID,
                    correlation_id=cid,
                    call_id=call_id,
                    target_identities=frozenset({"sip:alice@ims-a.test"}),
                    target_side=Side.ORIGINATING,
                ),
                target_media=media,
            )
        hook = poi.hook(lambda: 1234.5)
        for ev in events:
            hook(ev)
        assert poi.stats == {"packets": 5, "reported": 4}
        exp._links[did].spool.close()
        spool = Spool(tmp_path / name / str(did))
        spooled.append(spool.read(0, 1 << 20))
        spool.close()
    assert spooled[0] == spooled[1]
    pdus = split_pdus(spooled[1])
    assert [p.correlation_id for p in pdus] == [77, 77, 77, 78]
    # FROM_TARGET by the target's media address (RTCP: port + 1), TO_TARGET otherwise; c2 has
    # no target media: the access leg is the target's, so its from_core packet is TO_TARGET
    f, t = int(TargetDirection.FROM_TARGET), int(TargetDirection.TO_TARGET)
    assert [int(p.payload_direction) for p in pdus] == [f, t, f, t]
