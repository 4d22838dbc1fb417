"""SIP messages of one call, as bytes, for the POI tests (SDES offer/answer included)."""

from __future__ import annotations

import base64

KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))


def sdp(addr: str, port: int, key: bytes | None, tag: int = 1) -> bytes:
    lines = [
        "v=0",
        f"o=- 1 1 IN IP4 {addr}",
        "s=-",
        f"c=IN IP4 {addr}",
        "t=0 0",
        f"m=audio {port} {'RTP/SAVP' if key else 'RTP/AVP'} 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    if key:
        lines.append(
            f"a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def msg(
    start: str,
    *,
    call_id: str,
    cseq: str,
    from_: str = "<sip:alice@ims-a.test>;tag=a1",
    to: str = "<sip:bob@ims-b.test>",
    branch: str = "z9hG4bK1",
    pai: str | None = None,
    body: bytes = b"",
) -> bytes:
    head = [
        start,
        f"Via: SIP/2.0/UDP 127.0.8.1:5060;branch={branch}",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        "Max-Forwards: 70",
    ]
    if pai:
        head.append(f"P-Asserted-Identity: {pai}")
    if body:
        head.append("Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def call(
    call_id: str,
    *,
    caller: str = "alice@ims-a.test",
    callee: str = "bob@ims-b.test",
    keys: bool = True,
) -> list[tuple[bytes, bool]]:
    """(message, sent by caller) for INVITE..BYE/200 of one call."""
    f = f"<sip:{caller}>;tag=a1"
    t = f"<sip:{callee}>"
    tt = f"<sip:{callee}>;tag=b2"
    offer = sdp("127.0.8.10", 4000, KEY_A if keys else None)
    answer = sdp("127.0.8.20", 5000, KEY_B if keys else None)
    return [
        (
            msg(
                f"INVITE sip:{callee} SIP/2.0",
                call_id=call_id,
                cseq="1 INVITE",
                from_=f,
                to=t,
                pai=f"<sip:{caller}>",
                body=offer,
            ),
            True,
        ),
        (msg("SIP/2.0 100 Trying", call_id=call_id, cseq="1 INVITE", from_=f, to=t), False),
        (msg("SIP/2.0 180 Ringing", call_id=call_id, cseq="1 INVITE", from_=f, to=tt), False),
        (
            msg("SIP/2.0 200 OK", call_id=call_id, cseq="1 INVITE", from_=f, to=tt, body=answer),
            False,
        ),
        (
            msg(
                f"ACK sip:{callee} SIP/2.0",
                call_id=call_id,
                cseq="1 ACK",
                from_=f,
                to=tt,
                branch="z9hG4bK2",
            ),
            True,
        ),
        (
            msg(
                f"BYE sip:{caller} SIP/2.0",
                call_id=call_id,
                cseq="1 BYE",
                from_=tt,
                to=f,
                branch="z9hG4bK3",
            ),
            False,
        ),
        (
            msg("SIP/2.0 200 OK", call_id=call_id, cseq="1 BYE", from_=tt, to=f, branch="z9hG4bK3"),
            True,
        ),
    ]
