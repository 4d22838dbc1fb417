"""Fixtures for the security probes: the lab in-process, an attacker's raw SIP sockets.

Every probe is a real packet to a real element of the lab (``lab.orchestrator.Lab`` on
127.0.7.0/24, ``--subnet 127.0.7``); the attacker is a plain UDP socket on an address of its
own (127.0.7.250+), or a socket bound to a lab element's address on another port (a spoofed
source IP). What reached the victims is read from the elements' SIP hooks. All counts and
waits are bounded.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from ims.sip.message import Message, Response
from ims.sip.parser import parse_message
from lab import topology
from lab.orchestrator import Lab
from proxies.hooks import Direction, SipMessageEvent

SUBNET = "127.0.7"
ATTACKER = f"{SUBNET}.250"
#: a second attacker address: the "arbitrary next hop" an open relay would deliver to
SINK = f"{SUBNET}.251"


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo) as running:
        yield running


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[Message, tuple[str, int]]] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = parse_message(data)
        except ValueError:
            return
        self.received.append((msg, addr))
        self.arrived.set()


class RawSip:
    """An attacker's UDP socket: sends hand-written SIP, collects whatever comes back."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _Collect) -> None:
        self.transport = transport
        self.proto = proto
        host, port = transport.get_extra_info("sockname")[:2]
        self.addr = (str(host), int(port))

    @classmethod
    async def open(cls, host: str = ATTACKER, port: int = 0) -> RawSip:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(_Collect, local_addr=(host, port))
        return cls(transport, proto)

    def close(self) -> None:
        self.transport.close()

    @property
    def received(self) -> list[Message]:
        return [m for m, _ in self.proto.received]

    def send(self, data: str | bytes, dest: tuple[str, int]) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.transport.sendto(raw, dest)

    async def final(self, call_id: str, timeout: float = 5.0) -> Response | None:
        """The final response to our request ``call_id`` (None after ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for m in self.received:
                if isinstance(m, Response) and m.call_id == call_id and m.status >= 200:
                    return m
            left = deadline - loop.time()
            if left <= 0:
                return None
            self.proto.arrived.clear()
            try:
                await asyncio.wait_for(self.proto.arrived.wait(), left)
            except TimeoutError:
                return None


def sip_request(
    method: str,
    ruri: str,
    *,
    via: tuple[str, int],
    from_: str = "<sip:mallory@evil.test>",
    to: str = "<sip:bob@ims-b.test>",
    to_tag: str | None = None,
    routes: Iterable[str] = (),
    headers: Iterable[tuple[str, str]] = (),
    call_id: str | None = None,
    body: bytes = b"",
) -> tuple[str, bytes]:
    """(Call-ID, bytes) of a hand-written request (what an attacker sends)."""
    cid = call_id or f"probe-{secrets.token_hex(6)}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: {from_};tag={secrets.token_hex(4)}",
        f"To: {to}" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {cid}",
        f"CSeq: 1 {method}",
    ]
    lines += [f"Route: {r}" for r in routes]
    lines += [f"{n}: {v}" for n, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return cid, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def observe(lab: Lab) -> list[tuple[str, SipMessageEvent]]:
    """Every message each SIP element of ``lab`` sees, as (element, event), from now on."""
    seen: list[tuple[str, SipMessageEvent]] = []
    for name, el in lab.elements.items():
        if hasattr(el, "sip_hooks"):
            el.sip_hooks.add(lambda ev, n=name: seen.append((n, ev)))
    return seen


def delivered(
    seen: list[tuple[str, SipMessageEvent]], call_id: str, to: tuple[str, int] | str
) -> list[SipMessageEvent]:
    """Requests of ``call_id`` some element sent to ``to`` (an address, or a host)."""
    out = []
    for _, ev in seen:
        if ev.direction != Direction.OUT or getattr(ev.message, "method", None) is None:
            continue
        if ev.message.call_id != call_id:
            continue
        if ev.peer == to or (isinstance(to, str) and ev.peer[0] == to):
            out.append(ev)
    return out


def sip_addr(lab: Lab, name: str) -> tuple[str, int]:
    e = lab.topology.element(name)
    return (e.address, e.sip_port)
