"""The media path as one pipeline: SRTP calls through the lab's anchor, with and without a CC tap.

Processes (all on uvloop, each started by this driver and spoken to over a JSON-lines pipe):

* ``endpoint a`` (the UEs) and ``endpoint b`` (the far ends): one UDP socket per call each;
  both send and receive. Every call sends 50 SRTP packets/s per direction (G.711, 20 ms):
  RTP header with a one-byte header extension (RFC 8285) carrying the sender's
  ``CLOCK_MONOTONIC`` time, 160 bytes of PCMU, protected per packet with pylibsrtp
  (AES_CM_128_HMAC_SHA1_80, one key per call and direction); 198 bytes on the wire. The
  receiver reads the send time from the (clear, authenticated) extension: end-to-end latency
  without decrypting.
* ``relay``: the reference, a minimal uvloop ``recvfrom``/``sendto`` relay (peers.md), two
  sockets per call with fixed destinations.
* ``anchor``: the lab's :class:`proxies.media_anchor.MediaAnchor` with its JSON/UDP control
  server (as ``imslab run anchor`` runs it); the driver allocates and releases every session
  through :class:`proxies.media_anchor.AnchorClient`, the P-CSCF's control path.
* ``anchor --tap``: the same anchor with an :class:`li.poi.cc.AnchorCcPoi` armed on every
  session (a trigger per call, and the call's two SDES keys as key records over X2, as the
  IRI-POI would send them), exporting every packet as X3 through an
  :class:`li.x2x3.exporter.X2X3Exporter` over mutual TLS to
* ``lemf``: a :class:`li.lemf.receiver.LemfServer` (TLS, client certificate required) that
  decrypts every call and writes ``cc.pcap`` and one WAV per direction.

* ``lemf-offline`` (first, once): the issue's LEMF ratio on one set of packets -- pylibsrtp's
  raw ``unprotect`` of every SRTP packet against the LEMF's ``Mediation`` on the same packets as
  X3 PDUs (decode, duplicate filter, four pcaps, decryption, WAV, checkpoints), CPU time of each,
  and a cProfile breakdown of the LEMF (``role_lemf_offline``).

Modes per call count, in one run: ``direct`` (a to b, no relay: the latency zero), ``raw``,
``anchor``, ``tap``. Reported: offered and delivered packets, loss, packets/s, CPU time per
packet of each process (``/proc/<pid>/stat`` utime+stime over the window), the latency
p50/p99 and what each relay adds over ``direct``, the anchor's fds / RSS before allocation,
with the sessions up and after release, the LEMF's X3 PDUs and decrypted packets, and the load
average. The ratios the issue sets (anchor vs raw, tap vs raw) are packets per CPU-second of
the relay process: on a shared machine they are what stays comparable within one run.

Run (in a network namespace of your own): ``.venv/bin/python benchmarks/bench_media_pipeline.py
[--calls 10,100,1000] [--seconds 4] [--rounds 1] [--json out.json]``. Bounded: every run
lasts ``--seconds`` plus a 1 s drain; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST_A = "127.0.19.1"  # UEs
HOST_B = "127.0.19.2"  # far ends
HOST_RELAY = "127.0.19.10"
HOST_ANCHOR = "127.0.19.11"
HOST_TAP = "127.0.19.12"
HOST_LEMF = "127.0.19.20"
CONTROL_PORT = 2223
PPS = 50  # per call and direction (G.711, 20 ms)
SLOTS = 10  # the calls are spread over 10 send ticks of 2 ms: no 20 ms bursts
SUITE = "AES_CM_128_HMAC_SHA1_80"
PCMU = bytes((0xFF, 0x7F, 0x80, 0x00) * 40)  # 160 bytes
EXT_PROFILE = 0xBEDE  # RFC 8285 one-byte header extension
HEADER = struct.Struct("!BBHII")
EXT = struct.Struct("!HHBQ3x")  # profile, length 3 words, id 1 / len 8, send time, padding
HEADER_LEN = HEADER.size + EXT.size
SEND_TIME = slice(HEADER.size + 5, HEADER.size + 13)


def call_keys(call_id: str, side: str) -> tuple[bytes, bytes]:
    """Master key and salt of ``side``'s packets of ``call_id`` (both ends and the tap's key
    records derive them the same way: the benchmark stands in for SDES)."""
    d = hashlib.sha256(f"imslab-bench|{call_id}|{side}".encode()).digest()
    return d[:16], d[16:30]


def call_ssrc(call_id: str, side: str) -> int:
    return int.from_bytes(hashlib.sha256(f"ssrc|{call_id}|{side}".encode()).digest()[:4], "big")


# --- roles -----------------------------------------------------------------------------------


async def _commands(handle: Any) -> None:
    """Read JSON commands from stdin, answer each on stdout; EOF ends the role."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        req = json.loads(line)
        try:
            reply = await handle(req)
        except Exception as exc:  # reported to the driver, which fails the run
            reply = {"error": repr(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class _Receiver(asyncio.DatagramProtocol):
    __slots__ = ("owner",)

    def __init__(self, owner: Receiver) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        o = self.owner
        o.received += 1
        if o.measuring and len(data) >= HEADER_LEN:
            o.latency.append(time.monotonic_ns() - int.from_bytes(data[SEND_TIME], "big"))


class Receiver:
    """Reads every call socket of one side (inherited from the driver) and counts: the sender
    of that side writes to the same sockets from its own process and never reads them."""

    def __init__(self) -> None:
        self.transports: list[asyncio.BaseTransport] = []
        self.received = 0
        self.measuring = False
        self.latency: array.array[int] = array.array("q")

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        if cmd == "open":
            loop = asyncio.get_running_loop()
            for fd in req["fds"]:
                sock = socket.socket(fileno=int(fd))
                t, _p = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=sock)
                self.transports.append(t)
            return {}
        if cmd == "start":
            self.received = 0
            self.latency = array.array("q")
            self.measuring = True
            return {}
        if cmd == "stop":
            self.measuring = False
            lat = sorted(self.latency)
            stride = max(1, len(lat) // 20000)
            return {"received": self.received, "latency_ns": lat[::stride]}
        raise ValueError(cmd)


def role_sender(args: argparse.Namespace) -> None:
    """Sends paced SRTP for every call of one side from the inherited sockets (no event loop:
    a plain paced loop, so its own scheduling is the only delay it adds)."""
    import pylibsrtp

    socks: list[socket.socket] = []
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "open":
            socks = [socket.socket(fileno=int(fd)) for fd in req["fds"]]
            reply: dict[str, Any] = {}
        elif req["cmd"] == "run":
            calls = [str(c) for c in req["calls"]]
            targets = [(str(h), int(p)) for h, p in req["targets"]]
            seconds = float(req["seconds"])
            protect, ssrcs = [], []
            for c in calls:
                key, salt = call_keys(c, args.side)
                policy = pylibsrtp.Policy(
                    key=key + salt,
                    ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                )
                protect.append(pylibsrtp.Session(policy=policy).protect)
                ssrcs.append(call_ssrc(c, args.side))
            first = int(req["first"])
            sends = [s.sendto for s in socks[first : first + len(calls)]]
            n = len(calls)
            seqs = [0] * n
            buf = bytearray(HEADER_LEN + len(PCMU))
            buf[HEADER_LEN:] = PCMU
            pack_header, pack_ext = HEADER.pack_into, EXT.pack_into
            tick = 1.0 / (PPS * SLOTS)
            sent = errors = k = 0
            end_k = int(seconds / tick)
            mono, now = time.monotonic_ns, time.monotonic
            t0 = now()
            while k < end_k:
                due = min(end_k, int((now() - t0) / tick) + 1)
                while k < due:  # after a descheduling: late, not skipped
                    for i in range(k % SLOTS, n, SLOTS):
                        seq = seqs[i]
                        seqs[i] = seq + 1
                        pack_header(buf, 0, 0x90, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrcs[i])
                        pack_ext(buf, HEADER.size, EXT_PROFILE, 3, 0x17, mono())
                        try:
                            sends[i](protect[i](bytes(buf)), targets[i])
                            sent += 1
                        except BlockingIOError:  # the socket is non-blocking (shared flags)
                            errors += 1
                    k += 1
                delay = t0 + k * tick - now()
                if delay > 0:
                    time.sleep(delay)
            reply = {"sent": sent, "send_errors": errors, "send_seconds": now() - t0}
        elif req["cmd"] == "close":
            for s in socks:
                s.close()
            socks = []
            reply = {}
        else:
            reply = {"error": f"unknown {req['cmd']}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


async def role_receiver(args: argparse.Namespace) -> None:
    await _commands(Receiver().handle)


class _RawLeg(asyncio.DatagramProtocol):
    """The reference relay's socket: what arrives goes out of the peer socket, nothing else."""

    __slots__ = ("peer", "dst", "transport")

    def __init__(self) -> None:
        self.peer: _RawLeg | None = None
        self.dst: tuple[str, int] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = self.peer
        if peer is not None and peer.dst is not None:
            peer.transport.sendto(data, peer.dst)


async def role_relay(args: argparse.Namespace) -> None:
    legs: list[tuple[_RawLeg, _RawLeg]] = []

    async def handle(req: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if req["cmd"] == "bind":
            out = []
            for _ in range(int(req["calls"])):
                pair = []
                for _side in "ab":
                    _t, p = await loop.create_datagram_endpoint(_RawLeg, local_addr=(args.host, 0))
                    pair.append(p)
                a, b = pair
                a.peer, b.peer = b, a
                legs.append((a, b))
                out.append(
                    [
                        a.transport.get_extra_info("sockname")[1],
                        b.transport.get_extra_info("sockname")[1],
                    ]
                )
            return {"ports": out}
        if req["cmd"] == "remotes":
            for (a, b), ra, rb in zip(legs, req["a"], req["b"], strict=True):
                a.dst, b.dst = (ra[0], int(ra[1])), (rb[0], int(rb[1]))
            return {}
        if req["cmd"] == "close":
            for a, b in legs:
                a.transport.close()
                b.transport.close()
            legs.clear()
            await asyncio.sleep(0)
            return {}
        raise ValueError(req["cmd"])

    await _commands(handle)


async def role_anchor(args: argparse.Namespace) -> None:
    from proxies.hooks import AnchorSessionEvent, SessionChange
    from proxies.media_anchor import AnchorControlServer, MediaAnchor

    anchor = MediaAnchor("anchor-bench", args.host, (40000, 49999))
    server = AnchorControlServer(anchor)
    await server.start(args.host, CONTROL_PORT)
    exporter = None
    cc = None
    if args.tap:
        from ims.media.keys import SrtpKeys
        from li.keys import KeyRecord, KeySource, Sender
        from li.poi.cc import AnchorCcPoi
        from li.poi.export import cc_sender
        from li.poi.iri import CcTrigger
        from li.targets import Side
        from li.x1.tlsutil import client_context
        from li.x2x3.exporter import DeliveryDestination, X2X3Exporter

        pki = Path(args.pki)
        did, xid = uuid.uuid4(), uuid.uuid4()
        exporter = X2X3Exporter(Path(args.spool), nf_id="anchor-bench")
        exporter.add_destination(
            DeliveryDestination(
                did=did,
                host=HOST_LEMF,
                port=args.lemf_port,
                tls=client_context(pki / "ca.pem", pki / "client.pem", pki / "client.key"),
            )
        )
        exporter.bind_task(xid, [did])
        await exporter.start()
        cc = AnchorCcPoi(element="anchor-bench", emit=cc_sender(exporter, batch=True))
        anchor.hooks.add(cc.hook(time.time))
        cids: dict[str, int] = {}

        def on_session(ev: AnchorSessionEvent) -> None:
            # every call is intercepted: what the IRI-POI's trigger and key records would do
            assert exporter is not None and cc is not None
            cid = cids.setdefault(ev.call_id, len(cids) + 1)
            if ev.change is SessionChange.CREATED:
                for side, sender in (("a", Sender.OFFERER), ("b", Sender.ANSWERER)):
                    key, salt = call_keys(ev.call_id, side)
                    exporter.send_key_record(
                        xid=xid,
                        correlation_id=cid,
                        record=KeyRecord(
                            call_id=ev.call_id,
                            source=KeySource.SDES,
                            sender=sender,
                            keys=SrtpKeys(suite=SUITE, master_key=key, master_salt=salt),
                        ),
                    )
            stop = ev.change is SessionChange.RELEASED
            if ev.change is not SessionChange.UPDATED:
                cc.trigger(
                    CcTrigger(
                        xid=xid,
                        correlation_id=cid,
                        call_id=ev.call_id,
                        target_identities=frozenset({"sip:bench@ims-a.test"}),
                        target_side=Side.ORIGINATING,
                        stop=stop,
                    )
                )

        anchor.session_observers.add(on_session)

    async def handle(req: dict[str, Any]) -> dict[str, Any]:
        if req["cmd"] == "state":
            relayed = sum(
                st["from_access_packets"] + st["from_core_packets"]
                for st in (s.stats() for s in anchor.sessions.values())
            )
            return {
                "sessions": len(anchor.sessions),
                "pooled": len(anchor._pool),
                "relayed": relayed,
            }
        if req["cmd"] == "drain":
            assert exporter is not None and cc is not None
            t0 = time.perf_counter()
            ok = await exporter.drain(timeout=float(req.get("timeout", 60)))
            status = exporter.status(next(iter(exporter._links)))
            return {
                "drained": ok,
                "drain_s": round(time.perf_counter() - t0, 2),
                "cc_reported": cc.stats["reported"],
                "spooled": status.pdus_spooled,
                "refused": status.refused_pdus,
                "pending_bytes": status.pending_bytes,
                "connects": status.connects,
                "max_lag_ms": round(1000 * status.max_lag_s),
            }
        raise ValueError(req["cmd"])

    await _commands(handle)


async def role_lemf(args: argparse.Namespace) -> None:
    from li.lemf.receiver import LemfServer
    from li.x1.tlsutil import server_context

    pki = Path(args.pki)
    ctx = server_context(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    async with LemfServer(Path(args.out), host=HOST_LEMF, ssl=ctx) as lemf:
        sys.stdout.write(json.dumps({"port": lemf.port}) + "\n")
        sys.stdout.flush()

        async def handle(req: dict[str, Any]) -> dict[str, Any]:
            if req["cmd"] != "summary":
                raise ValueError(req["cmd"])
            lemf.flush()
            m = lemf.mediation
            assert m is not None
            calls = list(m.calls.values())  # cumulative: the driver takes differences
            streams = [s for c in calls for s in c.streams.values()]
            wavs = sum(1 for c in calls for _ in c.dir.glob("*.wav"))
            pcaps = sum(1 for c in calls if (c.dir / "cc.pcap").exists())
            return {
                "calls": len(calls),
                "x3": sum(c.x3_pdus for c in calls),
                "decrypted": sum(s.decrypted for s in streams),
                "failures": sum(s.failures for s in streams),
                "gaps": m.stats.gaps,
                "duplicates": m.stats.duplicates,
                "max_lag_ms": round(1000 * m.stats.max_lag_s),
                "wav_files": wavs,
                "cc_pcaps": pcaps,
                "connections": lemf.connections,
            }

        await _commands(handle)


def role_lemf_offline(args: argparse.Namespace) -> None:
    """The LEMF ratio of issue 19 on one set of packets, in this process: SRTP packets of
    ``--offline-calls`` calls (both directions, the tap's key records first) encoded as the
    anchor's tap exports them, then (1) pylibsrtp's raw ``unprotect`` of every SRTP packet,
    one session per key, and (2) the LEMF's :class:`li.lemf.mediation.Mediation` on the same
    PDUs as its receiver feeds them (256 KB reads, a checkpoint after each): decode, duplicate
    filter, x2x3.pcap, cc-encrypted.pcap, decryption, cc.pcap, call.pcap, WAV, summaries.
    CPU time (``process_time``) of each; then the same LEMF run once more under cProfile
    for where its time goes (relative shares only: the profiler slows everything)."""
    import cProfile
    import pstats

    import pylibsrtp

    from ims.media.keys import SrtpKeys
    from li.keys import KeyRecord, KeySource, Sender
    from li.lemf.mediation import Mediation
    from li.poi.export import cc_sender
    from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
    from li.x2x3.framing import PduFramer

    work = Path(args.out)
    exp = X2X3Exporter(work / "spool", nf_id="anchor-bench")
    did, xid = uuid.uuid4(), uuid.uuid4()
    exp.add_destination(DeliveryDestination(did=did, host=HOST_LEMF, port=9))
    exp.bind_task(xid, [did])
    x3 = cc_sender(exp).x3
    profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    tx, rx, packets = {}, {}, []
    for c in range(args.offline_calls):
        call_id = f"offline-{c}"
        for side, sender in (("a", Sender.OFFERER), ("b", Sender.ANSWERER)):
            key, salt = call_keys(call_id, side)
            exp.send_key_record(
                xid=xid,
                correlation_id=c + 1,
                record=KeyRecord(
                    call_id=call_id,
                    source=KeySource.SDES,
                    sender=sender,
                    keys=SrtpKeys(suite=SUITE, master_key=key, master_salt=salt),
                ),
            )
            for table, kind in ((tx, "OUTBOUND"), (rx, "INBOUND")):
                table[c, side] = pylibsrtp.Session(
                    pylibsrtp.Policy(
                        key=key + salt,
                        ssrc_type=getattr(pylibsrtp.Policy, f"SSRC_ANY_{kind}"),
                        srtp_profile=profile,
                    )
                )
    for i in range(args.offline_packets):
        for c in range(args.offline_calls):
            for side, direction in (("a", 3), ("b", 2)):
                rtp = HEADER.pack(0x80, 0, i & 0xFFFF, 160 * i, call_ssrc(f"offline-{c}", side))
                srtp = tx[c, side].protect(rtp + PCMU)
                packets.append((rx[c, side], srtp))
                x3(xid, c + 1, direction, srtp, ("10.0.0.1", 40000 + c), ("10.0.0.2", 50000 + c))
    spool = exp._links[did].spool
    parts, pos = [], spool.acked
    while pos < spool.end:  # a read never crosses a spool segment (8 MB)
        parts.append(spool.read(pos, spool.end - pos))
        pos += len(parts[-1])
    stream = b"".join(parts)
    chunks = [stream[o : o + (256 << 10)] for o in range(0, len(stream), 256 << 10)]
    n = len(packets)

    t0 = time.process_time()
    for session, srtp in packets:
        session.unprotect(srtp)
    srtp_cpu = time.process_time() - t0

    def lemf(out: Path) -> tuple[float, Mediation]:
        m = Mediation(out)
        framer = PduFramer(max_pdu_size=1 << 20)
        peer = (HOST_TAP, 40000)
        t0 = time.process_time()
        for chunk in chunks:
            for raw in framer.feed_raw(chunk):
                m.handle_raw(raw, peer, "anchor-bench")
            m.checkpoint()
        m.flush()
        return time.process_time() - t0, m

    lemf_cpu, m = lemf(work / "lemf-1")
    if m.stats.x3 != n:
        raise RuntimeError(f"the LEMF stored {m.stats.x3} of {n} X3 PDUs")
    calls = list(m.calls.values())
    decrypted = sum(s.decrypted for c in calls for s in c.streams.values())
    m.close()
    prof = cProfile.Profile()
    prof.enable()
    lemf(work / "lemf-2")[1].close()
    prof.disable()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    # (label, module file, function): cumulative time of each, as a share of the run
    parts = (
        ("decode (decode_cc_fields)", "pdu.py", "decode_cc_fields"),
        ("duplicate filter: digest", "dedup.py", "digest"),
        ("duplicate filter: check", "dedup.py", "check"),
        ("duplicate filter: stored", "dedup.py", "stored"),
        ("x2x3.pcap (record_pdu)", "call.py", "record_pdu"),
        ("content, all of it (on_content)", "call.py", "on_content"),
        ("  decrypt (SrtpReceiver.unprotect)", "srtp.py", "unprotect"),
        ("  decrypted out: cc.pcap + call.pcap", "call.py", "_write_cc"),
        ("  G.711 decode", "g711.py", "_decode"),
        ("  WAV write", "output.py", "write"),
        ("checkpoints (flush, summaries)", "mediation.py", "checkpoint"),
    )
    shares = {}
    for label, module, func in parts:
        cum = sum(
            v[3]
            for (path, _, name), v in st.stats.items()  # type: ignore[attr-defined]
            if name == func and path.endswith(module)
        )
        shares[label] = round(cum / total, 3) if total else 0.0
    print(
        json.dumps(
            {
                "packets": n,
                "pdus": m.stats.pdus,
                "decrypted": decrypted,
                "pylibsrtp_unprotect_us": round(1e6 * srtp_cpu / n, 2),
                "lemf_us_per_pdu": round(1e6 * lemf_cpu / n, 2),
                "lemf_vs_pylibsrtp": round(srtp_cpu / lemf_cpu, 3),
                "profile_shares": shares,
                "load": _loadavg(),
            }
        ),
        flush=True,
    )


# --- driver ----------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class Role:
    def __init__(
        self, name: str, *argv: str, reads_port: bool = False, pass_fds: tuple[int, ...] = ()
    ) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--role", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
            pass_fds=pass_fds,
        )
        self.port = 0
        if reads_port:
            self.port = int(self._read()["port"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def send(self, **req: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def call(self, **req: Any) -> dict[str, Any]:
        self.send(**req)
        return self._read()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))] / 1000.0  # µs


async def _allocate(
    calls: list[str], a_ports: list[int], b_ports: list[int], host: str
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], float]:
    """Every session through the anchor's control port, 50 requests in flight."""
    from proxies.media_anchor import AnchorClient

    client = AnchorClient((host, CONTROL_PORT), local_address=HOST_A, timeout=30.0)
    access: list[tuple[str, int]] = [("", 0)] * len(calls)
    core: list[tuple[str, int]] = [("", 0)] * len(calls)
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with sem:
            alloc = await client.attach(calls[i], 0, "access", (HOST_A, a_ports[i]))
            await client.attach(calls[i], 0, "core", (HOST_B, b_ports[i]))
            access[i], core[i] = alloc.access, alloc.core

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(calls))))
    took = time.perf_counter() - t0
    client.close()
    return access, core, took


async def _release(calls: list[str], host: str) -> dict[str, int]:
    from proxies.media_anchor import AnchorClient

    client = AnchorClient((host, CONTROL_PORT), local_address=HOST_A, timeout=30.0)
    total: dict[str, int] = {}
    sem = asyncio.Semaphore(20)

    async def one(c: str) -> None:
        async with sem:
            for k, v in (await client.release(c)).items():
                total[k] = total.get(k, 0) + v

    await asyncio.gather(*(one(c) for c in calls))
    client.close()
    return total


@dataclass
class Side:
    """One side's call sockets (bound by the driver, shared by its sender and receiver)."""

    host: str
    socks: list[socket.socket]
    sender: Role
    receiver: Role

    def addrs(self, first: int, n: int) -> list[tuple[str, int]]:
        return [(self.host, s.getsockname()[1]) for s in self.socks[first : first + n]]


def _side(name: str, host: str, count: int) -> Side:
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        socks.append(s)
    fds = tuple(s.fileno() for s in socks)
    snd = Role(f"snd-{name}", "sender", "--side", name, pass_fds=fds)
    rcv = Role(f"rcv-{name}", "receiver", pass_fds=fds)
    snd.call(cmd="open", fds=fds)
    rcv.call(cmd="open", fds=fds)
    return Side(host, socks, snd, rcv)


def measure(
    mode: str,
    calls: list[str],
    first: int,
    a: Side,
    b: Side,
    to_a: list[tuple[str, int]],
    to_b: list[tuple[str, int]],
    relay: Role | None,
    seconds: float,
) -> dict[str, Any]:
    """One window: both senders send for ``seconds`` (+1 s in flight); the CPU time of every
    process over it."""
    procs = [a.sender, a.receiver, b.sender, b.receiver] + ([relay] if relay else [])
    cpu0 = {p.name: _proc_cpu(p.pid) for p in procs}
    load0 = _loadavg()
    a.receiver.call(cmd="start")
    b.receiver.call(cmd="start")
    a.sender.send(cmd="run", targets=to_b, calls=calls, first=first, seconds=seconds)
    b.sender.send(cmd="run", targets=to_a, calls=calls, first=first, seconds=seconds)
    sa, sb = a.sender._read(), b.sender._read()
    time.sleep(1.0)  # what is still in flight
    ra, rb = a.receiver.call(cmd="stop"), b.receiver.call(cmd="stop")
    cpu = {p.name: round(_proc_cpu(p.pid) - cpu0[p.name], 3) for p in procs}
    sent = sa["sent"] + sb["sent"]
    received = ra["received"] + rb["received"]
    lat = sorted(ra["latency_ns"] + rb["latency_ns"])
    out: dict[str, Any] = {
        "mode": mode,
        "calls": len(calls),
        "offered_pps": len(calls) * 2 * PPS,
        "sent": sent,
        "send_errors": sa["send_errors"] + sb["send_errors"],
        "received": received,
        "loss_pct": round(100 * (sent - received) / max(1, sent), 3),
        "sent_pps": round(sent / max(sa["send_seconds"], sb["send_seconds"])),
        "p50_us": round(_pct(lat, 0.5), 1),
        "p99_us": round(_pct(lat, 0.99), 1),
        "cpu_s": cpu,
        "sender_cpu_us_per_pkt": round(
            1e6 * (cpu[a.sender.name] + cpu[b.sender.name]) / max(1, sent), 2
        ),
        "receiver_cpu_us_per_pkt": round(
            1e6 * (cpu[a.receiver.name] + cpu[b.receiver.name]) / max(1, received), 2
        ),
        "load": load0,
    }
    if relay is not None:
        out["relay_cpu_us_per_pkt"] = round(1e6 * cpu[relay.name] / max(1, received), 2)
        out["relay_pkts_per_cpu_s"] = round(received / max(1e-9, cpu[relay.name]))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    os.chmod(work, 0o700)
    from li.x1.tlsutil import make_lab_pki

    make_lab_pki(work / "pki", server_name="lemf", client_name="anchor-bench", hosts=(HOST_LEMF,))
    roles: list[Role] = []
    results: dict[str, Any] = {"runs": [], "memory": [], "started": time.strftime("%FT%TZ")}
    try:
        steps = [int(x) for x in args.calls.split(",")]
        a = _side("a", HOST_A, sum(steps))
        roles += [a.sender, a.receiver]
        b = _side("b", HOST_B, sum(steps))
        roles += [b.sender, b.receiver]
        raw = Role("raw", "relay", "--host", HOST_RELAY)
        anchor = Role("anchor", "anchor", "--host", HOST_ANCHOR)
        lemf = Role(
            "lemf",
            "lemf",
            "--pki",
            str(work / "pki"),
            "--out",
            str(work / "lemf"),
            reads_port=True,
        )
        tap = Role(
            "tap",
            "anchor",
            "--host",
            HOST_TAP,
            "--tap",
            "--pki",
            str(work / "pki"),
            "--spool",
            str(work / "spool"),
            "--lemf-port",
            str(lemf.port),
        )
        roles += [raw, anchor, lemf, tap]
        time.sleep(1.0)  # imports done before anything is timed
        if "lemf" in args.modes:
            off = Role(
                "lemf-offline",
                "lemf-offline",
                "--out",
                str(work / "offline"),
                "--offline-calls",
                str(args.offline_calls),
                "--offline-packets",
                str(args.offline_packets),
            )
            results["lemf_offline"] = off._read()
            off.stop()
            _show({"mode": "lemf-offline", **results["lemf_offline"]})
        lemf_seen: dict[str, int] = {}
        for rnd in range(args.rounds):
            first = 0
            for n in steps:
                calls = [f"r{rnd}-n{n}-c{i}" for i in range(n)]
                at_a, at_b = a.addrs(first, n), b.addrs(first, n)
                a_ports = [p for _, p in at_a]
                b_ports = [p for _, p in at_b]
                if "direct" in args.modes:
                    results["runs"].append(
                        measure("direct", calls, first, a, b, at_a, at_b, None, args.seconds)
                    )
                    results["runs"][-1]["round"] = rnd
                    _show(results["runs"][-1])
                if "raw" in args.modes:
                    ports = raw.call(cmd="bind", calls=n)["ports"]
                    raw.call(cmd="remotes", a=at_a, b=at_b)
                    to_a = [(HOST_RELAY, p[0]) for p in ports]
                    to_b = [(HOST_RELAY, p[1]) for p in ports]
                    results["runs"].append(
                        measure("raw", calls, first, a, b, to_a, to_b, raw, args.seconds)
                    )
                    results["runs"][-1]["round"] = rnd
                    _show(results["runs"][-1])
                    raw.call(cmd="close")
                for mode, role, host in (("anchor", anchor, HOST_ANCHOR), ("tap", tap, HOST_TAP)):
                    if mode not in args.modes:
                        continue
                    mem = {
                        "anchor": mode,
                        "calls": n,
                        "fds_before": _proc_fds(role.pid),
                        "rss_kib_before": _proc_rss_kib(role.pid),
                    }
                    mcalls = [f"{mode}-{c}" for c in calls]
                    access, core, took = asyncio.run(_allocate(mcalls, a_ports, b_ports, host))
                    mem["allocate_s"] = round(took, 3)
                    mem["fds_up"] = _proc_fds(role.pid)
                    mem["rss_kib_up"] = _proc_rss_kib(role.pid)
                    lemf_cpu0 = _proc_cpu(lemf.pid) if mode == "tap" else 0.0
                    r = measure(mode, mcalls, first, a, b, access, core, role, args.seconds)
                    r["round"] = rnd
                    r["settle_s"] = _settle(role)
                    stats = asyncio.run(_release(mcalls, host))
                    r["anchor_relayed"] = stats.get("from_access_packets", 0) + stats.get(
                        "from_core_packets", 0
                    )
                    r["anchor_dropped"] = stats.get("from_access_dropped", 0) + stats.get(
                        "from_core_dropped", 0
                    )
                    if mode == "tap":
                        c0 = _proc_cpu(lemf.pid), _proc_cpu(role.pid)
                        r["export"] = role.call(cmd="drain", timeout=300)
                        total = lemf.call(cmd="summary")
                        r["lemf"] = {k: v - lemf_seen.get(k, 0) for k, v in total.items()}
                        r["lemf"]["max_lag_ms"] = total["max_lag_ms"]  # a maximum since start
                        lemf_seen = total
                        r["drain_cpu_s"] = {
                            "lemf": round(_proc_cpu(lemf.pid) - c0[0], 3),
                            "tap": round(_proc_cpu(role.pid) - c0[1], 3),
                        }
                        # the LEMF's CPU over the whole step: sending window, settle, drain
                        lemf_cpu = _proc_cpu(lemf.pid) - lemf_cpu0
                        r["lemf_cpu_s"] = round(lemf_cpu, 3)
                        r["lemf_cpu_us_per_pdu"] = round(
                            1e6 * lemf_cpu / max(1, r["lemf"]["x3"]), 2
                        )
                    time.sleep(0.1)
                    state = role.call(cmd="state")
                    mem.update(
                        fds_after=_proc_fds(role.pid),
                        rss_kib_after=_proc_rss_kib(role.pid),
                        sessions_after=state["sessions"],
                        pooled_after=state["pooled"],
                    )
                    results["memory"].append(mem)
                    results["runs"].append(r)
                    _show(r)
                    print("   ", mem, flush=True)
                first += n
    finally:
        for r in roles:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["ratios"] = _ratios(results["runs"])
    results["load_end"] = _loadavg()
    return results


def _settle(anchor: Role, limit: float = 60.0) -> float:
    """Wait until the anchor has relayed its backlog (its counters stand still for 0.5 s) before
    the sessions are released: a released socket drops what still arrives."""
    t0 = time.monotonic()
    last = -1
    while time.monotonic() - t0 < limit:
        now = anchor.call(cmd="state")["relayed"]
        if now == last:
            break
        last = now
        time.sleep(0.5)
    return round(time.monotonic() - t0, 2)


def _ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per call count and round: anchor and tap packets per CPU-second against raw's, and the
    latency each adds over ``direct``."""
    out = []
    by: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["calls"], r["round"]), {})[r["mode"]] = r
    for (n, _), modes in sorted(by.items()):
        raw, direct = modes.get("raw"), modes.get("direct")
        row: dict[str, Any] = {"calls": n}
        for m in ("anchor", "tap"):
            r = modes.get(m)
            if r is None:
                continue
            if raw is not None:
                row[f"{m}_vs_raw"] = round(
                    r["relay_pkts_per_cpu_s"] / raw["relay_pkts_per_cpu_s"], 3
                )
            if direct is not None:
                row[f"{m}_added_p50_us"] = round(r["p50_us"] - direct["p50_us"], 1)
                row[f"{m}_added_p99_us"] = round(r["p99_us"] - direct["p99_us"], 1)
        if raw is not None and direct is not None:
            row["raw_added_p50_us"] = round(raw["p50_us"] - direct["p50_us"], 1)
            row["raw_added_p99_us"] = round(raw["p99_us"] - direct["p99_us"], 1)
        out.append(row)
    return out


def _show(r: dict[str, Any]) -> None:
    print(json.dumps(r), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--role", help=argparse.SUPPRESS)
    p.add_argument("--host", help=argparse.SUPPRESS)
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--tap", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pki", help=argparse.SUPPRESS)
    p.add_argument("--spool", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--lemf-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--calls", default="10,100,1000", help="concurrent calls per step")
    p.add_argument("--seconds", type=float, default=4.0, help="sending time per mode and step")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--modes", default="lemf,direct,raw,anchor,tap")
    p.add_argument("--json", help="write every result here")
    p.add_argument("--offline-calls", type=int, default=100, help="LEMF ratio step: calls")
    p.add_argument(
        "--offline-packets", type=int, default=100, help="LEMF ratio step: packets per direction"
    )
    args = p.parse_args()
    if args.role == "sender":
        role_sender(args)
        return 0
    if args.role == "lemf-offline":
        role_lemf_offline(args)
        return 0
    if args.role:
        import uvloop

        role = {
            "receiver": role_receiver,
            "relay": role_relay,
            "anchor": role_anchor,
            "lemf": role_lemf,
        }[args.role]
        uvloop.run(role(args))
        return 0
    args.modes = set(args.modes.split(","))
    results = run(args)
    print(
        json.dumps(
            {
                "ratios": results["ratios"],
                "lemf_vs_pylibsrtp": results.get("lemf_offline", {}).get("lemf_vs_pylibsrtp"),
                "load_end": results["load_end"],
            },
            indent=1,
        )
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
