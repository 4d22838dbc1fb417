"""Tasking the POIs over X1 (ETSI TS 103 221-1): X1 tasks -> what each POI matches.

:func:`poi_task` turns an X1 ``TaskDetails`` into the IRI-POI's :class:`li.poi.iri.PoiTask`:
SIP/tel URIs, IMPUs and E.164 numbers become targets; the imslab task extension's MITM
authorisation (docs/li-extensions.md) becomes the MITM functions the task allows --
``signalling`` alone allows the MIKEY exchanges a MITM can key without touching media (PKE,
RSA-R), ``signalling`` and ``media`` also the Diffie-Hellman ones (DH-SIGN, DH-HMAC), which
need the media re-keyed. :func:`wire` connects a :class:`li.x1.ne.NetworkElementLI` (X1 server,
store, exporter) to the POIs of its element, so ActivateTask/ModifyTask/DeactivateTask arm and
disarm them. A media provider's tap is tasked with ``ipv4Address`` targets.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from li.poi.cc import PassiveTapPoi
from li.poi.iri import IriPoi, PoiTask
from li.targets import TargetKind

SIGNALLING_ONLY = frozenset({"pke", "rsa-r"})
WITH_MEDIA = frozenset({"dh", "dhhmac"})
_KINDS = {k.value: k for k in TargetKind}


def mitm_functions(task: Any) -> frozenset[str]:
    ext = getattr(task, "extension", None)
    auth = getattr(ext, "mitm", None) if ext is not None else None
    if auth is None or not auth.signalling:
        return frozenset()
    return SIGNALLING_ONLY | (WITH_MEDIA if auth.media else frozenset())


def poi_task(task: Any) -> PoiTask:
    """The IRI-POI's view of an X1 ``TaskDetails`` (unsupported target kinds are skipped)."""
    targets = tuple((_KINDS[t.kind], t.value) for t in task.targets if t.kind in _KINDS)
    delivery = str(getattr(task, "delivery_type", "X2andX3"))
    return PoiTask(
        xid=task.xid,
        targets=targets,
        deliver_cc=delivery != "X2Only",
        mitm=mitm_functions(task),
    )


def tap_addresses(task: Any) -> list[str]:
    return [t.value for t in task.targets if t.kind == "ipv4Address"]


def wire(
    ne: Any,
    *,
    iri: Iterable[IriPoi] = (),
    taps: Iterable[PassiveTapPoi] = (),
    clock: Callable[[], float],
) -> None:
    """Arm/disarm ``iri`` and ``taps`` from the NE's X1 changes (li.x1.handler events)."""
    iri_pois, tap_pois = list(iri), list(taps)

    def on_change(event: Any) -> None:
        task = getattr(event, "task", None)
        if task is not None:  # TaskActivated / TaskModified
            for poi in iri_pois:
                pt = poi_task(task)
                if pt.targets:
                    poi.activate(pt, clock())
            for tap in tap_pois:
                tap.deactivate(task.xid)
                for addr in tap_addresses(task):
                    tap.activate(task.xid, addr)
        xid = getattr(event, "xid", None)
        if isinstance(xid, uuid.UUID) and task is None:  # TaskDeactivated
            for poi in iri_pois:
                poi.deactivate(xid)
            for tap in tap_pois:
                tap.deactivate(xid)

    ne.on_change.append(on_change)
