"""rtpengine (Sipwise; Debian's rtpengine-daemon) as a P-CSCF's media anchor, over its ng protocol.

:class:`RtpengineAnchor` implements :class:`proxies.media_anchor.AnchorControl`, so a P-CSCF
anchors its calls on rtpengine exactly as on our own anchor: per stream, ``attach(call, stream,
side, remote)`` returns the relay's address facing each side and the P-CSCF rewrites the SDP
itself (:func:`ims.sdp.rewrite_for_anchor`, ``a=crypto``/``a=key-mgmt`` untouched).

ng is SDP-centric (``offer``/``answer`` carry an SDP and the dialog's from/to tags, and rtpengine
rewrites that SDP), so each ``attach`` becomes one ng exchange on a *synthetic* one-stream SDP
that holds only what the relay needs -- the side's media address and port, RTP/AVP, PCMU:

* the first ``attach`` of a stream, and any later one from the side that offered last, is an
  ``offer`` whose ``from-tag`` is the side (``access`` or ``core``);
* an ``attach`` from the other side while an offer is pending is the ``answer`` (``to-tag``);
* ``release`` is a ``query`` (the counters) and a ``delete`` with no delete delay (rtpengine
  otherwise keeps a deleted call, and its ports, for 30 s).

Both sides' ports exist from the offer on (rtpengine allocates the answerer's as well); a
``query`` after each exchange reads them per tag (``local port`` of each tag's RTP stream), so
the :class:`Allocation` holds both legs, as our anchor's does.

rtpengine is told it relays plain RTP: it never sees the SDES ``a=crypto`` lines or the MIKEY
``a=key-mgmt`` (the P-CSCF keeps them for the UEs), relays SRTP/SRTCP byte for byte in userspace
and holds no key -- a media provider that carries media and sees no keying, as in the study
(2.1 Q2). Offering it the real RTP/SAVP SDP would make it add suites and a DTLS fingerprint of
its own (tests/peers/test_rtpengine.py, docs/deployment.md).

Each anchored stream is its own ng call: the ng call-id is the SIP Call-ID, followed by a space,
the P-CSCF's label and the stream number when those are not ``""``/0 (a SIP Call-ID has no
spaces, RFC 3261 §25.1 ``callid``, so no two streams share an ng call and
:func:`sip_call_id` inverts it). rtpengine has no hook for a CC-POI: the lab taps its path
(:mod:`lab.rtpengine`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, cast

from ims.log import get_logger
from proxies.media_anchor import Addr, Allocation, AnchorError
from proxies.ng import BValue, NgDecodeError, decode_reply, encode_request

_log = get_logger("proxies.rtpengine")

SIDES = ("access", "core")


def ng_call_id(call_id: str, label: str, stream: int) -> str:
    """The ng call-id of one anchored stream."""
    if not label and stream == 0:
        return call_id
    return f"{call_id} {label} {stream}"


def sip_call_id(ng_id: str) -> str:
    """The SIP Call-ID an ng call-id of :func:`ng_call_id` belongs to."""
    return ng_id.split(" ", 1)[0]


def synthetic_sdp(remote: Addr | None) -> str:
    """The one-stream SDP an ``offer``/``answer`` carries: only where the side receives."""
    host, port = remote if remote is not None else ("0.0.0.0", 9)
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


@dataclass(frozen=True, slots=True)
class TagStream:
    """One tag's (side's) ports on the relay and its counters, from a query/delete reply."""

    tag: str
    address: str
    rtp_port: int
    rtcp_port: int
    packets: int = 0
    bytes: int = 0
    rtcp_packets: int = 0
    errors: int = 0


def tag_streams(reply: dict[str, BValue]) -> dict[str, TagStream]:
    """Per tag (``""`` for the not yet answered side): the first medium's RTP and RTCP streams.

    Raises :class:`NgDecodeError` when the reply does not have the shape rtpengine gives."""
    out: dict[str, TagStream] = {}
    tags = reply.get("tags", {})
    if not isinstance(tags, dict):
        raise NgDecodeError("tags is not a dictionary")
    for value in tags.values():
        if not isinstance(value, dict):
            raise NgDecodeError("a tag is not a dictionary")
        tag = value.get("tag", b"")
        medias = value.get("medias", [])
        if not isinstance(tag, bytes) or not isinstance(medias, list) or not medias:
            continue
        media = medias[0]
        streams = media.get("streams", []) if isinstance(media, dict) else []
        if not isinstance(streams, list):
            raise NgDecodeError("streams is not a list")
        rtp = rtcp = None
        for s in streams:
            if not isinstance(s, dict):
                raise NgDecodeError("a stream is not a dictionary")
            flags = s.get("flags", [])
            if isinstance(flags, list) and b"RTCP" in flags:
                rtcp = rtcp or s
            else:
                rtp = rtp or s
        if rtp is None:
            continue
        port, addr = rtp.get("local port"), rtp.get("local address")
        if not isinstance(port, int) or not isinstance(addr, bytes):
            raise NgDecodeError("stream without local address/port")
        rstats = _stats(rtp)
        rtcp_port = rtcp.get("local port") if rtcp is not None else port + 1
        out[tag.decode("utf-8", "replace")] = TagStream(
            tag=tag.decode("utf-8", "replace"),
            address=addr.decode("ascii", "replace"),
            rtp_port=port,
            rtcp_port=rtcp_port if isinstance(rtcp_port, int) else port + 1,
            packets=rstats[0],
            bytes=rstats[1],
            errors=rstats[2],
            rtcp_packets=_stats(rtcp)[0] if rtcp is not None else 0,
        )
    return out


def _stats(stream: dict[str, BValue]) -> tuple[int, int, int]:
    st = stream.get("stats", {})
    if not isinstance(st, dict):
        return (0, 0, 0)
    vals = [st.get(k, 0) for k in ("packets", "bytes", "errors")]
    return cast(tuple[int, int, int], tuple(v if isinstance(v, int) else 0 for v in vals))


class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.pending: dict[bytes, asyncio.Future[dict[str, BValue]]] = {}

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            cookie, reply = decode_reply(data)
        except NgDecodeError:
            return  # not an ng reply: dropped (only replies to our cookies count)
        fut = self.pending.pop(cookie, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)


class NgClient:
    """An ng client over UDP: one cookie per request, bounded retransmission (at 0, 0.25, 0.75,
    1.75 s...) and a reply matched by its echoed cookie; ``result: error`` raises
    :class:`AnchorError` with rtpengine's reason."""

    def __init__(self, server: Addr, *, local_address: str = "0.0.0.0", timeout: float = 3.75):
        self.server = server
        self.local_address = local_address
        self.timeout = timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._proto: _NgProtocol | None = None

    async def _ensure(self) -> tuple[asyncio.DatagramTransport, _NgProtocol]:
        if self._transport is None or self._proto is None:
            loop = asyncio.get_running_loop()
            self._transport, self._proto = await loop.create_datagram_endpoint(
                _NgProtocol, local_addr=(self.local_address, 0)
            )
        return self._transport, self._proto

    async def __call__(self, command: str, **args: object) -> dict[str, BValue]:
        transport, proto = await self._ensure()
        cookie = os.urandom(8).hex().encode()
        data = encode_request(cookie, command, args)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, BValue]] = loop.create_future()
        proto.pending[cookie] = fut
        delay = 0.25
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    transport.sendto(data, self.server)
                    done, _ = await asyncio.wait({fut}, timeout=delay)
                    if done:
                        break
                    delay *= 2
        except TimeoutError:
            raise AnchorError(f"rtpengine at {self.server} does not answer {command}") from None
        finally:
            proto.pending.pop(cookie, None)
        reply = fut.result()
        if reply.get("result") == b"error":
            reason = reply.get("error-reason", b"?")
            text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
            raise AnchorError(f"rtpengine {command}: {text}")
        return reply

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


@dataclass(slots=True)
class _Stream:
    call_id: str
    label: str
    offerer: str | None = None  # the side whose offer was sent last
    answered: bool = False  # the other side has answered that offer


class RtpengineAnchor:
    """:class:`~proxies.media_anchor.AnchorControl` on rtpengine over ng (see the module doc)."""

    def __init__(self, ng: NgClient, *, max_streams: int = 4096) -> None:
        self.ng = ng
        self.max_streams = max_streams
        self._streams: dict[str, _Stream] = {}

    async def ping(self) -> str:
        reply = await self.ng("ping")
        if reply.get("result") != b"pong":
            raise AnchorError(f"rtpengine ping: {reply.get('result')!r}")
        return "rtpengine"

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
        if leg not in SIDES:
            raise AnchorError(f"leg must be access or core, not {leg!r}")
        key = ng_call_id(call_id, label, stream)
        st = self._streams.get(key)
        if st is None:
            if len(self._streams) >= self.max_streams:
                raise AnchorError("rtpengine adapter: too many anchored streams")
            st = self._streams[key] = _Stream(call_id, label)
        other = "core" if leg == "access" else "access"
        args: dict[str, object] = {"call-id": key, "sdp": synthetic_sdp(remote)}
        if st.offerer == other and not st.answered:
            await self.ng("answer", **args, **{"from-tag": other, "to-tag": leg})
            st.answered = True
        else:
            tags = {"from-tag": leg}
            if st.offerer is not None and st.answered:
                tags["to-tag"] = other  # a re-offer (re-INVITE) inside the dialog
            await self.ng("offer", **args, **tags)
            st.offerer, st.answered = leg, False
        return self._allocation(call_id, stream, label, leg, await self._query(key))

    async def _query(self, key: str) -> dict[str, TagStream]:
        reply = await self.ng("query", **{"call-id": key})
        try:
            return tag_streams(reply)
        except NgDecodeError as exc:
            raise AnchorError(f"rtpengine query: {exc}") from None

    def _allocation(
        self, call_id: str, stream: int, label: str, leg: str, tags: dict[str, TagStream]
    ) -> Allocation:
        other = "core" if leg == "access" else "access"
        mine = tags.get(leg)
        theirs = tags.get(other) or tags.get("")  # the not yet answered side is untagged
        if mine is None or theirs is None:
            raise AnchorError(f"rtpengine query of {call_id}: no ports for both sides")
        ports = {leg: (mine.address, mine.rtp_port), other: (theirs.address, theirs.rtp_port)}
        return Allocation(
            call_id=call_id, stream=stream, access=ports["access"], core=ports["core"], label=label
        )

    async def allocate(
        self, call_id: str, stream: int, *, icid: str | None = None, label: str = ""
    ) -> Allocation:
        """Both legs reserved: an offer from the access side that says nothing of its address."""
        return await self.attach(call_id, stream, "access", None, icid=icid, label=label)

    async def set_remote(
        self, call_id: str, stream: int, leg: str, remote: Addr, *, label: str = ""
    ) -> None:
        await self.attach(call_id, stream, leg, remote, label=label)

    async def release(self, call_id: str, *, label: str | None = None) -> dict[str, int]:
        """``delete`` every ng call of ``call_id`` (``label``'s only when given); the counters
        of the deleted streams, named as our anchor names them."""
        keys = [
            k
            for k, st in self._streams.items()
            if st.call_id == call_id and (label is None or st.label == label)
        ]
        total: dict[str, int] = {}
        for key in keys:
            del self._streams[key]
            try:
                # counters first: a delete without delay answers with its result only
                tags = await self._query(key)
                await self.ng("delete", **{"call-id": key, "delete-delay": 0})
            except AnchorError as exc:
                _log.warning("rtpengine delete failed", call_id=call_id, error=str(exc))
                continue
            for side in SIDES:
                ts = tags.get(side)
                if ts is None:
                    continue
                d = f"from_{side}"
                for name, v in (
                    ("packets", ts.packets),
                    ("bytes", ts.bytes),
                    ("rtcp", ts.rtcp_packets),
                    ("dropped", ts.errors),
                ):
                    total[f"{d}_{name}"] = total.get(f"{d}_{name}", 0) + v
        return total

    def close(self) -> None:
        self.ng.close()
