"""The users' own end-to-end SRTP layer inside the operator's (ue.user_layer, study 2.4)."""

from __future__ import annotations

import pytest

from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, decode_rtp, encode_rtp
from ims.media.srtp import SrtpReceiver, SrtpSender
from ue.user_layer import LayeredReceiver, LayeredSender, inner_keys

PSK = bytes(range(32))
OUTER_AB = SrtpKeys(suite="AES_CM_128_HMAC_SHA1_80", master_key=b"k" * 16, master_salt=b"s" * 14)
PAYLOAD = bytes(range(160))


def _rtp(seq: int) -> bytes:
    return encode_rtp(
        RtpPacket(payload_type=0, sequence_number=seq, timestamp=160 * seq, ssrc=7, payload=PAYLOAD)
    )


def test_inner_keys_per_direction_and_call() -> None:
    a_tx, a_rx = inner_keys(PSK, "call-1", initiator=True)
    b_tx, b_rx = inner_keys(PSK, "call-1", initiator=False)
    assert (a_tx, a_rx) == (b_rx, b_tx)  # what one sends the other receives
    assert a_tx.master_key != a_rx.master_key  # one key per direction
    assert inner_keys(PSK, "call-2", initiator=True)[0].master_key != a_tx.master_key
    assert inner_keys(bytes(32), "call-1", initiator=True)[0].master_key != a_tx.master_key


def test_the_peer_removes_both_layers_the_operator_only_the_outer() -> None:
    a_tx, _ = inner_keys(PSK, "c", initiator=True)
    _, b_rx = inner_keys(PSK, "c", initiator=False)
    sender = LayeredSender(OUTER_AB, a_tx)
    peer = LayeredReceiver(OUTER_AB, b_rx)
    operator = SrtpReceiver(OUTER_AB)  # holds the SDES keys from the signalling
    for seq in range(1, 20):
        wire = sender.protect(_rtp(seq))
        assert wire is not None
        plain = peer.unprotect(wire)
        assert plain is not None and decode_rtp(plain).payload == PAYLOAD
        outer_only = operator.unprotect(wire)
        assert outer_only is not None  # the outer layer authenticates and decrypts ...
        pkt = decode_rtp(outer_only)
        assert pkt.sequence_number == seq and pkt.payload[:160] != PAYLOAD  # ... to ciphertext


@pytest.mark.parametrize("wrong", ["psk", "outer"])
def test_a_wrong_key_on_either_layer_drops_the_packet(wrong: str) -> None:
    a_tx, _ = inner_keys(PSK, "c", initiator=True)
    _, b_rx = inner_keys(PSK if wrong == "outer" else bytes(32), "c", initiator=False)
    outer = (
        OUTER_AB
        if wrong == "psk"
        else SrtpKeys(suite=OUTER_AB.suite, master_key=b"x" * 16, master_salt=b"s" * 14)
    )
    wire = LayeredSender(OUTER_AB, a_tx).protect(_rtp(1))
    assert wire is not None
    assert LayeredReceiver(outer, b_rx).unprotect(wire) is None


def test_plain_sdes_is_unchanged_without_an_inner_layer() -> None:
    wire = SrtpSender(OUTER_AB).protect(_rtp(1))
    assert wire is not None
    plain = SrtpReceiver(OUTER_AB).unprotect(wire)
    assert plain is not None and decode_rtp(plain).payload == PAYLOAD
