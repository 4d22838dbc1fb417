"""Wire facts pinned to the RFC/registry text (RFC 3830 §6 tables, RFC 4738 §3.9 additions).

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

from ims.mikey.constants import (
    CertType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    GenExtType,
    HashFunc,
    IdType,
    KeyDataType,
    KvType,
    MacAlg,
    MapType,
    PayloadType,
    PkeCache,
    PrfFunc,
    ProtType,
    SignType,
    SrtpAuthAlg,
    SrtpEncrAlg,
    SrtpParam,
    TsType,
)
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


# Every other RFC 3830 §6 table, transcribed from the RFC text (issue 12: the text is now at
# hand), with RFC 4738 §3.9's additions: table -> {value: "name as printed in the RFC"}.
RFC_TABLES: dict[str, tuple[type, dict[int, str]]] = {
    "6.1.b Next payload (rest)": (
        PayloadType,
        {10: "SP", 11: "RAND", 12: "ERR", 20: "Key data", 21: "General Ext."},
    ),
    "6.1.c PRF func": (PrfFunc, {0: "MIKEY-1"}),
    "6.1.d CS ID map type": (MapType, {0: "SRTP-ID"}),
    "6.2.a Encr alg": (EncrAlg, {0: "NULL", 1: "AES-CM-128", 2: "AES-KW-128"}),
    "6.2.b MAC alg": (MacAlg, {0: "NULL", 1: "HMAC-SHA-1-160"}),
    "6.3 Cache type": (PkeCache, {0: "No cache", 1: "Cache", 2: "Cache for CSB"}),
    "6.4 DH-Group": (DhGroup, {0: "OAKLEY 5", 1: "OAKLEY 1", 2: "OAKLEY 2"}),
    "6.5 S type": (SignType, {0: "RSA/PKCS#1/1.5", 1: "RSA/PSS"}),
    "6.6 TS type": (TsType, {0: "NTP-UTC", 1: "NTP", 2: "COUNTER"}),
    "6.7.a ID Type": (IdType, {0: "NAI", 1: "URI"}),
    "6.7.b Cert Type": (
        CertType,
        {0: "X.509v3", 1: "X.509v3 URL", 2: "X.509v3 Sign", 3: "X.509v3 Encr"},
    ),
    "6.8 Hash func": (HashFunc, {0: "SHA-1", 1: "MD5"}),
    "6.10 Prot type": (ProtType, {0: "SRTP"}),
    "6.10.1.a SRTP policy types": (
        SrtpParam,
        {
            0: "Encryption algorithm",
            1: "Session Encr. key length",
            2: "Authentication algorithm",
            3: "Session Auth. key length",
            4: "Session Salt key length",
            5: "SRTP Pseudo Random Function",
            6: "Key derivation rate",
            7: "SRTP encryption off/on",
            8: "SRTCP encryption off/on",
            9: "sender's FEC order",
            10: "SRTP authentication off/on",
            11: "Authentication tag length",
            12: "SRTP prefix length",
        },
    ),
    "6.10.1.b SRTP encr alg": (SrtpEncrAlg, {0: "NULL", 1: "AES-CM", 2: "AES-F8"}),
    "6.10.1.c SRTP auth alg": (SrtpAuthAlg, {0: "NULL", 1: "HMAC-SHA-1"}),
    "6.12 + RFC 4738 §3.9.2 Error no": (
        ErrorNo,
        {
            0: "Auth failure",
            1: "Invalid TS",
            2: "Invalid PRF",
            3: "Invalid MAC",
            4: "Invalid EA",
            5: "Invalid HA",
            6: "Invalid DH",
            7: "Invalid ID",
            8: "Invalid Cert",
            9: "Invalid SP",
            10: "Invalid SPpar",
            11: "Invalid DT",
            12: "Unspecified error",
            13: "Unsupported message type",
        },
    ),
    "6.13.a Key data type": (KeyDataType, {0: "TGK", 1: "TGK+SALT", 2: "TEK", 3: "TEK+SALT"}),
    "6.13.b KV": (KvType, {0: "Null", 1: "SPI", 2: "Interval"}),
    "6.15 + RFC 4738 §3.9.3 General ext type": (
        GenExtType,
        {0: "Vendor ID", 1: "SDP IDs", 2: "TESLA I-Key", 3: "Key ID", 4: "CSB_ID"},
    ),
}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


def test_every_rfc3830_code_table_is_the_rfc_text() -> None:
    """Each value exists in our enum and its member name is the RFC's name (alphanumerics
    compared, so ``AES_CM_128`` == "AES-CM-128"; names the code abbreviates are mapped
    below), so a swapped or missing value fails."""
    code_names = {  # member name -> RFC name where the code abbreviates
        "ENCR_ALG": "Encryption algorithm",
        "ENCR_KEY_LEN": "Session Encr. key length",
        "AUTH_ALG": "Authentication algorithm",
        "AUTH_KEY_LEN": "Session Auth. key length",
        "SALT_KEY_LEN": "Session Salt key length",
        "PRF": "SRTP Pseudo Random Function",
        "KDR": "Key derivation rate",
        "SRTP_ENCR": "SRTP encryption off/on",
        "SRTCP_ENCR": "SRTCP encryption off/on",
        "FEC_ORDER": "sender's FEC order",
        "SRTP_AUTH": "SRTP authentication off/on",
        "AUTH_TAG_LEN": "Authentication tag length",
        "PREFIX_LEN": "SRTP prefix length",
        "AUTH_FAILURE": "Auth failure",
        "INVALID_TS": "Invalid TS",
        "INVALID_PRF": "Invalid PRF",
        "INVALID_MAC": "Invalid MAC",
        "INVALID_EA": "Invalid EA",
        "INVALID_HA": "Invalid HA",
        "INVALID_DH": "Invalid DH",
        "INVALID_ID": "Invalid ID",
        "INVALID_CERT": "Invalid Cert",
        "INVALID_SP": "Invalid SP",
        "INVALID_SPPAR": "Invalid SPpar",
        "INVALID_DT": "Invalid DT",
        "UNSPECIFIED": "Unspecified error",
        "UNSUPPORTED_MSG_TYPE": "Unsupported message type",
        "SHA1": "SHA-1",
        "NTP_UTC": "NTP-UTC",
        "TGK_SALT": "TGK+SALT",
        "TEK_SALT": "TEK+SALT",
        "RSA_PKCS1_V15": "RSA/PKCS#1/1.5",
        "KEY_DATA": "Key data",
        "GENERAL_EXT": "General Ext.",
        "VENDOR_ID": "Vendor ID",
        "SDP_IDS": "SDP IDs",
        "TESLA_I_KEY": "TESLA I-Key",
        "KEY_ID": "Key ID",
        "CSB_ID": "CSB_ID",
        "X509V3_URL": "X.509v3 URL",
        "X509V3_SIGN": "X.509v3 Sign",
        "X509V3_ENCR": "X.509v3 Encr",
        "X509V3": "X.509v3",
        "CACHE_FOR_CSB": "Cache for CSB",
        "NO_CACHE": "No cache",
    }
    for table, (enum, rows) in RFC_TABLES.items():
        for value, rfc_name in rows.items():
            member = enum(value)
            ours = code_names.get(member.name, member.name)
            assert _norm(ours) == _norm(rfc_name), (table, value, member.name, rfc_name)
