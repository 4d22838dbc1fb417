"""Two S-CSCF instances on one Redis store behind Debian's Kamailio with its dispatcher module
(lab/dispatcher.py, deploy/kamailio/dispatcher.cfg): issue 18's failure behaviour, without load.

A user registers through the balancer (the 401 from one instance, the answer served by
whichever the round-robin picks: the nonce key and counts are shared); terminating INVITEs
reach the user through either instance (the binding and its Path are shared). One instance is
killed: the dispatcher marks it inactive (OPTIONS probing, or the failed branch) and every new
INVITE reaches the user through the survivor, the first one after the kill by failover. The
instance restarts: the dispatcher marks it active again and it serves the user from the store.
A call established through the survivor before the kill finishes normally (ACK and BYE along
its route set, which names the instance, not the balancer).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from ims.sip.auth import DigestClient
from ims.sip.dialog import Dialog, Local, build_invite, build_register
from ims.sip.message import Request, Response, make_response
from ims.sip.parser import parse_message
from ims.sip.proxy import Peer
from ims.sip.trust import TrustPolicy
from ims.store import open_store
from lab.dispatcher import Dispatcher, DispatcherError, Instance
from lab.redisd import RedisServer
from proxies.scscf import DomainPeer, HomeServer
from proxies.subscribers import SubscriberDb, SubscriberRecord
from tests.conftest import require_tool

pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.timeout(120)]

NET = "127.0.91"
BALANCER = (f"{NET}.10", 5060)
INSTANCES = [(f"{NET}.11", 5060), (f"{NET}.12", 5060)]
PCSCF = (f"{NET}.20", 5060)  # the test plays the P-CSCF ...
PEER = (f"{NET}.40", 5060)  # ... and the peer operator's S-CSCF
UE_CONTACT = f"sip:alice@{NET}.30:5060"
ALICE = SubscriberRecord(
    impi="alice@ims-a.test", impus=("sip:alice@ims-a.test",), password="alice-pw"
)


def _instance(url: str, address: str) -> HomeServer:
    return HomeServer(
        "scscf-a",
        address,
        domain="ims-a.test",
        subscribers=SubscriberDb([ALICE]),
        peers={
            "ims-b.test": DomainPeer(
                hop=Peer(transport="udp", host=PEER[0], port=PEER[1]), trusted=True
            )
        },
        tel_domains={},
        # requests arrive from the balancer; the P-CSCF and the peer are in the Trust Domain
        trust=TrustPolicy.of(trusted=[BALANCER, PCSCF, PEER]),
        store=open_store(url),
    )


class Udp:
    """One blocking UDP socket, used from a thread (the instances run on this loop)."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(addr)
        self.sock.settimeout(0.2)

    async def send(self, message: Request | Response, to: tuple[str, int]) -> None:
        await asyncio.to_thread(self.sock.sendto, message.encode(), to)

    async def receive(
        self, want: str, timeout: float, call_id: str | None = None
    ) -> Request | Response:
        """The next message that is a request ``want`` or a final response (``want`` = "final"),
        of call ``call_id`` when given; provisional responses, retransmissions for earlier calls
        and others are skipped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = await asyncio.to_thread(self.sock.recvfrom, 65535)
            except TimeoutError:
                continue
            msg = parse_message(data)
            if call_id is not None and msg.call_id != call_id:
                continue
            if want == "final" and isinstance(msg, Response) and msg.status >= 200:
                return msg
            if isinstance(msg, Request) and msg.method == want:
                return msg
        raise AssertionError(f"no {want} within {timeout}s")

    def close(self) -> None:
        self.sock.close()


async def _register(pcscf: Udp) -> Response:
    local = Local(host=PCSCF[0], port=PCSCF[1], user="alice")
    reg = build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=local, expires=600)
    reg.headers.remove("Contact")
    reg.headers.add("Contact", f"<{UE_CONTACT}>")
    reg.headers.add("Path", f"<sip:term@{PCSCF[0]}:{PCSCF[1]};lr>")
    await pcscf.send(reg, BALANCER)
    challenge = await pcscf.receive("final", 10)
    assert isinstance(challenge, Response) and challenge.status == 401, challenge
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(reg, challenge)
    await pcscf.send(retry, BALANCER)
    ok = await pcscf.receive("final", 10)
    assert isinstance(ok, Response)
    return ok


async def _terminating_call(peer: Udp, pcscf: Udp, timeout: float = 10) -> str:
    """A terminating INVITE for alice through the balancer; the instance that routed it (its
    Record-Route) once it arrives at the P-CSCF, which then declines it (486)."""
    local = Local(host=PEER[0], port=PEER[1], user="bob")
    invite = build_invite(
        "sip:alice@ims-a.test",
        local=local,
        from_="sip:bob@ims-b.test",
        call_id=f"{os.urandom(6).hex()}@test",
        headers=[("P-Asserted-Identity", "<sip:bob@ims-b.test>")],
    )
    await peer.send(invite, BALANCER)
    arrived = await pcscf.receive("INVITE", timeout, invite.call_id)
    assert isinstance(arrived, Request)
    assert arrived.uri.encode() == UE_CONTACT  # the shared binding ...
    rr = arrived.headers.get_list("Record-Route")
    assert rr, arrived.encode()
    via = arrived.headers.get_list("Via")[0]
    await pcscf.send(make_response(arrived, 486, to_tag="ue"), _via_addr(via))
    return next(a for a, _ in INSTANCES if a in rr[0])


async def _established_call(peer: Udp, pcscf: Udp) -> tuple[Dialog, Request, str]:
    """A terminating call answered 200 and acknowledged: (the peer's dialog, its INVITE, the
    instance on its route set). The test's P-CSCF Record-Routes itself, as a P-CSCF does."""
    local = Local(host=PEER[0], port=PEER[1], user="bob")
    invite = build_invite(
        "sip:alice@ims-a.test",
        local=local,
        from_="sip:bob@ims-b.test",
        call_id=f"{os.urandom(6).hex()}@test",
        headers=[("P-Asserted-Identity", "<sip:bob@ims-b.test>")],
    )
    await peer.send(invite, BALANCER)
    arrived = await pcscf.receive("INVITE", 10, invite.call_id)
    assert isinstance(arrived, Request)
    rr = [f"<sip:{PCSCF[0]}:{PCSCF[1]};lr>", *arrived.headers.get_list("Record-Route")]
    ok = make_response(
        arrived,
        200,
        to_tag="ue-call",
        headers=[("Record-Route", r) for r in rr] + [("Contact", f"<{UE_CONTACT}>")],
    )
    await pcscf.send(ok, _via_addr(arrived.headers.get_list("Via")[0]))
    answer = await peer.receive("final", 10, invite.call_id)
    assert isinstance(answer, Response) and answer.status == 200, answer
    dialog = Dialog.uac(invite, answer)
    instance = next(a for a, _ in INSTANCES if a in dialog.route_set[0].uri.encode())
    await peer.send(dialog.create_ack(local=local), (instance, 5060))
    assert isinstance(await pcscf.receive("ACK", 10, invite.call_id), Request)  # route set
    return dialog, invite, instance


def _via_addr(via: str) -> tuple[str, int]:
    sent_by = via.split()[1].split(";")[0]
    host, _, port = sent_by.partition(":")
    return host, int(port or 5060)


async def _until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await asyncio.to_thread(predicate):  # type: ignore[arg-type]
                return
        except DispatcherError:
            pass  # its control socket is not up yet
        await asyncio.sleep(0.3)
    raise AssertionError("condition not reached in time")


async def test_failover_and_rejoin_behind_the_dispatcher(tmp_path: Path) -> None:
    require_tool("redis-server")
    require_tool("kamcmd")
    if not Path("/usr/sbin/kamailio").exists() and require_tool("kamailio") is None:
        pytest.skip("kamailio is not installed")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    servers = {a: _instance(redis.url, a) for a, _ in INSTANCES}
    balancer = Dispatcher(*BALANCER, [Instance(a, p) for a, p in INSTANCES], tmp_path / "kam")
    pcscf, peer = Udp(PCSCF), Udp(PEER)
    try:
        for s in servers.values():
            await s.start()
        balancer.start()
        a, b = (uri for uri in (Instance(*i).uri for i in INSTANCES))
        await _until(lambda: balancer.active() == {a: True, b: True}, 15)

        ok = await _register(pcscf)
        assert ok.status == 200, ok.encode()
        assert ok.headers.get_list("Service-Route")
        # round-robin: both instances serve alice's terminating calls from the shared binding
        served = {await _terminating_call(peer, pcscf) for _ in range(4)}
        assert served == {INSTANCES[0][0], INSTANCES[1][0]}, balancer.log()[-3000:]

        # a call established through one instance ...
        dialog, _, carrier = await _established_call(peer, pcscf)
        other = next(a for a, _ in INSTANCES if a != carrier)
        dead_uri, survivor_uri = (a, b) if other == INSTANCES[0][0] else (b, a)

        # ... the other instance is killed: every new call reaches alice through the survivor
        await servers.pop(other).close()
        for _ in range(4):
            assert await _terminating_call(peer, pcscf) == carrier
        await _until(lambda: balancer.active() == {dead_uri: False, survivor_uri: True}, 15)

        # the established call finishes normally: BYE along its route set, 200 back
        local = Local(host=PEER[0], port=PEER[1], user="bob")
        bye = dialog.create_request("BYE", local=local)
        await peer.send(bye, (carrier, 5060))
        got = await pcscf.receive("BYE", 10, bye.call_id)
        assert isinstance(got, Request) and got.call_id == bye.call_id
        await pcscf.send(make_response(got, 200), _via_addr(got.headers.get_list("Via")[0]))
        done = await peer.receive("final", 10, bye.call_id)
        assert isinstance(done, Response) and done.status == 200 and done.call_id == bye.call_id

        # restart it: the dispatcher's probe finds it and it serves alice from the store again
        restarted = _instance(redis.url, other)
        servers[other] = restarted
        await restarted.start()
        await _until(lambda: balancer.active() == {a: True, b: True}, 15)
        served = {await _terminating_call(peer, pcscf) for _ in range(4)}
        assert other in served
    finally:
        balancer.stop()
        for s in servers.values():
            await s.close()
        pcscf.close()
        peer.close()
        redis.stop()
