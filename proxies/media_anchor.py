"""The media anchor: an RTP/RTCP relay per call leg (the IMS-AGW, or a media-path provider).

A P-CSCF anchors each media stream of a call here: :meth:`MediaAnchor.allocate` opens a relay
session with two legs, each an even RTP port and the next RTCP port on the anchor's address:

* the **access** leg faces the UE (the P-CSCF puts its address in the SDP it sends to the UE);
* the **core** leg faces the network (its address goes into the SDP sent towards the S-CSCF).

A packet arriving on one leg is sent out of the other leg's socket to that leg's remote address
(learned from the SDP through :meth:`set_remote`, then latched to the packet source of the first
packet: symmetric RTP, RFC 4961). The relay never parses or decrypts payloads: SRTP passes through
untouched, which is the point the LI study makes about who can see what.

Every relayed packet goes through the :class:`~proxies.hooks.MediaHooks` (observe, rewrite, drop)
with its call, leg and direction; session changes go to the session observers. Per-session
counters are kept and returned when the session is released.

Control: in-process through the methods here, or across processes through a small JSON-over-UDP
control protocol (:class:`AnchorControlServer`, :class:`AnchorClient`) on the anchor's control
port, in the spirit of rtpengine's ng protocol. Both implement :class:`AnchorControl`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from ims.log import get_logger
from ims.media.aio_relay import RelayLeg, RelaySocket, bind_leg
from proxies.hooks import (
    AnchorSessionEvent,
    MediaDirection,
    MediaHooks,
    MediaPacketEvent,
    SessionChange,
    SessionObservers,
    _Drop,
)

_log = get_logger("proxies.media_anchor")

Addr = tuple[str, int]

POOL_QUARANTINE = 2.0
"""Seconds a released RTP/RTCP socket pair rests (still reading, dropping what arrives) before
another session may reuse it, so late packets of the old call never reach the new one."""
POOL_MAX = 512
"""Released socket pairs kept open for reuse; more are closed."""


class AnchorError(Exception):
    """A control request failed (no ports left, unknown session, anchor unreachable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """The anchor's own addresses for one stream: where each side must send its RTP."""

    call_id: str
    stream: int
    access: Addr
    core: Addr
    label: str = ""


class AnchorControl(Protocol):
    """What a P-CSCF needs from an anchor, in-process or remote."""

    async def allocate(
        self, call_id: str, stream: int, *, icid: str | None = None, label: str = ""
    ) -> Allocation: ...

    async def set_remote(
        self, call_id: str, stream: int, leg: str, remote: Addr, *, label: str = ""
    ) -> None: ...

    async def release(self, call_id: str, *, label: str | None = None) -> dict[str, int]: ...

    async def attach(
        self,
        call_id: str,
        stream: int,
        leg: str,
        remote: Addr | None,
        *,
        icid: str | None = None,
        label: str = "",
    ) -> Allocation: ...


@dataclass(slots=True, eq=False)
class AnchorSession:
    """One anchored stream: two :class:`~ims.media.aio_relay.RelayLeg` (``access``, ``core``)
    relaying into each other; the anchor's media hooks are the legs' filter."""

    anchor: MediaAnchor
    call_id: str
    icid: str | None
    stream: int
    legs: dict[str, RelayLeg]
    label: str = ""
    final: dict[str, int] | None = None  # the counters at close (the sockets are reused)

    def start(self) -> None:
        """Wire the two legs together; each latches its far end from its first packet."""
        access, core = self.legs["access"], self.legs["core"]
        access.connect(core)
        gate = self.anchor.hooks._hooks  # the hook list itself: filter only while it has hooks
        for leg in (access, core):
            leg.expect_latch()
            for sock in (leg.rtp, leg.rtcp):
                sock.filter = self._hooked
                sock.gate = gate

    def _hooked(self, sock: RelaySocket, data: bytes, src: Addr, dst: Addr) -> bytes | None:
        """The media hooks on one packet (only called while the anchor has hooks)."""
        leg = sock.owner.name
        out = self.anchor.hooks.process(
            MediaPacketEvent(
                element=self.anchor.name,
                call_id=self.call_id,
                icid=self.icid,
                stream=self.stream,
                label=self.label,
                leg=leg,
                direction=MediaDirection.FROM_ACCESS
                if leg == "access"
                else MediaDirection.FROM_CORE,
                rtcp=sock.rtcp,
                src=src,
                dst=dst,
                data=data,
            )
        )
        if isinstance(out, _Drop):
            return None
        return out

    def stats(self) -> dict[str, int]:
        if self.final is not None:
            return dict(self.final)
        out: dict[str, int] = {}
        for name in ("access", "core"):
            direction = "from_access" if name == "access" else "from_core"
            leg = self.legs.get(name)
            packets = bytes_ = rtcp = dropped = 0
            if leg is not None:
                packets, bytes_, rtcp = leg.rtp.packets, leg.rtp.bytes, leg.rtcp.packets
                dropped = leg.rtp.dropped + leg.rtcp.dropped
            out[f"{direction}_packets"] = packets
            out[f"{direction}_bytes"] = bytes_
            out[f"{direction}_rtcp"] = rtcp
            out[f"{direction}_dropped"] = dropped
        return out

    def event(self, change: SessionChange) -> AnchorSessionEvent:
        access, core = self.legs.get("access"), self.legs.get("core")
        return AnchorSessionEvent(
            element=self.anchor.name,
            change=change,
            call_id=self.call_id,
            icid=self.icid,
            stream=self.stream,
            label=self.label,
            access=access.local_rtp_addr if access else (self.anchor.address, 0),
            core=core.local_rtp_addr if core else (self.anchor.address, 0),
            access_remote=access.remote if access else None,
            core_remote=core.remote if core else None,
            stats=self.stats(),
        )

    def close(self) -> None:
        """Keep the counters, give the session's sockets back (to the anchor's pool, or closed)."""
        if self.final is None:
            self.final = self.stats()
        for leg in self.legs.values():
            self.anchor._recycle(leg)


class MediaAnchor:
    """An RTP/RTCP relay on one address; implements :class:`AnchorControl` in-process."""

    def __init__(self, name: str, address: str, ports: tuple[int, int] = (30000, 39999)) -> None:
        self.name = name
        self.address = address
        self.ports = ports
        self.hooks = MediaHooks(f"{name}.media")
        self.session_observers = SessionObservers()
        #: control commands of media functions installed on this anchor (proxies.e2ae): name
        #: -> handler(request, sender address) returning the reply fields; raises ValueError,
        #: KeyError or AnchorError on a bad request
        self.extensions: dict[str, Callable[[dict[str, Any], Addr], dict[str, Any]]] = {}
        self.sessions: dict[tuple[str, str, int], AnchorSession] = {}
        self.released: dict[str, dict[str, int]] = {}  # last stats of released calls
        lo = ports[0] + (ports[0] % 2)
        pairs = range(lo, ports[1], 2)  # (even RTP, RTCP = +1), both within the range
        # the next pair to try, round robin (an index: itertools.cycle would keep a copy of
        # every port it has handed out)
        self._pairs = pairs
        self._cursor = 0
        self._span = len(pairs)
        # released legs (RTP/RTCP socket pairs), oldest first: (reusable from loop time, leg).
        # Binding two sockets per leg (4 per call) cost more than the rest of the anchor's
        # per-call work; a rested pair is reused instead (docs/benchmarks/ims.md).
        self._pool: collections.deque[tuple[float, RelayLeg]] = collections.deque()

    def _recycle(self, leg: RelayLeg) -> None:
        if leg.usable and len(self._pool) < POOL_MAX:
            try:
                ready = asyncio.get_running_loop().time() + POOL_QUARANTINE
            except RuntimeError:  # no loop running: nothing can reuse it, close instead
                pass
            else:
                leg.park()
                self._pool.append((ready, leg))
                return
        leg.close()

    def _take_pooled(self, session: AnchorSession, name: str, *, rested: bool) -> Addr | None:
        pool = self._pool
        if not pool or (rested and pool[0][0] > asyncio.get_running_loop().time()):
            return None
        _, leg = pool.popleft()
        leg.name = name
        session.legs[name] = leg
        return leg.local_rtp_addr

    def _close_pool(self) -> None:
        while self._pool:
            _, leg = self._pool.popleft()
            leg.close()

    async def _bind_pair(self, session: AnchorSession, name: str) -> Addr:
        pooled = self._take_pooled(session, name, rested=True)
        if pooled is not None:
            return pooled
        for _ in range(self._span):
            port = self._pairs[self._cursor]
            self._cursor = (self._cursor + 1) % self._span
            try:
                leg = await bind_leg(name, self.address, port)
            except OSError:
                continue
            session.legs[name] = leg
            return leg.local_rtp_addr
        # every port is bound: a pair still resting in the pool is better than failing
        pooled = self._take_pooled(session, name, rested=False)
        if pooled is not None:
            return pooled
        raise AnchorError(f"{self.name}: no free RTP port pair in {self.ports}")

    async def allocate(
        self, call_id: str, stream: int, *, icid: str | None = None, label: str = ""
    ) -> Allocation:
        """Open (or return the existing) relay session for ``call_id``/``label``/``stream``.

        ``label`` tells apart two sessions of one call on one anchor (a call between two UEs
        of the same P-CSCF is anchored twice: ``orig`` and ``term``).
        """
        key = (call_id, label, stream)
        session = self.sessions.get(key)
        if session is None:
            session = AnchorSession(
                anchor=self, call_id=call_id, icid=icid, stream=stream, legs={}, label=label
            )
            try:
                await self._bind_pair(session, "access")
                await self._bind_pair(session, "core")
            except AnchorError:
                session.close()
                raise
            session.start()
            self.sessions[key] = session
            if self.session_observers:
                self.session_observers.notify(session.event(SessionChange.CREATED))
            _log.info("session created", call_id=call_id, stream=stream)
        elif icid and not session.icid:
            session.icid = icid
        return Allocation(
            call_id=call_id,
            stream=stream,
            access=session.legs["access"].local_rtp_addr,
            core=session.legs["core"].local_rtp_addr,
            label=label,
        )

    async def set_remote(
        self, call_id: str, stream: int, leg: str, remote: Addr, *, label: str = ""
    ) -> None:
        """Where the ``leg`` side receives RTP (from the SDP that side sent)."""
        session = self.sessions.get((call_id, label, stream))
        if session is None:
            raise AnchorError(f"{self.name}: no session {call_id}/{stream}")
        if leg not in session.legs:
            raise AnchorError(f"leg must be access or core, not {leg!r}")
        target = session.legs[leg]
        if not target.latched:
            target.set_remote((remote[0], int(remote[1])))
        if self.session_observers:
            self.session_observers.notify(session.event(SessionChange.UPDATED))

    async def attach(
        self,
        call_id: str,
        stream: int,
        leg: str,
        remote: Addr | None,
        *,
        icid: str | None = None,
        label: str = "",
    ) -> Allocation:
        """allocate + set_remote in one step (one control round trip for a remote anchor):
        what a P-CSCF does for each SDP offer or answer it anchors."""
        alloc = await self.allocate(call_id, stream, icid=icid, label=label)
        if remote is not None:
            await self.set_remote(call_id, stream, leg, remote, label=label)
        return alloc

    def stats(self, call_id: str) -> dict[str, int]:
        """Counters summed over every stream of ``call_id`` (live or last released)."""
        live = [s for (cid, _, _), s in self.sessions.items() if cid == call_id]
        if not live:
            return dict(self.released.get(call_id, {}))
        total: dict[str, int] = {}
        for s in live:
            for k, v in s.stats().items():
                total[k] = total.get(k, 0) + v
        return total

    async def release(self, call_id: str, *, label: str | None = None) -> dict[str, int]:
        """Close every stream of ``call_id`` (only ``label``'s when given); return the counters
        of the whole call."""
        total = self.stats(call_id)
        for key in [
            k for k in self.sessions if k[0] == call_id and (label is None or k[1] == label)
        ]:
            session = self.sessions.pop(key)
            session.close()
            if self.session_observers:
                self.session_observers.notify(session.event(SessionChange.RELEASED))
        if total:
            self.released[call_id] = total
            # keep the memory of released calls bounded
            while len(self.released) > 1000:
                self.released.pop(next(iter(self.released)))
            _log.info("session released", call_id=call_id, **total)
        return total

    async def close(self) -> None:
        for call_id in {cid for cid, _, _ in self.sessions}:
            await self.release(call_id)
        self._close_pool()
        await asyncio.sleep(0)  # transports close their sockets on the next loop iteration


# --- remote control ------------------------------------------------------------------------


class _ControlProtocol(asyncio.DatagramProtocol):
    def __init__(self, anchor: MediaAnchor) -> None:
        self.anchor = anchor
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        asyncio.ensure_future(self._handle(data, (str(addr[0]), int(addr[1]))))

    async def _handle(self, data: bytes, addr: Addr) -> None:
        reply: dict[str, Any]
        rid: Any = None
        try:
            req = json.loads(data)
            rid = req.get("id")
            cmd = req.get("cmd")
            if cmd == "allocate":
                a = await self.anchor.allocate(
                    str(req["call_id"]),
                    int(req["stream"]),
                    icid=req.get("icid"),
                    label=str(req.get("label", "")),
                )
                reply = {"access": list(a.access), "core": list(a.core)}
            elif cmd == "attach":
                remote = req.get("remote")
                a = await self.anchor.attach(
                    str(req["call_id"]),
                    int(req["stream"]),
                    str(req["leg"]),
                    None if remote is None else (str(remote[0]), int(remote[1])),
                    icid=req.get("icid"),
                    label=str(req.get("label", "")),
                )
                reply = {"access": list(a.access), "core": list(a.core)}
            elif cmd == "set_remote":
                remote = req["remote"]
                await self.anchor.set_remote(
                    str(req["call_id"]),
                    int(req["stream"]),
                    str(req["leg"]),
                    (str(remote[0]), int(remote[1])),
                    label=str(req.get("label", "")),
                )
                reply = {}
            elif cmd == "release":
                label = req.get("label")
                reply = {
                    "stats": await self.anchor.release(
                        str(req["call_id"]), label=None if label is None else str(label)
                    )
                }
            elif cmd == "stats":
                reply = {"stats": self.anchor.stats(str(req["call_id"]))}
            elif cmd == "ping":
                reply = {"name": self.anchor.name}
            elif isinstance(cmd, str) and cmd in self.anchor.extensions:
                # a media function on the anchor (proxies.e2ae) with its own commands
                reply = self.anchor.extensions[cmd](req, addr)
            else:
                raise AnchorError(f"unknown command {cmd!r}")
            reply["ok"] = True
        except (AnchorError, ValueError, KeyError, TypeError, IndexError) as exc:
            reply = {"ok": False, "error": str(exc)}
        reply["id"] = rid
        if self.transport is not None:
            self.transport.sendto(json.dumps(reply).encode(), addr)


class AnchorControlServer:
    """Serves :class:`MediaAnchor` control requests (JSON over UDP) on ``(address, port)``."""

    def __init__(self, anchor: MediaAnchor) -> None:
        self.anchor = anchor
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, address: str, port: int) -> Addr:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ControlProtocol(self.anchor), local_addr=(address, port)
        )
        self._transport = transport
        sock = transport.get_extra_info("sockname")
        return (str(sock[0]), int(sock[1]))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            reply = json.loads(data)
        except ValueError:
            return
        fut = self.pending.pop(reply.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(reply)


class AnchorClient:
    """:class:`AnchorControl` over the JSON/UDP control protocol (retransmits on loss)."""

    def __init__(self, server: Addr, *, local_address: str = "0.0.0.0", timeout: float = 3.75):
        self.server = server
        self.local_address = local_address
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._transport: asyncio.DatagramTransport | None = None
        self._proto: _ClientProtocol | None = None

    async def _ensure(self) -> tuple[asyncio.DatagramTransport, _ClientProtocol]:
        if self._transport is None or self._proto is None:
            loop = asyncio.get_running_loop()
            self._transport, self._proto = await loop.create_datagram_endpoint(
                _ClientProtocol, local_addr=(self.local_address, 0)
            )
        return self._transport, self._proto

    async def _call(self, **req: Any) -> dict[str, Any]:
        transport, proto = await self._ensure()
        rid = next(self._ids)
        req["id"] = rid
        data = json.dumps(req).encode()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        proto.pending[rid] = fut
        # bounded retransmission, sent at 0, 0.25, 0.75, 1.75, 3.75 s... (doubling), given up
        # after ``timeout`` (default 3.75 s): one timer handle per request rather than a
        # wait_for + shield task per attempt
        attempt = 0
        timer: asyncio.TimerHandle | None = None
        give_up = loop.time() + self.timeout

        def retransmit() -> None:
            nonlocal attempt, timer
            attempt += 1
            if fut.done():
                return
            left = give_up - loop.time()
            if left <= 0.001:
                fut.set_exception(AnchorError(f"anchor at {self.server} does not answer"))
                return
            transport.sendto(data, self.server)
            timer = loop.call_later(min(0.25 * 2**attempt, left), retransmit)

        transport.sendto(data, self.server)
        timer = loop.call_later(min(0.25, self.timeout), retransmit)
        try:
            reply = await fut
        finally:
            if timer is not None:
                timer.cancel()
            proto.pending.pop(rid, None)
        if not reply.get("ok"):
            raise AnchorError(str(reply.get("error")))
        return reply

    async def allocate(
        self, call_id: str, stream: int, *, icid: str | None = None, label: str = ""
    ) -> Allocation:
        r = await self._call(cmd="allocate", call_id=call_id, stream=stream, icid=icid, label=label)
        return Allocation(
            call_id=call_id,
            stream=stream,
            access=(r["access"][0], int(r["access"][1])),
            core=(r["core"][0], int(r["core"][1])),
            label=label,
        )

    async def set_remote(
        self, call_id: str, stream: int, leg: str, remote: Addr, *, label: str = ""
    ) -> None:
        await self._call(
            cmd="set_remote",
            call_id=call_id,
            stream=stream,
            leg=leg,
            remote=list(remote),
            label=label,
        )

    async def attach(
        self,
        call_id: str,
        stream: int,
        leg: str,
        remote: Addr | None,
        *,
        icid: str | None = None,
        label: str = "",
    ) -> Allocation:
        r = await self._call(
            cmd="attach",
            call_id=call_id,
            stream=stream,
            leg=leg,
            remote=None if remote is None else list(remote),
            icid=icid,
            label=label,
        )
        return Allocation(
            call_id=call_id,
            stream=stream,
            access=(r["access"][0], int(r["access"][1])),
            core=(r["core"][0], int(r["core"][1])),
            label=label,
        )

    async def release(self, call_id: str, *, label: str | None = None) -> dict[str, int]:
        req: dict[str, Any] = {"cmd": "release", "call_id": call_id}
        if label is not None:
            req["label"] = label
        r = await self._call(**req)
        return {str(k): int(v) for k, v in r["stats"].items()}

    async def stats(self, call_id: str) -> dict[str, int]:
        r = await self._call(cmd="stats", call_id=call_id)
        return {str(k): int(v) for k, v in r["stats"].items()}

    async def command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """An extension command of a media function installed on the anchor (proxies.e2ae)."""
        return await self._call(cmd=cmd, **fields)

    async def ping(self) -> str:
        return str((await self._call(cmd="ping"))["name"])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
