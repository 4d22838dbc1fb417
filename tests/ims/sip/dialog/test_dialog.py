"""Dialogs and the UA core (RFC 3261 §9.1, §10.2, §12, §13) with messages through the codec."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.sip import Request, Response, SipUri, parse_message
from ims.sip.dialog import (
    TRANSITIONS,
    AckNeeded,
    Dialog,
    DialogConfirmed,
    DialogEarly,
    DialogError,
    DialogInput,
    DialogProtocolError,
    DialogState,
    DialogTerminated,
    InviteFailed,
    Local,
    ResponseIgnored,
    UacInvite,
    UasInvite,
    build_cancel,
    build_invite,
    build_options,
    build_register,
    build_register_all_off,
)
from ims.sip.errors import SipBuildError
from ims.sip.message import make_response

ALICE = Local("127.0.1.1", 5060, user="alice")
BOB = Local("127.0.1.2", 5062, user="bob")
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.1.1\r\ns=-\r\nc=IN IP4 127.0.1.1\r\nt=0 0\r\n"


def wire(msg: Request | Response) -> Request | Response:
    """Every message crosses the codec, as on a real network."""
    return parse_message(msg.encode())


def through_proxies(invite: Request) -> Request:
    """P1 (next to Alice) then P2 record-route (each inserts its RR at the top)."""
    req = wire(invite)
    assert isinstance(req, Request)
    req.headers.insert_first("Record-Route", "<sip:127.0.1.5:5070;lr>")
    req.headers.insert_first("Record-Route", "<sip:127.0.1.6:5070;lr>")
    out = wire(req)
    assert isinstance(out, Request)
    return out


def call() -> tuple[UacInvite, UasInvite, Request]:
    invite = build_invite(
        "sip:bob@127.0.1.2:5062", local=ALICE, from_="sip:alice@ims.test", body=SDP
    )
    uac = UacInvite(invite, ALICE)
    at_bob = through_proxies(invite)
    uas = UasInvite(at_bob, BOB)
    return uac, uas, at_bob


def resp_at_alice(resp: Response) -> Response:
    r = wire(resp)
    assert isinstance(r, Response)
    return r


def test_invite_dialog_establishment_ack_bye() -> None:
    uac, uas, at_bob = call()
    ringing = uas.respond(180, 0.0)
    assert uas.dialog is not None and uas.dialog.state is DialogState.EARLY
    assert [a.uri.encode() for a in ringing.record_routes] == [
        "sip:127.0.1.6:5070;lr",
        "sip:127.0.1.5:5070;lr",
    ]
    (ev,) = uac.receive_response(resp_at_alice(ringing))
    assert isinstance(ev, DialogEarly) and ev.dialog.state is DialogState.EARLY
    # UAC route set = Record-Route reversed (§12.1.2)
    assert [r.uri.encode() for r in ev.dialog.route_set] == [
        "sip:127.0.1.5:5070;lr",
        "sip:127.0.1.6:5070;lr",
    ]
    ok = uas.respond(200, 1.0, body=SDP, content_type="application/sdp")
    assert uas.dialog.state.value == "confirmed"
    confirmed, need_ack = uac.receive_response(resp_at_alice(ok))
    assert isinstance(confirmed, DialogConfirmed) and isinstance(need_ack, AckNeeded)
    dlg = confirmed.dialog
    assert dlg.state is DialogState.CONFIRMED and not need_ack.retransmission
    ack = wire(need_ack.ack)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.cseq is not None and ack.cseq.seq == uac.invite.cseq.seq
    assert ack.cseq.method == "ACK"
    assert ack.uri.encode() == "sip:bob@127.0.1.2:5062"  # remote target = Bob's Contact
    assert [r.uri.encode() for r in ack.routes] == [
        "sip:127.0.1.5:5070;lr",
        "sip:127.0.1.6:5070;lr",
    ]
    assert ack.via is not None and ack.via.branch != uac.invite.via.branch
    assert ack.to is not None and ack.to.tag == uas.to_tag
    # the retransmitted 200 is re-ACKed with the same ACK; a late 180 is ignored
    (again,) = uac.receive_response(resp_at_alice(ok))
    assert isinstance(again, AckNeeded) and again.retransmission and again.ack is need_ack.ack
    (late,) = uac.receive_response(resp_at_alice(ringing))
    assert isinstance(late, ResponseIgnored) and dlg.state is DialogState.CONFIRMED
    # UAS stops retransmitting on the ACK
    assert uas.get_timer() == 1.5
    assert uas.receive_ack(ack, 1.2) and uas.get_timer() is None and uas.handle_timer(9) == []
    # BYE from Alice: CSeq + 1, routed, ends both sides
    bye = dlg.create_request("BYE", local=ALICE)
    assert dlg.state is DialogState.TERMINATED
    bye_at_bob = wire(bye)
    assert isinstance(bye_at_bob, Request)
    assert bye_at_bob.cseq is not None and bye_at_bob.cseq.seq == ack.cseq.seq + 1
    assert uas.dialog.id.call_id == bye_at_bob.call_id
    uas.dialog.receive_request(bye_at_bob)
    assert uas.dialog.state is DialogState.TERMINATED
    with pytest.raises(DialogError) as ei:
        uas.dialog.receive_request(bye_at_bob)
    assert ei.value.status == 481


def test_in_dialog_cseq_rules_and_target_refresh() -> None:
    uac, uas, _ = call()
    uas.respond(200, 0.0, body=SDP, content_type="application/sdp")
    dlg_a = uac.receive_response(resp_at_alice(uas.final))[0].dialog  # type: ignore[arg-type, union-attr]
    dlg_b = uas.dialog
    assert dlg_b is not None
    info1 = dlg_a.create_request("INFO", local=ALICE, body=b"x", content_type="text/plain")
    info2 = dlg_a.create_request("INFO", local=ALICE, body=b"y", content_type="text/plain")
    dlg_b.receive_request(wire(info2))  # type: ignore[arg-type]
    with pytest.raises(DialogError) as ei:
        dlg_b.receive_request(wire(info1))  # type: ignore[arg-type]
    assert ei.value.status == 500  # lower CSeq (§12.2.2)
    # re-INVITE from Alice with a new Contact refreshes Bob's remote target
    moved = Local("127.0.1.9", 5999, user="alice")
    reinvite = dlg_a.create_request("INVITE", local=moved, body=SDP, content_type="application/sdp")
    assert dlg_a.invite_seq == reinvite.cseq.seq  # type: ignore[union-attr]
    dlg_b.receive_request(wire(reinvite))  # type: ignore[arg-type]
    assert dlg_b.remote_target.encode() == "sip:alice@127.0.1.9:5999"
    # UPDATE from Bob: Bob's local CSeq starts fresh (UAS had none)
    upd = dlg_b.create_request("UPDATE", local=BOB)
    assert upd.uri.encode() == "sip:alice@127.0.1.9:5999"
    assert upd.cseq is not None and upd.cseq.method == "UPDATE"
    dlg_a.receive_request(wire(upd))  # type: ignore[arg-type]
    assert dlg_a.remote_seq == upd.cseq.seq
    # a 481 to an in-dialog request ends the dialog (§12.2.1.2)
    assert dlg_b.response_ended(make_response(upd, 481))
    assert dlg_b.state is DialogState.TERMINATED
    with pytest.raises(SipBuildError):
        dlg_b.create_request("BYE", local=BOB)


def test_strict_route_compatibility() -> None:
    uac, uas, at_bob = call()
    at_bob.headers.remove("Record-Route")
    at_bob.headers.add("Record-Route", "<sip:strict.example.test;maddr=127.0.1.7>")
    uas = UasInvite(at_bob, BOB)
    ok = uas.respond(200, 0.0)
    dlg = uac.receive_response(resp_at_alice(ok))[0].dialog  # type: ignore[union-attr]
    bye = dlg.create_request("BYE", local=ALICE)
    # §12.2.1.1: strict router as Request-URI, remote target as last Route
    assert isinstance(bye.uri, SipUri) and bye.uri.host == "strict.example.test"
    assert [r.uri.encode() for r in bye.routes] == ["sip:bob@127.0.1.2:5062"]


def test_uas_2xx_retransmission_until_timeout() -> None:
    _, uas, _ = call()
    ok = uas.respond(200, 10.0)
    times = []
    now = 10.0
    while (t := uas.get_timer()) is not None:
        now = t
        for r in uas.handle_timer(now):
            assert r is ok
            times.append(round(now - 10.0, 3))
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]  # T1 doubling, capped at T2 = 4
    assert uas.timed_out and now == pytest.approx(10.0 + 64 * 0.5)
    with pytest.raises(SipBuildError):
        uas.respond(200, now)


def test_forking_and_failure() -> None:
    invite = build_invite("sip:bob@ims.test", local=ALICE, from_="sip:alice@ims.test")
    uac = UacInvite(invite, ALICE)
    trying = make_response(invite, 100)
    assert uac.receive_response(resp_at_alice(trying)) == []
    r1 = make_response(invite, 180, to_tag="fork1", headers=[("Contact", "<sip:b1@127.0.1.3>")])
    r2 = make_response(invite, 183, to_tag="fork2", headers=[("Contact", "<sip:b2@127.0.1.4>")])
    (e1,) = uac.receive_response(resp_at_alice(r1))
    (e2,) = uac.receive_response(resp_at_alice(r2))
    assert isinstance(e1, DialogEarly) and isinstance(e2, DialogEarly)
    assert len(uac.dialogs) == 2
    busy = make_response(invite, 486, to_tag="fork2")
    events = uac.receive_response(resp_at_alice(busy))
    assert sum(isinstance(e, DialogTerminated) for e in events) == 2
    assert isinstance(events[-1], InviteFailed)
    assert all(d.state is DialogState.TERMINATED for d in uac.dialogs.values())


def test_cancel_per_9_1() -> None:
    invite = build_invite(
        "sip:bob@ims.test",
        local=ALICE,
        from_="sip:alice@ims.test",
        routes=["<sip:127.0.1.5:5070;lr>"],
    )
    cancel = wire(UacInvite(invite, ALICE).cancel())
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    for name in ("Call-ID", "To", "From", "Route"):
        assert cancel.headers.get_all(name) == invite.headers.get_all(name)
    assert cancel.cseq is not None and invite.cseq is not None
    assert (cancel.cseq.seq, cancel.cseq.method) == (invite.cseq.seq, "CANCEL")
    assert cancel.vias == [invite.via]
    with pytest.raises(SipBuildError):
        build_cancel(Request("ACK", "sip:a@b"))


def test_register_and_options_builders() -> None:
    reg = wire(build_register("sip:ims.test", "sip:alice@ims.test", local=ALICE, expires=600))
    assert isinstance(reg, Request) and reg.method == "REGISTER"
    assert reg.from_ is not None and reg.to is not None
    assert reg.from_.uri == reg.to.uri and reg.from_.tag and reg.to.tag is None
    assert reg.expires == 600 and reg.contacts[0].uri.encode() == "sip:alice@127.0.1.1:5060"
    assert reg.via is not None and reg.via.has_rport and reg.via.is_rfc3261_branch
    assert reg.max_forwards == 70
    off = wire(
        build_register_all_off(
            "sip:ims.test", "sip:alice@ims.test", local=ALICE, call_id=reg.call_id or "", cseq=2
        )
    )
    assert off.contact_star and off.expires == 0 and off.call_id == reg.call_id
    tcp = Local("127.0.1.1", 5060, transport="TCP", user="alice")
    opt = wire(build_options("sip:bob@ims.test", local=tcp, from_="sip:alice@ims.test"))
    assert isinstance(opt, Request) and opt.headers.get("Accept") == "application/sdp"
    assert opt.via is not None and opt.via.transport == "TCP"


def test_state_table_exhaustive() -> None:
    """Every (state, input): either the table's transition or DialogProtocolError."""
    for state, inp in itertools.product(DialogState, DialogInput):
        dlg = Dialog.__new__(Dialog)
        dlg.state = state
        if (state, inp) in TRANSITIONS:
            action, nxt = TRANSITIONS[(state, inp)]
            assert dlg.apply(inp) is action and dlg.state is nxt
        else:
            with pytest.raises(DialogProtocolError):
                dlg.apply(inp)
            assert dlg.state is state
    # the rules the module docstring promises
    assert TRANSITIONS[(DialogState.CONFIRMED, DialogInput.PROVISIONAL)][1] is DialogState.CONFIRMED
    assert TRANSITIONS[(DialogState.CONFIRMED, DialogInput.FAILURE)][1] is DialogState.CONFIRMED


def test_edge_cases_and_errors() -> None:
    invite = build_invite("sip:bob@ims.test", local=ALICE, from_="sip:alice@ims.test")
    uac = UacInvite(invite, ALICE)
    # responses that are not for this INVITE, or a 2xx without To tag
    opt = build_options("sip:bob@ims.test", local=ALICE, from_="sip:alice@ims.test")
    (ign,) = uac.receive_response(make_response(opt, 200, to_tag="x"))
    assert isinstance(ign, ResponseIgnored)
    (ign,) = uac.receive_response(make_response(invite, 200))
    assert isinstance(ign, ResponseIgnored) and "tag" in ign.reason
    with pytest.raises(SipBuildError):
        Dialog.uac(invite, make_response(invite, 200, to_tag="t"))  # 2xx without Contact
    with pytest.raises(SipBuildError):
        Dialog.uac(invite, make_response(invite, 100, to_tag="t"))
    with pytest.raises(SipBuildError):
        UacInvite(opt, ALICE)
    # early dialog from a 183 without Contact: target is the Request-URI; BYE ends it
    (early,) = uac.receive_response(make_response(invite, 183, to_tag="e1"))
    assert isinstance(early, DialogEarly)
    dlg = early.dialog
    assert dlg.remote_target == invite.uri
    for bad in ("ACK", "CANCEL"):
        with pytest.raises(SipBuildError):
            dlg.create_request(bad, local=ALICE)
    with pytest.raises(SipBuildError):
        dlg.create_request("INFO", local=ALICE, body=b"x")
    dlg.create_request("BYE", local=ALICE)
    assert dlg.state is DialogState.TERMINATED
    # UAS: a failure after 180 terminates the early dialog; an ACK for another CSeq is not ours
    at_bob = wire(invite)
    assert isinstance(at_bob, Request)
    uas = UasInvite(at_bob, BOB)
    uas.respond(180, 0.0)
    busy = uas.respond(486, 0.1)
    assert busy.status == 486 and uas.dialog is not None
    assert uas.dialog.state is DialogState.TERMINATED and uas.get_timer() is None
    stray = Request("ACK", "sip:bob@ims.test", [("CSeq", "99 ACK"), ("Call-ID", "x")])
    assert not uas.receive_ack(stray, 0.2)
    with pytest.raises(SipBuildError):
        UasInvite(opt, BOB)
    with pytest.raises(SipBuildError):
        UasInvite(at_bob, BOB).respond(200, 0.0, body=b"v=0")  # body without Content-Type


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([100, 180, 183, 200, 202, 486, 603]), st.sampled_from(["", "a", "b"])
        ),
        max_size=12,
    )
)
def test_uac_invite_any_response_sequence(seq: list[tuple[int, str]]) -> None:
    """Whatever responses arrive, in any order: a confirmed dialog stays confirmed, every ACK
    carries the INVITE's CSeq number, and each dialog's retransmitted 2xx gets the same ACK."""
    invite = build_invite("sip:bob@ims.test", local=ALICE, from_="sip:alice@ims.test")
    uac = UacInvite(invite, ALICE)
    acks: dict[str, Request] = {}
    confirmed: set[str] = set()
    for status, tag in seq:
        resp = make_response(
            invite, status, to_tag=tag or None, headers=[("Contact", f"<sip:b{tag}@127.0.1.3>")]
        )
        for ev in uac.receive_response(resp_at_alice(resp)):
            if isinstance(ev, AckNeeded):
                assert ev.ack.cseq is not None and invite.cseq is not None
                assert (ev.ack.cseq.seq, ev.ack.cseq.method) == (invite.cseq.seq, "ACK")
                tag_ = ev.dialog.id.remote_tag
                if tag_ in acks:
                    assert ev.ack is acks[tag_] and ev.retransmission
                acks[tag_] = ev.ack
            if isinstance(ev, DialogConfirmed):
                confirmed.add(ev.dialog.id.remote_tag)
        for t in confirmed:
            assert uac.dialogs[t].state is DialogState.CONFIRMED


def test_reliable_provisional_prack_rfc3262() -> None:
    from ims.sip.dialog import PrackNeeded

    invite = build_invite(
        "sip:bob@ims.test",
        local=ALICE,
        from_="sip:alice@ims.test",
        headers=[("Supported", "100rel")],
    )
    uac = UacInvite(invite, ALICE)
    at_bob = wire(invite)
    assert isinstance(at_bob, Request)
    uas = UasInvite(at_bob, BOB)
    assert uas.peer_supports_100rel
    r183 = uas.respond(183, 0.0, reliable=True, body=SDP, content_type="application/sdp")
    assert r183.require == ["100rel"]
    rseq = int(r183.headers.get("RSeq") or "0")
    assert 0 < rseq < 2**31
    with pytest.raises(SipBuildError):  # one unacknowledged reliable 1xx at a time
        uas.respond(180, 0.1, reliable=True)
    # the UAS retransmits the 183 (T1, 2T1, 4T1...) until the PRACK
    assert uas.get_timer() == 0.5
    assert uas.handle_timer(0.5) == [r183] and uas.handle_timer(1.0) == []
    assert uas.handle_timer(1.5) == [r183]
    early, need = uac.receive_response(resp_at_alice(r183))
    assert isinstance(early, DialogEarly) and isinstance(need, PrackNeeded)
    prack = wire(need.prack)
    assert isinstance(prack, Request) and prack.method == "PRACK"
    assert invite.cseq is not None and prack.cseq is not None
    assert prack.headers.get("RAck") == f"{rseq} {invite.cseq.seq} INVITE"
    assert prack.cseq.seq == invite.cseq.seq + 1 and prack.cseq.method == "PRACK"
    assert prack.uri.encode() == "sip:bob@127.0.1.2:5062"
    assert prack.to is not None and prack.to.tag == uas.to_tag
    # a retransmitted 183 is not PRACKed again (RFC 3262 §4)
    (ign,) = uac.receive_response(resp_at_alice(r183))
    assert isinstance(ign, ResponseIgnored)
    # a PRACK with a wrong RAck gets 481; the right one 200 and stops the retransmissions
    bad = prack.copy()
    bad.headers.set("RAck", f"{rseq + 5} {invite.cseq.seq} INVITE")
    assert uas.receive_prack(bad, 2.0).status == 481
    ok = uas.receive_prack(prack, 2.0)
    assert ok.status == 200 and uas.get_timer() is None
    # the next reliable provisional: RSeq + 1, PRACKed again
    r180 = uas.respond(180, 2.5, reliable=True)
    assert r180.headers.get("RSeq") == str(rseq + 1)
    events = uac.receive_response(resp_at_alice(r180))
    assert isinstance(events[-1], PrackNeeded)
    assert events[-1].prack.headers.get("RAck") == f"{rseq + 1} {invite.cseq.seq} INVITE"
    # never PRACKed: after 64*T1 the UAS gives up (prack_timed_out -> reject the INVITE)
    t = uas.get_timer()
    while t is not None:
        uas.handle_timer(t)
        t = uas.get_timer()
    assert uas.prack_timed_out
    with pytest.raises(SipBuildError):
        uas.respond(200, 0.0, reliable=True)


def test_ipv6_local_address() -> None:
    v6 = Local("::1", 5070, transport="TCP", user="alice")
    req = wire(build_options("sip:bob@[::1]:5080", local=v6, from_="sip:alice@ims.test"))
    assert req.via is not None and req.via.host == "[::1]" and req.via.port == 5070
    assert req.via.transport == "TCP"
    inv = wire(build_invite("sip:bob@[::1]:5080", local=v6, from_="sip:alice@ims.test"))
    assert inv.contacts[0].uri.encode() == "sip:alice@[::1]:5070;transport=tcp"
