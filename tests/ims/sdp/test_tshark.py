"""tshark dissects an SDP we produce: its sdp.crypto.* and sdp.key_mgmt.* fields equal ours.

We write a pcap (LINKTYPE_RAW, IPv4/UDP to port 5060) holding a SIP INVITE whose body is our
offer, run ``tshark -T fields`` on it and compare field by field.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ims.sdes import CryptoAttribute, KeyParam, make_offer
from ims.sdp import KeyMgmtAttribute, LocalAudio, create_offer
from tests.conftest import require_tool
from tests.ims.media.pcaputil import udp_ipv4, write_pcap

pytestmark = pytest.mark.peer


def _invite(body: bytes) -> bytes:
    head = (
        "INVITE sip:bob@127.0.4.2 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.4.1:5060;branch=z9hG4bK-imslab-1\r\n"
        "From: <sip:alice@127.0.4.1>;tag=1\r\nTo: <sip:bob@127.0.4.2>\r\n"
        "Call-ID: tshark-check@127.0.4.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        "Contact: <sip:alice@127.0.4.1>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _fields(pcap: Path, *names: str) -> list[list[str]]:
    tshark = require_tool("tshark")
    cmd = [tshark, "-r", str(pcap), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    line = out.splitlines()[0]
    return [col.split("|") if col else [] for col in line.split("\t")]


def test_tshark_sees_our_crypto_lines(tmp_path: Path) -> None:
    crypto = list(make_offer())
    crypto.append(
        CryptoAttribute(
            tag=5,
            suite="AES_CM_128_HMAC_SHA1_80",
            key_params=(KeyParam(key_salt=bytes(range(30)), lifetime="2^31", mki=1, mki_length=4),),
        )
    )
    # A minimal valid MIKEY message (HDR only, CSB ID 0x12345678): tshark decodes it; a
    # malformed one would abort its dissection of the whole SDP.
    km = KeyMgmtAttribute(protocol="mikey", data=bytes.fromhex("01000000123456780000"))
    offer = create_offer(
        LocalAudio(
            address="127.0.4.1",
            port=41000,
            crypto=tuple(crypto),
            key_mgmt=(km,),
            key_mgmt_at_session_level=True,
        ),
        session_id=99,
    )
    pcap = tmp_path / "invite.pcap"
    write_pcap(pcap, [udp_ipv4("127.0.4.1", "127.0.4.2", 5060, 5060, _invite(offer.encode()))])
    tags, suites, keys, salts, lifetimes, mkis, ports, kmpid, csb = _fields(
        pcap,
        "sdp.crypto.tag",
        "sdp.crypto.crypto_suite",
        "sdp.crypto.master_key",
        "sdp.crypto.master_salt",
        "sdp.crypto.lifetime",
        "sdp.crypto.mki-valu",
        "sdp.media.port",
        "sdp.key_mgmt.kmpid",
        "mikey.csb_id",
    )
    ours = offer.media[0].crypto
    assert [int(t) for t in tags] == [c.tag for c in ours]
    assert suites == [c.suite for c in ours]
    # tshark splits key||salt only for the AES_CM_128 suites it knows; those must equal ours
    known = [c for c in ours if c.suite.startswith("AES_CM_128_")]
    assert len(known) == 3
    assert [bytes.fromhex(k.replace(":", "")) for k in keys] == [c.master_key for c in known]
    assert [bytes.fromhex(x.replace(":", "")) for x in salts] == [c.master_salt for c in known]
    assert lifetimes == ["2^31"] and mkis == ["1"]
    assert ports == ["41000"] and kmpid == ["mikey"] and csb == ["0x12345678"]
