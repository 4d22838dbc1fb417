"""An NE's LI side wired together: X1 server + store + handler driving an X2/X3 exporter.

:class:`NetworkElementLI` is what a P-CSCF/S-CSCF/media anchor runs to be provisioned over X1:
ActivateTask/ModifyTask bind the XID to its destinations in the exporter and update
:attr:`tasks` (the POIs match targets against it); CreateDestination adds a delivery link;
Deactivate/Remove undo them. ``on_change`` callbacks let POIs react (arm/disarm matching). On
start the stored state is replayed, so a restarted NE resumes its tasks.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ims.log import get_logger
from ims.store import Store
from li.x1.handler import (
    DestinationCreated,
    DestinationModified,
    DestinationRemoved,
    TaskActivated,
    TaskDeactivated,
    TaskModified,
    X1Event,
    X1Handler,
)
from li.x1.model import DestinationDetails, TaskDetails
from li.x1.server import X1Server
from li.x1.store import X1Store
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter

log = get_logger("li.x1.ne")


class NetworkElementLI:
    def __init__(
        self,
        *,
        ne_id: str,
        state_dir: str | Path,
        x1_host: str = "127.0.0.1",
        x1_port: int = 0,
        x1_tls: ssl.SSLContext | None = None,
        x2x3_tls: ssl.SSLContext | None = None,
        exporter: X2X3Exporter | None = None,
        store: Store | None = None,
    ) -> None:
        self.ne_id = ne_id
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # the lab's shared store when given (Redis: every instance and restart sees the same
        # tasks), else the NE's own SQLite file in its state dir
        self.store = X1Store(store if store is not None else self.state_dir / "x1.sqlite", ne=ne_id)
        self._shared = store  # handed over: closed with the NE
        self.exporter = exporter or X2X3Exporter(self.state_dir / "spool", nf_id=ne_id)
        self.x2x3_tls = x2x3_tls
        self.tasks: dict[uuid.UUID, TaskDetails] = {}
        self.on_change: list[Callable[[X1Event], None]] = []
        self.handler = X1Handler(self.store, ne_id=ne_id, listener=self._on_event)
        self.server = X1Server(self.handler, host=x1_host, port=x1_port, ssl=x1_tls)
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def x1_port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        self.handler.replay()
        await self.exporter.start()
        await self.server.start()

    async def close(self) -> None:
        await self.server.close()
        for t in list(self._pending):
            await t
        await self.exporter.close()
        self.store.close()
        if self._shared is not None:
            self._shared.close()

    def _destination(self, d: DestinationDetails) -> DeliveryDestination:
        return DeliveryDestination(
            did=d.did,
            host=d.host,
            port=d.port,
            tls=self.x2x3_tls,
            delivery=d.delivery_type.value,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _replace(self, d: DestinationDetails) -> None:
        await self.exporter.remove_destination(d.did)
        self.exporter.add_destination(self._destination(d))

    def _on_event(self, event: X1Event) -> None:
        if isinstance(event, DestinationCreated):
            if event.destination.did not in {x.did for x in self.exporter.destinations()}:
                self.exporter.add_destination(self._destination(event.destination))
        elif isinstance(event, DestinationModified):
            self._spawn(self._replace(event.destination))
        elif isinstance(event, DestinationRemoved):
            self._spawn(self.exporter.remove_destination(event.did))
        elif isinstance(event, TaskActivated | TaskModified):
            self.tasks[event.task.xid] = event.task
            self.exporter.bind_task(event.task.xid, event.task.dids, event.task.delivery_type.value)
        elif isinstance(event, TaskDeactivated):
            self.tasks.pop(event.xid, None)
            self.exporter.unbind_task(event.xid)
        log.info("x1 change applied", change=type(event).__name__)
        for cb in self.on_change:
            cb(event)
