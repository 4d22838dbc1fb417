"""Media anchor: real UDP relaying on loopback (127.0.7.0/24), hooks, latching, control protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxies import media_anchor
from proxies.hooks import DROP, MediaDirection, MediaPacketEvent, SessionChange
from proxies.media_anchor import AnchorClient, AnchorControlServer, AnchorError, MediaAnchor

ANCHOR_IP = "127.0.7.12"
UE_IP = "127.0.7.101"
FAR_IP = "127.0.7.111"


class Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait((data, addr))


async def endpoint(ip: str, port: int = 0) -> tuple[Sink, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    t, p = await loop.create_datagram_endpoint(Sink, local_addr=(ip, port))
    return p, t.get_extra_info("sockname")[:2]


async def test_relays_both_ways_with_hooks_and_stats() -> None:
    anchor = MediaAnchor("anchor-t", ANCHOR_IP, (31000, 31099))
    seen: list[MediaPacketEvent] = []
    anchor.hooks.add(lambda ev: seen.append(ev))
    changes: list[SessionChange] = []
    anchor.session_observers.add(lambda ev: changes.append(ev.change))
    ue, ue_addr = await endpoint(UE_IP)
    far, far_addr = await endpoint(FAR_IP)
    alloc = await anchor.allocate("call-1", 0, icid="icid-1")
    assert alloc.access[0] == ANCHOR_IP and alloc.access[1] % 2 == 0
    assert alloc.access != alloc.core
    await anchor.set_remote("call-1", 0, "access", ue_addr)
    await anchor.set_remote("call-1", 0, "core", far_addr)
    assert ue.transport and far.transport
    ue.transport.sendto(b"uplink-1", alloc.access)
    data, src = await asyncio.wait_for(far.got.get(), 2)
    assert data == b"uplink-1" and tuple(src[:2]) == alloc.core
    far.transport.sendto(b"downlink-1", alloc.core)
    data, src = await asyncio.wait_for(ue.got.get(), 2)
    assert data == b"downlink-1" and tuple(src[:2]) == alloc.access
    assert [e.direction for e in seen] == [MediaDirection.FROM_ACCESS, MediaDirection.FROM_CORE]
    assert seen[0].call_id == "call-1" and seen[0].icid == "icid-1" and seen[0].leg == "access"
    stats = await anchor.release("call-1")
    assert stats["from_access_packets"] == 1 and stats["from_core_packets"] == 1
    assert stats["from_access_bytes"] == len(b"uplink-1")
    assert changes[0] == SessionChange.CREATED and changes[-1] == SessionChange.RELEASED
    assert anchor.stats("call-1") == stats
    await anchor.close()


async def test_hook_rewrites_and_drops() -> None:
    anchor = MediaAnchor("anchor-t", ANCHOR_IP, (31100, 31199))
    anchor.hooks.add(lambda ev: DROP if ev.data == b"drop" else ev.data.upper())
    ue, ue_addr = await endpoint(UE_IP)
    far, far_addr = await endpoint(FAR_IP)
    alloc = await anchor.allocate("call-2", 0)
    await anchor.set_remote("call-2", 0, "core", far_addr)
    assert ue.transport
    ue.transport.sendto(b"drop", alloc.access)
    ue.transport.sendto(b"keep", alloc.access)
    data, _ = await asyncio.wait_for(far.got.get(), 2)
    assert data == b"KEEP"
    stats = await anchor.release("call-2")
    assert stats["from_access_dropped"] == 1 and stats["from_access_packets"] == 1
    await anchor.close()


async def test_latches_to_real_source_and_relays_rtcp() -> None:
    anchor = MediaAnchor("anchor-t", ANCHOR_IP, (31200, 31299))
    ue, ue_addr = await endpoint(UE_IP)
    far, far_addr = await endpoint(FAR_IP, 0)
    alloc = await anchor.allocate("call-3", 0)
    # The SDP named a wrong port for the UE; the first packet's source wins.
    await anchor.set_remote("call-3", 0, "access", (UE_IP, 9))
    await anchor.set_remote("call-3", 0, "core", far_addr)
    assert ue.transport and far.transport
    ue.transport.sendto(b"rtp", alloc.access)
    await asyncio.wait_for(far.got.get(), 2)
    far.transport.sendto(b"back", alloc.core)
    data, _ = await asyncio.wait_for(ue.got.get(), 2)
    assert data == b"back"
    # RTCP: port + 1 on both sides
    far_rtcp, _ = await endpoint(FAR_IP, far_addr[1] + 1)
    ue.transport.sendto(b"rtcp", (ANCHOR_IP, alloc.access[1] + 1))
    data, _ = await asyncio.wait_for(far_rtcp.got.get(), 2)
    assert data == b"rtcp"
    assert anchor.stats("call-3")["from_access_rtcp"] == 1
    await anchor.close()


async def test_packets_before_the_far_side_is_known_are_dropped() -> None:
    anchor = MediaAnchor("anchor-t", ANCHOR_IP, (31300, 31399))
    ue, _ = await endpoint(UE_IP)
    alloc = await anchor.allocate("call-4", 0)
    assert ue.transport
    ue.transport.sendto(b"early", alloc.access)
    for _ in range(50):
        if anchor.stats("call-4")["from_access_dropped"]:
            break
        await asyncio.sleep(0.01)
    assert anchor.stats("call-4")["from_access_dropped"] == 1
    with pytest.raises(AnchorError):
        await anchor.set_remote("nope", 0, "core", ("127.0.7.1", 4000))
    await anchor.close()


async def test_remote_control_protocol() -> None:
    anchor = MediaAnchor("anchor-r", ANCHOR_IP, (31400, 31499))
    server = AnchorControlServer(anchor)
    addr = await server.start(ANCHOR_IP, 0)
    client = AnchorClient(addr, local_address="127.0.7.10")
    assert await client.ping() == "anchor-r"
    alloc = await client.allocate("call-5", 0, icid="x")
    assert (await anchor.allocate("call-5", 0)).core == alloc.core  # idempotent
    ue, ue_addr = await endpoint(UE_IP)
    far, far_addr = await endpoint(FAR_IP)
    await client.set_remote("call-5", 0, "core", far_addr)
    assert ue.transport
    ue.transport.sendto(b"x" * 172, alloc.access)
    await asyncio.wait_for(far.got.get(), 2)
    assert (await client.stats("call-5"))["from_access_bytes"] == 172
    stats = await client.release("call-5")
    assert stats["from_access_packets"] == 1
    with pytest.raises(AnchorError, match="no session"):
        await client.set_remote("call-5", 0, "core", far_addr)
    client.close()
    server.close()
    await anchor.close()


async def test_port_exhaustion_is_an_error() -> None:
    anchor = MediaAnchor("anchor-t", ANCHOR_IP, (31500, 31503))
    await anchor.allocate("c1", 0)
    with pytest.raises(AnchorError, match="no free RTP port"):
        await anchor.allocate("c2", 0)
    await anchor.close()


async def test_attach_is_allocate_plus_set_remote_in_one_round_trip() -> None:
    anchor = MediaAnchor("anchor-r", ANCHOR_IP, (31600, 31699))
    server = AnchorControlServer(anchor)
    client = AnchorClient(await server.start(ANCHOR_IP, 0), local_address="127.0.7.10")
    far, far_addr = await endpoint(FAR_IP)
    ue, _ = await endpoint(UE_IP)
    first = await client.attach("c6", 0, "core", far_addr, icid="i6", label="orig")
    again = await client.attach("c6", 0, "access", None, label="orig")
    assert first.access == again.access and first.core == again.core
    assert anchor.sessions[("c6", "orig", 0)].icid == "i6"
    assert ue.transport
    ue.transport.sendto(b"via attach", first.access)
    data, _ = await asyncio.wait_for(far.got.get(), 2)
    assert data == b"via attach"
    client.close()
    server.close()
    await anchor.close()


async def test_released_ports_rest_in_a_pool_before_reuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    anchor = MediaAnchor("anchor-p", ANCHOR_IP, (31800, 31899))
    first = await anchor.allocate("call-a", 0)
    await anchor.release("call-a")
    # resting (POOL_QUARANTINE s): a new call gets other ports
    second = await anchor.allocate("call-b", 0)
    assert {first.access, first.core}.isdisjoint({second.access, second.core})
    await anchor.release("call-b")
    await anchor.close()
    # closing the anchor closes the pooled sockets too: the ports can be bound again
    sink, addr = await endpoint(ANCHOR_IP, first.access[1])
    assert addr[1] == first.access[1] and sink.transport
    sink.transport.close()


async def test_a_reused_pair_drops_the_old_calls_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_anchor, "POOL_QUARANTINE", 0.0)
    anchor = MediaAnchor("anchor-p", ANCHOR_IP, (31900, 31999))
    ue, ue_addr = await endpoint(UE_IP)
    far, far_addr = await endpoint(FAR_IP)
    assert ue.transport
    probe = await anchor.attach("probe", 0, "core", far_addr)
    old = await anchor.attach("old", 0, "core", far_addr)
    await anchor.release("old")
    # a late packet of the released call reaches its pooled socket: dropped, not relayed
    ue.transport.sendto(b"late", old.access)
    ue.transport.sendto(b"probe", probe.access)
    data, _ = await asyncio.wait_for(far.got.get(), 2)
    assert data == b"probe"
    new = await anchor.attach("new", 0, "core", far_addr)
    assert (new.access, new.core) == (old.access, old.core)  # the rested pairs, oldest first
    await anchor.set_remote("new", 0, "access", ue_addr)
    ue.transport.sendto(b"fresh", new.access)
    data, src = await asyncio.wait_for(far.got.get(), 2)
    assert data == b"fresh" and tuple(src[:2]) == new.core
    assert far.got.empty()
    stats = await anchor.release("new")
    assert stats["from_access_packets"] == 1 and stats["from_access_bytes"] == len(b"fresh")
    await anchor.close()


async def test_client_gives_up_after_bounded_retransmissions() -> None:
    # a bound socket that never answers: 4 sends (0, 0.25, 0.75, 1.75 s), error at 3.75 s
    silent, addr = await endpoint(ANCHOR_IP)
    client = AnchorClient(addr, local_address="127.0.7.10")
    with pytest.raises(AnchorError, match="does not answer"):
        await client.ping()
    assert silent.got.qsize() == 4
    client.close()
    assert silent.transport
    silent.transport.close()
