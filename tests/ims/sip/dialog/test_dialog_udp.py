"""A whole call driven by the dialog/UA core over real UDP sockets (127.0.1.x), on the
transaction layer's SipEndpoint: INVITE -> 180 -> 200 -> ACK (UAC core, stateless) -> BYE -> 200,
with digest authentication of the INVITE on the way (401 -> authorised retry)."""

from __future__ import annotations

import asyncio

from ims.sip import Request, Response
from ims.sip.aio.endpoint import ServerContext, SipEndpoint
from ims.sip.auth import DigestClient, DigestServer
from ims.sip.dialog import (
    AckNeeded,
    DialogConfirmed,
    DialogEarly,
    DialogState,
    Local,
    UacInvite,
    UasInvite,
    build_invite,
)

ALICE_IP, BOB_IP = "127.0.1.21", "127.0.1.22"
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.1.21\r\ns=-\r\nc=IN IP4 127.0.1.21\r\nt=0 0\r\n"


async def test_call_over_udp_with_digest() -> None:
    loop = asyncio.get_running_loop()
    alice_ep, bob_ep = SipEndpoint(name="alice"), SipEndpoint(name="bob")
    try:
        a_addr = await alice_ep.listen("udp", ALICE_IP, 0)
        b_addr = await bob_ep.listen("udp", BOB_IP, 0)
        alice = Local(ALICE_IP, a_addr[1], user="alice")
        bob = Local(BOB_IP, b_addr[1], user="bob")
        auth = DigestServer("bob.test", b"b" * 32, algorithms=("SHA-256",))
        uas_calls: dict[str, UasInvite] = {}
        acked = asyncio.Event()
        bye_seen = asyncio.Event()

        def on_request(ctx: ServerContext) -> None:
            req = ctx.request
            if req.method == "INVITE":
                res = auth.verify(req, loop.time(), lambda u, r: "pw" if u == "alice" else None)
                if not res.ok:
                    ctx.respond(auth.challenge_response(req, loop.time(), stale=res.stale))
                    return
                uas = UasInvite(req, bob)
                uas_calls[req.call_id or ""] = uas
                ctx.respond(uas.respond(180, loop.time()))
                ctx.respond(uas.respond(200, loop.time(), body=SDP, content_type="application/sdp"))
            elif req.method == "BYE":
                uas = uas_calls[req.call_id or ""]
                assert uas.dialog is not None
                uas.dialog.receive_request(req)
                ctx.respond(200)
                bye_seen.set()
            else:
                ctx.respond(405)

        def on_ack(req: Request, _flow: object) -> None:
            uas = uas_calls.get(req.call_id or "")
            if uas is not None and uas.receive_ack(req, loop.time()):
                acked.set()

        bob_ep.on_request(on_request)
        bob_ep.on_ack(on_ack)

        invite = build_invite(
            f"sip:bob@{BOB_IP}:{b_addr[1]}", local=alice, from_="sip:alice@alice.test", body=SDP
        )
        challenged = await alice_ep.request(invite, b_addr)
        assert challenged.status == 401
        invite = DigestClient("alice", "pw").authorize(invite, challenged)
        uac = UacInvite(invite, alice)
        events: list[object] = []

        def provisional(resp: Response) -> None:
            events.extend(uac.receive_response(resp))

        final = await asyncio.wait_for(
            alice_ep.request(invite, b_addr, on_provisional=provisional), 5
        )
        assert final.status == 200
        events.extend(uac.receive_response(final))
        assert any(isinstance(e, DialogEarly) for e in events)
        confirmed = next(e for e in events if isinstance(e, DialogConfirmed))
        ack = next(e for e in events if isinstance(e, AckNeeded)).ack
        assert ack.headers.get_all("Authorization") == invite.headers.get_all("Authorization")
        alice_ep.send_stateless(ack, b_addr)
        await asyncio.wait_for(acked.wait(), 5)
        uas = uas_calls[invite.call_id or ""]
        assert uas.dialog is not None and uas.dialog.state is DialogState.CONFIRMED
        assert uas.get_timer() is None  # 2xx retransmissions stopped by the ACK

        dialog = confirmed.dialog
        bye = dialog.create_request("BYE", local=alice)
        bye_resp = await asyncio.wait_for(alice_ep.request(bye, b_addr), 5)
        assert bye_resp.status == 200 and bye_seen.is_set()
        assert dialog.state is DialogState.TERMINATED
        assert uas.dialog.state is DialogState.TERMINATED
    finally:
        await alice_ep.close()
        await bob_ep.close()
