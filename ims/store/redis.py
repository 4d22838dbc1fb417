"""The shared backend: a Redis server (Debian's ``redis-server``), through redis-py.

Each record is one Redis string ``<prefix><ns>:<key>`` holding an 8-byte big-endian IEEE double
(``expires_at``, +inf for never) followed by the value. Reads compare that time with the
caller's ``now``, so expiry means exactly what it means on SQLite; ``PEXPIREAT`` on the same
instant lets the server itself reclaim the memory. :meth:`RedisStore.update` is an optimistic
transaction (``WATCH`` the key, read, ``MULTI``/``EXEC`` the write, retry when another client
wrote the key in between), so concurrent instances never lose each other's updates.

Restart semantics match SQLite's when the server persists (the lab and the tests start it with
``appendonly yes``): a restarted element, or a restarted server, reads every unexpired record.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

import redis

from ims.store.base import Store, StoreError, Write, check_key, keep

T = TypeVar("T")

_HEAD = struct.Struct("!d")
_SCAN_BATCH = 500
#: optimistic attempts of one update before giving up (each lost one means another writer won)
MAX_ATTEMPTS = 64


def _pack(value: bytes, expires_at: float | None) -> bytes:
    return _HEAD.pack(math.inf if expires_at is None else expires_at) + value


def _unpack(raw: bytes | None, now: float) -> bytes | None:
    if raw is None or len(raw) < _HEAD.size:
        return None
    (expires_at,) = _HEAD.unpack_from(raw)
    return None if expires_at <= now else raw[_HEAD.size :]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore(Store):
    def __init__(self, url: str, *, prefix: str = "imslab:") -> None:
        self.url = url
        self.prefix = prefix
        try:
            self.r = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
            self.r.ping()
        except redis.RedisError as exc:
            raise StoreError(f"cannot reach redis at {url}: {exc}") from exc

    def _k(self, ns: str, key: str) -> str:
        check_key(ns, key)
        return f"{self.prefix}{ns}:{key}"

    @staticmethod
    def _pxat(expires_at: float | None) -> int | None:
        """The server-side expiry (ms since the epoch) that reclaims the record's memory."""
        if expires_at is None or not math.isfinite(expires_at):
            return None
        return max(1, math.ceil(expires_at * 1000))

    def get(self, ns: str, key: str, now: float) -> bytes | None:
        k = self._k(ns, key)
        try:
            raw = self.r.get(k)
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc
        return _unpack(raw, now)  # type: ignore[arg-type]

    def put(self, ns: str, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        k = self._k(ns, key)
        try:
            self.r.set(k, _pack(value, expires_at), pxat=self._pxat(expires_at))
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc

    def delete(self, ns: str, key: str) -> bool:
        k = self._k(ns, key)
        try:
            return bool(self.r.delete(k))
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc

    def update(
        self, ns: str, key: str, now: float, fn: Callable[[bytes | None], tuple[Write, T]]
    ) -> T:
        k = self._k(ns, key)
        try:
            for _ in range(MAX_ATTEMPTS):
                with self.r.pipeline() as pipe:
                    try:
                        pipe.watch(k)  # type: ignore[no-untyped-call]
                        current = _unpack(pipe.get(k), now)  # type: ignore[arg-type]
                        write, result = fn(current)
                        pipe.multi()
                        if write is not keep:
                            if write.value is None:
                                pipe.delete(k)
                            else:
                                value = _pack(write.value, write.expires_at)
                                pipe.set(k, value, pxat=self._pxat(write.expires_at))
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue  # another client wrote the key meanwhile: read again
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc
        # bounded: a key written faster than we can read-modify-write it is an error, not a spin
        raise StoreError(f"update of {ns}/{key} kept conflicting ({MAX_ATTEMPTS} attempts)")

    def _keys(self, ns: str) -> list[bytes]:
        check_key(ns, "")
        pattern = _glob_escape(f"{self.prefix}{ns}:") + "*"
        try:
            return sorted(self.r.scan_iter(match=pattern, count=_SCAN_BATCH))
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc

    def _records(self, ns: str) -> list[tuple[bytes, bytes | None]]:
        keys = self._keys(ns)
        out: list[tuple[bytes, bytes | None]] = []
        for i in range(0, len(keys), _SCAN_BATCH):
            batch = keys[i : i + _SCAN_BATCH]
            try:
                values = self.r.mget(batch)
            except redis.RedisError as exc:
                raise StoreError(str(exc)) from exc
            out.extend(zip(batch, values, strict=True))  # type: ignore[arg-type]
        return out

    def scan(self, ns: str, now: float) -> Iterator[tuple[str, bytes]]:
        cut = len(f"{self.prefix}{ns}:".encode())
        out = []
        for k, raw in self._records(ns):
            value = _unpack(raw, now)
            if value is not None:
                out.append((k[cut:].decode(), value))
        return iter(out)

    def purge(self, ns: str, now: float) -> int:
        stale = [k for k, raw in self._records(ns) if raw is not None and _unpack(raw, now) is None]
        if not stale:
            return 0
        try:
            return int(cast(int, self.r.delete(*stale)))
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc

    def clear(self, ns: str) -> int:
        keys = self._keys(ns)
        if not keys:
            return 0
        try:
            return int(cast(int, self.r.delete(*keys)))
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        self.r.close()
