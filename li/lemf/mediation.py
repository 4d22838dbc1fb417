"""LEMF mediation: route decoded X2/X3 PDUs to calls, drop duplicates, see sequence gaps.

Sans-I/O with respect to the network (the receiver feeds it), but it owns the output tree::

    OUT/lemf-state.json                      last sequence number per (POI, XID)
    OUT/<xid>/<correlation-id:016x>/...      see li.lemf.call

Duplicate filter: the exporter re-sends everything after its last confirmed Keepalive-Ack
when a connection is re-established (li.x2x3.spool), so the LEMF may see a PDU twice. The
sequence number is per task and per POI (TS 103 221-2 attribute 8), so (POI, XID, seq) names
a PDU: anything at or behind the last sequence seen (serial-number arithmetic, RFC 1982, u32)
is a duplicate and dropped; a jump ahead is a gap and is recorded in the call's summary.
The POI is named by its NFID attribute, else by its address. The state is written at every
checkpoint (before a Keepalive-Ack is sent), so a restarted LEMF keeps filtering.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ims.log import begin_message, end_message, get_logger
from li.lemf.call import Call, DecryptorFactory, KeyPolicy, default_decryptor
from li.lemf.callfiles import link_call
from li.lemf.output import private_dir, write_json_private
from li.x2x3.keyrecord import decode_key_record, is_key_record
from li.x2x3.pdu import (
    IRI_EVENT_CONTENT_TYPE,
    AttributeType,
    MatchedTargetIdentifier,
    PayloadFormat,
    Pdu,
    PduType,
    SdpSessionDescription,
    X2X3DecodeError,
    decode_pdu,
)

log = get_logger("li.lemf.mediation")


def iri_event_body(pdu: Pdu) -> dict[str, Any] | None:
    """The JSON body of an imslab IRI-event X2 PDU (format 4, MIME type above), else None."""
    if pdu.payload_format != PayloadFormat.PROPRIETARY:
        return None
    mime = pdu.opaque(AttributeType.MIME_CONTENT_TYPE)
    if mime is None or mime.decode("utf-8", "replace").strip() != IRI_EVENT_CONTENT_TYPE:
        return None
    try:
        body = json.loads(pdu.payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("imslab_iri_event") != 1:
        return None
    return body


@dataclass(slots=True)
class MediationStats:
    pdus: int = 0
    x2: int = 0
    x3: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing: int = 0
    bad_pdus: int = 0
    calls: int = 0


class Mediation:
    """Turn PDUs into files (see module docstring)."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        lemf_addr: tuple[str, int] = ("127.0.0.1", 0),
        key_policy: KeyPolicy | None = None,
        task_key_policies: dict[str, KeyPolicy] | None = None,
        decryptor_factory: DecryptorFactory = default_decryptor,
        clock: Callable[[], float] = time.time,
        max_open_calls: int = 128,
        monotonic: Callable[[], float] = time.monotonic,
        liids: dict[str, str] | None = None,
    ) -> None:
        self.out = private_dir(Path(out_dir))
        self.liids = dict(liids or {})  # XID -> LIID for the HI2 records (li.hi2)
        self.lemf_addr = lemf_addr
        self.key_policy = key_policy
        self.task_key_policies = dict(task_key_policies or {})
        self.decryptor_factory = decryptor_factory
        self.clock = clock
        self.monotonic = monotonic  # paces the calls' summary.json rewrites
        self.calls: dict[tuple[str, int], Call] = {}
        # calls whose files are open, least recently used first (bounded: file descriptors)
        self.max_open_calls = max_open_calls
        self._open: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.stats = MediationStats()
        self._last_seq: dict[str, int] = {}
        self._state_file = self.out / "lemf-state.json"
        if self._state_file.exists():
            self._last_seq = {
                k: int(v) for k, v in json.loads(self._state_file.read_text()).items()
            }
        self._dirty: set[tuple[str, int]] = set()
        self.delivered: list[tuple[str, str, int | None]] = []  # (poi, xid, seq) if recording
        self.record_delivered = False

    @staticmethod
    def poi_name(pdu: Pdu, peer: tuple[str, int]) -> str:
        nfid = pdu.opaque(AttributeType.NETWORK_FUNCTION_ID)
        if nfid:
            return nfid.decode("utf-8", "replace")
        return peer[0]

    def call(self, xid: str, cid: int) -> Call:
        key = (xid, cid)
        call = self.calls.get(key)
        if call is None:
            call = Call(
                self.out / xid / f"{cid:016x}",
                xid=xid,
                correlation_id=cid,
                lemf_addr=self.lemf_addr,
                key_policy=self.task_key_policies.get(xid, self.key_policy),
                decryptor_factory=self.decryptor_factory,
                monotonic=self.monotonic,
                liid=self.liids.get(xid),
            )
            self.calls[key] = call
            self.stats.calls += 1
            private_dir(self.out / xid)
        return call

    def handle_raw(self, raw: bytes, peer: tuple[str, int]) -> Pdu | None:
        """One whole PDU from the stream. Returns the PDU (None if bad or a duplicate)."""
        try:
            pdu = decode_pdu(raw)
        except X2X3DecodeError as exc:
            self.stats.bad_pdus += 1
            log.warning("undecodable X2/X3 PDU", peer=peer[0], error=str(exc))
            return None
        token = begin_message(xid=pdu.xid, correlation_id=pdu.correlation_id)
        try:
            return pdu if self.handle(pdu, raw, peer) else None
        finally:
            end_message(token)

    def handle(self, pdu: Pdu, raw: bytes, peer: tuple[str, int]) -> bool:
        """Process an X2/X3 PDU; False when dropped as a duplicate or not X2/X3."""
        if pdu.pdu_type not in (PduType.X2, PduType.X3):
            return False
        poi = self.poi_name(pdu, peer)
        xid = str(pdu.xid)
        seq = pdu.sequence_number
        gap: tuple[int, int] | None = None
        if seq is not None:
            skey = f"{poi}|{xid}"
            last = self._last_seq.get(skey)
            if last is not None:
                diff = (seq - last) & 0xFFFFFFFF
                if diff == 0 or diff >= 0x80000000:
                    self.stats.duplicates += 1
                    return False
                if diff > 1:
                    gap = ((last + 1) & 0xFFFFFFFF, seq)
                    self.stats.gaps += 1
                    self.stats.missing += diff - 1
            self._last_seq[skey] = seq
        self.stats.pdus += 1
        if self.record_delivered:
            self.delivered.append((poi, xid, seq))
        ts = pdu.timestamp or self.clock()
        call = self.call(xid, pdu.correlation_id)
        if call.name is None:  # OUT/<time>_<target>_<cid> beside the ids
            target = pdu.find(MatchedTargetIdentifier)
            who = target.value if target is not None else None
            call.name = link_call(self.out, xid, pdu.correlation_id, who, ts)
        ckey = (xid, pdu.correlation_id)
        self._dirty.add(ckey)
        self._open[ckey] = None
        self._open.move_to_end(ckey)
        while len(self._open) > self.max_open_calls:
            old, _ = self._open.popitem(last=False)
            self.calls[old].suspend()
            self._dirty.discard(old)
        if gap is not None:
            call.note_gap(poi, gap[0], gap[1])
            log.warning("sequence gap", xid=xid, poi=poi, expected=gap[0], received=gap[1])
        call.record_pdu(raw, ts, peer)
        if pdu.pdu_type is PduType.X2:
            self.stats.x2 += 1
            if is_key_record(pdu):
                try:
                    rec = decode_key_record(pdu)
                except X2X3DecodeError as exc:
                    call.unavailable.append(f"malformed key record: {exc}")
                    return True
                if rec is not None:
                    call.on_key_record(rec, ts, poi, seq)
            elif pdu.payload_format == PayloadFormat.SIP_MESSAGE:
                call.on_sip(pdu, ts, poi, seq)
            elif (event := iri_event_body(pdu)) is not None:
                call.on_iri_event(
                    event, ts, poi, seq, has_sdp=pdu.find(SdpSessionDescription) is not None
                )
            else:
                call.x2_pdus += 1
                call.iri.write(
                    {
                        "type": "x2",
                        "time": ts,
                        "poi": poi,
                        "seq": seq,
                        "payload_format": int(pdu.payload_format),
                        "payload_length": len(pdu.payload),
                    }
                )
        else:
            self.stats.x3 += 1
            call.on_cc(pdu, ts, poi)
        call.after_pdu()
        return True

    def checkpoint(self) -> None:
        """Flush every call's files and persist the duplicate filter (before a KA-Ack)."""
        for key in self._dirty:
            self.calls[key].checkpoint()
        # a call whose counters were not written yet (SUMMARY_INTERVAL) stays on the list
        self._dirty = {k for k in self._dirty if self.calls[k].summary_stale}
        write_json_private(self._state_file, self._last_seq)

    def flush(self) -> None:
        """An explicit flush request (``LemfServer.flush()``, for in-process readers):
        every call's files flushed and its summary.json rewritten now; after it the output
        directory holds everything delivered so far."""
        for call in self.calls.values():
            call.flush()
        self._dirty.clear()
        write_json_private(self._state_file, self._last_seq)

    def close(self) -> None:
        for call in self.calls.values():
            call.close()
        write_json_private(self._state_file, self._last_seq)
        self.calls.clear()
