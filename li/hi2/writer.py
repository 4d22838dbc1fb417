"""The LEMF's HI2 output for one call: ``hi2.ber`` and ``hi2.pcap``.

* ``hi2.ber`` — the IRI records as delivered over HI2: BER ``IRIsContent`` values, one after
  the other (a BER stream needs no other framing: each value carries its length).
* ``hi2.pcap`` — the same records, one per packet, in Wireshark's "exported PDU" link type
  (LINKTYPE_WIRESHARK_UPPER_PDU, 252) naming the ``HI2Operations`` dissector, so
  ``wireshark hi2.pcap`` / ``tshark -r hi2.pcap -V`` decode them with no option at all.

Both files are 0600 and appended to (a restarted LEMF continues them). The record-type state
lives in :mod:`li.hi2.records`; the encoding in :mod:`li.hi2.codec`.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO

from ims.errors import EncodeError
from ims.log import get_logger
from li.hi2 import codec
from li.hi2.records import CallRecords, CallState, Direction, ImsEvent, IriRecord, RecordType
from li.lemf.output import open_private
from li.pcap import PcapWriter

log = get_logger("li.hi2.writer")

LINKTYPE_WIRESHARK_UPPER_PDU = 252
_EXP_PDU_TAG_DISSECTOR_NAME = 12
_EXP_PDU_TAG_END_OF_OPT = 0
DISSECTOR = b"HI2Operations"


def exported_pdu_header(dissector: bytes = DISSECTOR) -> bytes:
    """The tags of an exported PDU naming its dissector (values padded to 4 octets)."""
    pad = -len(dissector) % 4
    return (
        struct.pack(">HH", _EXP_PDU_TAG_DISSECTOR_NAME, len(dissector) + pad)
        + dissector
        + b"\0" * pad
        + struct.pack(">HH", _EXP_PDU_TAG_END_OF_OPT, 0)
    )


def default_liid(xid: str) -> str:
    """A LIID when the task has none: the XID's first 25 hex digits (TS 101 671 recommends
    ``a-z A-Z 0-9 - _ .`` and at most 25 octets)."""
    return xid.replace("-", "")[:25]


class Hi2Writer:
    """HI2 records of one call (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        xid: str,
        correlation_id: int,
        liid: str | None = None,
        operator_id: str = "lab",
    ) -> None:
        self.dir = directory
        self.liid = liid or default_liid(xid)
        self.operator_id = operator_id
        self.correlation_id = correlation_id
        self.communication_id = f"{correlation_id % 10**8:08d}"
        self.calls = CallRecords()
        self.direction = Direction.NOT_AVAILABLE
        self.records = 0
        self.failures = 0
        self._ber: IO[bytes] | None = None
        self._pcap: PcapWriter | None = None
        self._header = exported_pdu_header()

    def add_sip(
        self,
        message: bytes,
        ts: float,
        poi: str,
        *,
        method: str | None,
        status: int | None,
        cseq_method: str | None,
        from_target: bool | None,
        parties: dict[str, str],
    ) -> None:
        """One intercepted SIP message."""
        if (
            method == "INVITE"
            and self.direction is Direction.NOT_AVAILABLE
            and from_target is not None
        ):
            self.direction = (
                Direction.ORIGINATING_TARGET if from_target else Direction.TERMINATING_TARGET
            )
        state = self.calls.state(poi)
        rtype = state.next_type(method, status, cseq_method)
        self._write(
            rtype,
            ts,
            poi,
            parties,
            ims_event=ImsEvent.UNFILTERED_SIP_MESSAGE,
            sip=message,
            call_state=state.call_state() if state.session else None,
        )

    def add_event(self, event: str, ts: float, poi: str, parties: dict[str, str]) -> None:
        """A POI event without a SIP message (start of interception, CC unavailable)."""
        state = self.calls.state(poi)
        if event == "start-of-interception":
            state.session, state.established = True, True
            state.records += 1
            rtype = RecordType.BEGIN if state.records == 1 else RecordType.CONTINUE
            ims = ImsEvent.START_OF_INTERCEPTION
        elif event == "cc-unavailable":
            active = bool(state.session) and not state.ended and state.records > 0
            rtype = RecordType.CONTINUE if active else RecordType.REPORT
            ims = ImsEvent.CC_UNAVAILABLE
        else:
            return
        self._write(rtype, ts, poi, parties, ims_event=ims, sip=None, call_state=state.call_state())

    def _write(
        self,
        rtype: RecordType,
        ts: float,
        poi: str,
        parties: dict[str, str],
        *,
        ims_event: ImsEvent,
        sip: bytes | None,
        call_state: CallState | None,
    ) -> None:
        rec = IriRecord(
            record_type=rtype,
            liid=self.liid,
            time=ts,
            operator_id=self.operator_id,
            element=poi[:25] or None,
            communication_id=self.communication_id,
            correlation_id=self.correlation_id,
            direction=self.direction,
            call_state=call_state,
            originating=parties.get("from") or None,
            terminating=parties.get("to") or None,
            ims_event=ims_event,
            sip=sip,
        )
        try:
            data = codec.encode(rec)
        except EncodeError as exc:
            self.failures += 1
            log.warning("HI2 record not written", error=str(exc))
            return
        if self._ber is None:
            self._ber = open_private(self.dir / "hi2.ber", "ab")
        if self._pcap is None:
            self._pcap = PcapWriter(
                self.dir / "hi2.pcap", linktype=LINKTYPE_WIRESHARK_UPPER_PDU, append=True
            )
        self._ber.write(data)
        self._pcap.write(self._header + data, ts)
        self.records += 1

    def summary(self) -> dict[str, object]:
        return {"liid": self.liid, "records": self.records, "not_encodable": self.failures}

    def flush(self) -> None:
        if self._ber is not None:
            self._ber.flush()
        if self._pcap is not None:
            self._pcap.flush()

    def close(self) -> None:
        if self._ber is not None:
            self._ber.close()
            self._ber = None
        if self._pcap is not None:
            self._pcap.close()
            self._pcap = None
