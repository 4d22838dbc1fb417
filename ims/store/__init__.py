"""Shared, durable state of the network elements: one interface, two backends.

What must outlive an element's process, or be shared by several instances of one element
(issue 18), goes through :class:`Store`: registrar/location bindings (RFC 3261 §10.3), digest
nonce-count state (RFC 7616 §3.4.5 / RFC 3261 §22.4), the P-CSCF's access bindings, X1 tasks and
destinations (ETSI TS 103 221-1), and the LEMF's delivery state per authenticated sender.

The interface is a namespaced key -> bytes map with four properties both backends keep alike
(``tests/ims/store`` runs one suite against each):

* **expiry**: a record written with ``expires_at`` is absent for every read at a ``now`` at or
  after it. ``now`` is wall-clock seconds (``time.time()``), because the records are shared
  between processes and survive restarts: a monotonic clock restarts with the machine.
* **atomic updates**: :meth:`Store.update` reads a record, lets a pure function compute the new
  value, and writes it only if nobody wrote the record in between (SQLite: ``BEGIN
  IMMEDIATE``, one writer at a time; Redis: ``WATCH``/``MULTI``/``EXEC``, retried). A function
  that raises leaves the record untouched — the registrar's "check everything before changing
  anything" rule (§10.3 step 7) carried across processes.
* **restart**: closing and opening a store on the same location gives back every unexpired
  record (SQLite: the file, WAL journal; Redis: the server, with append-only persistence).
* **isolation**: namespaces never see each other's keys.

The calls are synchronous: each is one local round trip (an SQLite page write, or one Redis
request over a unix socket or loopback), short next to the SIP transaction that makes it, and a
synchronous call keeps the sans-I/O engines (registrar, digest) callable without an event loop.

:func:`open_store` turns a URL into a backend: ``sqlite:///path/to/file.db``, ``sqlite://:memory:``
(throw-away, one process), ``redis://host:port/db`` or ``unix:///path/to/redis.sock?db=N``.
"""

from __future__ import annotations

from ims.store.base import Store, StoreError, Write, keep
from ims.store.url import open_store

__all__ = ["Store", "StoreError", "Write", "keep", "open_store"]
