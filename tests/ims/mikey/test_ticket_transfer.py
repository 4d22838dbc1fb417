"""MIKEY-TICKET Ticket Transfer exchange (RFC 6043 §4.2.2) and the GENERIC-ID map (§6.1.1):
layouts byte for byte, keys recomputed from the RFC's formulas, MAC coverage, refusals."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.buffer import Buffer
from ims.mikey import kdf
from ims.mikey.constants import DataType, ErrorNo, MapType
from ims.mikey.crypto import hmac_sha1_160
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.ticket import (
    GrantedTicket,
    TicketKeys,
    TicketKms,
    TicketRequester,
    TicketResolver,
)
from ims.mikey.modes.ticket_transfer import (
    TicketTransferInitiator,
    TicketTransferResponder,
    transfer_init_mac_input,
)
from ims.mikey.payloads import GenericCsEntry, HdrPayload, decode_hdr, srtp_session_data
from ims.mikey.payloads_kms import TicketFlags, TicketPayload
from ims.mikey.policy import Sender
from ims.mikey.ticket_kdf import message_keys, session_key
from tests.conftest import require_tool

from .sip_pcap import write_pcap

NOW = 1_750_000_000.0
KMS_ID = "kms.ims.lab"
ALICE, BOB, CAROL = "sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"
PSKS = {ALICE.encode(): b"A" * 16, BOB.encode(): b"B" * 16, CAROL.encode(): b"C" * 16}


def _kms() -> TicketKms:
    return TicketKms(kms_id=KMS_ID, psk=lambda ident, _p: PSKS.get(ident))


def _granted(kms: TicketKms, responders: tuple[str, ...] = (BOB,)) -> GrantedTicket:
    req = TicketRequester(
        identity=ALICE, kms_id=KMS_ID, psk=PSKS[ALICE.encode()], responders=responders
    )
    reply = kms.receive(req.initiate(NOW), NOW)
    assert reply.ok and reply.message is not None
    return req.receive(reply.message, NOW)


def _resolve(kms: TicketKms, who: str, ticket: TicketPayload) -> TicketKeys:
    res = TicketResolver(identity=who, kms_id=KMS_ID, psk=PSKS[who.encode()], ticket=ticket)
    reply = kms.receive(res.initiate(NOW + 1), NOW + 1)
    assert reply.ok and reply.message is not None, reply.error
    return res.receive(reply.message, NOW + 1)


def _exchange() -> Any:
    kms = _kms()
    granted = _granted(kms)
    ini = TicketTransferInitiator(granted=granted, identity=ALICE, responder=BOB, sdp_ids="mikey")
    init = ini.initiate(NOW)
    resp = TicketTransferResponder(identity=BOB, sdp_ids="mikey")
    ticket = resp.early_check(init, NOW + 1)
    keys = _resolve(kms, BOB, ticket)
    reply = resp.complete(init, keys, NOW + 1)
    return kms, granted, ini, init, resp, keys, reply


def test_generic_id_map_layout_byte_for_byte() -> None:
    """§6.1.1: "CS ID (8 bits) ... Prot type (8 bits) ... S (1 bit) ... #P (7 bits) ... Ps ...
    Session Data Length (16 bits) ... Session Data ... SPI Length (8 bits) ... SPI"; SRTP
    Session Data is "SSRC ... ROC (OPTIONAL) ... SEQ (OPTIONAL)", "The S flag is used to
    indicate whether the ROC and SEQ fields are provided"."""
    cs = GenericCsEntry(
        cs_id=1,
        prot_type=0,
        s_flag=True,
        policies=(0, 3),
        session_data=srtp_session_data(0x11223344, 5, 0x0102),
        spi=b"\xaa\xbb",
    )
    hdr = HdrPayload(
        data_type=DataType.TRANSFER_INIT,
        csb_id=0x01020304,
        map_type=MapType.GENERIC_ID,
        cs_map=(cs,),
    )
    buf = Buffer()
    hdr.encode(buf, 0)
    data = buf.data()
    assert data[8:] == bytes.fromhex("01020100820003000a1122334400000005010202aabb")
    back, nxt = decode_hdr(Buffer(data))
    assert back == hdr and nxt == 0
    assert (back.cs_map[0].ssrc, back.cs_map[0].roc, back.cs_map[0].policy_no) == (0x11223344, 5, 0)


def test_empty_map_with_crypto_sessions_is_refused() -> None:
    """§4.2.3.1: "#CS MUST be set to '0' and the CS ID map type SHALL be the 'Empty map'"."""
    data = bytes([1, DataType.RESOLVE_INIT_PSK, 0, 0, 0, 0, 0, 1, 1, MapType.EMPTY])
    with pytest.raises(MikeyDecodeError):
        decode_hdr(Buffer(data + bytes(9)))


def test_transfer_end_to_end_keys_equal_and_from_the_rfc_formula() -> None:
    """§5.1.3: TEK from the TGK with "label: constant || CS ID || 0xFFFFFFFF || 0x03 || length
    RANDRi || [RANDRi] || length RANDRr || [RANDRr]"; "RANDRi SHALL be included if the Ticket
    Policy determines that it shall be used (H flag)"."""
    _kms_, granted, ini, init, _resp, keys, reply = _exchange()
    assert reply.ok and reply.message is not None
    got = ini.receive(reply.message, NOW + 2)
    assert got.keys == reply.result.keys
    assert granted.ticket.flags & TicketFlags.H
    tgk = keys.tgk
    for k in got.keys:
        label = (
            kdf.CONST_TEK.to_bytes(4, "big")
            + bytes([k.cs_id])
            + b"\xff\xff\xff\xff\x03"
            + bytes([len(ini.rand)])
            + ini.rand
            + b"\x00"
        )
        assert k.master_key == kdf.prf(tgk, label, 16)
        assert k.master_key == session_key(tgk, k.cs_id, kdf.CONST_TEK, 16, randri=ini.rand)
    assert {k.sender for k in got.keys} == {Sender.INITIATOR, Sender.RESPONDER}
    assert got.keys[0].master_key != got.keys[1].master_key


def test_transfer_init_shape_and_v_coverage() -> None:
    """§4.2.2.1: GENERIC-ID map ("The map type SRTP-ID SHALL NOT be used", §6.1); "The value of
    the V flag SHALL agree with the F flag in the Ticket Policy"; §5.5 Table 5.2
    "TRANSFER_INIT || Identity_i || Identity_r" with auth_key from MPKi (§5.1.2, 0x01)."""
    _kms_, granted, ini, init, *_ = _exchange()
    msg = decode_message(init)
    assert msg.data_type is DataType.TRANSFER_INIT
    assert msg.hdr.map_type is MapType.GENERIC_ID and len(msg.hdr.cs_map) == 2
    assert msg.hdr.v_flag is bool(granted.ticket.flags & TicketFlags.F) is True
    keys = message_keys(granted.keys.mpki, msg.hdr.csb_id, response=False, randri=ini.rand)
    # after the TICKET: the SDP IDs General Extension (4 + len "mikey") and V (2 + 20); the
    # TICKET ends with the (empty) Initiator Data's 16-bit length, which the MAC skips
    cut = len(init) - 22 - (4 + len(b"mikey"))
    assert init[cut - 2 : cut] == b"\x00\x00"
    covered = init[: cut - 2] + init[cut:-20]
    mac = hmac_sha1_160(keys.auth_key, covered + ALICE.encode() + BOB.encode())
    assert init[-20:] == mac


def test_mac_does_not_cover_initiator_data() -> None:
    """§5.5: "In the TRANSFER_INIT message, the MAC SHALL NOT cover the Initiator Data length
    and Initiator Data fields in the TICKET payload" -- so adding Initiator Data leaves the
    MAC valid, while changing the Ticket Policy does not."""
    kms, granted, ini, init, *_ = _exchange()
    msg = decode_message(init)
    k = next(i for i, p in enumerate(msg.payloads) if isinstance(p, TicketPayload))
    ticket = msg.payloads[k]
    assert isinstance(ticket, TicketPayload)
    with_id = dataclasses.replace(ticket, initiator_data=b"\x00")
    other = MikeyMessage(hdr=msg.hdr, payloads=(*msg.payloads[:k], with_id, *msg.payloads[k + 1 :]))
    data = other.encode()[:-20] + init[-20:]
    assert transfer_init_mac_input(data, decode_message(data)) == transfer_init_mac_input(init, msg)
    resp = TicketTransferResponder(identity=BOB, sdp_ids="mikey")
    keys = _resolve(kms, BOB, with_id)
    assert resp.complete(data, keys, NOW + 1).ok
    tampered = bytearray(init)
    tampered[len(init) - 22 - 9 - 2 - 5] ^= 1  # inside the TICKET's Ticket Data
    resp2 = TicketTransferResponder(identity=BOB, sdp_ids="mikey")
    bad = resp2.complete(bytes(tampered), keys, NOW + 1)
    assert not bad.ok


def test_transfer_resp_shape_and_coverage() -> None:
    """§4.2.2.3: the response keeps "version, PRF func and CSB ID"; V flag "SHALL be set to
    '0'"; "each crypto session has exactly one security policy"; Session Data "MUST be
    provided in the response message" and SPI likewise; V covers "TRANSFER_RESP ||
    TRANSFER_INIT" (Table 5.2) with the 0x02 keys."""
    _kms_, granted, ini, init, _resp, keys, reply = _exchange()
    assert reply.message is not None
    msg = decode_message(reply.message)
    req = decode_message(init)
    assert msg.data_type is DataType.TRANSFER_RESP and not msg.hdr.v_flag
    assert (msg.hdr.csb_id, msg.hdr.prf, msg.hdr.version) == (req.hdr.csb_id, req.hdr.prf, 1)
    for cs in msg.hdr.cs_map:
        assert isinstance(cs, GenericCsEntry)
        assert len(cs.policies) == 1 and len(cs.session_data) >= 4 and cs.spi
    k2 = message_keys(keys.mpki, msg.hdr.csb_id, response=True, randri=ini.rand)
    assert reply.message[-20:] == hmac_sha1_160(k2.auth_key, reply.message[:-20] + init)


def test_early_reject_without_the_kms() -> None:
    """§4.2.2.2: "The Responder SHALL however check that both the Ticket Policy and the
    security policies are acceptable. If they are not, the Responder SHALL reject without
    contacting the KMS." A ticket naming only bob is refused by carol before any resolve."""
    kms = _kms()
    ini = TicketTransferInitiator(granted=_granted(kms), identity=ALICE, responder=BOB)
    init = ini.initiate(NOW)
    with pytest.raises(MikeyError) as exc:
        TicketTransferResponder(identity=CAROL).early_check(init, NOW)
    assert exc.value.mikey_error is ErrorNo.INVALID_ID


def test_wrong_mpki_and_replay_are_refused() -> None:
    """§4.2.3.6: "the Responder MUST verify the TRANSFER_INIT message with the MPKi received
    from the KMS"; a replay of an accepted TRANSFER_INIT is refused (RFC 3830 §5.4)."""
    kms, granted, ini, init, resp, keys, reply = _exchange()
    assert reply.ok
    again = resp.complete(init, keys, NOW + 2)
    assert not again.ok and again.error is not None
    assert again.error.mikey_error is ErrorNo.INVALID_TS
    wrong = TicketKeys(mpki=b"\x00" * 16, keys=keys.keys)
    other = TicketTransferResponder(identity=BOB, sdp_ids="mikey").complete(init, wrong, NOW + 1)
    assert not other.ok and other.error is not None
    assert other.error.mikey_error is ErrorNo.INVALID_MAC


def test_initiator_refuses_a_forged_response() -> None:
    """§4.2.2.4: "If the Initiator can verify the integrity of the received message" -- a
    TRANSFER_RESP with a wrong MAC is not accepted."""
    _kms_, _g, ini, _init, _resp, _keys, reply = _exchange()
    assert reply.message is not None
    bad = reply.message[:-1] + bytes([reply.message[-1] ^ 1])
    with pytest.raises(MikeyError) as exc:
        ini.receive(bad, NOW + 2)
    assert exc.value.mikey_error is ErrorNo.INVALID_MAC


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=380))
def test_responder_never_raises_on_mutations(junk: bytes, cut: int) -> None:
    """Peer input: ``complete`` answers (an Error message) and never raises."""
    kms, granted, ini, init, resp, keys, reply = _exchange_cached()
    data = init[:cut] + junk
    r = TicketTransferResponder(identity=BOB, sdp_ids="mikey").complete(data, keys, NOW + 1)
    assert r.ok or r.error is not None


_CACHE: list[object] = []


def _exchange_cached() -> Any:
    if not _CACHE:
        _CACHE.append(_exchange())
    return _CACHE[0]


@pytest.mark.peer
def test_tshark_reads_the_ticket_headers(tmp_path: Path) -> None:
    """What Wireshark 4.0's MIKEY dissector makes of the six MIKEY-TICKET messages (reported
    in docs/mikey-kms.md): it reads every HDR (data types 11/13/14/16/18 as "Unknown", #CS,
    the map type number) and the first T, and IDRkms in REQUEST_RESP; it knows no GENERIC-ID
    map (§6.1.1), so in TRANSFER_INIT it takes the map info for payloads, and none of RANDR,
    TP, TICKET. We pin what it reads; ours are checked byte for byte above."""
    tshark = require_tool("tshark")
    kms = _kms()
    req = TicketRequester(identity=ALICE, kms_id=KMS_ID, psk=PSKS[ALICE.encode()], responders=[BOB])
    request_init = req.initiate(NOW)
    request_resp = kms.receive(request_init, NOW).message
    assert request_resp is not None
    granted = req.receive(request_resp, NOW)
    ini = TicketTransferInitiator(granted=granted, identity=ALICE, responder=BOB, sdp_ids="mikey")
    transfer_init = ini.initiate(NOW)
    resp = TicketTransferResponder(identity=BOB, sdp_ids="mikey")
    res = TicketResolver(
        identity=BOB,
        kms_id=KMS_ID,
        psk=PSKS[BOB.encode()],
        ticket=resp.early_check(transfer_init, NOW),
    )
    resolve_init = res.initiate(NOW)
    resolve_resp = kms.receive(resolve_init, NOW).message
    assert resolve_resp is not None
    pcap = tmp_path / "ticket.pcap"
    write_pcap(
        pcap,
        [
            (request_init, True),
            (request_resp, False),
            (transfer_init, True),
            (resolve_init, True),
            (resolve_resp, False),
        ],
    )
    fields = ["mikey.type", "mikey.cs_count", "mikey.cs_id_map_type", "mikey.id.role"]
    cmd = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a"]
    cmd += ["-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]
    assert [r["mikey.type"] for r in rows] == ["11", "13", "14", "16", "18"]
    assert [r["mikey.cs_id_map_type"] for r in rows] == ["1", "1", "2", "1", "1"]
    assert rows[2]["mikey.cs_count"] == "2"
    assert rows[1]["mikey.id.role"] == "3"  # IDRkms, before the TICKET it does not know
