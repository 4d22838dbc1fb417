"""A typed mapping over one store namespace, for state an engine keeps as a dict.

:class:`StoredMap` gives ``get`` / ``[]`` / ``[]=`` / ``pop`` / ``len`` / ``values`` over records
of one namespace, each value encoded by the owner's codec and expiring at the time the owner
reads from it (``expires_at(value)``). Reads honour expiry at ``clock()`` (wall-clock seconds,
the store's contract). A value read is a copy: changing it changes nothing until it is
written back with ``[]=``, as with any shared state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ims.store.base import Store

K = TypeVar("K")
V = TypeVar("V")


class StoredMap(Generic[K, V]):
    def __init__(
        self,
        store: Store,
        namespace: str,
        *,
        key: Callable[[K], str],
        encode: Callable[[V], bytes],
        decode: Callable[[bytes], V],
        expires_at: Callable[[V], float | None],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.namespace = namespace
        self._key = key
        self._encode = encode
        self._decode = decode
        self._expires_at = expires_at
        self._clock = clock

    def get(self, key: K, default: V | None = None) -> V | None:
        raw = self.store.get(self.namespace, self._key(key), self._clock())
        return default if raw is None else self._decode(raw)

    def __getitem__(self, key: K) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        expires = self._expires_at(value)
        if expires is not None and not math.isfinite(expires):
            expires = None
        self.store.put(self.namespace, self._key(key), self._encode(value), expires_at=expires)

    def pop(self, key: K, default: V | None = None) -> V | None:
        value = self.get(key)
        self.store.delete(self.namespace, self._key(key))
        return default if value is None else value

    def values(self) -> list[V]:
        return [self._decode(raw) for _, raw in self.store.scan(self.namespace, self._clock())]

    def __len__(self) -> int:
        return sum(1 for _ in self.store.scan(self.namespace, self._clock()))

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self.store.scan(self.namespace, self._clock())])

    def __bool__(self) -> bool:
        return len(self) > 0
