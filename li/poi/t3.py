"""LI_T3: the IRI-POI arming the CC-POI of another process (TS 33.127 §7.4.2, LI_T3).

The P-CSCF's IRI-POI decides a call is intercepted; the anchor's CC-POI, in another process,
must start copying its media. Each :class:`li.poi.iri.CcTrigger` travels as one JSON datagram
(lab-internal, on the operator's own addresses). The listener accepts triggers only from the
addresses it is given (its operator's LI P-CSCFs for this anchor: every network input is
hostile until its sender is known) and drops anything unreadable with a log line, never
raising into the loop. In one process (the matrix runner) the trigger is a direct call
instead, and this module is not needed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Collection
from typing import Any

from ims.log import get_logger
from li.poi.iri import CcTrigger
from li.targets import Side

_log = get_logger("li.t3")
MAX_TRIGGER = 64 << 10  # bytes: a trigger names a handful of identities


def encode_trigger(t: CcTrigger) -> bytes:
    return json.dumps(
        {
            "xid": str(t.xid),
            "correlation_id": t.correlation_id,
            "call_id": t.call_id,
            "target_identities": sorted(t.target_identities),
            "target_side": str(t.target_side),
            "stop": t.stop,
        }
    ).encode()


def decode_trigger(data: bytes) -> CcTrigger:
    """Raises ``ValueError``/``KeyError``/``TypeError`` on anything but an encoded trigger."""
    if len(data) > MAX_TRIGGER:
        raise ValueError(f"LI_T3 trigger of {len(data)} bytes")
    d = json.loads(data)
    side = Side(str(d["target_side"]))
    return CcTrigger(
        xid=uuid.UUID(d["xid"]),
        correlation_id=int(d["correlation_id"]),
        call_id=str(d["call_id"]),
        target_identities=frozenset(str(x) for x in d["target_identities"]),
        target_side=side,
        stop=bool(d["stop"]),
    )


class T3Listener(asyncio.DatagramProtocol):
    """The CC-POI side: ``deliver`` (the CC-POI's ``trigger``) gets each trigger from
    ``allowed`` source addresses."""

    def __init__(self, deliver: Callable[[CcTrigger], None], allowed: Collection[str]) -> None:
        self.deliver, self.allowed = deliver, frozenset(allowed)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if addr[0] not in self.allowed:
            _log.warning("li_t3 trigger from a stranger dropped", peer=addr[0])
            return
        try:
            self.deliver(decode_trigger(data))
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("li_t3 trigger unreadable", error=str(exc))


def t3_sender(
    transport: asyncio.DatagramTransport, anchor: tuple[str, int]
) -> Callable[[CcTrigger], None]:
    """The IRI-POI side: ``trigger_cc`` sending each trigger to ``anchor`` over ``transport``."""

    def send(t: CcTrigger) -> None:
        transport.sendto(encode_trigger(t), anchor)

    return send
