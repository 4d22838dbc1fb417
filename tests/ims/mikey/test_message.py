"""MIKEY codec: real vectors, every payload type round-tripped, invalid input, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ims.errors import EncodeError
from ims.mikey.constants import (
    CertType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    HashFunc,
    IdType,
    KeyDataType,
    KvType,
    MacAlg,
    PayloadType,
    PkeCache,
    ProtType,
    SignType,
    TsType,
)
from ims.mikey.errors import MikeyDecodeError
from ims.mikey.message import (
    MikeyMessage,
    decode_base64,
    decode_message,
    decode_subpayloads,
    encode_message,
    encode_subpayloads,
)
from ims.mikey.payloads import (
    CertPayload,
    ChashPayload,
    DhPayload,
    ErrPayload,
    GeneralExtPayload,
    HdrPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    PkePayload,
    RandPayload,
    SignPayload,
    SpParam,
    SpPayload,
    SrtpCsEntry,
    TPayload,
    VPayload,
)
from ims.mikey.policy import SrtpSuite, suite_from_sp

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "mikey"


def _vector(name: str) -> bytes:
    return bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip())


@pytest.mark.parametrize("name", ["rtsp_psk_a", "rtsp_psk_b", "rtsp_psk_c"])
def test_rtsp_vectors_roundtrip(name: str) -> None:
    data = _vector(name)
    msg = decode_message(data)
    assert msg.data_type is DataType.PSK_INIT
    assert msg.hdr.v_flag is False
    t = msg.find(TPayload)
    assert t is not None and t.ts_type is TsType.NTP_UTC
    rand = msg.find(RandPayload)
    assert rand is not None and len(rand.data) == 16
    sp = msg.find(SpPayload)
    assert sp is not None and len(sp.params) == 7
    # auth-key-length 10 = the tag-length quirk: read as an 80-bit tag
    assert suite_from_sp(sp) is SrtpSuite.AES_CM_128_HMAC_SHA1_80
    kemac = msg.find(KemacPayload)
    assert kemac is not None and kemac.encr_alg is EncrAlg.NULL and kemac.mac_alg is MacAlg.NULL
    (kd,) = decode_subpayloads(kemac.encr_data, PayloadType.KEY_DATA)
    assert isinstance(kd, KeyDataPayload) and kd.key_type is KeyDataType.TEK and len(kd.key) == 30
    assert encode_message(msg) == data


def test_rtsp_vector_c_fields() -> None:
    msg = decode_message(_vector("rtsp_psk_c"))
    assert msg.hdr.csb_id == 2111907750
    assert [(c.ssrc, c.roc) for c in msg.hdr.cs_map] == [(3431162423, 0), (3050060786, 0)]
    t = msg.find(TPayload)
    assert t is not None and t.value == 17005300185149077127


ALL_VECTORS = ["rtsp_psk_a", "rtsp_psk_b", "rtsp_psk_c", "gstreamer_psk"]


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_truncated_vectors_raise(name: str) -> None:
    with pytest.raises(MikeyDecodeError):
        decode_message(_vector(f"{name}_truncated"))


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_invalid_vectors_raise_invalid_dt(name: str) -> None:
    with pytest.raises(MikeyDecodeError) as info:
        decode_message(_vector(f"{name}_invalid"))
    assert info.value.mikey_error is ErrorNo.INVALID_DT


def _all_payloads() -> tuple:
    return (
        TPayload(ts_type=TsType.NTP_UTC, value=0xE1234567_89ABCDEF),
        TPayload(ts_type=TsType.COUNTER, value=7),
        RandPayload(data=b"\x11" * 16),
        IdPayload(id_type=IdType.URI, data=b"sip:alice@ims.lab"),
        IdPayload(id_type=IdType.NAI, data=b"bob@ims.lab"),
        CertPayload(cert_type=CertType.X509V3, data=b"\x30\x82" + b"c" * 40),
        ChashPayload(hash_func=HashFunc.SHA1, digest=b"h" * 20),
        ChashPayload(hash_func=HashFunc.MD5, digest=b"m" * 16),
        SpPayload(
            policy_no=0,
            prot_type=ProtType.SRTP,
            params=(SpParam(type=0, value=b"\x01"), SpParam(type=1, value=b"\x10")),
        ),
        GeneralExtPayload(ext_type=1, data=b"sdp-id"),
        KemacPayload(
            encr_alg=EncrAlg.AES_CM_128,
            encr_data=b"e" * 21,
            mac_alg=MacAlg.HMAC_SHA1_160,
            mac=b"m" * 20,
        ),
        PkePayload(cache=PkeCache.CACHE, data=b"p" * 256),
        DhPayload(group=DhGroup.OAKLEY_1, value=b"d" * 96),
        DhPayload(group=DhGroup.OAKLEY_2, value=b"d" * 128, kv_type=KvType.SPI, kv_data=b"\x02ab"),
        DhPayload(group=DhGroup.OAKLEY_5, value=b"d" * 192),
        VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=b"v" * 20),
        ErrPayload(error_no=ErrorNo.INVALID_MAC),
        SignPayload(sign_type=SignType.RSA_PSS, signature=b"s" * 256),
    )


def test_every_payload_roundtrips_byte_exact() -> None:
    hdr = HdrPayload(
        data_type=DataType.PK_INIT,
        csb_id=0xDEADBEEF,
        cs_map=(
            SrtpCsEntry(policy_no=0, ssrc=0x1234, roc=5),
            SrtpCsEntry(policy_no=1, ssrc=0, roc=0),
        ),
        v_flag=True,
    )
    msg = MikeyMessage(hdr=hdr, payloads=_all_payloads())
    data = encode_message(msg)
    back = decode_message(data)
    assert back == msg
    assert encode_message(back) == data
    # HDR layout: version, data type, next payload (T = 5), V|PRF, CSB ID, #CS, map type
    assert data[:10] == bytes.fromhex("01020580deadbeef0200")
    # SIGN is last, no next-payload byte: last payload = 2 bytes header + signature
    assert data[-258:-256] == bytes.fromhex("1100")


def test_data_types_7_to_10() -> None:
    for dt in (
        DataType.DHHMAC_INIT,
        DataType.DHHMAC_RESP,
        DataType.RSA_R_INIT,
        DataType.RSA_R_RESP,
    ):
        msg = MikeyMessage(
            hdr=HdrPayload(data_type=dt, csb_id=1), payloads=(RandPayload(data=b"r"),)
        )
        assert decode_message(msg.encode()).data_type is dt


def test_key_data_subpayloads() -> None:
    subs = (
        IdPayload(id_type=IdType.URI, data=b"sip:a@x"),
        KeyDataPayload(key_type=KeyDataType.TGK, key=b"k" * 16),
        KeyDataPayload(
            key_type=KeyDataType.TEK_SALT,
            key=b"k" * 16,
            salt=b"s" * 14,
            kv_type=KvType.SPI,
            kv_data=b"\x01\x07",
        ),
        KeyDataPayload(
            key_type=KeyDataType.TGK_SALT,
            key=b"k",
            salt=b"s",
            kv_type=KvType.INTERVAL,
            kv_data=b"\x01\x00\x02\x00\x01",
        ),
    )
    data = encode_subpayloads(subs)
    assert decode_subpayloads(data, PayloadType.ID) == subs
    assert data[0] == PayloadType.KEY_DATA  # ID's next payload


def test_sign_not_last_refused() -> None:
    msg = MikeyMessage(
        hdr=HdrPayload(data_type=DataType.DH_INIT, csb_id=1),
        payloads=(
            SignPayload(sign_type=SignType.RSA_PKCS1_V15, signature=b"x"),
            RandPayload(data=b"r"),
        ),
    )
    with pytest.raises(EncodeError):
        msg.encode()


def test_wrong_mac_length_refused_on_encode() -> None:
    with pytest.raises(EncodeError):
        KemacPayload(
            encr_alg=EncrAlg.NULL, encr_data=b"", mac_alg=MacAlg.HMAC_SHA1_160, mac=b""
        ).encode_body(__import__("ims.buffer", fromlist=["Buffer"]).Buffer())


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes.fromhex("0199000000000001000000"), ErrorNo.INVALID_DT),  # unknown data type
        (bytes.fromhex("010000000000000100"), ErrorNo.UNSPECIFIED),  # truncated HDR
        (bytes.fromhex("0100007f000000010000"), ErrorNo.INVALID_PRF),  # unknown PRF
        (bytes.fromhex("010001000000000100000209" + "00" * 8), ErrorNo.INVALID_EA),  # KEMAC alg 9
        (bytes.fromhex("0100030000000001000000" + "07" + "00" * 8), ErrorNo.INVALID_DH),  # DH grp 7
        (bytes.fromhex("010063000000000100"), ErrorNo.UNSPECIFIED),  # unknown payload 0x63
        (bytes.fromhex("0200000000000000000000"), ErrorNo.UNSPECIFIED),  # version 2
    ],
)
def test_invalid_messages_carry_error_number(data: bytes, code: ErrorNo) -> None:
    with pytest.raises(MikeyDecodeError) as info:
        decode_message(data)
    assert info.value.mikey_error is code


def test_trailing_bytes_refused() -> None:
    data = _vector("rtsp_psk_a") + b"\x00"
    with pytest.raises(MikeyDecodeError):
        decode_message(data)


def test_declared_length_beyond_data_refused() -> None:
    msg = MikeyMessage(
        hdr=HdrPayload(data_type=DataType.PSK_INIT, csb_id=1),
        payloads=(IdPayload(id_type=IdType.URI, data=b"abc"),),
    )
    data = bytearray(msg.encode())
    data[-4] = 0x7F  # ID len high byte -> far beyond the end
    with pytest.raises(MikeyDecodeError):
        decode_message(bytes(data))


def test_base64() -> None:
    import base64

    data = _vector("rtsp_psk_b")
    assert decode_base64(base64.b64encode(data)).encode() == data
    with pytest.raises(MikeyDecodeError):
        decode_base64("not base64!")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_input_raises_only_decode_error(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except MikeyDecodeError:
        return
    assert encode_message(msg) == data


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["rtsp_psk_a", "rtsp_psk_c"]), st.integers(0, 120), st.integers(0, 255))
def test_mutated_vectors_raise_only_decode_error(name: str, pos: int, byte: int) -> None:
    data = bytearray(_vector(name))
    data[pos % len(data)] = byte
    try:
        msg = decode_message(bytes(data))
    except MikeyDecodeError:
        return
    assert encode_message(msg) == bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 111))
def test_every_truncation_raises(n: int) -> None:
    with pytest.raises(MikeyDecodeError):
        decode_message(_vector("rtsp_psk_a")[:n])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([PayloadType.KEY_DATA, PayloadType.ID]))
def test_random_subpayloads_raise_only_decode_error(data: bytes, first: PayloadType) -> None:
    try:
        decode_subpayloads(data, first)
    except MikeyDecodeError:
        pass
