"""The lab's shared store (``[store]`` in lab.toml; :mod:`ims.store`, docs/scale-out.md).

:func:`prepare` runs once when a whole lab comes up (``imslab up``, ``imslab demo``, the
orchestrator): it starts the lab's own redis-server when the backend is Redis with no ``url``,
and clears the *session* state of the previous run — location and access bindings, the digest nonce
counts — because a lab brought up from nothing is a network after power-on, and a binding to
a UE address of the last run would swallow the next call. LI state (X1 tasks and
destinations, the LEMF's delivery state) is never cleared: every task is active again after a
restart. Restarting one element (``imslab run``, the failure tests) does not come here: it
finds its users' registrations in the store.
"""

from __future__ import annotations

import time

from ims.log import get_logger
from ims.store import Store, StoreError, open_store
from lab.redisd import RedisServer
from lab.topology import Topology

_log = get_logger("lab.store")

#: namespaces whose records belong to one run of the lab
SESSION_NAMESPACES = ("digest-nc",)


def session_namespaces(topo: Topology) -> list[str]:
    registrars = [e for e in topo.elements.values() if e.role in ("scscf", "internet_proxy")]
    domains = sorted({topo.domain_of(e.name) for e in registrars})
    pcscfs = sorted(e.name for e in topo.elements.values() if e.role == "pcscf")
    access = [f"access-{kind}.{n}" for n in pcscfs for kind in ("flow", "contact")]
    return [f"location.{d}" for d in domains] + access + list(SESSION_NAMESPACES)


def start_server(topo: Topology) -> RedisServer | None:
    """Start the lab's own redis-server if the topology wants one and none answers yet."""
    directory = topo.store.managed_redis()
    if directory is None:
        return None
    try:
        open_store(topo.store.resolved_url(topo.name)).close()
        return None  # already running (another lab process started it): use it
    except StoreError:
        pass
    server = RedisServer(directory)
    server.start()
    _log.info("redis-server started", socket=str(server.socket))
    return server


def clear_session(store: Store, topo: Topology) -> int:
    cleared = sum(store.clear(ns) for ns in session_namespaces(topo))
    _log.info("store session state cleared", url=store.url, records=cleared, at=time.time())
    return cleared


def prepare(topo: Topology) -> RedisServer | None:
    server = start_server(topo)
    try:
        store = open_store(topo.store.resolved_url(topo.name))
        try:
            clear_session(store, topo)
        finally:
            store.close()
    except BaseException:
        if server is not None:
            server.stop()
        raise
    return server
