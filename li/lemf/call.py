"""One intercepted call at the LEMF: correlation of its X2 and X3, keys, decryption, files.

A call is identified by (XID, Correlation ID) (TS 103 221-2 clause 5.2: the Correlation ID
ties the xIRI and xCC of one communication). Keys come from three places, all reduced to
:class:`KeyCandidate`:

* SDES ``a=crypto`` lines in the SIP carried by X2 (RFC 4568 §6.1: an SDP's key protects what
  the *sender of that SDP* sends, so its media direction is the X2 PDU's direction);
* MIKEY ``a=key-mgmt`` opened by the task's key policy (``li.keys.OperatorKeyPolicy``: the
  secrets the operator legitimately holds);
* imslab key records (X2 format 4, :mod:`li.x2x3.keyrecord`), whose *sender* (offerer /
  answerer) is mapped to a direction once the X2 shows which side the target is.

Each SRTP stream (direction, SSRC) is bound to the first candidate whose authentication tag
verifies (an ``ims.media.srtp.LateJoinDecryptor`` per try, so interception may start
mid-call at any ROC); packets that no key opens are kept (bounded) and retried when a new key
arrives. Decrypted RTP and SRTCP go to ``cc.pcap`` and G.711 audio to one WAV per direction;
``summary.json`` follows every state change that matters (see :meth:`Call.write_summary`), and
a call whose directory already holds files (a restarted LEMF) reloads its keys and counters.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ims.log import get_logger
from ims.media.g711 import alaw_decode, ulaw_decode
from ims.media.rtp import RtpError, header_length
from li.hi2.writer import Hi2Writer
from li.keys import KeyRecord, Sender
from li.lemf.callfiles import FileRecords
from li.lemf.callpcap import CallPcap
from li.lemf.output import (
    JsonlWriter,
    PrivateWavWriter,
    private_dir,
    wav_appendable,
    write_json_private,
)
from li.lemf.sipinfo import SipSummary, mikey_bytes, summarise
from li.pcap import (
    IPPROTO_UDP,
    LINKTYPE_RAW,
    PcapRecord,
    PcapWriter,
    TcpFlowWriter,
    parse_ip,
    udp_packet,
)
from li.x2x3.pdu import (
    DECRYPTED_CONTENT,
    DestinationAddress,
    DestinationPort,
    PayloadDirection,
    PayloadFormat,
    Pdu,
    SourceAddress,
    SourcePort,
)

log = get_logger("li.lemf.call")

KeyPolicy = Callable[[str, bytes, bytes | None], Sequence[KeyRecord]]

_DIR_NAME = {
    PayloadDirection.FROM_TARGET: "from-target",
    PayloadDirection.TO_TARGET: "to-target",
}
_DIR_OF_NAME = {v: int(k) for k, v in _DIR_NAME.items()}
MAX_PENDING = 200
SUMMARY_INTERVAL = 1.0  # counters only: at most one summary.json rewrite per second
SUMMARY_DEBOUNCE = 0.1  # state changes (keys, first decryption, end...): at most every 0.1 s


def _body(message: bytes) -> bytes:
    """The body of a SIP message (after the first empty line, CRLF or bare LF)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in message:
            return message.split(sep, 1)[1]
    return b""


class Decryptor(Protocol):
    def unprotect(self, srtp: bytes) -> bytes | None: ...


def _unprotect_rtcp(dec: Decryptor, srtcp: bytes) -> bytes | None:
    """SRTCP through ``dec`` (``ims.media.srtp`` decryptors have ``unprotect_rtcp``)."""
    fn = getattr(dec, "unprotect_rtcp", None)
    if fn is None:
        return None
    out = fn(srtcp)
    return out if isinstance(out, bytes) else None


def _dir_name(direction: int) -> str:
    if direction in PayloadDirection._value2member_map_:
        return _DIR_NAME.get(PayloadDirection(direction), str(direction))
    return str(direction)


def _dir_of(name: object) -> int | None:
    if not isinstance(name, str):
        return None
    if name in _DIR_OF_NAME:
        return _DIR_OF_NAME[name]
    return int(name) if name.isdigit() else None


def default_decryptor(suite: str, master_key: bytes, master_salt: bytes, roc: int) -> Decryptor:
    """The LEMF's SRTP decryptor for one candidate key.

    With no ROC from the key management (SDES, most MIKEY) and a suite libsrtp runs, an
    :class:`ims.media.srtp.SrtpReceiver`: libsrtp decrypts (~2.5 µs a packet) and the
    explicit-ROC path takes over per SSRC only when libsrtp's index is wrong (the LEMF joined
    after a wrap or after a long loss; the tag covers the ROC, so a wrong guess never
    authenticates: RFC 3711 §3.3.1). Else the explicit-ROC decryptor alone
    (:class:`ims.media.srtp.LateJoinDecryptor`, ~10 µs a packet in ``cryptography``)."""
    from ims.media.keys import SrtpKeys
    from ims.media.srtp import LateJoinDecryptor, SrtpReceiver

    keys = SrtpKeys(suite=suite, master_key=master_key, master_salt=master_salt, roc=roc)
    if not roc:
        try:
            return SrtpReceiver(keys, roc_hint=0)
        except ValueError:
            pass  # not a libsrtp suite: the explicit-ROC path below
    return LateJoinDecryptor(keys, roc_hint=roc or None)


DecryptorFactory = Callable[[str, bytes, bytes, int], Decryptor]


@dataclass(slots=True, kw_only=True)
class KeyCandidate:
    """An SRTP master key the LEMF may use for this call."""

    source: str
    suite: str
    master_key: bytes
    master_salt: bytes
    roc: int = 0
    direction: PayloadDirection | None = None  # media it protects, relative to the target
    sender: str | None = None  # key records: offerer / answerer / both
    ssrc: int | None = None

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.master_key + self.master_salt).hexdigest()[:16]

    def public(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "source": self.source,
            "suite": self.suite,
            "direction": _DIR_NAME.get(self.direction, "unknown") if self.direction else None,
            "sender": self.sender,
            "ssrc": self.ssrc,
        }


@dataclass(slots=True)
class Stream:
    direction: int
    ssrc: int
    packets: int = 0
    decrypted: int = 0
    failures: int = 0
    plain: bool = False
    clear_delivered: bool = False  # the POI marked it decrypted by the network (e2ae)
    key: KeyCandidate | None = None
    decryptor: Decryptor | None = None
    tried: set[str] = field(default_factory=set)
    pending: deque[tuple[float, bytes, tuple[str, int, str, int]]] = field(
        default_factory=lambda: deque(maxlen=MAX_PENDING)
    )
    payload_types: set[int] = field(default_factory=set)


class Call:
    """Output and state of one (XID, correlation ID)."""

    def __init__(
        self,
        directory: Path,
        *,
        xid: str,
        correlation_id: int,
        lemf_addr: tuple[str, int],
        key_policy: KeyPolicy | None = None,
        decryptor_factory: DecryptorFactory = default_decryptor,
        monotonic: Callable[[], float] = time.monotonic,
        liid: str | None = None,
    ) -> None:
        self.dir = private_dir(directory)
        self.monotonic = monotonic  # paces summary.json rewrites only
        self.xid = xid
        self.correlation_id = correlation_id
        self.lemf_addr = lemf_addr
        self.key_policy = key_policy
        self.decryptor_factory = decryptor_factory
        self._iri: JsonlWriter | None = None
        self._x2x3: PcapWriter | None = None
        self._flows: dict[tuple[str, int], TcpFlowWriter] = {}
        self._flow_seq: dict[tuple[str, int], int] = {}  # kept across suspend()
        self._cc_enc: PcapWriter | None = None
        self._cc: PcapWriter | None = None
        self._wav: dict[int, PrivateWavWriter] = {}
        self._keys_file: JsonlWriter | None = None
        self.call_id: str | None = None
        self.parties: dict[str, str] = {}
        self.pois: set[str] = set()
        self.target_is_offerer: bool | None = None
        self.offer_sdp: bytes | None = None
        self.answer_sdp: bytes | None = None
        self.secure_media: bool | None = None
        self.mikey_seen = False
        self.candidates: list[KeyCandidate] = []
        self._pending_records: list[KeyRecord] = []
        self.unavailable: list[str] = []
        self.streams: dict[tuple[int, int], Stream] = {}
        self.x2_pdus = 0
        self.x3_pdus = 0
        self.key_records = 0
        self.gaps: list[dict[str, object]] = []
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._policy_done = False
        self._policy_stage: tuple[bytes | None, bytes | None] = (None, None)
        self.established = False  # a 2xx to an INVITE was seen
        self.ended: str | None = None  # why the call is over ("BYE", "CANCEL", "486 ...")
        self.started_mid_call = False  # a start-of-interception event on an active session
        self.content_unavailable: list[dict[str, object]] = []
        self.iri_events = 0
        self.rtcp = {"packets": 0, "decrypted": 0, "plain": 0, "failures": 0}
        self._rtcp_dec: dict[tuple[int, int], Decryptor] = {}
        self.restarts = 0  # how often this call's state was reloaded from its files
        self.revision = 0  # summary.json rewrites
        self._summary_at = -SUMMARY_INTERVAL
        self._summary_pending = False  # a state change not yet in summary.json
        self._counted = False  # counters changed since the last summary.json
        self.name: str | None = None  # OUT/<name> -> <xid>/<cid> (li.lemf.callfiles.link_call)
        self.callpcap = CallPcap(self.dir / "call.pcap")  # SIP + decrypted media, one call
        self.hi2 = Hi2Writer(self.dir, xid=xid, correlation_id=correlation_id, liid=liid)
        self._records = FileRecords(self.dir)
        self._reload()

    # -- files (opened lazily, closed by suspend(): a LEMF with many calls keeps only the
    # busiest ones' files open; a suspended call reopens its files in append mode) -------
    @property
    def iri(self) -> JsonlWriter:
        if self._iri is None:
            self._iri = JsonlWriter(self.dir / "iri.jsonl")
        return self._iri

    @property
    def x2x3(self) -> PcapWriter:
        if self._x2x3 is None:
            self._x2x3 = PcapWriter(self.dir / "x2x3.pcap", append=True)
        return self._x2x3

    @property
    def is_open(self) -> bool:
        return any(
            w is not None for w in (self._iri, self._x2x3, self._cc_enc, self._cc, self._keys_file)
        ) or bool(self._wav)

    # -- common ----------------------------------------------------------------------------
    def _touch(self, ts: float, poi: str) -> None:
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        self.pois.add(poi)
        self._counted = True

    def record_pdu(self, raw: bytes, ts: float, peer: tuple[str, int]) -> None:
        """Write the PDU as one TCP segment from the POI to the LEMF port (x2x3.pcap)."""
        flow = self._flows.get(peer)
        if flow is None:
            host = peer[0]
            dst = self.lemf_addr[0]
            try:
                if ipaddress.ip_address(host).version != ipaddress.ip_address(dst).version:
                    dst = "::1" if ipaddress.ip_address(host).version == 6 else "127.0.0.1"
            except ValueError:
                host, dst = "127.0.0.1", "127.0.0.1"
            flow = TcpFlowWriter(
                self.x2x3, host, peer[1], dst, self.lemf_addr[1], isn=self._flow_seq.get(peer, 1)
            )
            self._flows[peer] = flow
        # one segment per PDU (tshark 4.0 does not reassemble 5GLI); huge PDUs are skipped
        if len(raw) <= 65000:
            flow.write(raw, ts)

    def note_gap(self, poi: str, expected: int, got: int) -> None:
        self.gaps.append({"poi": poi, "expected": expected, "received": got})
        self._changed()

    # -- X2 ----------------------------------------------------------------------------------
    def on_sip(self, pdu: Pdu, ts: float, poi: str, seq: int | None) -> None:
        self.x2_pdus += 1
        self._touch(ts, poi)
        self.callpcap.add_sip(pdu, ts)
        info = summarise(pdu.payload)
        direction = int(pdu.payload_direction)
        if info.call_id and self.call_id is None:
            self.call_id = info.call_id
        if info.method == "INVITE" and info.to_tag is None and "from" not in self.parties:
            self.parties = {"from": info.from_uri or "", "to": info.to_uri or ""}
        self._note_call_state(info)
        found = self._keys_from_sdp(info, pdu, direction)
        rec: dict[str, object] = {
            "type": "sip",
            "time": ts,
            "poi": poi,
            "seq": seq,
            "direction": _DIR_NAME.get(PayloadDirection(direction), str(direction))
            if direction in PayloadDirection._value2member_map_
            else str(direction),
            "sip": info.public(),
            "keys_found": [c.public() for c in found],
        }
        self.iri.write(rec)
        self.hi2.add_sip(
            pdu.payload,
            ts,
            poi,
            method=info.method,
            status=info.status,
            cseq_method=info.cseq_method,
            from_target=direction == PayloadDirection.FROM_TARGET,
            parties=self.parties,
        )

    def _note_call_state(self, info: SipSummary) -> None:
        if info.status is not None and info.cseq_method == "INVITE":
            if 200 <= info.status < 300:
                self.established = True
            elif info.status >= 300 and not self.established and self.ended is None:
                self.ended = f"{info.status} {info.reason or ''}".strip()
                self._changed()
        elif info.method in ("BYE", "CANCEL") and self.ended is None:
            self.ended = info.method
            self._changed()

    def on_iri_event(
        self, body: dict[str, Any], ts: float, poi: str, seq: int | None, *, has_sdp: bool
    ) -> None:
        """A POI's event without a SIP message (``application/vnd.imslab.iri-event+json``):
        start of interception on an active session, or content unavailable."""
        self.x2_pdus += 1
        self.iri_events += 1
        self._touch(ts, poi)
        event = str(body.get("event", ""))
        reason = str(body.get("reason") or "")
        if self.call_id is None and isinstance(body.get("call_id"), str) and body["call_id"]:
            self.call_id = body["call_id"]
        rec: dict[str, object] = {
            "type": "iri-event",
            "event": event,
            "time": ts,
            "poi": poi,
            "seq": seq,
            "element": body.get("element"),
            "call_id": body.get("call_id"),
            "matched": body.get("matched"),
            "reason": reason,
            "sdp_state": has_sdp,  # the SDP itself may hold keys: only in x2x3.pcap
        }
        self.iri.write(rec)
        self.hi2.add_event(event, ts, poi, self.parties)
        if event == "start-of-interception":
            self.started_mid_call = True
        elif event == "cc-unavailable":
            self.content_unavailable.append({"reason": reason, "poi": poi, "time": ts})
        self._changed()

    def _keys_from_sdp(self, info: SipSummary, pdu: Pdu, direction: int) -> list[KeyCandidate]:
        if not info.has_sdp:
            return []
        body = _body(pdu.payload)
        late_offer = self.offer_sdp is None and info.status is not None and 200 <= info.status < 300
        if info.method in ("INVITE", "UPDATE") or late_offer:
            # An offer: in the request, or in the 2xx of an INVITE that had no SDP (RFC 3261
            # §13.2.1 late offer; the answer then comes in the ACK).
            self.offer_sdp = body
            if self.target_is_offerer is None:
                self.target_is_offerer = direction == PayloadDirection.FROM_TARGET
                self._resolve_records()
        else:  # 18x/2xx answers, and ACK/PRACK answering a late offer
            self.answer_sdp = body
        audio = [m for m in info.media if m.port != 0]
        if audio:
            self.secure_media = any("SAVP" in m.proto.upper() for m in audio)
            if self.secure_media is False and not self.candidates:
                self._release_plain()  # X3 that arrived before this SDP (another POI)
        found: list[KeyCandidate] = []
        for m in audio:
            for line in m.crypto:
                cand = self._sdes_candidate(line, direction)
                if cand is not None:
                    found.append(cand)
            if any(mikey_bytes(v) is not None for v in (*m.key_mgmt, *info.session_key_mgmt)):
                self.mikey_seen = True
        for c in found:
            self.add_candidate(c)
        self._run_policy()
        return found

    def _sdes_candidate(self, line: str, direction: int) -> KeyCandidate | None:
        try:
            from ims.sdes import CryptoAttribute

            attr = CryptoAttribute.parse(line)
            return KeyCandidate(
                source="sdes",
                suite=attr.suite,
                master_key=attr.master_key,
                master_salt=attr.master_salt,
                direction=PayloadDirection(direction)
                if direction in (PayloadDirection.FROM_TARGET, PayloadDirection.TO_TARGET)
                else None,
            )
        except Exception as exc:
            self.unavailable.append(f"unreadable a=crypto line: {type(exc).__name__}")
            return None

    def _run_policy(self) -> None:
        """Open MIKEY with the task's secrets once offer and answer are both seen."""
        # Run on the offer (PSK/PKE need nothing else) and again on the answer (modes whose
        # keys need the response), until a run yields keys.
        if self._policy_done or self.key_policy is None or not self.mikey_seen:
            return
        if self.offer_sdp is None:
            return
        stage = (self.offer_sdp, self.answer_sdp)
        if stage == self._policy_stage:
            return
        self._policy_stage = stage
        try:
            records = list(self.key_policy(self.call_id or "", self.offer_sdp, self.answer_sdp))
        except Exception as exc:
            self.unavailable.append(f"key policy failed: {type(exc).__name__}: {exc}")
            return
        if any(r.keys is not None for r in records):
            self._policy_done = True
        elif self.answer_sdp is None:
            return  # maybe the answer is needed: report unavailability only after it
        for r in records:
            self.add_key_record(r, count=False)

    def on_key_record(self, record: KeyRecord, ts: float, poi: str, seq: int | None) -> None:
        self.x2_pdus += 1
        self.key_records += 1
        self._touch(ts, poi)
        cands = self.add_key_record(record)
        self.iri.write(
            {
                "type": "key-record",
                "time": ts,
                "poi": poi,
                "seq": seq,
                "source": record.source.value,
                "sender": record.sender.value,
                "available": record.available,
                "reason": record.reason,
                "keys_found": [c.public() for c in cands],
            }
        )

    def add_key_record(self, record: KeyRecord, *, count: bool = True) -> list[KeyCandidate]:
        if record.keys is None:
            if record.reason:
                self.unavailable.append(f"{record.source.value}: {record.reason}")
                self._changed()
            return []
        self._pending_records.append(record)
        return self._resolve_records()

    def _sender_direction(self, sender: Sender) -> PayloadDirection | None:
        if sender is Sender.BOTH or self.target_is_offerer is None:
            return None
        target_sends = (sender is Sender.OFFERER) == self.target_is_offerer
        return PayloadDirection.FROM_TARGET if target_sends else PayloadDirection.TO_TARGET

    def _resolve_records(self) -> list[KeyCandidate]:
        out: list[KeyCandidate] = []
        for rec in self._pending_records:
            assert rec.keys is not None
            cand = KeyCandidate(
                source=rec.source.value,
                suite=rec.keys.suite,
                master_key=rec.keys.master_key,
                master_salt=rec.keys.master_salt,
                roc=rec.keys.roc,
                direction=self._sender_direction(rec.sender),
                sender=rec.sender.value,
                ssrc=rec.ssrc,
            )
            out.append(cand)
            self.add_candidate(cand)
        self._pending_records = [r for r in self._pending_records if self.target_is_offerer is None]
        return out

    def add_candidate(self, cand: KeyCandidate) -> None:
        for c in self.candidates:
            if c.fingerprint == cand.fingerprint:
                if c.direction is None and cand.direction is not None:
                    c.direction = cand.direction
                return
        self.candidates.append(cand)
        if self._keys_file is None:
            self._keys_file = JsonlWriter(self.dir / "keys.jsonl")  # append mode
        self._keys_file.write(
            {
                **cand.public(),
                "master_key": cand.master_key.hex(),
                "master_salt": cand.master_salt.hex(),
                "roc": cand.roc,
            }
        )
        self._keys_file.flush()
        self._changed()
        for stream in self.streams.values():
            if stream.key is None and stream.pending:
                self._retry(stream)

    # -- X3 ----------------------------------------------------------------------------------
    def on_cc(self, pdu: Pdu, ts: float, poi: str) -> None:
        """One X3 PDU (its decoded form; the LEMF's hot path calls :meth:`on_content`)."""
        src_a, dst_a = pdu.find(SourceAddress), pdu.find(DestinationAddress)
        src_p, dst_p = pdu.find(SourcePort), pdu.find(DestinationPort)
        self.on_content(
            ts,
            poi,
            int(pdu.payload_direction),
            int(pdu.payload_format),
            pdu.payload,
            str(src_a.address) if src_a else None,
            src_p.port if src_p else None,
            str(dst_a.address) if dst_a else None,
            dst_p.port if dst_p else None,
            clear=pdu.opaque(DECRYPTED_CONTENT.type) == DECRYPTED_CONTENT.value,
        )

    def on_content(
        self,
        ts: float,
        poi: str,
        direction: int,
        fmt: int,
        payload: bytes,
        src: str | None,
        sport: int | None,
        dst: str | None,
        dport: int | None,
        *,
        clear: bool = False,
    ) -> None:
        """One X3 PDU's content: kept as intercepted (``cc-encrypted.pcap``), decrypted into
        ``cc.pcap`` and ``call.pcap``, G.711 into the direction's WAV. The addresses and ports
        are the PDU's attributes (None where absent). ``clear``: the POI marked the content as
        decrypted by the network (:data:`~li.x2x3.pdu.DECRYPTED_CONTENT`, e2ae); such PDUs carry
        an extra attribute, so they never take the mediation's content fast path."""
        self.x3_pdus += 1
        self._touch(ts, poi)
        cc_enc = self._cc_enc
        if cc_enc is None:
            cc_enc = self._cc_enc = PcapWriter(self.dir / "cc-encrypted.pcap", append=True)
        if fmt == PayloadFormat.RTP_PACKET:
            a, b = ("10.0.0.1", "10.0.0.2")
            if direction == PayloadDirection.TO_TARGET:
                a, b = b, a
            addr = (
                src if src is not None else a,
                sport if sport is not None else 40000,
                dst if dst is not None else b,
                dport if dport is not None else 40000,
            )
            try:
                cc_enc.write(udp_packet(addr[0], addr[1], addr[2], addr[3], payload), ts)
            except ValueError:
                return
        elif fmt in (PayloadFormat.IPV4_PACKET, PayloadFormat.IPV6_PACKET):
            # A whole IP packet (the format TS 103 221-2 prefers): kept as intercepted, and
            # UDP content is decrypted like format 8.
            cc_enc.write(payload, ts)
            seg = parse_ip(PcapRecord(ts=ts, linktype=LINKTYPE_RAW, data=payload))
            if seg is None or seg.proto != IPPROTO_UDP:
                return
            addr = (seg.src, seg.sport, seg.dst, seg.dport)
            payload = seg.payload
        else:
            return  # other content formats are counted and kept in x2x3.pcap only
        if len(payload) < 12 or payload[0] >> 6 != 2:
            return
        pt = payload[1] & 0x7F
        if 72 <= pt <= 79:  # RTCP (RFC 5761 demux)
            self._on_rtcp(direction, ts, payload, addr)
            return
        ssrc = int.from_bytes(payload[8:12], "big")
        key = (direction, ssrc)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(direction=direction, ssrc=ssrc)
        stream.packets += 1
        if self.secure_media is False and not self.candidates:
            stream.plain = True
        elif not stream.plain and clear:
            # the network decrypted it (SRTP terminated at its anchor, e2ae): en clair
            stream.plain = True
            stream.clear_delivered = True
            self._changed()
        if stream.plain:
            self._emit(stream, ts, payload, addr)
            return
        if stream.decryptor is not None:
            plain = stream.decryptor.unprotect(payload)
            if plain is None:
                stream.failures += 1
            else:
                self._emit(stream, ts, plain, addr)
            return
        stream.pending.append((ts, payload, addr))
        self._retry(stream)

    def _on_rtcp(
        self, direction: int, ts: float, packet: bytes, addr: tuple[str, int, str, int]
    ) -> None:
        """SRTCP: decrypted with the key of the sender's SRTP stream (same SSRC and direction,
        RFC 3711 §3.4), else with the first candidate that authenticates; plain RTCP of an
        RTP/AVP call is copied. Written to cc.pcap next to the RTP; undecryptable SRTCP stays
        in cc-encrypted.pcap only (it is never kept for a later key: RTCP is not audio)."""
        if len(packet) < 8:
            return
        self.rtcp["packets"] += 1
        self._counted = True
        if self.secure_media is False and not self.candidates:
            self.rtcp["plain"] += 1
            self._write_cc(packet, ts, addr)
            return
        ssrc = int.from_bytes(packet[4:8], "big")
        key = (direction, ssrc)
        dec = self._rtcp_dec.get(key)
        plain = _unprotect_rtcp(dec, packet) if dec is not None else None
        if dec is None:
            stream = self.streams.get(key)
            cands = self._ordered_candidates(stream or Stream(direction=direction, ssrc=ssrc))
            if stream is not None and stream.key is not None:
                cands = [stream.key] + [c for c in cands if c is not stream.key]
            for cand in cands:
                try:
                    trial = self.decryptor_factory(
                        cand.suite, cand.master_key, cand.master_salt, cand.roc
                    )
                except Exception:
                    continue
                plain = _unprotect_rtcp(trial, packet)
                if plain is not None:
                    self._rtcp_dec[key] = trial
                    break
        if plain is None:
            self.rtcp["failures"] += 1
            return
        self.rtcp["decrypted"] += 1
        if self.rtcp["decrypted"] == 1:
            self._changed()
        self._write_cc(plain, ts, addr)

    def _write_cc(self, packet: bytes, ts: float, addr: tuple[str, int, str, int]) -> None:
        if self._cc is None:
            self._cc = PcapWriter(self.dir / "cc.pcap", append=True)
        ip_packet = udp_packet(addr[0], addr[1], addr[2], addr[3], packet)
        self._cc.write(ip_packet, ts)
        self.callpcap.add_packet(ip_packet, ts)

    def _release_plain(self) -> None:
        for stream in self.streams.values():
            if stream.key is None and not stream.plain:
                stream.plain = True
                pending = list(stream.pending)
                stream.pending.clear()
                for ts, pkt, addr in pending:
                    self._emit(stream, ts, pkt, addr)

    def _ordered_candidates(self, stream: Stream) -> list[KeyCandidate]:
        def rank(c: KeyCandidate) -> int:
            if c.ssrc is not None and c.ssrc != stream.ssrc:
                return 3
            if c.direction is None:
                return 1
            return 0 if c.direction == stream.direction else 2

        return sorted(self.candidates, key=rank)

    def _retry(self, stream: Stream) -> None:
        if not stream.pending:
            return
        _, first, _ = stream.pending[0]
        for cand in self._ordered_candidates(stream):
            if cand.fingerprint in stream.tried:
                continue
            try:
                dec = self.decryptor_factory(
                    cand.suite, cand.master_key, cand.master_salt, cand.roc
                )
            except Exception as exc:
                stream.tried.add(cand.fingerprint)
                self.unavailable.append(f"key {cand.fingerprint}: {type(exc).__name__}: {exc}")
                continue
            if dec.unprotect(first) is None:
                stream.tried.add(cand.fingerprint)
                continue
            # This key authenticates: replay the stream from the start with a fresh context.
            stream.key = cand
            self._changed()
            stream.decryptor = self.decryptor_factory(
                cand.suite, cand.master_key, cand.master_salt, cand.roc
            )
            pending = list(stream.pending)
            stream.pending.clear()
            for ts, pkt, addr in pending:
                plain = stream.decryptor.unprotect(pkt)
                if plain is None:
                    stream.failures += 1
                else:
                    self._emit(stream, ts, plain, addr)
            return

    def _emit(self, stream: Stream, ts: float, rtp: bytes, addr: tuple[str, int, str, int]) -> None:
        if not stream.plain:
            stream.decrypted += 1
            if stream.decrypted == 1:
                self._changed()  # first packet decrypted
        self._counted = True
        self._write_cc(rtp, ts, addr)
        if len(rtp) < 12:
            return
        pt = rtp[1] & 0x7F
        stream.payload_types.add(pt)
        if pt not in (0, 8):
            return
        try:
            start = header_length(rtp)
        except RtpError:
            return
        end = len(rtp)
        if rtp[0] & 0x20:  # RFC 3550 §5.1: the last octet counts the padding
            pad = rtp[-1] if end > start else 0
            if pad == 0 or pad > end - start:
                return
            end -= pad
        audio = rtp[start:end]
        pcm = ulaw_decode(audio) if pt == 0 else alaw_decode(audio)
        wav = self._wav.get(stream.direction)
        if wav is None:
            name = (
                _DIR_NAME.get(PayloadDirection(stream.direction), f"direction-{stream.direction}")
                if stream.direction in PayloadDirection._value2member_map_
                else f"direction-{stream.direction}"
            )
            path = self.dir / f"audio-{name}.wav"
            n = 1
            # a restarted (or suspended) call continues its WAV; one it cannot continue is
            # never overwritten
            while path.exists() and not wav_appendable(path):
                n += 1
                path = self.dir / f"audio-{name}-{n}.wav"
            wav = self._wav[stream.direction] = PrivateWavWriter(path, append=True)
        wav.write(pcm)

    # -- summary -------------------------------------------------------------------------
    def why_no_keys(self) -> str | None:
        if self.secure_media is False:
            return None
        if self.candidates:
            return None
        if self.unavailable:
            return "; ".join(dict.fromkeys(self.unavailable))
        if self.mikey_seen and self.key_policy is None:
            return "MIKEY in the signalling but the LEMF holds no secret for this task"
        if self.mikey_seen:
            return "MIKEY could not be opened with the task's secrets"
        if self.secure_media is None:
            return "no SDP seen for this call"
        return "no SDES or MIKEY key in the signalling and no key record"

    def summary(self) -> dict[str, Any]:
        # what the files hold, counted in the files (li.lemf.callfiles)
        records = {**self._records.counts(), "call.pcap": self.callpcap.packets}
        return {
            "xid": self.xid,
            "correlation_id": f"{self.correlation_id:016x}",
            "call_id": self.call_id,
            "parties": self.parties,
            "pois": sorted(self.pois),
            "first_time": self.first_ts,
            "last_time": self.last_ts,
            "target_role": None
            if self.target_is_offerer is None
            else ("offerer" if self.target_is_offerer else "answerer"),
            "x2_pdus": self.x2_pdus,
            "x3_pdus": self.x3_pdus,
            "key_records": self.key_records,
            "iri_events": records.get("iri.jsonl", 0),  # IRI records written (iri.jsonl lines)
            "poi_events": self.iri_events,  # of which POI events without SIP (mid-call start...)
            "name": self.name,
            "x2x3_port": self.lemf_addr[1],  # tshark -d tcp.port==PORT,5gli x2x3.pcap
            "file_records": records,
            "call_pcap": self.callpcap.summary(),
            "hi2": self.hi2.summary(),
            "media_encrypted": self.secure_media,
            "mikey_seen": self.mikey_seen,
            "keys_available": bool(self.candidates),
            "keys": [c.public() for c in self.candidates],
            "keys_unavailable_reason": self.why_no_keys(),
            "interception_started_mid_call": self.started_mid_call,
            "content_unavailable": self.content_unavailable[-1]
            if self.content_unavailable
            else None,
            "content_unavailable_reports": len(self.content_unavailable),
            "streams": [
                {
                    "direction": _dir_name(s.direction),
                    "ssrc": f"{s.ssrc:08x}",
                    "packets": s.packets,
                    "plain_rtp": s.plain,
                    "decrypted_by_network": s.clear_delivered,
                    "decrypted": s.decrypted,
                    "decrypt_failures": s.failures + (0 if s.key else len(s.pending)),
                    "key": s.key.fingerprint if s.key else None,
                    "payload_types": sorted(s.payload_types),
                }
                for s in self.streams.values()
            ],
            "rtcp": dict(self.rtcp),
            "sequence_gaps": self.gaps,
            "established": self.established,
            "ended": self.ended,
            # the call is over and every file holds all that arrived before this summary
            # (summary.json is only ever written after flushing the call's writers)
            "complete": self.ended is not None,
            "restarts": self.restarts,
            "revision": self.revision + 1,
            "files": sorted(p.name for p in self.dir.iterdir() if not p.name.endswith(".tmp")),
        }

    # -- summary.json: written on every state change that matters (debounced), on counters
    # at most once per SUMMARY_INTERVAL, and always on flush()/suspend()/close() --------------
    def _changed(self) -> None:
        self._summary_pending = True

    @property
    def summary_stale(self) -> bool:
        """summary.json lags behind the call's state (a change or counters not written)."""
        return self._summary_pending or self._counted

    def _flush_writers(self) -> None:
        for w in (self._iri, self._x2x3, self._cc_enc, self._cc, self._keys_file):
            if w is not None:
                w.flush()
        self.callpcap.write(final=self.ended is not None)
        self.hi2.flush()
        for wav in self._wav.values():
            wav.flush()

    def write_summary(self) -> None:
        """Flush the call's files, then atomically replace summary.json (temp + rename, 0600)."""
        self._flush_writers()
        data = self.summary()
        write_json_private(self.dir / "summary.json", data)
        self.revision = int(data["revision"])
        self._summary_at = self.monotonic()
        self._summary_pending = self._counted = False

    def after_pdu(self, *, allowed: bool = True) -> bool:
        """Called after each PDU: writes summary.json when a state change is pending and the
        last write is at least SUMMARY_DEBOUNCE old (else the next PDU or checkpoint does);
        only the call's end is written when not ``allowed`` (the LEMF's summary budget,
        li.lemf.mediation). True when written."""
        if (
            self._summary_pending
            and (allowed or self.ended is not None)
            and self.monotonic() - self._summary_at >= SUMMARY_DEBOUNCE
        ):
            self.write_summary()
            return True
        return False

    @property
    def state_changed(self) -> bool:
        """A state change is not in summary.json yet."""
        return self._summary_pending

    def checkpoint(self, *, allowed: bool = True) -> bool:
        """Before a Keepalive-Ack: flush every file. summary.json too when ``allowed`` (the
        LEMF's summary budget) and a state change is pending or the counters changed and the
        last write is SUMMARY_INTERVAL old, or when the call ended. True when written."""
        if (self._summary_pending and (allowed or self.ended is not None)) or (
            allowed and self._counted and self.monotonic() - self._summary_at >= SUMMARY_INTERVAL
        ):
            self.write_summary()
            return True
        self._flush_writers()
        return False

    @property
    def summary_written_at(self) -> float:
        """``monotonic()`` of the last summary.json write."""
        return self._summary_at

    def idle(self) -> None:
        """No PDU for a while: WAV headers brought up to date (files valid at all times)."""
        for wav in self._wav.values():
            wav.idle()

    def flush(self) -> None:
        """An explicit flush request: every file flushed and summary.json rewritten now."""
        self.callpcap.write(final=True)
        self.write_summary()

    def suspend(self) -> None:
        """Write the summary and close every file; the call's state stays in memory."""
        self.write_summary()
        for peer, flow in self._flows.items():
            self._flow_seq[peer] = flow.seq
        self._flows.clear()
        for w in (self._iri, self._x2x3, self._cc_enc, self._cc, self._keys_file):
            if w is not None:
                w.close()
        for wav in self._wav.values():
            wav.close()
        self._wav.clear()
        self._iri = self._x2x3 = self._cc_enc = self._cc = None
        self._keys_file = None
        self.callpcap.release()
        self.hi2.close()

    def close(self) -> None:
        self.suspend()

    # -- restart: a LEMF that finds the call's files continues where it stopped -------------
    def _reload(self) -> None:
        keys_path = self.dir / "keys.jsonl"
        if keys_path.exists():
            for line in keys_path.read_text().splitlines():
                try:
                    d = json.loads(line)
                    direction = _dir_of(d.get("direction"))
                    cand = KeyCandidate(
                        source=str(d["source"]),
                        suite=str(d["suite"]),
                        master_key=bytes.fromhex(d["master_key"]),
                        master_salt=bytes.fromhex(d["master_salt"]),
                        roc=int(d.get("roc") or 0),
                        direction=PayloadDirection(direction) if direction is not None else None,
                        sender=d.get("sender"),
                        ssrc=d.get("ssrc"),
                    )
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash
                if all(c.fingerprint != cand.fingerprint for c in self.candidates):
                    self.candidates.append(cand)
        summary_path = self.dir / "summary.json"
        try:
            old = json.loads(summary_path.read_text()) if summary_path.exists() else None
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict):
            if self.candidates:
                self.restarts = 1
            return
        try:
            self._reload_summary(old)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # a summary from another version: keep the keys, start the counters afresh
            log.warning("call summary not reloaded", xid=self.xid, error=repr(exc))
            self.streams.clear()
            self.restarts = 1

    def _reload_summary(self, old: dict[str, Any]) -> None:
        self.restarts = int(old.get("restarts", 0)) + 1
        self.revision = int(old.get("revision", 0))
        self.call_id = old.get("call_id")
        self.parties = dict(old.get("parties") or {})
        self.pois = set(old.get("pois") or ())
        self.first_ts, self.last_ts = old.get("first_time"), old.get("last_time")
        role = old.get("target_role")
        self.target_is_offerer = None if role is None else role == "offerer"
        self.x2_pdus = int(old.get("x2_pdus", 0))
        self.x3_pdus = int(old.get("x3_pdus", 0))
        self.key_records = int(old.get("key_records", 0))
        self.iri_events = int(old.get("poi_events", 0))
        self.secure_media = old.get("media_encrypted")
        self.mikey_seen = bool(old.get("mikey_seen", False))
        self.started_mid_call = bool(old.get("interception_started_mid_call", False))
        if old.get("content_unavailable"):
            self.content_unavailable = [dict(old["content_unavailable"])]
        self.gaps = list(old.get("sequence_gaps") or [])
        self.established = bool(old.get("established", False))
        self.ended = old.get("ended")
        if old.get("keys_unavailable_reason") and not self.candidates:
            self.unavailable.append(str(old["keys_unavailable_reason"]))
        for k in self.rtcp:
            self.rtcp[k] = int((old.get("rtcp") or {}).get(k, 0))
        by_fp = {c.fingerprint: c for c in self.candidates}
        for st in old.get("streams") or ():
            direction = _dir_of(st.get("direction"))
            if direction is None:
                continue
            stream = Stream(
                direction=direction,
                ssrc=int(st["ssrc"], 16),
                packets=int(st.get("packets", 0)),
                decrypted=int(st.get("decrypted", 0)),
                failures=int(st.get("decrypt_failures", 0)),
                plain=bool(st.get("plain_rtp", False)),
                clear_delivered=bool(st.get("decrypted_by_network", False)),
                payload_types=set(st.get("payload_types") or ()),
            )
            bound = by_fp.get(st.get("key") or "")
            if bound is not None:
                stream.key = bound
                try:
                    stream.decryptor = self.decryptor_factory(
                        bound.suite, bound.master_key, bound.master_salt, bound.roc
                    )
                except Exception:
                    stream.key = None
            self.streams[(direction, stream.ssrc)] = stream
