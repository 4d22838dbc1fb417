"""MIKEY-TICKET (RFC 6043) payload codecs: TR, IDR, RANDR, TP, TICKET and their nested chains,
byte for byte against the §6 layouts, inside a whole REQUEST_INIT_PSK message (§4.2.1)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.buffer import Buffer
from ims.mikey.constants import DataType, IdType, MacAlg, MapType, PayloadType, TsType
from ims.mikey.errors import MikeyDecodeError
from ims.mikey.message import decode_message
from ims.mikey.payloads import TPayload, VPayload
from ims.mikey.payloads_kms import (
    KMS_DECODERS,
    IdRole,
    IdrPayload,
    RandRole,
    RandrPayload,
    TicketFlags,
    TicketPayload,
    TicketType,
    TpPayload,
    TrPayload,
    TsRole,
)
from ims.mikey.ticket import decode_chain, encode_chain, tp_data_view
from tests.conftest import require_tool

from .sip_pcap import write_pcap

NTP = 0xEB0B_5E00_8000_0000  # some NTP-UTC value
NTP32 = 0xEB2F_0000  # an NTP-UTC-32 value (seconds only)


def body(p: object) -> bytes:
    buf = Buffer()
    p.encode_body(buf)  # type: ignore[attr-defined]
    return buf.data()


def test_tr_payload_layout() -> None:
    """§6.4 "! Next Payload ! TS Role ! TS Type ! TS Value ~"; Table 6.9 "Start of validity
    period (TRs) | 2"; §6.3 "NTP-UTC-32 | 3 | 32 bits"."""
    trs = TrPayload(role=TsRole.VALIDITY_START, ts_type=TsType.NTP_UTC, value=NTP)
    assert body(trs) == b"\x02\x00" + NTP.to_bytes(8, "big")
    trr = TrPayload(role=TsRole.REKEYING_INTERVAL, ts_type=TsType.NTP_UTC_32, value=3600)
    assert body(trr) == b"\x04\x03\x00\x00\x0e\x10"
    for p in (trs, trr):
        assert KMS_DECODERS[PayloadType.TR](Buffer(body(p))) == p
    assert [int(r) for r in TsRole] == [1, 2, 3, 4]
    with pytest.raises(MikeyDecodeError):  # TS Role 0 is Reserved (§14)
        KMS_DECODERS[PayloadType.TR](Buffer(b"\x00\x00" + bytes(8)))


def test_randr_payload_layout() -> None:
    """§6.8 "! Next Payload ! RAND Role ! RAND length ! RAND ~"; Table 6.13 "KMS (RANDRkms) | 3"."""
    p = RandrPayload(role=RandRole.KMS, data=b"\x11" * 16)
    assert body(p) == b"\x03\x10" + b"\x11" * 16
    assert KMS_DECODERS[PayloadType.RANDR](Buffer(body(p))) == p


def test_idr_byte_string_for_psk() -> None:
    """§6.5 "Byte string | 2" "intended to be used when the ID payload is used to identify a
    pre-shared key"; §6.6 Table 6.11 "Pre-Shared Key (IDRpsk) | 4"."""
    p = IdrPayload(role=IdRole.PSK, id_type=IdType.BYTE_STRING, data=b"\x00\xff")
    assert body(p) == b"\x04\x02\x00\x02\x00\xff"
    assert KMS_DECODERS[PayloadType.IDR](Buffer(body(p))) == p


def test_tp_payload_layout_and_flag_bits() -> None:
    """§6.10 "! Ticket Type (16) ! Subtype ! Version ! PRF Func (7) !D!E!F!G!H!I!J!K!L!M!N!O!
    Res (5) ! TP Data length ! TP Data"; "Subtype = 0x01 and Version = 0x01 refers to MIKEY Base
    Ticket"; PRF-HMAC-SHA-256 = 1 (Table 6.3). D is the bit after the PRF's 7 bits."""
    tp = TpPayload(
        ticket_type=TicketType.MIKEY_BASE,
        subtype=1,
        version=1,
        prf=1,
        flags=TicketFlags.D | TicketFlags.F,
        tp_data=b"\x00",
    )
    assert body(tp) == b"\x00\x01\x01\x01" + b"\x03\x40\x00" + b"\x00\x01\x00"
    assert KMS_DECODERS[PayloadType.TP](Buffer(body(tp))) == tp
    last = TpPayload(ticket_type=2, subtype=0, version=0, prf=0, flags=TicketFlags.O, tp_data=b"")
    assert body(last)[4:7] == b"\x00\x00\x20"  # O is the bit just above the 5 Res bits
    with_res = TpPayload(
        ticket_type=0xF000,
        subtype=9,
        version=9,
        prf=0x7F,
        flags=TicketFlags(0xFFF),
        reserved=0x1F,
        tp_data=b"",
    )
    assert body(with_res)[4:7] == b"\xff\xff\xff"
    assert KMS_DECODERS[PayloadType.TP](Buffer(body(with_res))) == with_res


def test_ticket_payload_carries_ticket_and_initiator_data() -> None:
    """§6.10: TICKET adds "Ticket Data length (16 bits)", "Ticket Data", "Initiator Data length
    (16 bits)", "Initiator Data"; "Initiator Data = First Payload, Vi, Vr"."""
    vi = VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=b"\x01" * 20)
    vr = VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=b"\x02" * 20)
    init_data = encode_chain([vi, vr])
    assert init_data == b"\x09" + b"\x09\x01" + b"\x01" * 20 + b"\x00\x01" + b"\x02" * 20
    t = TicketPayload(
        ticket_type=TicketType.MIKEY_BASE,
        subtype=1,
        version=1,
        prf=0,
        flags=TicketFlags.D | TicketFlags.E | TicketFlags.F | TicketFlags.G | TicketFlags.H,
        tp_data=b"\x00",
        ticket_data=b"opaque-to-the-initiator",
        initiator_data=init_data,
    )
    raw = body(t)
    assert raw[-(2 + len(init_data)) :] == len(init_data).to_bytes(2, "big") + init_data
    back = KMS_DECODERS[PayloadType.TICKET](Buffer(raw))
    assert back == t
    assert isinstance(back, TicketPayload)
    assert decode_chain(back.initiator_data) == (vi, vr)
    assert back.flag_violations() == []


def test_flag_dependencies() -> None:
    """§6.10 "the flags are not independent: NOT D implies L, G implies F, NOT G implies H,
    NOT H implies G, I implies E, K implies D, and M implies F"."""

    def tp(flags: TicketFlags) -> TpPayload:
        return TpPayload(ticket_type=1, subtype=1, version=1, prf=0, flags=flags, tp_data=b"\0")

    assert tp(TicketFlags.NONE).flag_violations() == [
        "NOT D implies L",
        "NOT G implies H",
        "NOT H implies G",
    ]
    ok = TicketFlags.D | TicketFlags.F | TicketFlags.G | TicketFlags.H
    assert tp(ok).flag_violations() == []
    assert tp(ok | TicketFlags.I).flag_violations() == ["I implies E"]
    assert tp(TicketFlags.K | TicketFlags.G | TicketFlags.F).flag_violations() == [
        "NOT D implies L",
        "K implies D",
    ]
    assert tp(TicketFlags.D | TicketFlags.H | TicketFlags.M).flag_violations() == ["M implies F"]


# A REQUEST_INIT_PSK (§4.2.1): HDR, T, RANDRi, [IDRi], [IDRkms], TP, [IDRpsk], V, assembled by
# hand from the §6 layouts. TP Data = First Payload, [IDRkms], [IDRi], [TRs], [TRe], (IDRr).
TP_DATA = (
    b"\x0e"  # first payload: IDR
    + b"\x0e\x03\x01\x00\x0bkms.ims.lab"  # IDRkms
    + b"\x0d\x01\x01\x00\x11sip:alice@ims.lab"  # IDRi, next TR
    + b"\x0d\x02\x00"
    + NTP.to_bytes(8, "big")  # TRs (NTP-UTC)
    + b"\x0e\x03\x03"
    + NTP32.to_bytes(4, "big")  # TRe (NTP-UTC-32)
    + b"\x00\x02\x01\x00\x0fsip:bob@ims.lab"  # IDRr, last
)
REQUEST_INIT_PSK = (
    # HDR: version 1, data type 11, next T, V=1 PRF 0, CSB ID, #CS 0, map type 1 (Empty map)
    b"\x01\x0b\x05\x80\x01\x02\x03\x04\x00\x01"
    + b"\x0f\x00"
    + NTP.to_bytes(8, "big")  # T (NTP-UTC), next RANDR
    + b"\x0e\x01\x10"
    + b"\xaa" * 16  # RANDRi, next IDR
    + b"\x0e\x01\x01\x00\x11sip:alice@ims.lab"  # IDRi, next IDR
    + b"\x10\x03\x01\x00\x0bkms.ims.lab"  # IDRkms, next TP
    + b"\x0e\x00\x01\x01\x01\x01\xf0\x00"  # TP: type 1, subtype 1, version 1, PRF 0, D-H
    + len(TP_DATA).to_bytes(2, "big")
    + TP_DATA
    + b"\x09\x04\x02\x00\x02\x00\x07"  # IDRpsk (byte string), next V
    + b"\x00\x01"
    + b"\x5a" * 20  # V, HMAC-SHA-1-160, last
)


def test_request_init_psk_decodes_and_reencodes_byte_exact() -> None:
    """§4.2.1 "REQUEST_INIT_PSK = HDR, T, RANDRi, [IDRi], [IDRkms], TP, [IDRpsk], V";
    §4.2.1.1 "The V flag MUST be set to '1'", "#CS MUST be set to '0' and the CS ID map type
    SHALL be the 'Empty map' as defined in [RFC4563]"; Table 6.1 "REQUEST_INIT_PSK | 11"."""
    msg = decode_message(REQUEST_INIT_PSK)
    assert msg.data_type is DataType.REQUEST_INIT_PSK
    assert msg.hdr.v_flag and msg.hdr.cs_map == () and msg.hdr.map_type is MapType.EMPTY
    assert [p.TYPE for p in msg.payloads] == [
        PayloadType.T,
        PayloadType.RANDR,
        PayloadType.IDR,
        PayloadType.IDR,
        PayloadType.TP,
        PayloadType.IDR,
        PayloadType.V,
    ]
    t = msg.find(TPayload)
    assert t is not None and t.value == NTP
    tp = msg.find(TpPayload)
    assert tp is not None
    assert tp.flags == TicketFlags.D | TicketFlags.E | TicketFlags.F | TicketFlags.G | TicketFlags.H
    assert tp.flag_violations() == []
    view = tp_data_view(tp.tp_data)
    assert view.kms == b"kms.ims.lab" and view.initiator == b"sip:alice@ims.lab"
    assert view.valid_from == TrPayload(
        role=TsRole.VALIDITY_START, ts_type=TsType.NTP_UTC, value=NTP
    )
    assert view.valid_to is not None and view.valid_to.ts_type is TsType.NTP_UTC_32
    assert view.valid_to.value == NTP32
    assert view.responders == (b"sip:bob@ims.lab",) and view.kemac is None
    assert encode_chain(decode_chain(tp.tp_data)) == tp.tp_data
    psk = [p for p in msg.find_all(IdrPayload) if p.role is IdRole.PSK]
    assert psk == [IdrPayload(role=IdRole.PSK, id_type=IdType.BYTE_STRING, data=b"\x00\x07")]
    assert msg.encode() == REQUEST_INIT_PSK


@pytest.mark.parametrize("cut", [1, 10, 30, 60, 120, len(REQUEST_INIT_PSK) - 1])
def test_truncated_request_is_a_decode_error(cut: int) -> None:
    """Every declared length is checked against the bytes present (STYLE.md §4)."""
    with pytest.raises(MikeyDecodeError):
        decode_message(REQUEST_INIT_PSK[:cut])


def test_nested_chain_errors() -> None:
    """TP Data must be a well-formed chain: unknown type, truncation, trailing bytes, empty."""
    for bad in (b"", b"\x63", TP_DATA[:-1], TP_DATA + b"\x00"):
        with pytest.raises(MikeyDecodeError):
            decode_chain(bad)
    assert decode_chain(b"\x00") == () and encode_chain([]) == b"\x00"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_decoders_raise_only_decode_errors(data: st.DataObject) -> None:
    """Hostile input: single-byte changes and truncations of the request, and random TP Data,
    give a message or MikeyDecodeError, never another exception."""
    pos = data.draw(st.integers(0, len(REQUEST_INIT_PSK) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = REQUEST_INIT_PSK[:pos] + bytes([value]) + REQUEST_INIT_PSK[pos + 1 :]
    for blob in (mutated, mutated[: data.draw(st.integers(0, len(mutated)))]):
        try:
            decode_message(blob)
        except MikeyDecodeError:
            pass
    try:
        decode_chain(data.draw(st.binary(max_size=80)))
    except MikeyDecodeError:
        pass


@pytest.mark.peer
def test_tshark_reads_the_request_header(tmp_path: Path) -> None:
    """What Wireshark 4.0's MIKEY dissector makes of a REQUEST_INIT_PSK (reported in
    docs/mikey-kms.md): HDR ("Data Type: Unknown (11)", "CS ID map type: Unknown (1)") and the
    T payload, then it stops at the RANDR payload ("Next Payload: Unknown (15)") - without a
    malformed-packet or expert entry. We pin what it does read; the rest is not dissected."""
    tshark = require_tool("tshark")
    pcap = tmp_path / "ticket.pcap"
    write_pcap(pcap, [(REQUEST_INIT_PSK, True)])
    fields = [
        "_ws.malformed",
        "mikey.type",
        "mikey.csb_id",
        "mikey.cs_id_map_type",
        "mikey.t.ts_type",
    ]
    cmd = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    row = dict(zip(fields, out.rstrip("\n").split("\t"), strict=True))
    assert row == {
        "_ws.malformed": "",
        "mikey.type": "11",
        "mikey.csb_id": "0x01020304",
        "mikey.cs_id_map_type": "1",
        "mikey.t.ts_type": "0",
    }
