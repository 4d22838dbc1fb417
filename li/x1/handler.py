"""The NE side of X1 as a sans-I/O request handler (ETSI TS 103 221-1 clause 6).

``X1Handler.handle(body, now=..., peer_admf=...)`` takes one HTTP request body and returns the
response body; it never touches sockets or the clock (``now`` is given). Checks, in order:

1. the document: well-formed, no DTD/entities (defusedxml), root ``X1Request`` — else an
   ``X1TopLevelErrorResponse`` with 1010 (nothing in the document is acted on);
2. per message: version major ``v1`` (1020), ``neIdentifier`` is this NE (1060),
   ``admfIdentifier`` matches the client certificate when the server supplies one (1030);
3. the operation's own rules: XID exists/does not exist (2010/2020), DID exists/does not
   exist (2030/2040), target identifier types this NE supports and values it can match
   (3010: a target the POI could not arm is refused here, before anything is stored, rather
   than acknowledged and then silently never matched), destinations' delivery types able to
   carry the task's (3040), a destination still used by a task (7010).

Bounded work: a document holds at most ``MAX_MESSAGES`` messages (else 1010, nothing acted
on), a target value at most ``MAX_TARGET_LENGTH`` characters, the NE at most ``MAX_TASKS``
tasks (3000) and ``MAX_DESTINATIONS`` destinations (6000), so a GetAllDetails answer is
bounded as well. :meth:`X1Handler.handle_collect`
returns the events instead of emitting them, so the server can run the handler off the event
loop and apply the events on it (li.x1.server).

Each accepted change is persisted (:class:`~li.x1.store.X1Store`) and reported to the
``listener`` as an :class:`X1Event`, which is how the NE's POIs and exporter follow X1.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ims.log import bound, get_logger
from li.targets import TargetError, TargetKind, normalize_target
from li.x1.model import (
    SUPPORTED_TARGET_KINDS,
    X1_VERSION,
    DeliveryType,
    DestinationDetails,
    ErrorCode,
    ErrorInformation,
    MessageType,
    TaskDetails,
    TaskStatus,
    TopLevelError,
    X1Header,
    X1Request,
    X1Response,
)
from li.x1.store import X1Store
from li.x1.xml import (
    X1DecodeError,
    decode_request_message,
    encode_response,
    encode_top_level_error,
    parse_request_document,
    x1_timestamp,
)

log = get_logger("li.x1.handler")


@dataclass(frozen=True, slots=True)
class TaskActivated:
    task: TaskDetails


@dataclass(frozen=True, slots=True)
class TaskModified:
    task: TaskDetails


@dataclass(frozen=True, slots=True)
class TaskDeactivated:
    xid: uuid.UUID


@dataclass(frozen=True, slots=True)
class DestinationCreated:
    destination: DestinationDetails


@dataclass(frozen=True, slots=True)
class DestinationModified:
    destination: DestinationDetails


@dataclass(frozen=True, slots=True)
class DestinationRemoved:
    did: uuid.UUID


X1Event = (
    TaskActivated
    | TaskModified
    | TaskDeactivated
    | DestinationCreated
    | DestinationModified
    | DestinationRemoved
)


class X1Failure(Exception):
    """Internal: an operation refused with an X1 error code."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


MAX_MESSAGES = 64
# what one NE stores (and so what GetAllDetails returns) is bounded too
MAX_TASKS = 10_000
MAX_DESTINATIONS = 1_000
MAX_TARGET_LENGTH = 1024
# a host part: a domain name, an IPv4 address, or an IPv6 reference (RFC 3261 §25.1 hostport)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?)$")
_IMPI = re.compile(r"^[!-~]+$")  # RFC 4282 NAI: printable, no spaces or controls


def _printable(value: str) -> bool:
    return bool(_IMPI.match(value))


def _address(version: int, network: bool) -> Callable[[str], bool]:
    def ok(value: str) -> bool:
        try:
            parsed = (
                ipaddress.ip_network(value, strict=False)
                if network
                else ipaddress.ip_address(value)
            )
        except ValueError:
            return False
        return parsed.version == version

    return ok


_ADDRESS_KINDS: dict[str, Callable[[str], bool]] = {
    "ipv4Address": _address(4, False),
    "ipv6Address": _address(6, False),
    "ipv4Cidr": _address(4, True),
    "ipv6Cidr": _address(6, True),
}


def check_target(kind: str, value: str) -> None:
    """Raise :class:`X1Failure` (3010) for a target value the IMS POI could not match."""
    if not value or len(value) > MAX_TARGET_LENGTH:
        raise X1Failure(
            ErrorCode.UNSUPPORTED_TARGET_TYPE,
            f"{kind} target of {len(value)} characters (1..{MAX_TARGET_LENGTH})",
        )
    if kind not in {k.value for k in TargetKind}:
        # kinds an NE opts into (a media tap: ipv4Address ...): checked by their syntax
        if _ADDRESS_KINDS.get(kind, _printable)(value):
            return
        raise X1Failure(ErrorCode.UNSUPPORTED_TARGET_TYPE, f"unusable {kind} target {value[:80]!r}")
    try:
        identities = normalize_target(kind, value)
    except TargetError as exc:
        raise X1Failure(ErrorCode.UNSUPPORTED_TARGET_TYPE, str(exc)) from exc
    for ident in identities:
        if ident.startswith("sip:") and not _HOST.match(ident[4:].rpartition("@")[2]):
            raise X1Failure(
                ErrorCode.UNSUPPORTED_TARGET_TYPE, f"{kind} target {value[:80]!r} has no host"
            )


_CARRIES = {
    DeliveryType.X2_ONLY: {"X2"},
    DeliveryType.X3_ONLY: {"X3"},
    DeliveryType.X2_AND_X3: {"X2", "X3"},
}


class X1Handler:
    def __init__(
        self,
        store: X1Store,
        *,
        ne_id: str,
        supported_targets: frozenset[str] = SUPPORTED_TARGET_KINDS,
        listener: Callable[[X1Event], None] | None = None,
        max_tasks: int = MAX_TASKS,
        max_destinations: int = MAX_DESTINATIONS,
    ) -> None:
        self.max_tasks = max_tasks
        self.max_destinations = max_destinations
        self.store = store
        self.ne_id = ne_id
        self.supported_targets = supported_targets
        self.listener = listener
        self.requests = 0
        self.errors = 0
        self._collect: list[X1Event] | None = None

    def _emit(self, event: X1Event) -> None:
        if self._collect is not None:
            self._collect.append(event)
        elif self.listener is not None:
            self.listener(event)

    def emit(self, events: list[X1Event]) -> None:
        """Report ``events`` (from :meth:`handle_collect`) to the listener, in order."""
        for event in events:
            if self.listener is not None:
                self.listener(event)

    def handle_collect(
        self, body: bytes, *, now: float, peer_admf: str | None = None
    ) -> tuple[bytes, list[X1Event]]:
        """:meth:`handle`, returning the accepted changes instead of reporting them: the
        caller runs this in a worker thread and :meth:`emit` s the events on its own."""
        self._collect = []
        try:
            return self.handle(body, now=now, peer_admf=peer_admf), self._collect
        finally:
            self._collect = None

    def overloaded(self, *, now: float, peer_admf: str | None, pending: int) -> bytes:
        """The answer when the NE has ``pending`` requests queued already (no work done)."""
        self.errors += 1
        return encode_top_level_error(
            TopLevelError(
                header=X1Header(
                    admf_id=peer_admf or "unknown", ne_id=self.ne_id, timestamp=x1_timestamp(now)
                ),
                error=ErrorInformation(
                    code=ErrorCode.GENERIC,
                    description=f"NE overloaded: {pending} requests pending; retry later",
                ),
            )
        )

    # -- entry point ---------------------------------------------------------------------
    def handle(self, body: bytes, *, now: float, peer_admf: str | None = None) -> bytes:
        """One request document in, one response document out."""
        self.requests += 1
        try:
            messages = parse_request_document(body)
            if len(messages) > MAX_MESSAGES:
                raise X1DecodeError(
                    f"request holds {len(messages)} messages; at most {MAX_MESSAGES} are accepted"
                )
        except X1DecodeError as exc:
            self.errors += 1
            log.warning("X1 request refused", error=str(exc), code=exc.code)
            return encode_top_level_error(
                TopLevelError(
                    header=X1Header(
                        admf_id=peer_admf or "unknown",
                        ne_id=self.ne_id,
                        timestamp=x1_timestamp(now),
                    ),
                    error=ErrorInformation(code=exc.code, description=str(exc)),
                )
            )
        responses = []
        for el in messages:
            try:
                req = decode_request_message(el)
            except X1DecodeError as exc:
                self.errors += 1
                responses.append(
                    X1Response(
                        message_type=el.get("{http://www.w3.org/2001/XMLSchema-instance}type", "")
                        .rsplit(":", 1)[-1]
                        .removesuffix("Request"),
                        header=X1Header(
                            admf_id=peer_admf or "unknown",
                            ne_id=self.ne_id,
                            timestamp=x1_timestamp(now),
                        ),
                        error=ErrorInformation(code=exc.code, description=str(exc)),
                    )
                )
                continue
            xid = req.task.xid if req.task is not None else req.xid
            with bound(xid=xid and str(xid), x1_transaction=str(req.header.transaction_id)):
                responses.append(self.handle_request(req, now=now, peer_admf=peer_admf))
        return encode_response(responses)

    def handle_request(self, req: X1Request, *, now: float, peer_admf: str | None) -> X1Response:
        header = X1Header(
            admf_id=req.header.admf_id,
            ne_id=self.ne_id,
            timestamp=x1_timestamp(now),
            version=X1_VERSION,
            transaction_id=req.header.transaction_id,
        )
        try:
            if not req.header.version.startswith("v1."):
                raise X1Failure(ErrorCode.UNSUPPORTED_VERSION, f"version {req.header.version}")
            if req.header.ne_id != self.ne_id:
                raise X1Failure(
                    ErrorCode.UNEXPECTED_NE_ID,
                    f"this NE is {self.ne_id!r}, not {req.header.ne_id!r}",
                )
            if peer_admf is not None and req.header.admf_id != peer_admf:
                raise X1Failure(
                    ErrorCode.ADMF_ID_CERT_MISMATCH,
                    "ADMF identifier does not match certificate details",
                )
            return self._dispatch(req, header, now)
        except X1Failure as exc:
            self.errors += 1
            log.info(
                "X1 request failed",
                request=req.message_type.value,
                code=exc.code,
                error=exc.description,
            )
            return X1Response(
                message_type=req.message_type,
                header=header,
                error=ErrorInformation(code=exc.code, description=exc.description),
            )

    # -- operations ----------------------------------------------------------------------
    def _check_task(self, task: TaskDetails) -> None:
        bad = [t.kind for t in task.targets if t.kind not in self.supported_targets]
        if bad:
            raise X1Failure(
                ErrorCode.UNSUPPORTED_TARGET_TYPE, f"unsupported target identifier type(s): {bad}"
            )
        for t in task.targets:
            check_target(t.kind, t.value)
        if not task.dids:
            raise X1Failure(ErrorCode.INVALID_DELIVERY_COMBINATION, "task has no destination")
        carried: set[str] = set()
        for did in task.dids:
            dest = self.store.get_destination(did)
            if dest is None:
                raise X1Failure(ErrorCode.DID_NOT_FOUND, f"destination {did} does not exist")
            carried |= _CARRIES[dest.delivery_type]
        if not _CARRIES[task.delivery_type] <= carried:
            raise X1Failure(
                ErrorCode.INVALID_DELIVERY_COMBINATION,
                f"destinations cannot carry {task.delivery_type.value}",
            )

    def _dispatch(self, req: X1Request, header: X1Header, now: float) -> X1Response:
        ok = X1Response(message_type=req.message_type, header=header, ok="AcknowledgedAndCompleted")
        mt = MessageType
        stamp = x1_timestamp(now)
        if req.message_type is mt.ACTIVATE_TASK:
            assert req.task is not None
            if self.store.get_task(req.task.xid) is not None:
                raise X1Failure(ErrorCode.XID_EXISTS, f"XID {req.task.xid} already exists")
            if self.store.count("tasks") >= self.max_tasks:
                raise X1Failure(
                    ErrorCode.ACTIVATE_FAILED,
                    f"this NE holds its maximum of {self.max_tasks} tasks",
                )
            self._check_task(req.task)
            self.store.put_task(req.task, modified_at=stamp, modification=False)
            self._emit(TaskActivated(req.task))
            return ok
        if req.message_type is mt.MODIFY_TASK:
            assert req.task is not None
            if self.store.get_task(req.task.xid) is None:
                raise X1Failure(ErrorCode.XID_NOT_FOUND, f"XID {req.task.xid} does not exist")
            self._check_task(req.task)
            self.store.put_task(req.task, modified_at=stamp, modification=True)
            self._emit(TaskModified(req.task))
            return ok
        if req.message_type is mt.DEACTIVATE_TASK:
            assert req.xid is not None
            if not self.store.delete_task(req.xid):
                raise X1Failure(ErrorCode.XID_NOT_FOUND, f"XID {req.xid} does not exist")
            self._emit(TaskDeactivated(req.xid))
            return ok
        if req.message_type is mt.DEACTIVATE_ALL_TASKS:
            for xid in self.store.delete_all_tasks():
                self._emit(TaskDeactivated(xid))
            return ok
        if req.message_type is mt.GET_TASK_DETAILS:
            assert req.xid is not None
            got = self.store.get_task(req.xid)
            if got is None:
                raise X1Failure(ErrorCode.XID_NOT_FOUND, f"XID {req.xid} does not exist")
            return X1Response(
                message_type=req.message_type,
                header=header,
                task=got[0].redacted(),
                task_status=got[1],
            )
        if req.message_type is mt.CREATE_DESTINATION:
            assert req.destination is not None
            if self.store.get_destination(req.destination.did) is not None:
                raise X1Failure(ErrorCode.DID_EXISTS, f"DID {req.destination.did} already exists")
            if self.store.count("destinations") >= self.max_destinations:
                raise X1Failure(
                    ErrorCode.CREATE_DESTINATION_FAILED,
                    f"this NE holds its maximum of {self.max_destinations} destinations",
                )
            self.store.put_destination(req.destination)
            self._emit(DestinationCreated(req.destination))
            return ok
        if req.message_type is mt.MODIFY_DESTINATION:
            assert req.destination is not None
            if self.store.get_destination(req.destination.did) is None:
                raise X1Failure(
                    ErrorCode.DID_NOT_FOUND, f"DID {req.destination.did} does not exist"
                )
            self.store.put_destination(req.destination)
            self._emit(DestinationModified(req.destination))
            return ok
        if req.message_type is mt.REMOVE_DESTINATION:
            assert req.did is not None
            if self.store.get_destination(req.did) is None:
                raise X1Failure(ErrorCode.DID_NOT_FOUND, f"DID {req.did} does not exist")
            users = self.store.tasks_using(req.did)
            if users:
                raise X1Failure(
                    ErrorCode.DESTINATION_IN_USE, f"destination used by {len(users)} task(s)"
                )
            self.store.delete_destination(req.did)
            self._emit(DestinationRemoved(req.did))
            return ok
        if req.message_type is mt.REMOVE_ALL_DESTINATIONS:
            if self.store.task_ids():
                raise X1Failure(ErrorCode.DESTINATION_IN_USE, "destinations are used by tasks")
            for did in self.store.destination_ids():
                self.store.delete_destination(did)
                self._emit(DestinationRemoved(did))
            return ok
        if req.message_type is mt.GET_DESTINATION_DETAILS:
            assert req.did is not None
            dest = self.store.get_destination(req.did)
            if dest is None:
                raise X1Failure(ErrorCode.DID_NOT_FOUND, f"DID {req.did} does not exist")
            return X1Response(message_type=req.message_type, header=header, destination=dest)
        if req.message_type is mt.GET_ALL_DETAILS:
            return X1Response(
                message_type=req.message_type,
                header=header,
                tasks=tuple((t.redacted(), s) for t, s in self.store.tasks()),
                destinations=tuple(self.store.destinations()),
            )
        if req.message_type is mt.LIST_ALL_DETAILS:
            return X1Response(
                message_type=req.message_type,
                header=header,
                xids=tuple(self.store.task_ids()),
                dids=tuple(self.store.destination_ids()),
            )
        if req.message_type in (mt.PING, mt.KEEPALIVE, mt.GET_NE_STATUS):
            return ok
        raise X1Failure(ErrorCode.UNSUPPORTED_REQUEST, f"{req.message_type.value} not supported")

    # -- state for NE start-up -----------------------------------------------------------
    def replay(self) -> None:
        """Emit DestinationCreated and TaskActivated for the stored state (NE restart)."""
        for d in self.store.destinations():
            self._emit(DestinationCreated(d))
        for t, _ in self.store.tasks():
            self._emit(TaskActivated(t))


__all__ = [
    "DestinationCreated",
    "DestinationModified",
    "DestinationRemoved",
    "TaskActivated",
    "TaskDeactivated",
    "TaskModified",
    "TaskStatus",
    "X1Event",
    "X1Handler",
]
