"""The UE against a scripted peer on a raw UDP socket (no proxy): the corner cases a real
network produces — a 180 that arrives after the 200, a 2xx retransmission, a digest challenge."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ims.sdp import LocalAudio, SessionDescription, create_answer, create_offer
from ims.sip import parse_message
from ims.sip.dialog import AckNeeded, Local, UacInvite, build_invite
from ims.sip.message import Request, Response, make_response
from ue.agent import UeConfig, UserAgent

PEER_IP = "127.0.7.150"
UE_IP = "127.0.7.151"


class ScriptedPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.requests: asyncio.Queue[tuple[Request, Any]] = asyncio.Queue()
        self.responses: asyncio.Queue[Response] = asyncio.Queue()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = parse_message(data)
        if isinstance(msg, Request):
            self.requests.put_nowait((msg, addr))
        elif isinstance(msg, Response):
            self.responses.put_nowait(msg)

    def send(self, message: Any, addr: Any) -> None:
        self.transport.sendto(message.encode(), addr)


async def _peer() -> tuple[ScriptedPeer, int]:
    loop = asyncio.get_running_loop()
    t, p = await loop.create_datagram_endpoint(ScriptedPeer, local_addr=(PEER_IP, 0))
    return p, t.get_extra_info("sockname")[1]


def _config(port: int) -> UeConfig:
    return UeConfig(
        name="t",
        aor="sip:alice@ims-a.test",
        impi="alice@ims-a.test",
        password="pw",
        domain="ims-a.test",
        local_address=UE_IP,
        proxy=(PEER_IP, port),
    )


def _answer(invite: Request) -> bytes:
    offer = SessionDescription.parse(invite.body)
    return create_answer(offer, LocalAudio(address=PEER_IP, port=40000), session_id=7).sdp.encode()


async def test_late_180_after_200_is_ignored_and_2xx_retransmission_is_acked() -> None:
    peer, port = await _peer()
    async with UserAgent(_config(port)) as ua:
        call = ua.dial("sip:bob@ims-b.test")
        invite, addr = await asyncio.wait_for(peer.requests.get(), 5)
        assert invite.method == "INVITE" and b"a=crypto:1 AES_CM_128_HMAC_SHA1_80" in invite.body
        ok = make_response(
            invite,
            200,
            to_tag="callee1",
            headers=[
                ("Contact", f"<sip:bob@{PEER_IP}:{port}>"),
                ("Content-Type", "application/sdp"),
            ],
            body=_answer(invite),
        )
        peer.send(ok, addr)
        late = make_response(invite, 180, to_tag="callee1")
        peer.send(late, addr)  # a 180 overtaken by the 200 (two proxy workers)
        await call.answered(timeout=5)
        ack, _ = await asyncio.wait_for(peer.requests.get(), 5)
        assert ack.method == "ACK" and ack.cseq is not None and ack.cseq.seq == 1
        peer.send(ok, addr)  # our ACK was "lost": the 200 is retransmitted -> ACK again
        again, _ = await asyncio.wait_for(peer.requests.get(), 5)
        assert again.method == "ACK"
        await asyncio.sleep(0.1)
        # the late 180 changed nothing (the transaction layer or the UE core dropped it)
        assert call.established.is_set() and not call.ended.is_set()
        assert 180 not in call.provisional and call.ignored_late in ([], [180])
        assert call.keys is not None and call.keys.secure
        hang = asyncio.ensure_future(call.hangup())
        bye, addr = await asyncio.wait_for(peer.requests.get(), 5)
        assert bye.method == "BYE" and bye.uri.encode() == f"sip:bob@{PEER_IP}:{port}"
        peer.send(make_response(bye, 200), addr)
        assert await asyncio.wait_for(hang, 5) == 200


async def test_register_answers_the_digest_challenge() -> None:
    peer, port = await _peer()
    async with UserAgent(_config(port)) as ua:
        task = asyncio.ensure_future(ua.register())
        first, addr = await asyncio.wait_for(peer.requests.get(), 5)
        assert first.method == "REGISTER" and "Authorization" not in first.headers
        challenge = 'Digest realm="ims-a.test", nonce="abc", qop="auth", algorithm=MD5'
        peer.send(make_response(first, 401, headers=[("WWW-Authenticate", challenge)]), addr)
        second, addr = await asyncio.wait_for(peer.requests.get(), 5)
        auth = second.authorization[0]
        assert auth.get("username") == "alice@ims-a.test" and auth.get("nonce") == "abc"
        peer.send(
            make_response(
                second,
                200,
                headers=[
                    ("Service-Route", "<sip:orig@127.0.7.11;lr>"),
                    ("P-Associated-URI", "<sip:alice@ims-a.test>, <tel:+493011>"),
                ],
            ),
            addr,
        )
        await asyncio.wait_for(task, 5)
        assert ua.registered and ua.service_route == ["<sip:orig@127.0.7.11;lr>"]
        assert ua.associated == ["sip:alice@ims-a.test", "tel:+493011"]


async def _final(peer: ScriptedPeer, timeout: float) -> Response:
    while True:
        resp = await asyncio.wait_for(peer.responses.get(), timeout)
        if resp.status >= 200:
            return resp


async def test_answering_ue_retransmits_its_2xx_until_the_ack() -> None:
    """§13.3.1.4 (the shared UasInvite's timers): a lost ACK makes the UE resend its 200 after
    T1; once the ACK arrives the 200 is not sent again; a BYE then ends the call."""
    peer, port = await _peer()
    async with UserAgent(_config(port)) as ua:
        local = Local(host=PEER_IP, port=port, user="bob")
        offer = create_offer(LocalAudio(address=PEER_IP, port=40000), session_id=3)
        invite = build_invite(
            f"sip:alice@{UE_IP}:{ua.local_port}",
            local=local,
            from_="sip:bob@ims-b.test",
            to="sip:alice@ims-a.test",
            body=offer.encode(),
        )
        peer.send(invite, (UE_IP, ua.local_port))
        ok = await _final(peer, 5)
        assert ok.status == 200 and ok.to is not None and ok.to.tag
        again = await _final(peer, 3)  # no ACK yet: the same 200 again
        assert again.status == 200 and again.to is not None and again.to.tag == ok.to.tag
        incoming = await ua.next_call(timeout=1)
        assert incoming.dialog is not None and incoming.remote_tag == invite.from_.tag  # type: ignore[union-attr]
        uac = UacInvite(invite, local)
        ack = next(e.ack for e in uac.receive_response(ok) if isinstance(e, AckNeeded))
        peer.send(ack, (UE_IP, ua.local_port))
        await asyncio.sleep(0.1)
        while not peer.responses.empty():  # a retransmission that crossed the ACK
            peer.responses.get_nowait()
        with contextlib.suppress(TimeoutError):
            late = await _final(peer, 2.5)  # T1 doubling: the next would be due within 2 s
            raise AssertionError(f"2xx resent after the ACK: {late.status}")
        dialog = uac.confirmed
        assert dialog is not None
        peer.send(dialog.create_request("BYE", local=local), (UE_IP, ua.local_port))
        assert (await _final(peer, 5)).status == 200
        await asyncio.wait_for(incoming.ended.wait(), 5)
        assert incoming.end_reason == "remote hangup"


async def test_register_again_keeps_call_id_and_follows_423() -> None:
    """RegistrationClient in the UE: one Call-ID across REGISTERs with rising CSeq (§10.2.4), a
    423 retried with Min-Expires and the credentials of the last challenge (nc + 1)."""
    peer, port = await _peer()
    async with UserAgent(_config(port)) as ua:
        task = asyncio.ensure_future(ua.register())
        first, addr = await asyncio.wait_for(peer.requests.get(), 5)
        challenge = 'Digest realm="ims-a.test", nonce="n1", qop="auth", algorithm=MD5'
        peer.send(make_response(first, 401, headers=[("WWW-Authenticate", challenge)]), addr)
        second, addr = await asyncio.wait_for(peer.requests.get(), 5)
        peer.send(make_response(second, 200), addr)
        await asyncio.wait_for(task, 5)
        task = asyncio.ensure_future(ua.register())
        third, addr = await asyncio.wait_for(peer.requests.get(), 5)
        assert third.call_id == first.call_id
        assert third.cseq is not None and second.cseq is not None
        assert third.cseq.seq > second.cseq.seq
        peer.send(make_response(third, 423, headers=[("Min-Expires", "1200")]), addr)
        fourth, addr = await asyncio.wait_for(peer.requests.get(), 5)
        assert fourth.expires == 1200 and fourth.call_id == first.call_id
        auth = fourth.authorization[0]
        assert auth.get("nonce") == "n1" and auth.get("nc") == "00000002"
        peer.send(make_response(fourth, 200), addr)
        await asyncio.wait_for(task, 5)
        assert ua.registered
        due = ua.refresh_due()
        assert due is not None and due - ua.now() > 500  # max(T/2, T-60) of the 1200 s granted
        # at the refresh time the last challenge is answered again: no 401 round trip
        ua.now = lambda: due + 1.0  # type: ignore[method-assign]
        task = asyncio.ensure_future(ua.register())
        fifth, addr = await asyncio.wait_for(peer.requests.get(), 5)
        auth = fifth.authorization[0]
        assert auth.get("nonce") == "n1" and auth.get("nc") == "00000003"
        assert fifth.call_id == first.call_id
        peer.send(make_response(fifth, 200), addr)
        await asyncio.wait_for(task, 5)
