"""GStreamer MIKEY helper, run by the *system* python3 (python3-gi), never imported by pytest.

    gst_mikey.py build CSB_HEX SSRC_HEX KEY_HEX SALT_HEX   -> hex of a PSK_INIT GStreamer wrote
    gst_mikey.py parse MESSAGE_HEX                         -> JSON of what GStreamer read

GStreamer's MIKEY parser loops forever on payload types it does not handle (ID, DH, SIGN, ...),
so the test runs this in a subprocess with a timeout. Parsing goes through ctypes because the
GI binding of ``gst_mikey_message_new_from_data`` does not accept a NULL decrypt-info.
"""

import ctypes
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstSdp  # noqa: E402

Gst.init(None)


def build(csb: int, ssrc: int, key: bytes, salt: bytes) -> str:
    m = GstSdp.MIKEYMessage.new()
    m.set_info(
        1,
        GstSdp.MIKEYType.PSK_INIT,
        False,
        GstSdp.MIKEYPRFFunc.MIKEY_PRF_MIKEY_1,
        csb,
        GstSdp.MIKEYMapType.MIKEY_MAP_TYPE_SRTP,
    )
    m.add_cs_srtp(0, ssrc, 0)
    m.add_t_now_ntp_utc()
    m.add_rand_len(16)
    sp = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.SP)
    sp.sp_set(0, GstSdp.MIKEYSecProto.MIKEY_SEC_PROTO_SRTP)
    for ptype, value in (
        (0, 1),
        (1, 16),
        (2, 1),
        (3, 20),
        (4, 14),
        (7, 1),
        (8, 1),
        (10, 1),
        (11, 10),
    ):
        sp.sp_add_param(ptype, bytes([value]))
    m.add_payload(sp)
    kemac = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.KEMAC)
    kemac.kemac_set(GstSdp.MIKEYEncAlg.NULL, GstSdp.MIKEYMacAlg.NULL)
    kd = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.KEY_DATA)
    kd.key_data_set_key(GstSdp.MIKEYKeyDataType.TEK, key)
    kd.key_data_set_salt(salt)
    kemac.kemac_add_sub(kd)
    m.add_payload(kemac)
    import base64

    return base64.b64decode(m.base64_encode()).hex()


class MapSRTP(ctypes.Structure):
    _fields_ = [("policy", ctypes.c_uint8), ("ssrc", ctypes.c_uint32), ("roc", ctypes.c_uint32)]


def parse(data: bytes) -> dict:
    lib = ctypes.CDLL("libgstsdp-1.0.so.0")
    glib = ctypes.CDLL("libglib-2.0.so.0")
    gst = ctypes.CDLL("libgstreamer-1.0.so.0")
    lib.gst_mikey_message_new_from_data.restype = ctypes.c_void_p
    lib.gst_mikey_message_new_from_data.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.gst_mikey_message_get_n_cs.argtypes = [ctypes.c_void_p]
    lib.gst_mikey_message_get_cs_srtp.restype = ctypes.POINTER(MapSRTP)
    lib.gst_mikey_message_get_cs_srtp.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.gst_mikey_message_get_n_payloads.argtypes = [ctypes.c_void_p]
    lib.gst_mikey_message_to_bytes.restype = ctypes.c_void_p
    lib.gst_mikey_message_to_bytes.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.gst_mikey_message_to_caps.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    glib.g_bytes_get_data.restype = ctypes.c_void_p
    glib.g_bytes_get_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    gst.gst_caps_new_empty_simple.restype = ctypes.c_void_p
    gst.gst_caps_new_empty_simple.argtypes = [ctypes.c_char_p]
    gst.gst_caps_to_string.restype = ctypes.c_char_p
    gst.gst_caps_to_string.argtypes = [ctypes.c_void_p]

    msg = lib.gst_mikey_message_new_from_data(data, len(data), None, None)
    if not msg:
        return {"ok": False}
    cs = []
    for i in range(lib.gst_mikey_message_get_n_cs(msg)):
        entry = lib.gst_mikey_message_get_cs_srtp(msg, i).contents
        cs.append([entry.policy, entry.ssrc, entry.roc])
    gbytes = lib.gst_mikey_message_to_bytes(msg, None, None)
    size = ctypes.c_size_t()
    ptr = glib.g_bytes_get_data(gbytes, ctypes.byref(size))
    caps = gst.gst_caps_new_empty_simple(b"application/x-srtp")
    lib.gst_mikey_message_to_caps(msg, caps)
    return {
        "ok": True,
        "cs": cs,
        "n_payloads": lib.gst_mikey_message_get_n_payloads(msg),
        "reencoded": ctypes.string_at(ptr, size.value).hex(),
        "caps": gst.gst_caps_to_string(caps).decode(),
    }


if __name__ == "__main__":
    if sys.argv[1] == "build":
        csb, ssrc, key, salt = sys.argv[2:6]
        print(build(int(csb, 16), int(ssrc, 16), bytes.fromhex(key), bytes.fromhex(salt)))
    else:
        print(json.dumps(parse(bytes.fromhex(sys.argv[2]))))
