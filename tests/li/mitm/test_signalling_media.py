"""Signalling MITM hook on real SIP messages and the DH media re-keying relay, in-process."""

from __future__ import annotations

import base64
import time
import uuid
from types import SimpleNamespace

import pytest

from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, encode_rtp
from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.policy import Sender
from ims.sip import parse_message
from lab.matrix.credentials import LabPki, Pki, provision
from li.keys import KeyRecord, KeySource
from li.mitm.media import MediaMitm, srtp_keys
from li.mitm.mikey import MikeyMitm, MitmState
from li.mitm.signalling import SignallingMitm, _find_mikey
from li.poi.iri import IriPoi, PoiTask
from li.targets import TargetKind
from tests.li.poi.sipmsgs import msg, sdp

A, B = "sip:alice@ims-a.test", "sip:bob@ims-b.test"
NOW = time.time()
XID = uuid.UUID(int=5)


def with_mikey(data: bytes) -> bytes:
    body = sdp("127.0.8.10", 4000, None).replace(b"RTP/AVP", b"RTP/SAVP")
    return body + f"a=key-mgmt:mikey {base64.b64encode(data).decode()}\r\n".encode()


@pytest.fixture(scope="module")
def pki() -> tuple[object, LabPki]:
    return provision(Pki.OPERATOR, [A, B], ["ims-a.test", "ims-b.test"], now=NOW, bits=1024)


def test_dh_call_through_the_hooks(pki: tuple[object, LabPki]) -> None:
    creds, lab = pki
    poi = IriPoi(element="pcscf-a", address=("127.0.8.10", 5060), emit=lambda r: None)
    poi.activate(PoiTask(xid=XID, targets=((TargetKind.SIP_URI, A),), mitm=frozenset({"dh"})), NOW)
    subs = {u: lab.issue(u.rpartition("@")[2], u, now=NOW, bits=1024) for u in (A, B)}
    reported: list[tuple[object, str, list[KeyRecord], MikeyMitm]] = []
    media = MediaMitm()
    sig = SignallingMitm(
        poi=poi,
        substitutes=subs.get,
        real_certificates=lambda i: lab.users[i].certificate,
        on_keys=lambda *a: reported.append(a),
        media=media,
        clock=lambda: NOW,
    )
    hook, observe = sig.hook(), poi.hook(lambda: NOW)
    alice = DhInitiator(credentials=lab.users[A], trust=creds.trust_for(B), idi=A, idr=B)  # type: ignore[attr-defined]
    invite = parse_message(
        msg(
            f"INVITE {B} SIP/2.0",
            call_id="dh1",
            cseq="1 INVITE",
            body=with_mikey(alice.initiate(NOW)),
        )
    )
    ev_in = SimpleNamespace(direction="in", peer=("127.0.8.101", 5060), message=invite, raw=None)
    observe(ev_in)
    assert hook(ev_in) is None  # only outgoing messages are rewritten
    out = hook(SimpleNamespace(direction="out", peer=("127.0.8.11", 5060), message=invite))
    assert out is not None and out.body != invite.body
    bob = DhResponder(credentials=lab.users[B], trust=creds.trust_for(A))  # type: ignore[attr-defined]
    reply = bob.receive(_find_mikey(out.body) or b"", NOW)
    assert reply.result is not None and reply.message is not None
    ok = parse_message(
        msg(
            "SIP/2.0 200 OK",
            call_id="dh1",
            cseq="1 INVITE",
            to=f"<{B}>;tag=b",
            body=with_mikey(reply.message),
        )
    )
    observe(SimpleNamespace(direction="in", peer=("127.0.8.11", 5060), message=ok, raw=None))
    back = hook(SimpleNamespace(direction="out", peer=("127.0.8.101", 5060), message=ok))
    assert back is not None
    # a retransmitted 200 gets the very same rewrite
    again = hook(SimpleNamespace(direction="out", peer=("127.0.8.101", 5060), message=ok))
    assert again is not None and again.body == back.body
    res = alice.receive(_find_mikey(back.body) or b"", NOW)
    (xid, call_id, records, m) = reported[0]
    assert xid == XID and call_id == "dh1" and m.state is MitmState.KEYED
    assert {r.source for r in records} == {KeySource.MITM} and all(r.keys for r in records)
    # DH: both legs' keys, for a CC-POI before and one after the media MITM
    assert sorted(r.leg for r in records) == ["initiator", "initiator", "responder", "responder"]
    assert len({r.keys for r in records}) == 4
    assert media.armed == 1

    # media: alice's packet, keyed on her leg, leaves the anchor keyed on bob's leg
    a_tx = next(k for k in res.keys if k.sender is Sender.INITIATOR)
    keys = SrtpKeys(suite=str(a_tx.suite), master_key=a_tx.master_key, master_salt=a_tx.master_salt)
    rtp = encode_rtp(
        RtpPacket(payload_type=0, sequence_number=1, timestamp=0, ssrc=7, payload=b"\xff" * 160)
    )
    srtp = SrtpSender(keys).protect(rtp)
    assert srtp is not None
    relayed = media.hook()(
        SimpleNamespace(call_id="dh1", direction="from_access", data=srtp, rtcp=False)
    )
    assert relayed is not None and relayed != srtp
    bob_rx = SrtpReceiver(srtp_keys(reply.result, Sender.INITIATOR))
    assert bob_rx.unprotect(relayed) == rtp
    assert SrtpReceiver(srtp_keys(reply.result, Sender.INITIATOR)).unprotect(srtp) is None


def test_untargeted_calls_are_never_touched(pki: tuple[object, LabPki]) -> None:
    creds, lab = pki
    poi = IriPoi(element="pcscf-a", address=("127.0.8.10", 5060), emit=lambda r: None)
    sig = SignallingMitm(
        poi=poi,
        substitutes=lambda i: None,
        real_certificates=lambda i: None,
        on_keys=lambda *a: None,
        media=MediaMitm(),
        clock=lambda: NOW,
    )
    alice = DhInitiator(credentials=lab.users[A], trust=creds.trust_for(B), idi=A, idr=B)  # type: ignore[attr-defined]
    invite = parse_message(
        msg(
            f"INVITE {B} SIP/2.0",
            call_id="dh2",
            cseq="1 INVITE",
            body=with_mikey(alice.initiate(NOW)),
        )
    )
    poi.hook(lambda: NOW)(SimpleNamespace(direction="in", peer=("h", 1), message=invite, raw=None))
    assert sig.hook()(SimpleNamespace(direction="out", peer=("h", 2), message=invite)) is None
    assert sig.calls == {}


def test_dh_is_declined_while_the_media_path_task_does_not_authorise(
    pki: tuple[object, LabPki],
) -> None:
    """The signalling task authorises DH, but the anchor's own task does not (yet): a DH MITM
    without the media MITM would break the call, so the INVITE goes through untouched."""
    creds, lab = pki
    poi = IriPoi(element="pcscf-a", address=("127.0.8.10", 5060), emit=lambda r: None)
    poi.activate(PoiTask(xid=XID, targets=((TargetKind.SIP_URI, A),), mitm=frozenset({"dh"})), NOW)
    granted = {"media": False}
    reported: list[tuple[object, str, list[KeyRecord], MikeyMitm]] = []
    sig = SignallingMitm(
        poi=poi,
        substitutes=lambda i: lab.issue(i.rpartition("@")[2], i, now=NOW, bits=1024),
        real_certificates=lambda i: lab.users[i].certificate,
        on_keys=lambda *a: reported.append(a),
        media=MediaMitm(),
        media_authorised=lambda: granted["media"],
        clock=lambda: NOW,
    )

    def invite(call_id: str) -> object:
        alice = DhInitiator(credentials=lab.users[A], trust=creds.trust_for(B), idi=A, idr=B)  # type: ignore[attr-defined]
        m = parse_message(
            msg(
                f"INVITE {B} SIP/2.0",
                call_id=call_id,
                cseq="1 INVITE",
                body=with_mikey(alice.initiate(NOW)),
            )
        )
        poi.hook(lambda: NOW)(SimpleNamespace(direction="in", peer=("h", 1), message=m, raw=None))
        return m

    assert sig.hook()(SimpleNamespace(direction="out", peer=("h", 2), message=invite("d1"))) is None
    assert "no media MITM is authorised" in sig.calls["d1"].mitm.reason
    granted["media"] = True  # the anchor's task now authorises the media MITM
    out = sig.hook()(SimpleNamespace(direction="out", peer=("h", 2), message=invite("d2")))
    assert out is not None and sig.calls["d2"].mitm.state is MitmState.OFFER_FORWARDED
