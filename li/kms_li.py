"""LI through the operator's MIKEY-SAKKE KMS: no MITM, no key-management break (issue 14).

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
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ims.errors import DecodeError
from ims.mikey.constants import DataType
from ims.mikey.message import decode_message
from li.keys import KeyRecord, KeySource, MikeyOpener, _records, key_mgmt_mikey, unavailable
from proxies.kms import KmsCore, KmsRefusedError
from proxies.kms_https import append_audit

REQUESTER = "li-iri-poi"


@dataclass(slots=True, kw_only=True)
class KmsLiOpener:
    """A :data:`li.keys.MikeyOpener`: MIKEY-SAKKE through the operator's KMS, the rest to
    ``fallback`` (the operator's other secrets)."""

    kms: KmsCore
    targets: Callable[[], Iterable[str]]  # the identities the NE's active tasks name
    audit_path: Path | None = None
    fallback: MikeyOpener | None = None
    clock: Callable[[], float] = time.time

    def __call__(self, call_id: str, offer: bytes, answer: bytes | None) -> Sequence[KeyRecord]:
        try:
            is_sakke = decode_message(offer).data_type is DataType.SAKKE
        except DecodeError:
            is_sakke = False
        if not is_sakke:
            if self.fallback is None:
                return [unavailable(call_id, "key management not understood")]
            return self.fallback(call_id, offer, answer)
        try:
            got = self.kms.recover(
                offer, requester=REQUESTER, targets=list(self.targets()), now=self.clock()
            )
        except KmsRefusedError as exc:
            return [unavailable(call_id, f"MIKEY-SAKKE: {self.kms.kms_uri} cannot recover: {exc}")]
        finally:
            records = self.kms.drain_audit()
            if self.audit_path is not None and records:
                append_audit(self.audit_path, records)
        return _records(call_id, got.result.keys, KeySource.MIKEY_SAKKE_KMS)


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
        if not is_sakke_offer(offer):
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
            return [unavailable(call_id, f"MIKEY-SAKKE recovery failed: {type(exc).__name__}")]
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


__all__ = ["REQUESTER", "DeferredKeyPolicy", "KmsLiOpener", "is_sakke_offer", "loop_deferrer"]
