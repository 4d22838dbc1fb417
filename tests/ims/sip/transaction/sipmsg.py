"""Test helpers: build requests from text and a lossy/delaying in-memory network."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from ims.sip.message import Request, new_branch
from ims.sip.parser import parse_message
from ims.sip.transaction import Event, Flow, SendMessage, TransactionLayer

A = ("127.0.2.1", 5060)
B = ("127.0.2.2", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str | None = None,
    via_host: str = "127.0.2.1",
    via_port: int = 5060,
    via_params: str = "",
    cseq: int = 1,
    call_id: str = "call-1@a",
    to_tag: str | None = None,
    ruri: str = "sip:bob@127.0.2.2",
    transport: str = "UDP",
    extra: str = "",
) -> Request:
    branch = branch if branch is not None else new_branch()
    br = f";branch={branch}" if branch else ""
    to = "<sip:bob@b.example>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host}:{via_port}{br}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        "From: Alice <sip:alice@a.example>;tag=a1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


@dataclass(order=True)
class _Packet:
    when: float
    seq: int
    data: bytes = field(compare=False)
    src: tuple[str, int] = field(compare=False)
    dst: tuple[str, int] = field(compare=False)


class LossyNet:
    """Delivers SendMessage datagrams between layers with loss and random delay (seeded)."""

    def __init__(self, layers: dict[tuple[str, int], TransactionLayer], *, loss: float, seed: int):
        self.layers = layers
        self.loss = loss
        self.rng = random.Random(seed)
        self.queue: list[_Packet] = []
        self.seq = 0
        self.now = 0.0
        self.sent = 0
        self.dropped = 0
        self.handlers: dict[tuple[str, int], object] = {}

    def send(self, src: tuple[str, int], events: list[Event]) -> list[Event]:
        """Put SendMessage events on the wire; return the other events."""
        rest: list[Event] = []
        for ev in events:
            if isinstance(ev, SendMessage):
                self.sent += 1
                if self.rng.random() < self.loss:
                    self.dropped += 1
                    continue
                self.seq += 1
                delay = self.rng.uniform(0.001, 0.15)
                heapq.heappush(
                    self.queue, _Packet(self.now + delay, self.seq, ev.data, src, ev.flow.remote)
                )
            else:
                rest.append(ev)
        return rest

    def next_time(self) -> float | None:
        times = [p.when for p in self.queue[:1]]
        times += [t for layer in self.layers.values() if (t := layer.get_timer()) is not None]
        return min(times) if times else None

    def step(self) -> list[tuple[tuple[str, int], Event]]:
        """Advance to the next delivery or timer; return (owner, event) for the TUs."""
        t = self.next_time()
        if t is None:
            return []
        self.now = max(self.now, t)
        out: list[tuple[tuple[str, int], Event]] = []
        while self.queue and self.queue[0].when <= self.now:
            p = heapq.heappop(self.queue)
            layer = self.layers[p.dst]
            flow = Flow("UDP", p.src, p.dst)
            for ev in self.send(p.dst, layer.receive_bytes(p.data, flow, self.now)):
                out.append((p.dst, ev))
        for addr, layer in self.layers.items():
            for ev in self.send(addr, layer.handle_timer(self.now)):
                out.append((addr, ev))
        return out
