"""HI2 IRI records for IMS (ETSI TS 101 671 clause 5/annex, 3GPP TS 33.108 clause 7): model
and the sans-I/O state that chooses each record's type.

One intercepted SIP message (or POI event) at the LEMF becomes one IRI record
(:class:`IriRecord`): the whole SIP message in ``sIPMessage`` with ``iMSevent
unfilteredSIPmessage`` (TS 33.108: the SIP message is sent without filtering), the lawful
interception identifier (LIID), the time stamp, the parties, and the correlation value that
ties the IRI to the call content (the X2/X3 Correlation ID, TS 103 221-2 clause 5.2, the same
value that names the call at the LEMF).

Record types (TS 101 671 clause 5.2.4 / TS 33.108 clause 7.x): a session's first record is an
IRI-BEGIN, its last an IRI-END (the 2xx to the BYE, the final non-2xx answer to an INVITE that
was never answered, or the answer to a CANCEL), the ones between IRI-CONTINUE; SIP outside an
INVITE dialog (REGISTER, OPTIONS, MESSAGE...) is IRI-REPORT. Each POI reports the call as its
network element saw it, so the state is kept per (call, POI): the element's identity travels
in ``communicationIdentifier.network-Identifier``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class RecordType(StrEnum):
    """The IRIContent alternatives (their ASN.1 names)."""

    BEGIN = "iRI-Begin-record"
    END = "iRI-End-record"
    CONTINUE = "iRI-Continue-record"
    REPORT = "iRI-Report-record"


class ImsEvent(StrEnum):
    """TS 33.108 IMSevent values imslab reports."""

    UNFILTERED_SIP_MESSAGE = "unfilteredSIPmessage"
    START_OF_INTERCEPTION = "startOfInterceptionForIMSEstablishedSession"
    CC_UNAVAILABLE = "ccUnavailable"


class CallState(StrEnum):
    """Intercepted-Call-State (TS 101 671)."""

    IDLE = "idle"
    SETUP = "setUpInProcess"
    CONNECTED = "connected"


class Direction(IntEnum):
    """intercepted-Call-Direct: who started the session, relative to the target."""

    NOT_AVAILABLE = 0
    ORIGINATING_TARGET = 1
    TERMINATING_TARGET = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class IriRecord:
    """One HI2 IRI record (see the module docstring); ``encode`` is :func:`li.hi2.codec.encode`."""

    record_type: RecordType
    liid: str
    time: float
    operator_id: str  # Network-Identifier.operator-Identifier, 1..5 octets
    element: str | None  # the reporting network element (dNS-Format), 1..25 octets
    communication_id: str  # communication-Identity-Number: up to 8 ASCII digits
    correlation_id: int  # the X2/X3 Correlation ID (u64): IRI-to-CC correlation
    direction: Direction = Direction.NOT_AVAILABLE
    call_state: CallState | None = None
    originating: str | None = None  # party URIs (sip: or tel:)
    terminating: str | None = None
    ims_event: ImsEvent | None = None
    sip: bytes | None = None


# SIP messages that end an INVITE session (the last IRI of a call is an IRI-END).
def _ends_session(status: int | None, cseq_method: str | None) -> bool:
    if status is None:
        return False
    if cseq_method == "BYE" and 200 <= status < 300:
        return True
    return cseq_method == "INVITE" and status >= 300


@dataclass(slots=True)
class SessionState:
    """The record-type state of one (call, POI) (see the module docstring)."""

    session: bool | None = None  # None until the first message: INVITE dialog or not
    records: int = 0
    ended: bool = False
    established: bool = False

    def next_type(
        self, method: str | None, status: int | None, cseq_method: str | None
    ) -> RecordType:
        if self.session is None:
            self.session = method == "INVITE" or cseq_method == "INVITE"
        self.records += 1
        if not self.session or self.ended:
            return RecordType.REPORT  # outside a dialog, or after the session's END
        if status is not None and cseq_method == "INVITE" and 200 <= status < 300:
            self.established = True
        if _ends_session(status, cseq_method) and not (
            cseq_method == "INVITE" and self.established and status is not None and status >= 300
        ):
            self.ended = True
            return RecordType.END if self.records > 1 else RecordType.REPORT
        return RecordType.BEGIN if self.records == 1 else RecordType.CONTINUE

    def call_state(self) -> CallState:
        if self.ended:
            return CallState.IDLE
        return CallState.CONNECTED if self.established else CallState.SETUP


@dataclass(slots=True)
class CallRecords:
    """Per call: the record-type state of each POI."""

    sessions: dict[str, SessionState] = field(default_factory=dict)

    def state(self, poi: str) -> SessionState:
        s = self.sessions.get(poi)
        if s is None:
            s = self.sessions[poi] = SessionState()
        return s
