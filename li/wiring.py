"""One LI wiring: an element's X1 NE, its POIs on the element's hook points, their output.

Both places that run LI use it: the running lab (:mod:`lab.roles._li`, one element per
process, built from the topology's ``[li]``) and the matrix runner (:mod:`lab.matrix.runner`,
a scenario's elements in one process). They decide *what* to attach -- which elements, which
PKIs, what the operator can open (the key policy), how a CC-POI is armed; :class:`ElementLi`
is *how*:

* an IRI-POI (:class:`li.poi.iri.IriPoi`) on an element's SIP hooks, exporting X2 (SIP and key
  records) through the NE's exporter, armed by the NE's X1 tasks (:func:`li.poi.x1.wire`),
  its deferred key records (MIKEY-SAKKE at the KMS) re-entering the running loop;
* a CC-POI (:class:`li.poi.cc.AnchorCcPoi`) on a media anchor's hooks, exporting X3 on the
  exporter's fast path (:func:`li.poi.export.cc_sender`), armed by IRI-POIs (LI_T3:
  in-process, or :mod:`li.poi.t3` between processes);
* a passive tap (:class:`li.poi.cc.PassiveTapPoi`) on a media provider's hooks, tasked with
  ``ipv4Address`` targets.

Order (issue 11 finding 7): the POIs are attached first, then :meth:`ElementLi.start` starts
the NE, which replays its stored tasks into them before X1 accepts requests; the element takes
traffic only after that. :meth:`ElementLi.close` detaches every POI before the NE stops, so
nothing reaches an exporter that is closing.

Hook points are anything with ``add(observer) -> remove`` (the elements' SIP and media hooks):
li never imports the elements (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from li.kms_li import loop_deferrer
from li.poi.cc import AnchorCcPoi, PassiveTapPoi
from li.poi.export import cc_sender, iri_pdus
from li.poi.iri import CcTrigger, IriPoi, IriRecord, KeyExtractor
from li.poi.t3 import T3Listener, t3_sender
from li.poi.x1 import wire
from li.x1.ne import NetworkElementLI
from li.x2x3.exporter import X2X3Exporter

__all__ = ["ElementLi", "HookPoint", "iri_sender"]


class HookPoint(Protocol):
    """An element's hook registry (SIP or media): ``add`` returns the observer's remover."""

    def add(self, observer: Callable[[Any], Any], /) -> Callable[[], None]: ...


def iri_sender(exporter: X2X3Exporter) -> Callable[[IriRecord], None]:
    """An IRI-POI's ``emit``: each record as its X2 PDUs (SIP, then key records)."""
    send = exporter.send_pdu

    def emit(r: IriRecord) -> None:
        for pdu in iri_pdus(r):
            send(pdu)

    return emit


class ElementLi:
    """One element's LI side: its NE and the POIs attached to its hook points."""

    def __init__(self, ne: NetworkElementLI, *, clock: Callable[[], float] = time.time) -> None:
        self.ne = ne
        self.clock = clock  # stamps records and task activations (wall clock: LI evidence)
        self.iri: list[IriPoi] = []
        self.cc: list[AnchorCcPoi] = []
        self.taps: list[PassiveTapPoi] = []
        self._removers: list[Callable[[], None]] = []
        self._transports: list[asyncio.BaseTransport] = []

    @property
    def name(self) -> str:
        return self.ne.ne_id

    # -- POIs ---------------------------------------------------------------------------------

    def attach_iri(
        self,
        sip_hooks: HookPoint,
        *,
        address: tuple[str, int],
        extract_keys: KeyExtractor | None = None,
        trigger_cc: Callable[[CcTrigger], None] | None = None,
    ) -> IriPoi:
        """An IRI-POI for the element listening on ``address`` (its SIP address, what the X2
        records name as one end), armed by this NE's tasks."""
        poi = IriPoi(
            element=self.name,
            address=address,
            emit=iri_sender(self.ne.exporter),
            trigger_cc=trigger_cc,
            extract_keys=extract_keys,
        )
        poi.defer = loop_deferrer(asyncio.get_running_loop())
        wire(self.ne, iri=[poi], clock=self.clock)
        self._removers.append(sip_hooks.add(poi.hook(self.clock)))
        self.iri.append(poi)
        return poi

    def attach_cc(self, media_hooks: HookPoint, *, batch: bool = False) -> AnchorCcPoi:
        """A CC-POI on a media anchor: it copies what LI_T3 triggers arm (see :meth:`listen_t3`
        for triggers from another process; in one process pass ``cc.trigger`` to
        :meth:`attach_iri`)."""
        cc = AnchorCcPoi(element=self.name, emit=cc_sender(self.ne.exporter, batch=batch))
        self._removers.append(media_hooks.add(cc.hook(self.clock)))
        self.cc.append(cc)
        return cc

    def attach_tap(self, media_hooks: HookPoint) -> PassiveTapPoi:
        """A passive tap on a media provider, tasked by this NE with ``ipv4Address`` targets
        (a media provider never sees SIP)."""
        handler = self.ne.handler
        handler.supported_targets = handler.supported_targets | {"ipv4Address"}
        tap = PassiveTapPoi(element=self.name, emit=cc_sender(self.ne.exporter))
        wire(self.ne, taps=[tap], clock=self.clock)
        self._removers.append(media_hooks.add(tap.hook(self.clock)))
        self.taps.append(tap)
        return tap

    # -- LI_T3 between processes ----------------------------------------------------------------

    async def t3_sender(
        self, local_host: str, anchor: tuple[str, int]
    ) -> Callable[[CcTrigger], None]:
        """A ``trigger_cc`` for :meth:`attach_iri` that sends LI_T3 to the CC-POI of an anchor
        in another process, from ``local_host`` (the element's address: the anchor accepts
        triggers only from its P-CSCFs' addresses)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(local_host, 0)
        )
        self._transports.append(transport)
        return t3_sender(transport, anchor)

    async def listen_t3(
        self, cc: AnchorCcPoi, local: tuple[str, int], allowed: Collection[str]
    ) -> None:
        """Arm ``cc`` from LI_T3 datagrams to ``local`` sent from ``allowed`` addresses."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: T3Listener(cc.trigger, allowed), local_addr=local
        )
        self._transports.append(transport)

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the NE once its POIs are attached: stored tasks are replayed into them, then
        X1 accepts requests."""
        await self.ne.start()

    async def close(self) -> None:
        """Detach every POI, close LI_T3 sockets, stop the NE."""
        removers, self._removers = self._removers, []
        for remove in removers:
            remove()
        transports, self._transports = self._transports, []
        for t in transports:
            t.close()
        await self.ne.close()
