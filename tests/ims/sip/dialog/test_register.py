"""RegistrationClient against the project's registrar core (ims.sip.registrar) with digest
authentication (ims.sip.auth): challenge, 423 Min-Expires, granted expiry, refresh with the
same Call-ID and rising CSeq, stale nonce, Service-Route, unregistration."""

from __future__ import annotations

from collections.abc import Sequence

from ims.sip import Request, Response, make_response, parse_message
from ims.sip.auth import DigestClient, DigestServer
from ims.sip.dialog import Local
from ims.sip.dialog.register import (
    Registered,
    RegistrationClient,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)
from ims.sip.registrar import BindingStore, Registrar

UE = Local("127.0.1.31", 5060, user="alice")
DOMAIN = "ims.example.test"


def make_registrar(min_expires: int = 60) -> tuple[Registrar, DigestServer]:
    auth = DigestServer(DOMAIN, b"r" * 32, nonce_lifetime=1000)

    def authenticate(req: Request, now: float) -> Sequence[tuple[str, str]] | None:
        res = auth.verify(req, now, lambda u, r: "secret" if u == "alice" else None)
        return None if res.ok else auth.challenge(now, stale=res.stale)

    store = BindingStore()
    store.min_expires = min_expires
    return Registrar(store, authenticate=authenticate), auth


def exchange(
    reg: Registrar, client: RegistrationClient, req: Request, now: float
) -> tuple[list[object], Request | None]:
    at_registrar = parse_message(req.encode())
    assert isinstance(at_registrar, Request)
    resp = reg.handle(at_registrar, now)
    back = parse_message(resp.encode())
    assert isinstance(back, Response)
    events, nxt = client.receive_response(back, now)
    return list(events), nxt


def test_register_challenge_refresh_unregister() -> None:
    reg, _ = make_registrar()
    client = RegistrationClient(
        f"sip:{DOMAIN}",
        f"sip:alice@{DOMAIN}",
        UE,
        expires=600,
        credentials=DigestClient("alice", "secret"),
    )
    first = client.register(0.0)
    events, retry = exchange(reg, client, first, 0.0)
    assert events == [] and retry is not None and retry.authorization
    assert retry.call_id == first.call_id and retry.cseq.seq == first.cseq.seq + 1  # type: ignore[union-attr]
    events, nxt = exchange(reg, client, retry, 0.1)
    (ok,) = events
    assert isinstance(ok, Registered) and nxt is None
    assert ok.expires == 600 and client.state is RegistrationState.REGISTERED
    assert [c.uri.encode() for c in ok.contacts] == ["sip:alice@127.0.1.31:5060"]
    # refresh: at max(T/2, T-60) = 540 s, same Call-ID, higher CSeq, credentials reused
    assert client.get_timer() == 0.1 + 540
    assert client.handle_timer(100.0) is None
    refresh = client.handle_timer(540.1)
    assert refresh is not None and refresh.call_id == first.call_id
    assert refresh.cseq is not None and refresh.cseq.seq > retry.cseq.seq  # type: ignore[union-attr]
    assert refresh.authorization  # no extra 401 round trip
    events, nxt = exchange(reg, client, refresh, 540.2)
    assert isinstance(events[0], Registered) and nxt is None
    # much later the nonce is stale: 401 stale=true, answered again
    late = client.handle_timer(2000.0)
    assert late is not None
    events, retry2 = exchange(reg, client, late, 2000.0)
    assert events == [] and retry2 is not None
    events, _ = exchange(reg, client, retry2, 2000.1)
    assert isinstance(events[0], Registered)
    # unregister
    bye = client.unregister(2100.0)
    assert bye.expires == 0
    events, retry3 = exchange(reg, client, bye, 2100.0)
    if retry3 is not None:  # a challenge for the removal, answered
        events, _ = exchange(reg, client, retry3, 2100.1)
    assert isinstance(events[0], Unregistered) and client.state is RegistrationState.UNREGISTERED
    assert reg.store.lookup(f"sip:alice@{DOMAIN}", 2100.2) == []


def test_423_min_expires_and_wrong_password() -> None:
    reg, _ = make_registrar(min_expires=900)
    client = RegistrationClient(
        f"sip:{DOMAIN}",
        f"sip:alice@{DOMAIN}",
        UE,
        expires=300,
        credentials=DigestClient("alice", "secret"),
    )
    events, retry = exchange(reg, client, client.register(0.0), 0.0)
    assert retry is not None  # 401 -> credentials
    events, retry = exchange(reg, client, retry, 0.1)
    assert events == [] and retry is not None and retry.expires == 900  # 423 -> Min-Expires
    assert retry.authorization
    events, _ = exchange(reg, client, retry, 0.2)
    assert isinstance(events[0], Registered) and events[0].expires == 900

    reg2, _ = make_registrar()
    bad = RegistrationClient(
        f"sip:{DOMAIN}", f"sip:alice@{DOMAIN}", UE, credentials=DigestClient("alice", "wrong")
    )
    events, retry = exchange(reg2, bad, bad.register(0.0), 0.0)
    events, again = exchange(reg2, bad, retry, 0.1)  # type: ignore[arg-type]
    (fail,) = events
    assert isinstance(fail, RegistrationFailed) and again is None
    assert bad.state is RegistrationState.FAILED and "rejected" in fail.reason


def test_service_route_and_shortened_expiry() -> None:
    client = RegistrationClient(f"sip:{DOMAIN}", f"sip:alice@{DOMAIN}", UE, expires=3600)
    req = client.register(0.0)
    ok = make_response(
        req,
        200,
        to_tag="r",
        headers=[
            ("Contact", "<sip:alice@127.0.1.31:5060>;expires=120, <sip:alice@10.9.9.9>;expires=50"),
            ("Service-Route", "<sip:orig@scscf.ims.example.test;lr>"),
        ],
    )
    (ev,) = client.receive_response(ok, 10.0)[0]
    assert isinstance(ev, Registered) and ev.expires == 120
    assert [r.uri.encode() for r in ev.service_route] == ["sip:orig@scscf.ims.example.test;lr"]
    assert client.get_timer() == 10.0 + 60
    # a response for another CSeq is not ours
    assert client.receive_response(ok, 11.0) == ([], None)
    # 401 without credentials fails
    c2 = RegistrationClient(f"sip:{DOMAIN}", f"sip:alice@{DOMAIN}", UE)
    r2 = c2.register(0.0)
    (fail,) = c2.receive_response(make_response(r2, 401, to_tag="x"), 0.0)[0]
    assert isinstance(fail, RegistrationFailed)
