"""rtpengine's ng protocol codec (proxies.ng) and the adapter's reading of rtpengine's replies.

Bencode is BEP 3: "Keys must be strings and appear in sorted order (sorted as raw strings, not
alphanumerics)"; an ng message is a cookie, a space and one bencoded dictionary, and the reply
echoes the cookie. Replies come from the network: decoding anything else raises NgDecodeError
(a DecodeError) and nothing else, never hangs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.errors import DecodeError
from proxies.ng import NgDecodeError, bdecode, bencode, decode_reply, encode_request
from proxies.rtpengine import ng_call_id, sip_call_id, synthetic_sdp, tag_streams


def test_bencode_round_trip_keys_sorted() -> None:
    value = {"sdp": b"v=0\r\n", "n": 3, "flags": ["a", "b"], "command": "offer"}
    data = bencode(value)
    assert data == b"d7:command5:offer5:flagsl1:a1:be1:ni3e3:sdp5:v=0\r\ne"
    assert bdecode(data) == {"command": b"offer", "flags": [b"a", b"b"], "n": 3, "sdp": b"v=0\r\n"}
    assert bencode(-7) == b"i-7e" and bdecode(b"i-7e") == -7
    with pytest.raises(TypeError):
        bencode(True)
    with pytest.raises(TypeError):
        bencode(1.5)


@pytest.mark.parametrize(
    "bad",
    [b"d3:abc", b"5:ab", b"i3", b"i3ee", b"x", b"", b"d1:ae", b"di1ei2ee", b"ixe", b"l" * 40],
)
def test_bdecode_refuses(bad: bytes) -> None:
    with pytest.raises(NgDecodeError):
        bdecode(bad)


def test_nesting_is_bounded() -> None:
    with pytest.raises(NgDecodeError, match="deep"):
        bdecode(b"l" * 40 + b"e" * 40)
    assert bdecode(b"l" * 20 + b"e" * 20) is not None


def test_framing() -> None:
    assert encode_request(b"abc", "ping", {}) == b"abc d7:command4:pinge"
    with pytest.raises(ValueError):
        encode_request(b"a b", "ping", {})
    assert decode_reply(b"c00k1e d6:result4:ponge") == (b"c00k1e", {"result": b"pong"})
    for bad in (b"d6:result4:ponge", b"c l1:ae", b" d6:result4:ponge", b"c i3e"):
        with pytest.raises(NgDecodeError):
            decode_reply(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoders_raise_only_their_error(data: bytes) -> None:
    for decode in (bdecode, decode_reply):
        try:
            decode(data)
        except DecodeError:
            pass


def _stream(port: int, rtcp: bool, packets: int) -> dict[str, object]:
    return {
        "local port": port,
        "local address": b"127.0.13.42",
        "flags": [b"RTCP" if rtcp else b"RTP", b"filled"],
        "stats": {"packets": packets, "bytes": packets * 172, "errors": 0},
    }


def _media(rtp: tuple[int, int], rtcp: tuple[int, int]) -> dict[str, object]:
    return {"streams": [_stream(rtp[0], False, rtp[1]), _stream(rtcp[0], True, rtcp[1])]}


def test_tag_streams_reads_a_query_reply() -> None:
    """The shape rtpengine 10.5 answers ``query`` with (recorded here, tests/peers run it):
    per tag its media and streams; the not yet answered side has an empty tag."""
    reply = bdecode(
        bencode(
            {
                "result": "ok",
                "tags": {
                    "access": {
                        "tag": "access",
                        "medias": [
                            {"streams": [_stream(30012, False, 7), _stream(30013, True, 1)]}
                        ],
                    },
                    "<untagged 1>": {
                        "tag": "",
                        "medias": [
                            {"streams": [_stream(30000, False, 0), _stream(30001, True, 0)]}
                        ],
                    },
                },
            }
        )
    )
    assert isinstance(reply, dict)
    tags = tag_streams(reply)
    assert tags["access"].rtp_port == 30012 and tags["access"].rtcp_port == 30013
    assert tags["access"].packets == 7 and tags["access"].rtcp_packets == 1
    assert tags[""].rtp_port == 30000 and tags[""].address == "127.0.13.42"
    with pytest.raises(NgDecodeError):
        tag_streams({"tags": [b"x"]})
    with pytest.raises(NgDecodeError):
        tag_streams({"tags": {"a": {"tag": b"a", "medias": [{"streams": [{"flags": []}]}]}}})


def test_one_ng_call_per_stream_and_back() -> None:
    assert ng_call_id("abc@h", "", 0) == "abc@h"
    assert ng_call_id("abc@h", "term", 1) == "abc@h term 1"
    assert sip_call_id(ng_call_id("abc@h", "orig", 2)) == "abc@h"
    sdp = synthetic_sdp(("127.0.16.111", 4000))
    assert "c=IN IP4 127.0.16.111" in sdp and "m=audio 4000 RTP/AVP 0" in sdp
    assert "a=crypto" not in sdp  # rtpengine never sees the keys
    assert "m=audio 9 " in synthetic_sdp(None)
