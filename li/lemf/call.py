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
arrives. Decrypted RTP goes to ``cc.pcap`` and G.711 audio to one WAV per direction.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ims.log import get_logger
from li.keys import KeyRecord, Sender
from li.lemf.output import JsonlWriter, PrivateWavWriter, private_dir, write_json_private
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
MAX_PENDING = 200
SUMMARY_INTERVAL = 1.0  # seconds between summary.json rewrites (and at close)


def _body(message: bytes) -> bytes:
    """The body of a SIP message (after the first empty line, CRLF or bare LF)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in message:
            return message.split(sep, 1)[1]
    return b""


class Decryptor(Protocol):
    def unprotect(self, srtp: bytes) -> bytes | None: ...


def default_decryptor(suite: str, master_key: bytes, master_salt: bytes, roc: int) -> Decryptor:
    from ims.media.keys import SrtpKeys
    from ims.media.srtp import LateJoinDecryptor

    keys = SrtpKeys(suite=suite, master_key=master_key, master_salt=master_salt, roc=roc)
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
    ) -> None:
        self.dir = private_dir(directory)
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
        self._summary_at = -SUMMARY_INTERVAL

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

    # -- X2 ----------------------------------------------------------------------------------
    def on_sip(self, pdu: Pdu, ts: float, poi: str, seq: int | None) -> None:
        self.x2_pdus += 1
        self._touch(ts, poi)
        info = summarise(pdu.payload)
        direction = int(pdu.payload_direction)
        if info.call_id and self.call_id is None:
            self.call_id = info.call_id
        if info.method == "INVITE" and info.to_tag is None and "from" not in self.parties:
            self.parties = {"from": info.from_uri or "", "to": info.to_uri or ""}
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
        for stream in self.streams.values():
            if stream.key is None and stream.pending:
                self._retry(stream)

    # -- X3 ----------------------------------------------------------------------------------
    def on_cc(self, pdu: Pdu, ts: float, poi: str) -> None:
        self.x3_pdus += 1
        self._touch(ts, poi)
        payload = pdu.payload
        direction = int(pdu.payload_direction)
        fmt = int(pdu.payload_format)
        if self._cc_enc is None:
            self._cc_enc = PcapWriter(self.dir / "cc-encrypted.pcap", append=True)
        if fmt in (PayloadFormat.IPV4_PACKET, PayloadFormat.IPV6_PACKET):
            # A whole IP packet (the format TS 103 221-2 prefers): kept as intercepted, and
            # UDP content is decrypted like format 8.
            self._cc_enc.write(payload, ts)
            seg = parse_ip(PcapRecord(ts=ts, linktype=LINKTYPE_RAW, data=payload))
            if seg is None or seg.proto != IPPROTO_UDP:
                return
            addr = (seg.src, seg.sport, seg.dst, seg.dport)
            payload = seg.payload
        elif fmt == PayloadFormat.RTP_PACKET:
            src_a, dst_a = pdu.find(SourceAddress), pdu.find(DestinationAddress)
            src_p, dst_p = pdu.find(SourcePort), pdu.find(DestinationPort)
            a, b = ("10.0.0.1", "10.0.0.2")
            if direction == PayloadDirection.TO_TARGET:
                a, b = b, a
            addr = (
                str(src_a.address) if src_a else a,
                src_p.port if src_p else 40000,
                str(dst_a.address) if dst_a else b,
                dst_p.port if dst_p else 40000,
            )
            try:
                self._cc_enc.write(udp_packet(addr[0], addr[1], addr[2], addr[3], payload), ts)
            except ValueError:
                return
        else:
            return  # other content formats are counted and kept in x2x3.pcap only
        if len(payload) < 12 or payload[0] >> 6 != 2:
            return
        pt = payload[1] & 0x7F
        if 72 <= pt <= 79:  # RTCP (RFC 5761 demux): counted, not decoded here
            return
        ssrc = int.from_bytes(payload[8:12], "big")
        key = (direction, ssrc)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(direction=direction, ssrc=ssrc)
        stream.packets += 1
        if self.secure_media is False and not self.candidates:
            stream.plain = True
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
        stream.decrypted += 0 if stream.plain else 1
        if self._cc is None:
            self._cc = PcapWriter(self.dir / "cc.pcap", append=True)
        self._cc.write(udp_packet(addr[0], addr[1], addr[2], addr[3], rtp), ts)
        if len(rtp) < 12:
            return
        pt = rtp[1] & 0x7F
        stream.payload_types.add(pt)
        if pt not in (0, 8):
            return
        try:
            from ims.media.g711 import alaw_decode, ulaw_decode
            from ims.media.rtp import decode_rtp

            audio = decode_rtp(rtp).payload
        except Exception:
            return
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
            while path.exists():  # a restarted LEMF never overwrites earlier audio
                n += 1
                path = self.dir / f"audio-{name}-{n}.wav"
            wav = self._wav[stream.direction] = PrivateWavWriter(path)
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
            "media_encrypted": self.secure_media,
            "keys_available": bool(self.candidates),
            "keys": [c.public() for c in self.candidates],
            "keys_unavailable_reason": self.why_no_keys(),
            "streams": [
                {
                    "direction": _DIR_NAME.get(PayloadDirection(s.direction), str(s.direction))
                    if s.direction in PayloadDirection._value2member_map_
                    else str(s.direction),
                    "ssrc": f"{s.ssrc:08x}",
                    "packets": s.packets,
                    "plain_rtp": s.plain,
                    "decrypted": s.decrypted,
                    "decrypt_failures": s.failures + (0 if s.key else len(s.pending)),
                    "key": s.key.fingerprint if s.key else None,
                    "payload_types": sorted(s.payload_types),
                }
                for s in self.streams.values()
            ],
            "sequence_gaps": self.gaps,
            "files": sorted(p.name for p in self.dir.iterdir() if not p.name.endswith(".tmp")),
        }

    def checkpoint(self) -> None:
        for w in (self._iri, self._x2x3, self._cc_enc, self._cc, self._keys_file):
            if w is not None:
                w.flush()
        for wav in self._wav.values():
            wav.flush()
        now = time.monotonic()
        if now - self._summary_at >= SUMMARY_INTERVAL:
            self._summary_at = now
            write_json_private(self.dir / "summary.json", self.summary())

    def suspend(self) -> None:
        """Write the summary and close every file; the call's state stays in memory."""
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
        write_json_private(self.dir / "summary.json", self.summary())
        self._summary_at = time.monotonic()

    def close(self) -> None:
        self.suspend()
