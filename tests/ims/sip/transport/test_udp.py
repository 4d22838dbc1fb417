"""UdpTransport: the public socket-buffer option the proxy uses."""

from __future__ import annotations

import pytest

from ims.sip.transport.errors import SipTransportError
from ims.sip.transport.udp import UdpTransport


async def test_set_buffer_sizes() -> None:
    udp = UdpTransport(lambda data, flow: None)
    with pytest.raises(SipTransportError):
        udp.set_buffer_sizes(1 << 20, 1 << 20)  # not bound yet
    await udp.bind("127.0.2.21", 0)
    try:
        rcv0, snd0 = udp.set_buffer_sizes()  # None: unchanged, just read
        rcv, snd = udp.set_buffer_sizes(rcv0 * 2, None)
        # Linux doubles the request, capped at net.core.rmem_max: it grew or hit the cap
        assert rcv >= rcv0 and snd == snd0
        small_rcv, _ = udp.set_buffer_sizes(4096, 4096)
        assert small_rcv < rcv0 or rcv0 <= 8192
    finally:
        udp.close()
