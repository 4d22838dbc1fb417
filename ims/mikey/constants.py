"""MIKEY wire codes: one ``IntEnum`` per name space (RFC 3830 §6, RFC 4650 §4, RFC 4738 §3.9).

Every table is transcribed from the RFC text (``../shared/reference/rfc``), clause by clause:

* data types (HDR): RFC 3830 §6.1 Table 6.1.a (0-6); RFC 4650 §4.1 Table 4.1.a (7, 8 DHHMAC);
  RFC 4738 §3.9.1 (9, 10 RSA-R), also the IANA "Mikey Payload Name Spaces" registry.
* next-payload codes: RFC 3830 §6.1 Table 6.1.b (0-12, "Key data | 20", "General Ext. | 21").
* PRF func: §6.1 Table 6.1.c; CS ID map type: §6.1 Table 6.1.d.
* KEMAC encr alg / MAC alg: §6.2 Tables 6.2.a / 6.2.b. RFC 4650 §4.2 Table 4.2.a gives other
  numbers (HMAC-SHA-1 = 0, NULL = 1, and "Encr alg SHALL be set to 2 (NULL)"): it contradicts
  the 3830 tables it says it re-uses; we keep 3830's (see :mod:`ims.mikey.modes.dhhmac`).
* PKE cache: §6.3 Table 6.3; DH group: §6.4 Table 6.4 (0 = OAKLEY 5, 1 = OAKLEY 1, 2 = OAKLEY 2).
* SIGN type: §6.5 Table 6.5; TS type: §6.6 Table 6.6; ID type: §6.7 Table 6.7.a; CERT type:
  §6.7 Table 6.7.b ("X.509v3 URL | 1 | plain ASCII URL to the location of the Cert");
  hash func: §6.8 Table 6.8.
* SP: §6.10 (prot type Table 6.10, SRTP params Table 6.10.1.a and value tables 6.10.1.b-e).
* ERR: §6.12 Table 6.12 plus RFC 4738 §3.9.2 ("Unsupported message type | 13").
* key data type / KV: §6.13 Tables 6.13.a / 6.13.b; general extension: §6.15 Table 6.15 as
  revised by RFC 4738 §3.9.3.

``tests/ims/mikey/test_rfc_text.py`` pins the tables against transcriptions of that text.
"""

from __future__ import annotations

from enum import IntEnum


class DataType(IntEnum):
    PSK_INIT = 0
    PSK_RESP = 1
    PK_INIT = 2
    PK_RESP = 3
    DH_INIT = 4
    DH_RESP = 5
    ERROR = 6
    DHHMAC_INIT = 7
    DHHMAC_RESP = 8
    RSA_R_INIT = 9
    RSA_R_RESP = 10
    # RFC 6043 §6.1 Table 6.1 (MIKEY-TICKET)
    REQUEST_INIT_PSK = 11
    REQUEST_INIT_PK = 12
    REQUEST_RESP = 13
    TRANSFER_INIT = 14
    TRANSFER_RESP = 15
    RESOLVE_INIT_PSK = 16
    RESOLVE_INIT_PK = 17
    RESOLVE_RESP = 18
    SAKKE = 26  # RFC 6509 §4.1 Table 1 "SAKKE msg | 26 | Initiator's SAKKE message"


class PayloadType(IntEnum):
    LAST = 0
    KEMAC = 1
    PKE = 2
    DH = 3
    SIGN = 4
    T = 5
    ID = 6
    CERT = 7
    CHASH = 8
    V = 9
    SP = 10
    RAND = 11
    ERR = 12
    TR = 13  # RFC 6043 §6.1 Table 6.2 (TR, IDR, RANDR, TP, TICKET = 13-17)
    IDR = 14
    RANDR = 15
    TP = 16
    TICKET = 17
    KEY_DATA = 20
    GENERAL_EXT = 21
    SAKKE = 26  # RFC 6509 §4.1 Table 2 "SAKKE | 26 | 4.2"


class PrfFunc(IntEnum):
    MIKEY_1 = 0


class MapType(IntEnum):
    SRTP_ID = 0
    EMPTY = 1  # RFC 4563 "Empty map" (#CS = 0), required by RFC 6043 §4.2.1.1 / §4.2.3.1
    GENERIC_ID = 2  # RFC 6043 §6.1.1, the map of the Ticket Transfer exchange


class EncrAlg(IntEnum):
    NULL = 0
    AES_CM_128 = 1
    AES_KW_128 = 2


class MacAlg(IntEnum):
    NULL = 0
    HMAC_SHA1_160 = 1


class PkeCache(IntEnum):
    NO_CACHE = 0
    CACHE = 1
    CACHE_FOR_CSB = 2


class DhGroup(IntEnum):
    OAKLEY_5 = 0
    OAKLEY_1 = 1
    OAKLEY_2 = 2


class SignType(IntEnum):
    RSA_PKCS1_V15 = 0
    RSA_PSS = 1
    ECCSI = 2  # RFC 6509 §4.3 Table 6 "ECCSI | 2 | ECCSI signature"


class TsType(IntEnum):
    NTP_UTC = 0
    NTP = 1
    COUNTER = 2
    NTP_UTC_32 = 3  # RFC 6043 §6.3 Table 6.8 "NTP-UTC-32 | 3 | 32 bits"


class IdType(IntEnum):
    NAI = 0
    URI = 1
    BYTE_STRING = 2  # RFC 6043 §6.5 Table 6.10 "Byte string | 2"


class CertType(IntEnum):
    X509V3 = 0
    X509V3_URL = 1
    X509V3_SIGN = 2
    X509V3_ENCR = 3


class HashFunc(IntEnum):
    SHA1 = 0
    MD5 = 1


class ProtType(IntEnum):
    SRTP = 0


class SrtpParam(IntEnum):
    """SP payload parameter types for SRTP (RFC 3830 §6.10.1, Table 6.10.1.a)."""

    ENCR_ALG = 0
    ENCR_KEY_LEN = 1
    AUTH_ALG = 2
    AUTH_KEY_LEN = 3
    SALT_KEY_LEN = 4
    PRF = 5
    KDR = 6
    SRTP_ENCR = 7
    SRTCP_ENCR = 8
    FEC_ORDER = 9
    SRTP_AUTH = 10
    AUTH_TAG_LEN = 11
    PREFIX_LEN = 12


class SrtpEncrAlg(IntEnum):
    """Table 6.10.1.b (0-2); 6 = AES-GCM is what GStreamer writes (RFC 7714 registry)."""

    NULL = 0
    AES_CM = 1
    AES_F8 = 2
    AES_GCM = 6


class SrtpAuthAlg(IntEnum):
    NULL = 0
    HMAC_SHA1 = 1


class ErrorNo(IntEnum):
    AUTH_FAILURE = 0
    INVALID_TS = 1
    INVALID_PRF = 2
    INVALID_MAC = 3
    INVALID_EA = 4
    INVALID_HA = 5
    INVALID_DH = 6
    INVALID_ID = 7
    INVALID_CERT = 8
    INVALID_SP = 9
    INVALID_SPPAR = 10
    INVALID_DT = 11
    UNSPECIFIED = 12
    #: RFC 4738 §3.9.2 (Table 6.12 revised): "Unsupported message type | 13 | unparseable
    #: MIKEY message (NEW)"; an RSA-R responder sends it for an I_MESSAGE it cannot parse (§3.5).
    UNSUPPORTED_MSG_TYPE = 13


class KeyDataType(IntEnum):
    TGK = 0
    TGK_SALT = 1
    TEK = 2
    TEK_SALT = 3
    # RFC 6043 §6.2.1 Table 6.7; GTGK+SALT (5) is left out until the key data codec knows
    # that it carries a salt like TGK+SALT
    GTGK = 4
    MPK = 6


class KvType(IntEnum):
    NULL = 0
    SPI = 1
    INTERVAL = 2


class GenExtType(IntEnum):
    """RFC 3830 Table 6.15 as revised by RFC 4738 §3.9.3."""

    VENDOR_ID = 0
    SDP_IDS = 1  # RFC 4567 §7 / RFC 4650 §4.4: the SDP key-mgmt protocol list
    TESLA_I_KEY = 2  # RFC 4442
    KEY_ID = 3  # RFC 4563
    CSB_ID = 4  # RFC 4738 §3.6: responder's modified CSB ID (group mode only)
