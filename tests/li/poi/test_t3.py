"""LI_T3 between processes: the IRI-POI's trigger reaches the CC-POI, only from known senders."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from li.poi.iri import CcTrigger
from li.poi.t3 import MAX_TRIGGER, T3Listener, decode_trigger, encode_trigger, t3_sender
from li.targets import Side

TRIGGER = CcTrigger(
    xid=uuid.uuid4(),
    correlation_id=0x1234,
    call_id="abc@127.0.0.1",
    target_identities=frozenset({"sip:alice@ims-a.test"}),
    target_side=Side.TERMINATING,
    stop=True,
)


def test_trigger_round_trips() -> None:
    assert decode_trigger(encode_trigger(TRIGGER)) == TRIGGER


@pytest.mark.parametrize(
    "data", [b"", b"{}", b"[1]", b'{"xid": "x"}', b"\xff", b" " * (MAX_TRIGGER + 1)]
)
def test_unreadable_triggers_raise_value_errors(data: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode_trigger(data)


async def test_only_allowed_senders_arm_the_cc_poi() -> None:
    """Every network input is hostile until its sender is known (GUIDE): a trigger from an
    address outside ``allowed`` and an unreadable one are dropped; the known sender's arms."""
    got: list[CcTrigger] = []
    loop = asyncio.get_running_loop()
    listener, _ = await loop.create_datagram_endpoint(
        lambda: T3Listener(got.append, {"127.0.0.1"}), local_addr=("127.0.0.1", 0)
    )
    port = listener.get_extra_info("sockname")[1]
    sender, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.bind(("127.0.0.2", 0))
        stranger.sendto(encode_trigger(TRIGGER), ("127.0.0.1", port))
        sender.sendto(b"not json", ("127.0.0.1", port))
        t3_sender(sender, ("127.0.0.1", port))(TRIGGER)
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert got == [TRIGGER]
    finally:
        stranger.close()
        sender.close()
        listener.close()
