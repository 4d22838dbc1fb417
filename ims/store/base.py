"""The storage interface (see :mod:`ims.store`)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ims.errors import ImsError
from ims.store.clock import wall_clock

T = TypeVar("T")

#: largest namespace / key, in characters: keys come from network input (an AOR, a nonce)
MAX_KEY = 1024


class StoreError(ImsError):
    """The store could not be reached, or refused an operation.

    An element that cannot reach its state answers ``503 Service Unavailable`` (RFC 3261
    §21.5.4: "temporarily unable to process the request due to a temporary overloading or
    maintenance"): ``status_hint`` is what the proxies' error path answers with, and a
    dispatcher in front fails the request over to another instance on it.
    """

    status_hint = 503


@dataclass(frozen=True, slots=True)
class Write:
    """What an update function decides: the new value (None deletes the record) and when it
    expires (None: never)."""

    value: bytes | None
    expires_at: float | None = None


#: an update function's answer for "leave the record as it is"
keep = Write(b"", None)


def check_key(ns: str, key: str) -> None:
    if not ns or ":" in ns or len(ns) > 64:
        raise StoreError(f"bad namespace {ns!r}")
    if len(key) > MAX_KEY:
        raise StoreError("key too long")


class Store(abc.ABC):
    """A namespaced key -> bytes map with expiry and atomic read-modify-write."""

    #: the URL this store was opened from (with no secrets in it), for logs and status
    url: str = ""

    @staticmethod
    def now() -> float:
        """The clock stored records live on: the wall clock (``time.time()``), because records
        are shared between processes and hosts and outlive restarts, where a monotonic clock
        has no common origin. An element on a store runs its proxy core on this clock
        (``Element(clock=store.now)``), so the ``now`` of its routing decisions is comparable
        with every expiry in the store."""
        return wall_clock()

    @abc.abstractmethod
    def get(self, ns: str, key: str, now: float) -> bytes | None:
        """The record's value, or None when it is absent or expired at ``now``."""

    @abc.abstractmethod
    def put(self, ns: str, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        """Write a record unconditionally."""

    @abc.abstractmethod
    def delete(self, ns: str, key: str) -> bool:
        """Remove a record; True if there was one (expired or not)."""

    @abc.abstractmethod
    def update(
        self, ns: str, key: str, now: float, fn: Callable[[bytes | None], tuple[Write, T]]
    ) -> T:
        """Atomically: read the record (None if absent or expired at ``now``), call ``fn`` on
        it, and apply the :class:`Write` it returns (``keep`` changes nothing); return ``fn``'s
        second value. ``fn`` may be called more than once (a retried optimistic transaction),
        so it must be pure; if it raises, nothing is written and the exception propagates."""

    @abc.abstractmethod
    def scan(self, ns: str, now: float) -> Iterator[tuple[str, bytes]]:
        """Every record of ``ns`` unexpired at ``now``, in key order."""

    @abc.abstractmethod
    def purge(self, ns: str, now: float) -> int:
        """Delete the records of ``ns`` expired at ``now``; return how many."""

    @abc.abstractmethod
    def clear(self, ns: str) -> int:
        """Delete every record of ``ns``; return how many."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (the data stays)."""
