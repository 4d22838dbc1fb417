"""rtpengine as a lab anchor: the daemon, and the packet tap that gives its path hook points.

An anchor element with ``engine = "rtpengine"`` (lab.toml) runs Debian's rtpengine daemon in
place of our relay: :class:`RtpengineDaemon` starts it userspace-only (``--table=-1``: no kernel
module) with ``--config-file=none`` (Debian's /etc/rtpengine/rtpengine.conf says ``interface =
any``, which rtpengine 10.5 refuses: docs/deployment.md), on the element's address, ng control
port and RTP port range, and stops it with the element. The P-CSCFs anchor on it through
:class:`proxies.rtpengine.RtpengineAnchor`.

rtpengine has no packet hook, so :class:`RelayTap` makes one from outside: an ``AF_PACKET``
capture (as root) of the datagrams arriving at the relay's address, each mapped to its call
and leg through rtpengine's own bookkeeping (ng ``list`` + ``query``: which local port belongs
to which call-id and tag), and run through a :class:`proxies.hooks.MediaHooks` as a
:class:`~proxies.hooks.MediaPacketEvent` -- the same events our anchor's hooks carry, so the
same CC-POI (:class:`li.poi.cc.AnchorCcPoi`, armed per call over LI_T3 by the P-CSCF's IRI-POI)
attaches unchanged (:func:`lab.roles._li.attach_anchor`). It observes only: a tap cannot drop or
rewrite, so no media MITM runs on rtpengine's path.

A packet to a port the tap does not know yet (a call anchored since the last look) is held
(bounded) while the tap asks rtpengine again (at most every :data:`REFRESH_EVERY` seconds),
then delivered in order; what no call owns is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from ims.log import get_logger
from lab.topology import Element
from proxies.hooks import MediaDirection, MediaHooks, MediaPacketEvent
from proxies.media_anchor import AnchorError
from proxies.ng import NgDecodeError
from proxies.rtpengine import SIDES, NgClient, sip_call_id, tag_streams

_log = get_logger("lab.rtpengine")

ETH_P_IP = 0x0800
REFRESH_EVERY = 0.1
"""Seconds between two looks at rtpengine's calls (a packet to an unknown port asks for one)."""
HELD_MAX = 1024
"""Packets to not yet known ports held while the tap looks (older ones dropped)."""
BATCH = 256
"""Datagrams read per wake-up (the event loop serves the rest of the element in between)."""


def rtpengine_binary() -> str:
    return shutil.which("rtpengine") or "/usr/bin/rtpengine"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """rtpengine gets SIGTERM when the anchor process dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RtpengineDaemon:
    """One rtpengine process for an anchor element; ``start()`` returns when it answers ng."""

    def __init__(self, element: Element, *, binary: str | None = None) -> None:
        self.element = element
        self.binary = binary or rtpengine_binary()
        self.proc: asyncio.subprocess.Process | None = None
        self._dir = tempfile.TemporaryDirectory(prefix=f"rtpengine-{element.name}-")
        self.log = Path(self._dir.name) / "rtpengine.log"

    def command(self) -> list[str]:
        e = self.element
        lo, hi = e.rtp_ports
        return [
            self.binary,
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=5",  # notice: no per-call info lines (it logs none of the keys anyway)
            "--table=-1",
            f"--interface={e.address}",
            f"--listen-ng={e.address}:{e.control_port}",
            f"--port-min={lo}",
            f"--port-max={hi}",
            f"--pidfile={Path(self._dir.name) / 'rtpengine.pid'}",
        ]

    async def start(self, timeout: float = 10.0) -> None:
        if not Path(self.binary).exists():
            raise AnchorError(
                f"{self.element.name}: rtpengine is not installed "
                "(apt-get install rtpengine-daemon)"
            )
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        ng = NgClient((self.element.address, self.element.control_port), timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.returncode is not None:
                    raise AnchorError(f"rtpengine exited: {self.log_tail()}")
                try:
                    if (await ng("ping")).get("result") == b"pong":
                        return
                except AnchorError:
                    pass
                if time.monotonic() > deadline:
                    raise AnchorError(f"rtpengine did not answer ng ping: {self.log_tail()}")
                await asyncio.sleep(0.1)
        except BaseException:
            await self.stop()
            raise
        finally:
            ng.close()

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except OSError:
            return ""

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._dir.cleanup()


class RelayTap:
    """Hook points for rtpengine's path (see the module doc); ``hooks`` is where POIs attach."""

    def __init__(self, element: Element, ng: NgClient) -> None:
        self.name = element.name
        self.address = element.address
        self.ports = element.rtp_ports
        self.ng = ng
        self.hooks = MediaHooks(f"{element.name}.tap")
        # relay port -> (SIP Call-ID, label, stream, leg, rtcp)
        self._ports: dict[int, tuple[str, str, int, str, bool]] = {}
        self._held: collections.deque[tuple[tuple[str, int], int, bytes]] = collections.deque(
            maxlen=HELD_MAX
        )
        self._sock: socket.socket | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._last_refresh = 0.0
        self.stats = {"packets": 0, "unowned": 0, "refreshes": 0}

    def start(self) -> None:
        """Open the capture (needs CAP_NET_RAW: PermissionError otherwise)."""
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(BATCH):
            try:
                packet, meta = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _log.warning("relay tap read failed", element=self.name, error=str(exc))
                return
            # lo shows a sent datagram twice (outgoing, then received): the received copy
            if meta[2] == socket.PACKET_OUTGOING:
                continue
            self._datagram(packet)

    def _datagram(self, ip: bytes) -> None:
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            return  # IPv4/UDP only
        ihl = (ip[0] & 0x0F) * 4
        if socket.inet_ntoa(ip[16:20]) != self.address or len(ip) < ihl + 8:
            return
        if int.from_bytes(ip[6:8], "big") & 0x3FFF:
            return  # a fragment: RTP never is one on the lab's links
        dport = int.from_bytes(ip[ihl + 2 : ihl + 4], "big")
        if not self.ports[0] <= dport <= self.ports[1]:
            return  # the ng control port and everything else of the host
        ulen = int.from_bytes(ip[ihl + 4 : ihl + 6], "big")
        data = ip[ihl + 8 : ihl + ulen]
        src = (socket.inet_ntoa(ip[12:16]), int.from_bytes(ip[ihl : ihl + 2], "big"))
        if not self._deliver(src, dport, data):
            self._held.append((src, dport, data))
            self._ask()

    def _deliver(self, src: tuple[str, int], dport: int, data: bytes) -> bool:
        owner = self._ports.get(dport)
        if owner is None:
            return False
        call_id, label, stream, leg, rtcp = owner
        self.stats["packets"] += 1
        if self.hooks:
            self.hooks.process(
                MediaPacketEvent(
                    element=self.name,
                    call_id=call_id,
                    icid=None,
                    stream=stream,
                    label=label,
                    leg=leg,
                    direction=MediaDirection.FROM_ACCESS
                    if leg == "access"
                    else MediaDirection.FROM_CORE,
                    rtcp=rtcp,
                    src=src,
                    dst=(self.address, dport),
                    data=data,
                )
            )
        return True

    def _ask(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        """Learn rtpengine's calls (port -> call and leg), then deliver what was held."""
        wait = self._last_refresh + REFRESH_EVERY - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_refresh = time.monotonic()
        self.stats["refreshes"] += 1
        ports: dict[int, tuple[str, str, int, str, bool]] = {}
        try:
            listed = (await self.ng("list", limit=4096)).get("calls", [])
            for raw in listed if isinstance(listed, list) else []:
                if not isinstance(raw, bytes):
                    continue
                ng_id = raw.decode("utf-8", "replace")
                parts = ng_id.split(" ")
                label, stream = (parts[1], int(parts[2])) if len(parts) == 3 else ("", 0)
                reply = await self.ng("query", **{"call-id": ng_id})
                tags = tag_streams(reply)
                named = [t for t in tags if t in SIDES]
                for tag, ts in tags.items():
                    if tag not in SIDES:
                        # the side not yet answered (untagged): the other side of the offer's
                        if len(named) != 1:
                            continue
                        tag = "core" if named[0] == "access" else "access"
                    owner = (sip_call_id(ng_id), label, stream, tag)
                    ports[ts.rtp_port] = (*owner, False)
                    ports[ts.rtcp_port] = (*owner, True)
        except (AnchorError, NgDecodeError, ValueError) as exc:
            _log.warning("relay tap cannot read rtpengine's calls", error=str(exc))
            return
        self._ports = ports
        held, self._held = self._held, collections.deque(maxlen=HELD_MAX)
        for src, dport, data in held:
            if not self._deliver(src, dport, data):
                self.stats["unowned"] += 1

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            try:
                await self._refresh
            except (asyncio.CancelledError, Exception):
                pass
        if self._sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            except RuntimeError:
                pass
            self._sock.close()
            self._sock = None

    def __repr__(self) -> str:
        return f"RelayTap({self.name}, {self.address})"
