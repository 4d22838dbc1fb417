"""Wire facts pinned to the RFC/registry text that could actually be read (see docs/mikey.md).

* RFC 3830 §6.1, the Common Header diagram (read on the RFC's page 32):
  ``version(8) | data type(8) | next payload(8) | V(1) PRF func(7) | CSB ID(32) |
  #CS(8) | CS ID map type(8) | CS ID map info ~``, "version = 0x01 refers to MIKEY as
  defined in this document".
* IANA "Mikey Payload Name Spaces" (registry text, 2007 edition): the Data Type table 0-10
  with DHHMAC [RFC4650] and RSA-R [RFC4738], and the Next Payload table with the RFC 3830
  section defining each payload.

Each expected value below is transcribed from that text, not from our constants, so a typo
in ``constants.py`` or a reordered header field fails here.
"""

from __future__ import annotations

from ims.mikey.constants import DataType, PayloadType
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.payloads import HdrPayload, RandPayload, SrtpCsEntry

# IANA Data Type table: value -> registry name
IANA_DATA_TYPES = {
    0: "Pre-shared",
    1: "PSK ver msg",
    2: "Public key",
    3: "PK ver msg",
    4: "D-H init",
    5: "D-H resp",
    6: "Error",
    7: "DHHMAC init",
    8: "DHHMAC resp",
    9: "RSA-R I_MSG",
    10: "RSA-R R_MSG",
    # RFC 6043 §14 "Data Type (see Table 6.1)": REQUEST_INIT_PSK 11 ... RESOLVE_RESP 18
    11: "REQUEST_INIT_PSK",
    12: "REQUEST_INIT_PK",
    13: "REQUEST_RESP",
    14: "TRANSFER_INIT",
    15: "TRANSFER_RESP",
    16: "RESOLVE_INIT_PSK",
    17: "RESOLVE_INIT_PK",
    18: "RESOLVE_RESP",
    26: "SAKKE msg",  # RFC 6509 §7 "26 - Data type (see Table 1)"
}
OUR_DATA_TYPES = {
    0: DataType.PSK_INIT,
    1: DataType.PSK_RESP,
    2: DataType.PK_INIT,
    3: DataType.PK_RESP,
    4: DataType.DH_INIT,
    5: DataType.DH_RESP,
    6: DataType.ERROR,
    7: DataType.DHHMAC_INIT,
    8: DataType.DHHMAC_RESP,
    9: DataType.RSA_R_INIT,
    10: DataType.RSA_R_RESP,
}

# IANA Next Payload table: value -> (registry name, RFC 3830 section)
IANA_NEXT_PAYLOADS = {
    0: ("Last payload", None),
    1: ("KEMAC", "6.2"),
    2: ("PKE", "6.3"),
    3: ("DH", "6.4"),
    4: ("SIGN", "6.5"),
    5: ("T", "6.6"),
    6: ("ID", "6.7"),
    7: ("CERT", "6.7"),
    8: ("CHASH", "6.8"),
    9: ("V", "6.9"),
}


def test_data_types_are_the_iana_table() -> None:
    assert set(IANA_DATA_TYPES) == {int(d) for d in DataType}
    for value, member in OUR_DATA_TYPES.items():
        assert int(member) == value, IANA_DATA_TYPES[value]


def test_next_payload_codes_0_to_9_are_the_iana_table() -> None:
    for value, (name, _section) in IANA_NEXT_PAYLOADS.items():
        expected = "LAST" if value == 0 else name
        assert PayloadType(value).name == expected, name


def test_hdr_bit_layout_is_rfc3830_section_6_1() -> None:
    hdr = HdrPayload(
        data_type=DataType.PSK_INIT,
        csb_id=0x01020304,
        v_flag=True,
        cs_map=(SrtpCsEntry(policy_no=0, ssrc=0xA1A2A3A4, roc=0x00000005),),
    )
    data = MikeyMessage(hdr=hdr, payloads=(RandPayload(data=b"\x55" * 16),)).encode()
    # version(8)=1 | data type(8)=0 | next payload(8)=RAND 11 | V(1)=1 PRF func(7)=0
    assert data[0:4] == bytes([0x01, 0x00, 11, 0x80])
    # CSB ID(32), big endian (network byte order, §6 "network byte order is always used")
    assert data[4:8] == bytes.fromhex("01020304")
    # #CS(8)=1 | CS ID map type(8)=0 (SRTP-ID) | map info: Policy_no(8) SSRC(32) ROC(32)
    assert data[8:10] == bytes([1, 0])
    assert data[10:19] == bytes.fromhex("00a1a2a3a400000005")
    # the RAND payload starts right after the map info
    assert data[19:21] == bytes([0, 16])
    back = decode_message(data)
    assert back.hdr.v_flag and back.hdr.csb_id == 0x01020304
    assert back.hdr.cs_map == hdr.cs_map


def test_v_bit_is_the_top_bit_and_prf_the_low_seven() -> None:
    hdr = HdrPayload(data_type=DataType.PSK_INIT, csb_id=7, v_flag=False)
    data = MikeyMessage(hdr=hdr, payloads=(RandPayload(data=b"r" * 16),)).encode()
    assert data[3] == 0x00
    flagged = bytearray(data)
    flagged[3] = 0x80
    assert decode_message(bytes(flagged)).hdr.v_flag
