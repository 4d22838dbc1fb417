"""X1 (ETSI TS 103 221-1) data model: tasks, destinations, requests, responses, error codes.

Element names follow the X1 XSD (namespace ``http://uri.etsi.org/03221/X1/2017/10``) as seen in
public implementations (sipgate li-lib-x1x2x3's JAXB classes and examples). The subset
modelled is what an IMS NE needs: tasks with SIP/TEL/IMPU/IMPI/E.164 targets and
destinations reached by IP address and port. What X1 lacks for imslab (key delivery to the
LEMF, authorisation of man-in-the-middle functions) is :class:`ImslabTaskExtension`, carried in
``taskDetailsExtensions`` in the ``urn:imslab:li:x1:1`` namespace (docs/li-extensions.md).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

X1_NS = "http://uri.etsi.org/03221/X1/2017/10"
COMMON_NS = "http://uri.etsi.org/03280/common/2017/07"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
IMSLAB_NS = "urn:imslab:li:x1:1"
X1_VERSION = "v1.6.1"


class ErrorCode(IntEnum):
    """TS 103 221-1 error codes (values as in sipgate ErrorResponseException)."""

    GENERIC = 1000
    SYNTAX = 1010
    UNSUPPORTED_VERSION = 1020
    ADMF_ID_CERT_MISMATCH = 1030
    UNEXPECTED_ADMF_ID = 1040
    NE_ID_CERT_MISMATCH = 1050
    UNEXPECTED_NE_ID = 1060
    KEEPALIVE_NOT_SUPPORTED = 1070
    UNSUPPORTED_REQUEST = 1080
    XID_EXISTS = 2010
    XID_NOT_FOUND = 2020
    DID_EXISTS = 2030
    DID_NOT_FOUND = 2040
    ACTIVATE_FAILED = 3000
    MODIFY_FAILED = 3001
    UNSUPPORTED_TARGET_TYPE = 3010
    UNSUPPORTED_TARGET_COMBINATION = 3020
    MULTIPLE_DESTINATIONS_UNSUPPORTED = 3030
    INVALID_DELIVERY_COMBINATION = 3040
    UNSUPPORTED_SERVICE_TYPE = 3050
    DEACTIVATE_FAILED = 4000
    DEACTIVATE_ALL_FAILED = 5000
    CREATE_DESTINATION_FAILED = 6000
    MODIFY_DESTINATION_FAILED = 6001
    UNSUPPORTED_DELIVERY_ADDRESS = 6020
    REMOVE_DESTINATION_FAILED = 7000
    DESTINATION_IN_USE = 7010


class DeliveryType(StrEnum):
    X2_ONLY = "X2Only"
    X3_ONLY = "X3Only"
    X2_AND_X3 = "X2andX3"


class MessageType(StrEnum):
    """X1 request message types (the ``xsi:type`` is the name + ``Request``/``Response``)."""

    ACTIVATE_TASK = "ActivateTask"
    MODIFY_TASK = "ModifyTask"
    DEACTIVATE_TASK = "DeactivateTask"
    DEACTIVATE_ALL_TASKS = "DeactivateAllTasks"
    GET_TASK_DETAILS = "GetTaskDetails"
    CREATE_DESTINATION = "CreateDestination"
    MODIFY_DESTINATION = "ModifyDestination"
    REMOVE_DESTINATION = "RemoveDestination"
    REMOVE_ALL_DESTINATIONS = "RemoveAllDestinations"
    GET_DESTINATION_DETAILS = "GetDestinationDetails"
    GET_ALL_DETAILS = "GetAllDetails"
    LIST_ALL_DETAILS = "ListAllDetails"
    GET_NE_STATUS = "GetNEStatus"
    PING = "Ping"
    KEEPALIVE = "Keepalive"


# Target identifier element names of the XSD's TargetIdentifier choice. The NE supports the
# IMS ones; the others are well-formed but answered with 3010 (unsupported target type).
SUPPORTED_TARGET_KINDS = frozenset({"sipUri", "telUri", "impu", "impi", "e164Number"})
KNOWN_TARGET_KINDS = SUPPORTED_TARGET_KINDS | frozenset(
    {
        "imsi", "imei", "macAddress", "ipv4Address", "ipv6Address", "ipv4Cidr", "ipv6Cidr",
        "tcpPort", "tcpPortRange", "udpPort", "udpPortRange", "emailAddress",
        "internationalizedEmailAddress", "h323Uri", "nai", "radiusAttribute", "gtpuTunnelId",
        "gtpcTunnelId", "callPartyRole", "nonLocalIdentifier", "supiimsi", "supinai", "suci",
        "peiImei", "peiImeiCheckDigit", "peiImeisv", "gpsiMsisdn", "gpsiNai", "eui64",
        "serviceAccessIdentifier", "hashedIdentifier", "targetIdentifierExtension",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetIdentifier:
    kind: str  # XSD element name: sipUri, telUri, impu, impi, e164Number, ...
    value: str


class KeyDeliveryMode(StrEnum):
    """How keys reach the LEMF for this task (imslab extension)."""

    NONE = "none"  # do not report keys (X2 SIP still carries SDES as signalled)
    SIGNALLING = "signalling"  # keys only as they appear in the X2 SIP (SDES a=crypto)
    KEY_RECORDS = "keyRecords"  # explicit key records on X2 (li.x2x3.keyrecord)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDelivery:
    mode: KeyDeliveryMode = KeyDeliveryMode.KEY_RECORDS
    # Secrets the operator legitimately holds and lends this task's POI to open MIKEY
    # (a known PSK; a PEM private key for PKE case C). Stored by the NE; never echoed back.
    mikey_psk: bytes | None = field(default=None, repr=False)
    mikey_private_key_pem: str | None = field(default=None, repr=False)

    @property
    def has_secrets(self) -> bool:
        return self.mikey_psk is not None or self.mikey_private_key_pem is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class MitmAuthorisation:
    """Explicit authorisation for man-in-the-middle functions on this task's calls."""

    reference: str  # the warrant / authorisation reference
    signalling: bool = False  # may rewrite key management in SIP/SDP
    media: bool = False  # may terminate and re-originate SRTP
    valid_until: str | None = None  # xs:dateTime (UTC); None = as long as the task

    def valid_at(self, now: float) -> bool:
        """False once ``valid_until`` has passed (an unreadable date counts as expired)."""
        if self.valid_until is None:
            return True
        text = self.valid_until.strip().replace("Z", "+00:00")
        try:
            until = _dt.datetime.fromisoformat(text)
        except ValueError:
            return False
        if until.tzinfo is None:
            until = until.replace(tzinfo=_dt.UTC)
        return now <= until.timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImslabTaskExtension:
    key_delivery: KeyDelivery | None = None
    mitm: MitmAuthorisation | None = None

    def redacted(self) -> ImslabTaskExtension:
        """The extension without secrets (what GetTaskDetails returns)."""
        kd = self.key_delivery
        if kd is not None and kd.has_secrets:
            kd = KeyDelivery(mode=kd.mode)
        return ImslabTaskExtension(key_delivery=kd, mitm=self.mitm)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDetails:
    xid: uuid.UUID
    targets: tuple[TargetIdentifier, ...]
    delivery_type: DeliveryType
    dids: tuple[uuid.UUID, ...]
    correlation_id: str | None = None
    implicit_deactivation_allowed: bool | None = None
    extension: ImslabTaskExtension | None = None

    def redacted(self) -> TaskDetails:
        if self.extension is None:
            return self
        return TaskDetails(
            xid=self.xid,
            targets=self.targets,
            delivery_type=self.delivery_type,
            dids=self.dids,
            correlation_id=self.correlation_id,
            implicit_deactivation_allowed=self.implicit_deactivation_allowed,
            extension=self.extension.redacted(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatus:
    provisioning_status: str = "complete"  # awaitingProvisioning | failed | complete
    number_of_modifications: int = 0
    time_of_last_modification: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationDetails:
    did: uuid.UUID
    delivery_type: DeliveryType
    host: str
    port: int
    friendly_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class X1Header:
    admf_id: str
    ne_id: str
    timestamp: str
    version: str = X1_VERSION
    transaction_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True, kw_only=True)
class X1Request:
    """One ``x1RequestMessage``. Which optional field is set depends on ``message_type``."""

    message_type: MessageType
    header: X1Header
    task: TaskDetails | None = None  # ActivateTask, ModifyTask
    xid: uuid.UUID | None = None  # DeactivateTask, GetTaskDetails
    destination: DestinationDetails | None = None  # Create/ModifyDestination
    did: uuid.UUID | None = None  # RemoveDestination, GetDestinationDetails


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInformation:
    code: int
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class X1Response:
    """One ``x1ResponseMessage`` (``error`` set means an ErrorResponse)."""

    message_type: MessageType | str
    header: X1Header
    ok: str | None = None  # AcknowledgedAndCompleted
    error: ErrorInformation | None = None
    task: TaskDetails | None = None
    task_status: TaskStatus | None = None
    destination: DestinationDetails | None = None
    tasks: tuple[tuple[TaskDetails, TaskStatus], ...] = ()
    destinations: tuple[DestinationDetails, ...] = ()
    xids: tuple[uuid.UUID, ...] = ()
    dids: tuple[uuid.UUID, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TopLevelError:
    """``X1TopLevelErrorResponse``: the request document itself was refused."""

    header: X1Header
    error: ErrorInformation
