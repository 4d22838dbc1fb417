"""SDP model: captured peer SDPs round-trip byte-exact; typed views; edits touch only their lines;
offer/answer for audio incl. the rtpengine 12-crypto offer; anchor rewriting keeps key lines."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ims.sdes import SdesAnswerer, make_offer
from ims.sdes.suites import SUITES
from ims.sdp import (
    Direction,
    KeyMgmtAttribute,
    LocalAudio,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    create_answer,
    create_offer,
    process_answer,
    rewrite_for_anchor,
    strip_crypto,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "sdp"
CAPTURED = sorted(
    p for p in VECTORS.glob("*.sdp") if "_invalid" not in p.name and "_truncated" not in p.name
)


def load(name: str) -> SessionDescription:
    return SessionDescription.parse((VECTORS / name).read_bytes())


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.name)
def test_captured_sdps_round_trip_byte_exact(path: Path) -> None:
    data = path.read_bytes()
    sdp = SessionDescription.parse(data)
    assert sdp.encode() == data
    assert sdp.media, "every captured SDP has a media section"
    for m in sdp.media:
        m.crypto  # noqa: B018 - typed views parse without error
        m.rtpmaps  # noqa: B018


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*_invalid*.sdp")), ids=lambda p: p.name)
def test_invalid_sdps_raise_sdp_error(path: Path) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(path.read_bytes())


def test_truncated_capture_is_kept_losslessly_but_its_rtpmap_is_an_error() -> None:
    data = (VECTORS / "baresip_offer_srtp_mand_truncated.sdp").read_bytes()
    sdp = SessionDescription.parse(data)
    assert sdp.encode() == data  # cut mid-line: still kept byte for byte
    with pytest.raises(SdpError):
        sdp.media[0].rtpmaps  # noqa: B018


def test_baresip_offer_fields() -> None:
    sdp = load("baresip_offer_srtp_mand.sdp")
    assert sdp.origin.address == "127.0.0.1"
    assert sdp.connection is not None and sdp.connection.address == "127.0.0.1"
    (m,) = sdp.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 10000, "RTP/SAVP", ("0", "8", "101"))
    assert m.rtpmaps[101].encoding == "telephone-event"
    assert m.direction is Direction.SENDRECV and m.ptime == 20 and m.rtcp_port == 10001
    (c,) = m.crypto
    assert c.tag == 1 and c.suite == "AES_CM_128_HMAC_SHA1_80" and len(c.first_key.key_salt) == 30
    assert m.attribute("ssrc") is not None  # unknown attributes are kept


def test_sipp_offer_is_plain() -> None:
    sdp = load("sipp_uac_offer.sdp")
    (m,) = sdp.media
    assert m.proto == "RTP/AVP" and m.formats == ("0",) and not m.crypto


def test_rtpengine_offer_has_12_crypto_lines_and_answer_picks_runnable() -> None:
    offer = load("rtpengine_offer_12_crypto.sdp")
    crypto = offer.media[0].crypto
    assert len(crypto) == 12
    assert [c.tag for c in crypto] == list(range(1, 13))
    assert {c.suite for c in crypto} >= {"F8_128_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_80"}
    assert offer.media[0].rtcp_port == 30001
    local = LocalAudio(address="127.0.4.2", port=40000, codecs=("PCMA", "PCMU"))
    answer = create_answer(offer, local, session_id=1)
    (stream,) = answer.streams
    assert stream.codec == "PCMA" and stream.payload_type == 8
    assert stream.sdes is not None
    assert stream.sdes.suite == "AEAD_AES_256_GCM" and stream.sdes.tag == 1  # first runnable
    (ans_crypto,) = answer.sdp.media[0].crypto
    assert SUITES[ans_crypto.suite].runnable
    assert ans_crypto.first_key.key_salt != crypto[0].first_key.key_salt  # our own key
    # Only the 128-bit CM suites enabled: AES_256_CM/AES_192/F8/NULL declined, tag 7 chosen
    only_cm = SdesAnswerer(suites=("AES_CM_128_HMAC_SHA1_80",))
    choice = only_cm.answer(crypto)
    assert choice.answer.tag == 7 and len(choice.declined) == 6
    # the offerer side agrees on the keys
    keys = process_answer(offer, answer.sdp)[0].sdes
    assert keys is not None and keys.rx == stream.sdes.tx and keys.tx == stream.sdes.rx
    # re-parse our own answer
    assert SessionDescription.parse(answer.sdp.encode()).encode() == answer.sdp.encode()


def test_offer_answer_sdes_round_trip() -> None:
    offer = create_offer(
        LocalAudio(address="127.0.4.1", port=20000, crypto=make_offer()), session_id=42
    )
    m = offer.media[0]
    assert m.proto == "RTP/SAVP" and len(m.crypto) == 4 and m.formats == ("0", "8", "101")
    ans = create_answer(
        offer, LocalAudio(address="127.0.4.2", port=30000, codecs=("PCMU",)), session_id=7
    )
    (s,) = ans.streams
    assert (s.remote_address, s.remote_rtp_port, s.codec, s.telephone_event) == (
        "127.0.4.1",
        20000,
        "PCMU",
        101,
    )
    assert s.sdes is not None and s.sdes.suite == "AES_CM_128_HMAC_SHA1_80"
    (o,) = process_answer(offer, ans.sdp)
    assert o.remote_rtp_port == 30000 and o.sdes is not None
    assert o.sdes.tx == s.sdes.rx and o.sdes.rx == s.sdes.tx


def test_direction_rules() -> None:
    offer = create_offer(
        LocalAudio(address="127.0.4.1", port=20000, direction=Direction.SENDONLY), session_id=1
    )
    ans = create_answer(offer, LocalAudio(address="127.0.4.2", port=30000), session_id=2)
    assert ans.sdp.media[0].direction is Direction.RECVONLY
    assert ans.streams[0].direction is Direction.RECVONLY
    assert process_answer(offer, ans.sdp)[0].direction is Direction.SENDONLY
    offer = create_offer(
        LocalAudio(address="127.0.4.1", port=20000, direction=Direction.INACTIVE), session_id=1
    )
    ans = create_answer(offer, LocalAudio(address="127.0.4.2", port=30000), session_id=2)
    assert ans.sdp.media[0].direction is Direction.INACTIVE


def test_rejections_port_zero_and_488() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
        "m=audio 5002 RTP/AVP 0 8\r\n"
        "m=audio 5004 RTP/AVP 0\r\n"
    )
    offer = SessionDescription.parse(text)
    ans = create_answer(offer, LocalAudio(address="127.0.4.2", port=30000), session_id=2)
    ports = [m.port for m in ans.sdp.media]
    assert ports == [0, 30000, 0]
    assert ans.sdp.media[0].formats == ("96",) and ans.sdp.media[0].proto == "RTP/AVP"
    assert ans.streams[0].index == 1
    # no common codec at all -> 488
    g722 = SessionDescription.parse(
        text.replace("0 8\r\n", "9\r\n").replace("RTP/AVP 0\r\n", "RTP/AVP 9\r\n")
    )
    with pytest.raises(SdpNegotiationError) as ei:
        create_answer(g722, LocalAudio(address="127.0.4.2", port=30000), session_id=2)
    assert ei.value.status_hint == 488


def test_savp_offer_with_only_unsupported_crypto_is_rejected() -> None:
    offer = load("rtpengine_offer_12_crypto.sdp")
    m = offer.media[0].without_attributes("crypto")
    for c in offer.media[0].crypto:
        if not SUITES[c.suite].runnable:
            m = m.with_attributes_appended(
                [type(offer.media[0].attributes[0])(name="crypto", value=c.encode())]
            )
    only_bad = offer.with_media(0, m)
    with pytest.raises(SdpNegotiationError):
        create_answer(
            only_bad, LocalAudio(address="127.0.4.2", port=30000, codecs=("PCMA",)), session_id=1
        )


def test_anchor_rewrite_keeps_key_lines_byte_identical() -> None:
    offer = load("rtpengine_offer_12_crypto.sdp")
    km = KeyMgmtAttribute(protocol="mikey", data=b"\x01\x00\x05\x00" + bytes(20))
    m = offer.media[0].with_attributes_appended(
        [type(offer.media[0].attributes[0])(name="key-mgmt", value=km.encode())]
    )
    offer = offer.with_media(0, m)
    out = rewrite_for_anchor(offer, "127.0.4.9", {0: 50000}, origin_address="127.0.4.9")
    assert out.media[0].port == 50000 and out.media[0].rtcp_port == 50001
    assert out.media[0].effective_connection(out).address == "127.0.4.9"  # type: ignore[union-attr]
    assert out.origin.address == "127.0.4.9"

    def key_lines(s):
        return [ln for ln in s.media[0].lines if ln.value.startswith(("crypto:", "key-mgmt:"))]

    assert key_lines(out) == key_lines(offer) and len(key_lines(out)) == 13
    assert out.media[0].key_mgmt == (km,)
    changed = [
        a
        for a, b in zip(offer.encode().split(b"\r\n"), out.encode().split(b"\r\n"), strict=True)
        if a != b
    ]
    assert len(changed) == 4  # o=, m=, c=, a=rtcp
    assert not strip_crypto(out).media[0].crypto


def test_key_mgmt_session_level_and_media_override() -> None:
    data = bytes(range(40))
    local = LocalAudio(
        address="127.0.4.1",
        port=20000,
        key_mgmt=(KeyMgmtAttribute(protocol="mikey", data=data),),
        key_mgmt_at_session_level=True,
    )
    offer = create_offer(local, session_id=5)
    assert offer.key_mgmt[0].data == data and offer.media[0].is_secure
    assert offer.media_key_mgmt(0)[0].data == data
    text = offer.encode().decode()
    assert f"a=key-mgmt:mikey {base64.b64encode(data).decode()}\r\n" in text
    with pytest.raises(SdpError):
        KeyMgmtAttribute.parse("mikey")
    with pytest.raises(SdpError):
        KeyMgmtAttribute.parse("mikey !!!")


def test_lf_line_endings_and_trailing_blank_line_round_trip() -> None:
    text = (
        b"v=0\no=- 1 1 IN IP4 ::1\ns=x\nc=IN IP6 ::1\nt=0 0\nm=audio 9 RTP/AVP 0\na=foo:bar baz\n\n"
    )
    sdp = SessionDescription.parse(text)
    assert sdp.encode() == text and sdp.media[0].attribute("foo") is not None


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"o=- 1 1 IN IP4 x\r\n",
        b"v=0\r\nbogus\r\n",
        b"v=0\r\ns=-\r\n",
        b"v=0\r\no=a b\r\ns=-\r\n",
        b"v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nm=audio x RTP/AVP 0\r\n",
        b"v=1\r\no=- 1 1 IN IP4 x\r\ns=-\r\n",
    ],
)
def test_malformed(bad: bytes) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(bad)


@given(st.binary(max_size=300))
def test_parser_only_raises_sdp_error(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpError:
        return
    assert sdp.encode() == data


@given(st.lists(st.from_regex(r"[a-z]=[ -~]{0,30}", fullmatch=True), max_size=12))
def test_round_trip_of_arbitrary_lines(lines: list[str]) -> None:
    text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n" + "".join(ln + "\r\n" for ln in lines)
    try:
        sdp = SessionDescription.parse(text)
    except SdpError:
        return
    assert sdp.encode_str() == text


def test_mikey_offer_answered_with_our_key_mgmt() -> None:
    i_msg = KeyMgmtAttribute(protocol="mikey", data=b"I_MESSAGE")
    r_msg = KeyMgmtAttribute(protocol="mikey", data=b"R_MESSAGE")
    offer = create_offer(
        LocalAudio(address="127.0.4.1", port=20000, key_mgmt=(i_msg,)), session_id=1
    )
    assert offer.media[0].proto == "RTP/SAVP" and offer.media[0].key_mgmt == (i_msg,)
    ans = create_answer(
        offer, LocalAudio(address="127.0.4.2", port=30000, key_mgmt=(r_msg,)), session_id=2
    )
    (s,) = ans.streams
    assert s.key_mgmt == (i_msg,) and s.sdes is None  # the caller hands i_msg to ims.mikey
    assert ans.sdp.media[0].key_mgmt == (r_msg,) and ans.sdp.media[0].proto == "RTP/SAVP"
    (o,) = process_answer(offer, ans.sdp)
    assert o.key_mgmt == (r_msg,)
    # without a local MIKEY answer, an SAVP offer carrying only key-mgmt cannot be accepted
    with pytest.raises(SdpNegotiationError):
        create_answer(offer, LocalAudio(address="127.0.4.2", port=30000), session_id=2)


_ATTR_LINES = st.sampled_from(
    [
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:x",
        "a=rtpmap:96 opus/48000/2",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=ptime:x",
        "a=rtcp:9 IN IP4 1.2.3.4",
        "a=rtcp:x",
        "a=rtcp-mux",
        "a=sendonly",
        "a=inactive",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40,
        "a=crypto:zz",
        "a=key-mgmt:mikey AQAB",
        "a=key-mgmt:mikey",
        "c=IN IP4 10.0.0.1/127/2",
        "c=IN IP6 ::1/3",
        "c=IN IP4 1.2.3.4/x",
        "c=IN",
        "m=audio 0 RTP/AVP 0",
        "m=audio 7 RTP/SAVP 0 8 101",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "b=AS:64",
        "i=info",
        "x=unknown",
    ]
)


@given(st.lists(_ATTR_LINES, max_size=15))
def test_typed_views_only_raise_decode_errors(lines: list[str]) -> None:
    from ims.errors import DecodeError

    text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n" + "".join(ln + "\r\n" for ln in lines)
    try:
        sdp = SessionDescription.parse(text)
    except SdpError:
        return
    assert sdp.encode_str() == text
    for i, m in enumerate(sdp.media):
        for view in (
            "connection",
            "rtpmaps",
            "fmtp",
            "direction",
            "crypto",
            "key_mgmt",
            "ptime",
            "rtcp_port",
            "formats",
            "is_secure",
        ):
            try:
                getattr(m, view)
            except DecodeError:
                pass
        sdp.media_direction(i)
        try:
            create_answer(sdp, LocalAudio(address="127.0.4.2", port=30000), session_id=1)
        except (DecodeError, SdpNegotiationError):
            pass


def test_baresip_answer_to_rtpengine_offer_matches_our_choice() -> None:
    offer = load("rtpengine_offer_12_crypto.sdp")
    theirs = load("baresip_answer_to_rtpengine_offer.sdp")
    (agreed,) = process_answer(offer, theirs)
    assert agreed.codec == "PCMA" and agreed.sdes is not None
    ours = create_answer(
        offer, LocalAudio(address="127.0.4.2", port=1, codecs=("PCMA",)), session_id=1
    )
    # an independent SDES implementation (libre) picks the same line as our answerer
    assert (agreed.sdes.tag, agreed.sdes.suite) == (
        ours.streams[0].sdes.tag,
        ours.streams[0].sdes.suite,
    )  # type: ignore[union-attr]
    assert agreed.sdes.suite == "AEAD_AES_256_GCM"
    assert agreed.sdes.tx.master_key == offer.media[0].crypto[0].master_key
    assert len(agreed.sdes.rx.master_key) == 32 and len(agreed.sdes.rx.master_salt) == 12


def test_answer_to_sipp_offer_plain_or_rejected_when_srtp_mandatory() -> None:
    offer = load("sipp_uac_offer.sdp")
    ans = create_answer(offer, LocalAudio(address="127.0.4.2", port=30000), session_id=1)
    m = ans.sdp.media[0]
    assert (m.proto, m.formats, m.port) == ("RTP/AVP", ("0",), 30000) and not m.crypto
    (s,) = ans.streams
    assert (s.remote_address, s.remote_rtp_port, s.sdes) == ("127.0.4.12", 6000, None)
    with pytest.raises(SdpNegotiationError) as ei:
        create_answer(
            offer, LocalAudio(address="127.0.4.2", port=30000, require_secure=True), session_id=1
        )
    assert "mandatory" in str(ei.value)


def test_unicode_line_separators_inside_values_are_kept() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=caf\u00e9 \u2028 \x85 \x0c end\r\nt=0 0\r\n".encode()
    sdp = SessionDescription.parse(text)
    assert sdp.encode() == text and sdp.session_name.endswith(" end")
    assert (
        SessionDescription.parse(b"v=0\no=- 1 1 IN IP4 h\ns=-").encode()
        == b"v=0\no=- 1 1 IN IP4 h\ns=-"
    )


def test_huge_numbers_are_syntax_errors_not_crashes() -> None:
    big = "9" * 5000
    with pytest.raises(SdpError):
        SessionDescription.parse(f"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio {big} RTP/AVP 0\r\n")
    sdp = SessionDescription.parse(
        f"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4/{big}\r\nm=audio 9 RTP/AVP 0\r\n"
        f"a=rtpmap:{big} PCMU/8000\r\na=fmtp:{big} x\r\na=rtcp:{big}\r\na=ptime:{big}\r\n"
    )
    m = sdp.media[0]
    with pytest.raises(SdpError):
        m.rtpmaps  # noqa: B018
    with pytest.raises(SdpError):
        sdp.connection  # noqa: B018
    assert m.fmtp == {} and m.rtcp_port == 10 and m.ptime is None
