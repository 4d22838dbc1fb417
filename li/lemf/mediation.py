"""LEMF mediation: route decoded X2/X3 PDUs to calls, drop duplicates, see sequence gaps.

Sans-I/O with respect to the network (the receiver feeds it), but it owns the output tree::

    OUT/.dedup/<hash>.dedup                  the duplicate filter, per sender and task
    OUT/<xid>/<correlation-id:016x>/...      see li.lemf.call
    OUT/<xid>/registrations.*                REGISTER and its responses: li.lemf.registration

Who sent a PDU: the receiver passes the *authenticated* sender (the TLS identity of the
connection; ``tcp:<address>`` where plain TCP is explicitly allowed). Over TLS a PDU may name
only an NFID that identity is entitled to (``poi_identities``; by default its own name): any
other is refused (:class:`PduRefused`), so one POI cannot write into -- or erase from --
another's streams.

Duplicate filter (li.lemf.dedup): the exporter re-sends everything after its last confirmed
Keepalive-Ack on a new connection, so the LEMF may see a PDU twice. A PDU is dropped only when
it is byte-identical to one stored from the same sender, task and sequence number; a jump
ahead is a gap, recorded in the call's summary; a repeated sequence number with other content
is stored and counted as a conflict. The filter's state is written at every checkpoint (before
a Keepalive-Ack is sent), so a restarted LEMF keeps filtering.

Bounded state: at most ``max_xids`` tasks and ``max_calls_per_xid`` calls per task get
directories; a PDU beyond that raises :class:`PduRefused` (the receiver closes the connection
without acknowledging it: the POI keeps it spooled and alarms).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ims.errors import ImsError
from ims.log import begin_message, end_message, get_logger
from ims.store import Store
from li.lemf.call import Call, DecryptorFactory, KeyPolicy, default_decryptor
from li.lemf.callfiles import link_call
from li.lemf.dedup import DuplicateFilter, Verdict, digest
from li.lemf.output import private_dir, repair_wavs
from li.lemf.registration import Registrations, registration_summary
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
    decode_cc_fields,
    decode_pdu,
)

log = get_logger("li.lemf.mediation")

_X3_TYPE = PduType.X3.to_bytes(2, "big")
_IDENTS_MAX = 4096


@functools.lru_cache(maxsize=4096)
def _ip_text(packed: bytes | None) -> str | None:
    """A packed IPv4/IPv6 address attribute as text (cached: a call's addresses repeat)."""
    if packed is None:
        return None
    return str(ipaddress.ip_address(packed))


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True


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
    conflicts: int = 0  # a stored sequence number arrived again with other content
    refused: int = 0  # not stored: foreign NFID, or over the task/call limits
    # how far behind the POIs the LEMF is: at the last checkpoint, the time since the POI
    # stamped the last PDU stored before it (spool + transit + waiting here), and its maximum
    lag_s: float = 0.0
    max_lag_s: float = 0.0


class PduRefused(ImsError):
    """A PDU the LEMF will not store (so it must not be acknowledged either)."""


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
        poi_identities: Mapping[str, Collection[str]] | None = None,
        max_streams: int = 4096,
        max_xids: int = 10_000,
        max_calls_per_xid: int = 100_000,
        summaries_per_second: float = 10.0,
        delivery_store: Store | None = None,
    ) -> None:
        self.out = private_dir(Path(out_dir))
        self.liids = dict(liids or {})  # XID -> LIID for the HI2 records (li.hi2)
        repaired = repair_wavs(self.out)  # a crash may have left WAV headers behind the data
        if repaired:
            log.info("WAV headers repaired on start", files=repaired)
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
        self.poi_identities = {k: frozenset(v) for k, v in (poi_identities or {}).items()}
        # delivery state per authenticated sender: the shared store when given (ims.store),
        # else the LEMF's own file under OUT/.dedup
        self.dedup = DuplicateFilter(
            delivery_store if delivery_store is not None else self.out / ".dedup",
            max_streams=max_streams,
        )
        self.max_xids = max_xids
        self.max_calls_per_xid = max_calls_per_xid
        # tasks with a directory (also from before a restart) and calls per task
        self._xids: set[str] = {p.name for p in self.out.iterdir() if _is_uuid(p.name)}
        self._calls_per_xid: dict[str, int] = {}
        self._dirty: set[tuple[str, int]] = set()
        self.regs: dict[str, Registrations] = {}  # per XID: its registration files
        self._dirty_regs: set[str] = set()
        self.delivered: list[tuple[str, str, int | None]] = []  # (poi, xid, seq) if recording
        self.record_delivered = False
        self.summaries_per_second = summaries_per_second
        self._summary_tokens = summaries_per_second  # a token bucket (checkpoint())
        self._tokens_at = monotonic()
        self._last_ts: float | None = None  # POI timestamp of the last PDU stored
        # (sender, peer address, NFID, XID bytes) -> (POI, XID text, duplicate-filter key):
        # what handle() worked out for a stream, so _content() need not again
        self._idents: dict[tuple[str | None, str, bytes | None, bytes], tuple[str, str, str]] = {}

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
            self._admit(xid)
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
            self._calls_per_xid[xid] = self._calls_per_xid.get(xid, 0) + 1
            self._xids.add(xid)
            private_dir(self.out / xid)
        return call

    def registrations(self, xid: str) -> Registrations:
        regs = self.regs.get(xid)
        if regs is None:
            private_dir(self.out / xid)
            regs = self.regs[xid] = Registrations(self.out / xid, xid=xid, lemf_addr=self.lemf_addr)
        return regs

    def _admit_task(self, xid: str) -> None:
        """Refuse a new task beyond the task limit (bounded state)."""
        if xid not in self._xids and len(self._xids) >= self.max_xids:
            self.stats.refused += 1
            raise PduRefused(f"more than {self.max_xids} tasks: XID {xid} refused")
        self._xids.add(xid)

    def _admit(self, xid: str) -> None:
        """Refuse a new call beyond the task and per-task limits (bounded state)."""
        self._admit_task(xid)
        if self._calls_per_xid.get(xid, 0) >= self.max_calls_per_xid:
            self.stats.refused += 1
            raise PduRefused(f"more than {self.max_calls_per_xid} calls for XID {xid}")

    def sender_poi(self, pdu: Pdu, peer: tuple[str, int], sender: str | None) -> str:
        """The POI name of ``pdu``. ``sender`` is the authenticated identity of the
        connection (None: plain TCP). Over TLS the NFID must be one the identity may use."""
        nfid = pdu.opaque(AttributeType.NETWORK_FUNCTION_ID)
        name = nfid.decode("utf-8", "replace") if nfid else None
        if sender is None:
            return name or peer[0]
        if name is None:
            return sender
        if name not in self.poi_identities.get(sender, (sender,)):
            self.stats.refused += 1
            raise PduRefused(f"POI {sender!r} may not send as NFID {name!r}")
        return name

    def handle_raw(self, raw: bytes, peer: tuple[str, int], sender: str | None = None) -> bool:
        """One whole PDU from the stream. True when stored (False: bad, a duplicate, not
        X2/X3); raises :class:`PduRefused` for a PDU that must not be acknowledged."""
        if raw[2:4] == _X3_TYPE:
            stored = self._content(raw, peer, sender)
            if stored is not None:
                return stored
        try:
            pdu = decode_pdu(raw)
        except X2X3DecodeError as exc:
            self.stats.bad_pdus += 1
            log.warning("undecodable X2/X3 PDU", peer=peer[0], error=str(exc))
            return False
        token = begin_message(xid=pdu.xid, correlation_id=pdu.correlation_id)
        try:
            return self.handle(pdu, raw, peer, sender)
        finally:
            end_message(token)

    def _content(self, raw: bytes, peer: tuple[str, int], sender: str | None) -> bool | None:
        """The hot path of :meth:`handle_raw` for X3 of a call this LEMF already knows:
        the same steps as :meth:`handle` (sender check, duplicate filter, gaps, x2x3.pcap,
        content), on :func:`decode_cc_fields` instead of a decoded :class:`Pdu`, with the
        per-stream strings (POI, XID, filter key) looked up instead of built per PDU.

        Returns True (stored), False (a duplicate), or None: not this path's
        PDU (a malformed one, a new call or sender, attributes it does not carry), and
        :meth:`handle` decides."""
        try:
            f = decode_cc_fields(raw)
        except X2X3DecodeError:
            return None
        if f.other:
            return None
        ident = self._idents.get((sender, peer[0], f.nfid, f.xid))
        if ident is None:
            return None  # first PDU of this stream: handle() checks the sender and says
        poi, xid, skey = ident
        call = self.calls.get((xid, f.correlation_id))
        if call is None or call.name is None:
            return None
        seq = f.sequence
        gap: tuple[int, int] | None = None
        dg = b""
        if seq is not None:
            dg = digest(raw)
            seen = self.dedup.check(skey, seq, dg)
            if seen.verdict is Verdict.DUPLICATE:
                self.stats.duplicates += 1
                return False
            if seen.verdict is Verdict.CONFLICT:
                self.stats.conflicts += 1
                log.warning(
                    "sequence number reused with other content",
                    xid=xid,
                    correlation_id=f.correlation_id,
                    poi=poi,
                    seq=seq,
                )
            gap = seen.gap
            if gap is not None:
                self.stats.gaps += 1
                self.stats.missing += (gap[1] - gap[0]) & 0xFFFFFFFF
            self.dedup.stored(skey, seq, dg)
        self.stats.pdus += 1
        if self.record_delivered:
            self.delivered.append((poi, xid, seq))
        ts = f.timestamp or self.clock()
        self._last_ts = ts
        ckey = (xid, f.correlation_id)
        self._dirty.add(ckey)
        if ckey not in self._open:
            self._open[ckey] = None
            while len(self._open) > self.max_open_calls:
                old, _ = self._open.popitem(last=False)
                self.calls[old].suspend()
                self._dirty.discard(old)
        else:
            self._open.move_to_end(ckey)
        if gap is not None:
            call.note_gap(poi, gap[0], gap[1])
            log.warning(
                "sequence gap",
                xid=xid,
                correlation_id=f.correlation_id,
                poi=poi,
                expected=gap[0],
                received=gap[1],
            )
        call.record_pdu(raw, ts, peer)
        self.stats.x3 += 1
        call.on_content(
            ts,
            poi,
            f.payload_direction,
            f.payload_format,
            f.payload,
            _ip_text(f.src),
            f.sport,
            _ip_text(f.dst),
            f.dport,
        )
        self._after_pdu(call)
        return True

    def handle(
        self, pdu: Pdu, raw: bytes, peer: tuple[str, int], sender: str | None = None
    ) -> bool:
        """Process an X2/X3 PDU; False when dropped as a duplicate or not X2/X3."""
        if pdu.pdu_type not in (PduType.X2, PduType.X3):
            return False
        poi = self.sender_poi(pdu, peer, sender)
        xid = str(pdu.xid)
        seq = pdu.sequence_number
        gap: tuple[int, int] | None = None
        skey = f"{sender or 'tcp:' + peer[0]}|{poi}|{xid}"
        ident = (sender, peer[0], pdu.opaque(AttributeType.NETWORK_FUNCTION_ID), pdu.xid.bytes)
        if ident not in self._idents:  # the sender may use this NFID: _content() may go on
            if len(self._idents) >= _IDENTS_MAX:
                self._idents.clear()
            self._idents[ident] = (poi, xid, skey)
        dg = b""
        if seq is not None:
            dg = digest(raw)
            seen = self.dedup.check(skey, seq, dg)
            if seen.verdict is Verdict.DUPLICATE:
                self.stats.duplicates += 1
                return False
            if seen.verdict is Verdict.CONFLICT:
                self.stats.conflicts += 1
                log.warning("sequence number reused with other content", xid=xid, poi=poi, seq=seq)
            gap = seen.gap
            if gap is not None:
                self.stats.gaps += 1
                self.stats.missing += (gap[1] - gap[0]) & 0xFFFFFFFF
        reg_info = (
            registration_summary(pdu)
            if pdu.pdu_type is PduType.X2 and pdu.payload_format == PayloadFormat.SIP_MESSAGE
            else None
        )
        # may refuse (limits): nothing stored yet
        call = self.call(xid, pdu.correlation_id) if reg_info is None else None
        if reg_info is not None:
            self._admit_task(xid)
        if seq is not None:
            self.dedup.stored(skey, seq, dg)
        self.stats.pdus += 1
        if self.record_delivered:
            self.delivered.append((poi, xid, seq))
        ts = pdu.timestamp or self.clock()
        self._last_ts = ts
        if reg_info is not None:  # a registration, not a call (li.lemf.registration)
            self.stats.x2 += 1
            regs = self.registrations(xid)
            if gap is not None:
                regs.note_gap(poi, gap[0], gap[1])
            regs.on_sip(pdu, reg_info, raw, ts, poi, seq, peer)
            self._dirty_regs.add(xid)
            return True
        assert call is not None  # programmer error: reg_info is None here
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
        self._after_pdu(call)
        return True

    def checkpoint(self) -> None:
        """Flush every call's files and persist the duplicate filter (before a KA-Ack).

        summary.json rewrites (a millisecond or more each: JSON, a temp file, a rename) are
        paced to ``summaries_per_second`` over all calls (a token bucket shared with the
        rewrites after a PDU): state changes first, then counters, the calls written longest
        ago first. With 1,000 busy calls one rewrite of each per second would cost the LEMF
        more than a core; the others stay on the dirty list for a later checkpoint. A call's
        end is never held back, and ``flush()``, a suspend and a close always write."""
        self._refill()
        calls = self.calls
        order: Collection[tuple[str, int]] = self._dirty
        if len(order) > self._summary_tokens:  # state changes first, then the oldest
            order = sorted(
                order,
                key=lambda k: (not calls[k].state_changed, calls[k].summary_written_at),
            )
        for key in order:
            if calls[key].checkpoint(allowed=self._summary_tokens >= 1):
                self._summary_tokens -= 1
        now = self.clock()
        if self._last_ts is not None:
            lag = max(0.0, now - self._last_ts)
            self.stats.lag_s = round(lag, 3)
            self.stats.max_lag_s = max(self.stats.max_lag_s, self.stats.lag_s)
            self._last_ts = None  # nothing stored since: no lag to measure
        else:
            self.stats.lag_s = 0.0
        for xid in self._dirty_regs:
            self.regs[xid].flush()
        self._dirty_regs.clear()
        # a call whose counters were not written yet (SUMMARY_INTERVAL) stays on the list
        self._dirty = {k for k in self._dirty if self.calls[k].summary_stale}
        self.dedup.save()

    def _refill(self) -> None:
        mono = self.monotonic()
        rate = self.summaries_per_second
        self._summary_tokens = min(rate, self._summary_tokens + (mono - self._tokens_at) * rate)
        self._tokens_at = mono

    def _after_pdu(self, call: Call) -> None:
        """A pending state change of ``call`` into summary.json, within the budget."""
        if not call.state_changed:
            return
        if self._summary_tokens < 1:
            self._refill()
        if call.after_pdu(allowed=self._summary_tokens >= 1):
            self._summary_tokens -= 1

    def idle(self) -> None:
        """Periodic (the receiver, once a second): WAV headers of open calls up to date."""
        for key in self._open:
            self.calls[key].idle()

    def flush(self) -> None:
        """An explicit flush request (``LemfServer.flush()``, for in-process readers):
        every call's files flushed and its summary.json rewritten now; after it the output
        directory holds everything delivered so far."""
        for call in self.calls.values():
            call.flush()
        for regs in self.regs.values():
            regs.flush()
        self._dirty.clear()
        self._dirty_regs.clear()
        self.dedup.save()

    def close(self) -> None:
        for call in self.calls.values():
            call.close()
        for regs in self.regs.values():
            regs.close()
        self.regs.clear()
        self.dedup.save()
        self.dedup.close()
        self.calls.clear()
