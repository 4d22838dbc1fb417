"""LI through the operator's KMS (MIKEY-SAKKE, MIKEY-TICKET): no MITM, no key-management break.

The IRI-POI already sees the SDP offer; for a MIKEY-SAKKE I_MESSAGE (RFC 6509, data type 26)
it hands the message to its operator's KMS LI function (:meth:`proxies.kms.KmsCore.recover`),
which derives the Responder's RSK for the key period of T (RFC 6508 §6.1.1) and runs the
Receiver's processing (§6.2.2, TEST included): the SSV is the TGK (RFC 6509 §3.1), from which
the SRTP keys of both directions follow (RFC 3830 §4.1.3). The keys go to the LEMF as
ordinary :class:`li.keys.KeyRecord` s in X2; the LEMF decrypts the X3 copy.

Per-call derivation, never the target's RSK: an RSK opens every call of the month, beyond
the warrant. Only the **Responder's** KMS can decapsulate (the SSV is encrypted under the
Responder's KMS Public Key, RFC 6508 §6.2.1): a target calling another operator's subscriber
is not recoverable by the target's operator through the KMS -- the KMS refuses, and the
record says so. The KMS checks an active task names a party of the call and audits every
recovery (RFC 6508 §7).

MIKEY-TICKET (RFC 6043): the offer's TRANSFER_INIT goes to the KMS, which derives the call's
keys from the ticket -- if it issued it (the TPK is its own: the *Initiator's* KMS) or resolved
it for one of its subscribers (the *Responder's* KMS, §10) -- and checks the V MAC with MPKi
first. So with MIKEY-TICKET both operators of a call between two KMSs can deliver; a ticket
neither issued nor resolved there cannot be opened (the record says so).

The running lab reaches its operator's KMS element over HTTPS with mutual TLS
(``POST /v1/li/recover``, :class:`ims.mikey.aio_kms.KmsClient`, the LI function's certificate
``li.<domain>``): :class:`KmsLiOpener` with ``client``. The matrix runner's rows keep the KMS
cores in process (``kms``/``tickets``). Either way the call runs on the worker thread of
:class:`DeferredKeyPolicy`, off the element's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ims.errors import DecodeError
from ims.media.keys import SrtpKeys
from ims.mikey.aio_kms import KmsClient, KmsUnreachableError
from ims.mikey.constants import DataType
from ims.mikey.message import decode_message
from li.keys import (
    KeyRecord,
    KeySource,
    MikeyOpener,
    Sender,
    _records,
    key_mgmt_mikey,
    unavailable,
)
from proxies.kms import KmsCore, KmsRefusedError
from proxies.kms_https import append_audit
from proxies.kms_ticket import TicketService

#: the MIKEY data types the KMS LI function opens, and the source their records name
KMS_TYPES = {
    DataType.SAKKE: ("MIKEY-SAKKE", KeySource.MIKEY_SAKKE_KMS),
    DataType.TRANSFER_INIT: ("MIKEY-TICKET", KeySource.MIKEY_TICKET_KMS),
}

REQUESTER = "li-iri-poi"


@dataclass(slots=True, kw_only=True)
class KmsLiOpener:
    """A :data:`li.keys.MikeyOpener`: MIKEY-SAKKE and MIKEY-TICKET through the operator's KMS
    (``client``: its element over HTTPS; else the in-process ``kms``/``tickets`` cores), the
    rest to ``fallback`` (the operator's other secrets)."""

    targets: Callable[[], Iterable[str]]  # the identities the NE's active tasks name
    kms: KmsCore | None = None
    tickets: TicketService | None = None
    client: KmsClient | None = None
    kms_name: str = "the operator's KMS"
    audit_path: Path | None = None
    fallback: MikeyOpener | None = None
    clock: Callable[[], float] = time.time

    def __call__(self, call_id: str, offer: bytes, answer: bytes | None) -> Sequence[KeyRecord]:
        try:
            kind = KMS_TYPES.get(decode_message(offer).data_type)
        except DecodeError:
            kind = None
        if kind is None:
            if self.fallback is None:
                return [unavailable(call_id, "key management not understood")]
            return self.fallback(call_id, offer, answer)
        method, source = kind
        if self.client is not None:
            return self._remote(call_id, offer, method, source)
        name = self.kms.kms_uri if self.kms is not None else self.kms_name
        try:
            if source is KeySource.MIKEY_TICKET_KMS:
                if self.tickets is None:
                    raise KmsRefusedError("no MIKEY-TICKET service", 404)
                name = self.tickets.kms_id
                keys = self.tickets.recover(
                    offer, requester=REQUESTER, targets=list(self.targets()), now=self.clock()
                ).keys
            else:
                if self.kms is None:
                    raise KmsRefusedError("no MIKEY-SAKKE service", 404)
                got = self.kms.recover(
                    offer, requester=REQUESTER, targets=list(self.targets()), now=self.clock()
                )
                keys = got.result.keys
        except KmsRefusedError as exc:
            return [unavailable(call_id, f"{method}: {name} cannot recover: {exc}")]
        finally:
            records = [*(self.kms.drain_audit() if self.kms else [])]
            records += self.tickets.drain_audit() if self.tickets else []
            if self.audit_path is not None and records:
                append_audit(self.audit_path, records)
        return _records(call_id, keys, source)

    def _remote(
        self, call_id: str, offer: bytes, method: str, source: KeySource
    ) -> Sequence[KeyRecord]:
        """``POST /v1/li/recover`` at the KMS element (it audits; mutual TLS names us)."""
        assert self.client is not None
        body = json.dumps(
            {
                "i_message": base64.b64encode(offer).decode("ascii"),
                "targets": sorted(set(self.targets())),
                "responder": None,
            }
        ).encode()
        where = f"(at {self.client.host}:{self.client.port})"
        try:
            status, doc = self.client.request("POST", "/v1/li/recover", body)
        except KmsUnreachableError as exc:
            return [unavailable(call_id, f"{method}: {self.kms_name} unreachable: {exc}")]
        if status != 200:
            why = doc.get("error", f"HTTP {status}")
            return [
                unavailable(call_id, f"{method}: {self.kms_name} cannot recover: {why} {where}")
            ]
        try:
            return [_record(call_id, k, source) for k in doc["keys"]]
        except (KeyError, TypeError, ValueError) as exc:
            return [unavailable(call_id, f"{method}: {self.kms_name} answered badly: {exc!r}")]


def _record(call_id: str, k: dict[str, object], source: KeySource) -> KeyRecord:
    """One crypto session's keys from the KMS's answer (its own authenticated TLS peer)."""
    return KeyRecord(
        call_id=call_id,
        source=source,
        sender=Sender.OFFERER if k["sender"] == "initiator" else Sender.ANSWERER,
        keys=SrtpKeys(
            suite=str(k["suite"]),
            master_key=bytes.fromhex(str(k["master_key"])),
            master_salt=bytes.fromhex(str(k["master_salt"])),
        ),
    )


def is_kms_offer(offer_sdp: bytes) -> bool:
    """Whether an SDP offer carries what the KMS LI function opens (RFC 6509 §4.1 data type 26,
    RFC 6043 §6.1 TRANSFER_INIT)."""
    try:
        data = key_mgmt_mikey(offer_sdp)
        return data is not None and decode_message(data).data_type in KMS_TYPES
    except (DecodeError, ValueError):
        return False


def is_sakke_offer(offer_sdp: bytes) -> bool:
    """Whether an SDP offer carries a MIKEY-SAKKE I_MESSAGE (RFC 6509 §4.1: data type 26)."""
    try:
        data = key_mgmt_mikey(offer_sdp)
        return data is not None and decode_message(data).data_type is DataType.SAKKE
    except (DecodeError, ValueError):
        return False


KeyPolicy = Callable[[str, bytes, bytes | None], Sequence[KeyRecord]]


class DeferredKeyPolicy:
    """The operator's key policy, with MIKEY-SAKKE recoveries (one pairing each, ~0.3 s of
    pure Python) run on one worker thread: the element's event loop keeps forwarding SIP and
    media meanwhile, and the IRI-POI delivers the records when they are ready (its ``defer``).
    Bounded: beyond ``max_pending`` queued recoveries the call is reported unavailable."""

    # one worker per process, shared by every POI: the recoveries are CPU-bound (and hold the
    # GIL), more threads would only take more time from the event loop
    _pool: ThreadPoolExecutor | None = None
    _lock = threading.Lock()
    _pending = 0

    def __init__(self, policy: KeyPolicy, *, max_pending: int = 16) -> None:
        self.policy = policy
        self.max_pending = max_pending

    def __call__(
        self, call_id: str, offer: bytes, answer: bytes | None
    ) -> Sequence[KeyRecord] | Future[Sequence[KeyRecord]]:
        if not is_kms_offer(offer):
            return self.policy(call_id, offer, answer)
        cls = DeferredKeyPolicy
        with cls._lock:
            if cls._pending >= self.max_pending:
                return [unavailable(call_id, "MIKEY-SAKKE: the KMS LI function is saturated")]
            cls._pending += 1
            if cls._pool is None:
                cls._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kms-li")
            pool = cls._pool
        return pool.submit(self._run, call_id, offer, answer)

    def _run(self, call_id: str, offer: bytes, answer: bytes | None) -> Sequence[KeyRecord]:
        try:
            return self.policy(call_id, offer, answer)
        except Exception as exc:  # a worker never loses the call: it reports why
            return [unavailable(call_id, f"KMS recovery failed: {type(exc).__name__}")]
        finally:
            with DeferredKeyPolicy._lock:
                DeferredKeyPolicy._pending -= 1


def loop_deferrer(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], None]], None]:
    """``IriPoi.defer`` for an element on ``loop``: a completion re-enters the loop's thread;
    one that finishes after the loop closed (the element stopped) has nobody to deliver to."""

    def defer(fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # "Event loop is closed"
            loop.call_soon_threadsafe(fn)

    return defer


__all__ = [
    "REQUESTER",
    "DeferredKeyPolicy",
    "KmsLiOpener",
    "is_kms_offer",
    "is_sakke_offer",
    "loop_deferrer",
]
