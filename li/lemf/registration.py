"""Intercepted registrations at the LEMF: filed as registrations, not as calls.

A REGISTER (RFC 3261 §10) is no communication: it has no media, no SDP and no keys, and a
"call" directory saying "no SDP seen" would mislead the agency. The IRI-POIs report it as an
out-of-dialog ``report`` (li.poi.iri); here it goes to the task's registration files::

    OUT/<xid>/registrations.jsonl   one line per intercepted REGISTER or response ("sip"), and
                                    one per outcome ("registration": registered, refreshed,
                                    deregistered, rejected) with the bindings
    OUT/<xid>/registrations.json    the current state per address of record (atomic rewrite)
    OUT/<xid>/registrations.pcap    the X2 PDUs as received (one TCP segment each, like a
                                    call's x2x3.pcap)

The bindings of an outcome are those of the registrar's 2xx (RFC 3261 §10.3 step 8: it lists
*every* current contact of the AoR with its ``expires``), so what is filed is what the network
granted, not what the UE asked for; TS 33.128 §7.12 reports an IMS registration the same way
(registered contacts, expiry, implicitly registered identities). ``expires_at`` is the 2xx's
time plus the granted expiry. POI and timestamps come from the X2 PDU. Everything here reads
intercepted bytes leniently and bounded: odd input is filed as far as it can be read, never
raised.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from ims.sip.errors import SipParseError
from li.lemf.call import _dir_name
from li.lemf.output import JsonlWriter, private_dir, write_json_private
from li.lemf.sipinfo import SipSummary, summarise
from li.pcap import PcapWriter, TcpFlowWriter
from li.x2x3.pdu import Pdu

MAX_CONTACTS = 32  # bindings kept per message (a registrar's 2xx lists them all)
MAX_AORS = 1024  # registration states kept per task (oldest dropped from the summary)


def is_registration(info: SipSummary) -> bool:
    """A REGISTER, or a response to one."""
    return info.method == "REGISTER" or (info.status is not None and info.cseq_method == "REGISTER")


def associated_uris(info: SipSummary) -> list[str]:
    """The implicit registration set of a 2xx (P-Associated-URI, RFC 7315 §4.1), read through
    ims.sip; empty when absent or unreadable."""
    if info.message is None:
        return []
    try:
        return [a.uri.encode() for a in info.message.addresses("P-Associated-URI")]
    except SipParseError:
        return []


def contacts(info: SipSummary) -> list[dict[str, Any]]:
    """The Contact bindings of a REGISTER or its response, read through ims.sip: URI and
    ``expires`` (the parameter, else the Expires header, else None); ``*`` (remove all) is
    kept as is. Contacts that do not parse give no bindings (the message is still filed)."""
    msg = info.message
    if msg is None:
        return []
    try:
        default = msg.expires
    except SipParseError:
        default = None
    try:
        star = msg.contact_star
        addrs = msg.contacts
    except SipParseError:
        return []
    out: list[dict[str, Any]] = [{"uri": "*", "expires": default}] if star else []
    for c in addrs[:MAX_CONTACTS]:
        try:
            expires = c.expires
        except SipParseError:
            expires = None
        out.append({"uri": c.uri.encode(), "expires": default if expires is None else expires})
    return out


class Registrations:
    """One task's registration files (see the module docstring)."""

    def __init__(self, directory: Path, *, xid: str, lemf_addr: tuple[str, int]) -> None:
        self.dir = private_dir(directory)
        self.xid = xid
        self.lemf_addr = lemf_addr
        self._log: JsonlWriter | None = None
        self._pcap: PcapWriter | None = None
        self._flows: dict[tuple[str, int], TcpFlowWriter] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.messages = 0
        self._load()

    # -- files ---------------------------------------------------------------------------
    @property
    def log(self) -> JsonlWriter:
        if self._log is None:
            self._log = JsonlWriter(self.dir / "registrations.jsonl")
        return self._log

    def _record_pdu(self, raw: bytes, ts: float, peer: tuple[str, int]) -> None:
        if self._pcap is None:
            self._pcap = PcapWriter(self.dir / "registrations.pcap", append=True)
        flow = self._flows.get(peer)
        if flow is None:
            host, dst = peer[0], self.lemf_addr[0]
            try:
                if ipaddress.ip_address(host).version != ipaddress.ip_address(dst).version:
                    dst = "::1" if ipaddress.ip_address(host).version == 6 else "127.0.0.1"
            except ValueError:
                host, dst = "127.0.0.1", "127.0.0.1"
            flow = self._flows[peer] = TcpFlowWriter(
                self._pcap, host, peer[1], dst, self.lemf_addr[1]
            )
        if len(raw) <= 65000:
            flow.write(raw, ts)

    def _load(self) -> None:
        """A restarted LEMF continues the registration states it had filed."""
        path = self.dir / "registrations.json"
        try:
            old = json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and isinstance(old.get("registrations"), dict):
            self.states = {str(k): dict(v) for k, v in old["registrations"].items()}
            self.messages = int(old.get("messages", 0))

    def _write_states(self) -> None:
        write_json_private(
            self.dir / "registrations.json",
            {"xid": self.xid, "messages": self.messages, "registrations": self.states},
        )

    # -- input ---------------------------------------------------------------------------
    def on_sip(
        self,
        pdu: Pdu,
        info: SipSummary,
        raw: bytes,
        ts: float,
        poi: str,
        seq: int | None,
        peer: tuple[str, int],
    ) -> None:
        self.messages += 1
        self._record_pdu(raw, ts, peer)
        direction = int(pdu.payload_direction)
        bindings = contacts(info)
        aor = info.to_uri or ""
        rec: dict[str, Any] = {
            "type": "sip",
            "time": ts,
            "poi": poi,
            "seq": seq,
            "direction": _dir_name(direction),
            "aor": aor,
            "sip": info.public(),
            "contacts": bindings,
        }
        if info.method == "REGISTER":
            rec["expires_requested"] = [b["expires"] for b in bindings]
        self.log.write(rec)
        if info.status is not None and info.status >= 200:
            self._outcome(info, aor, bindings, ts, poi)
        else:
            self._write_states()
        # registrations are rare: no file stays open between them, and what was filed is on
        # disk before the next PDU (so a task's registration files never hold a descriptor)
        self.close()

    def _outcome(
        self, info: SipSummary, aor: str, bindings: list[dict[str, Any]], ts: float, poi: str
    ) -> None:
        assert info.status is not None
        state = self.states.get(aor)
        if info.status >= 300:
            if info.status in (401, 407):  # the digest challenge: part of every registration
                self._write_states()
                return
            event = "rejected"
        else:
            live = [b for b in bindings if b["uri"] != "*" and (b["expires"] or 0) > 0]
            if not live:
                event = "deregistered"
            elif state is None or state.get("state") != "registered":
                event = "registered"
            else:
                event = "refreshed"
        granted = [
            {**b, "expires_at": ts + b["expires"] if b["expires"] is not None else None}
            for b in bindings
            if b["uri"] != "*"
        ]
        associated = associated_uris(info)
        self.log.write(
            {
                "type": "registration",
                "event": event,
                "time": ts,
                "poi": poi,
                "aor": aor,
                "status": info.status,
                "call_id": info.call_id,
                "cseq": info.cseq,
                "contacts": granted if info.status < 300 else [],
                "associated_uris": associated,
            }
        )
        if state is None:
            if len(self.states) >= MAX_AORS:
                del self.states[next(iter(self.states))]
            state = self.states[aor] = {"first_time": ts, "pois": []}
        state["last_time"] = ts
        if poi not in state["pois"]:
            state["pois"] = sorted({*state["pois"], poi})
        if info.status < 300:
            state["state"] = "registered" if event != "deregistered" else "deregistered"
            state["contacts"] = [g for g in granted if (g["expires"] or 0) > 0]
            state["expires_at"] = max(
                (g["expires_at"] for g in state["contacts"] if g["expires_at"] is not None),
                default=None,
            )
            if event == "registered":
                state["registered_at"] = ts
            if event == "deregistered":
                state["deregistered_at"] = ts
            if associated:
                state["associated_uris"] = associated
        else:
            state["last_rejection"] = {"status": info.status, "reason": info.reason, "time": ts}
        self._write_states()

    def note_gap(self, poi: str, expected: int, got: int) -> None:
        self.log.write({"type": "sequence-gap", "poi": poi, "expected": expected, "received": got})
        self.close()

    # -- output ----------------------------------------------------------------------------
    def flush(self) -> None:
        if self._log is not None:
            self._log.flush()
        if self._pcap is not None:
            self._pcap.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._pcap is not None:
            self._pcap.close()
            self._pcap = None
        self._flows.clear()


# a REGISTER request line, or a CSeq naming REGISTER (RFC 3261 §20.16; method names are
# case-sensitive, the header name is not)
_REGISTER_RE = re.compile(
    rb"\AREGISTER |^(?i:cseq)[ \t]*:[ \t]*\d+[ \t]+REGISTER[ \t]*\r?$", re.MULTILINE
)


def registration_summary(pdu: Pdu) -> SipSummary | None:
    """The summary of an X2 SIP PDU when it belongs to a registration, else None (cheap
    for everything else: only a message whose start line or CSeq names REGISTER is read)."""
    if _REGISTER_RE.search(pdu.payload, 0, 8192) is None:
        return None
    info = summarise(pdu.payload)
    return info if is_registration(info) else None
