"""HI2 output (issue 16, item 5): IRI records as ETSI TS 101 671 HI2Operations IRIsContent with
the IMS event and SIP message of 3GPP TS 33.108, encoded with asn1tools from the standards'
ASN.1, decoded by tshark's HI2operations dissector without a malformed field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ims.errors import EncodeError
from li.hi2 import codec
from li.hi2.records import (
    CallState,
    Direction,
    ImsEvent,
    IriRecord,
    RecordType,
    SessionState,
)
from li.hi2.writer import default_liid, exported_pdu_header
from li.pcap import read_pcap
from tests.conftest import require_tool
from tests.li.lemf.test_callpcap import CALL_ID, CID, XID, call_pdus, deliver

INVITE = b"INVITE sip:bob@ims-b.test SIP/2.0\r\nCall-ID: hi2@x\r\nCSeq: 1 INVITE\r\n\r\n"


def record(**kw: object) -> IriRecord:
    base: dict[str, object] = {
        "record_type": RecordType.BEGIN,
        "liid": "LIID-0001",
        "time": 1_800_000_000.25,
        "operator_id": "opA",
        "element": "pcscf-a",
        "communication_id": "12345678",
        "correlation_id": 0x55F38F446571D215,
        "direction": Direction.ORIGINATING_TARGET,
        "call_state": CallState.SETUP,
        "originating": "sip:alice@ims-a.test",
        "terminating": "tel:+494021",
        "ims_event": ImsEvent.UNFILTERED_SIP_MESSAGE,
        "sip": INVITE,
    }
    base.update(kw)
    return IriRecord(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "rec",
    [
        record(),
        record(record_type=RecordType.END, call_state=CallState.IDLE),
        record(record_type=RecordType.CONTINUE, time=1_800_000_060.000125),  # seconds == 0
        record(
            record_type=RecordType.REPORT,
            element=None,
            call_state=None,
            originating=None,
            terminating=None,
            direction=Direction.NOT_AVAILABLE,
        ),
        record(ims_event=ImsEvent.START_OF_INTERCEPTION, sip=None),
    ],
)
def test_encode_decode_round_trip(rec: IriRecord) -> None:
    data = codec.encode(rec)
    back = codec.decode(data)
    assert abs(back.time - rec.time) < 1e-6
    assert back == IriRecord(**{**_fields(rec), "time": back.time})
    # the BER frame: [0] iRIContent (explicit, constructed) around [1..4] of the record type
    tag = {RecordType.BEGIN: 1, RecordType.END: 2, RecordType.CONTINUE: 3, RecordType.REPORT: 4}
    assert data[0] == 0xA0
    assert data[2] == 0xA0 + tag[rec.record_type] or data[3] == 0xA0 + tag[rec.record_type]


def _fields(rec: IriRecord) -> dict[str, object]:
    return {f: getattr(rec, f) for f in rec.__slots__}


def test_parsed_form_is_the_asn1() -> None:
    import asn1tools

    assert codec.parsed_modules() == json.loads(
        json.dumps(asn1tools.parse_files(codec.asn1_files()))
    ), "li/hi2/asn1/HI2-IMS-subset.json is stale: run python -m li.hi2.codec"
    assert set(codec.parsed_modules()) == {"HI2Operations", "EpsHI2Operations"}


def test_generalized_time_keeps_its_seconds() -> None:
    # X.690 11.7: seconds are always present; ".000125" must not become a minute fraction
    data = codec.encode(record(time=1_800_000_060.5))  # 08:01:00.5 UTC
    assert b"20270115080100.5Z" in data


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"liid": "x" * 26}, "LIID"),
        ({"liid": ""}, "LIID"),
        ({"operator_id": "toolong"}, "operator id"),
        ({"communication_id": "123456789"}, "call number"),
    ],
)
def test_values_out_of_the_standards_range_are_refused(kw: dict[str, object], what: str) -> None:
    with pytest.raises(EncodeError, match=what):
        codec.encode(record(**kw))


def test_garbage_is_a_decode_error() -> None:
    for data in (b"", b"\x30\x03\x01", INVITE, codec.encode(record())[:-3]):
        with pytest.raises(codec.Hi2DecodeError):
            codec.decode(data)


def _types(*msgs: tuple[str | None, int | None, str]) -> list[RecordType]:
    state = SessionState()
    return [state.next_type(m, s, c) for m, s, c in msgs]


B, C, E, R = RecordType.BEGIN, RecordType.CONTINUE, RecordType.END, RecordType.REPORT


def test_record_types_follow_the_session() -> None:
    call = [
        ("INVITE", None, "INVITE"),
        (None, 180, "INVITE"),
        (None, 200, "INVITE"),
        ("ACK", None, "ACK"),
        ("INVITE", None, "INVITE"),  # re-INVITE ...
        (None, 488, "INVITE"),  # ... refused: the session goes on
        ("BYE", None, "BYE"),
        (None, 200, "BYE"),
    ]
    assert _types(*call) == [B, C, C, C, C, C, C, E]
    refused = [("INVITE", None, "INVITE"), (None, 486, "INVITE"), ("ACK", None, "ACK")]
    assert _types(*refused) == [B, E, R]
    cancelled = [
        ("INVITE", None, "INVITE"),
        (None, 180, "INVITE"),
        ("CANCEL", None, "CANCEL"),
        (None, 200, "CANCEL"),
        (None, 487, "INVITE"),
    ]
    assert _types(*cancelled) == [B, C, C, C, E]
    register = [("REGISTER", None, "REGISTER"), (None, 401, "REGISTER"), (None, 200, "REGISTER")]
    assert _types(*register) == [R, R, R]


def test_exported_pdu_header_names_the_dissector() -> None:
    header = exported_pdu_header()
    assert header == b"\x00\x0c\x00\x10HI2Operations\x00\x00\x00\x00\x00\x00\x00"
    assert default_liid(str(XID)) == str(XID).replace("-", "")[:25]


@pytest.fixture(scope="module")
def call_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deliver(tmp_path_factory.mktemp("lemf"), call_pdus())


def _tshark(*args: str) -> str:
    res = subprocess.run(
        [require_tool("tshark"), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return res.stdout


def test_lemf_writes_hi2_that_tshark_decodes(call_dir: Path) -> None:
    pcap = str(call_dir / "hi2.pcap")
    # nothing malformed and no expert warning anywhere in the dissection
    assert _tshark("-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning") == ""
    rows = [
        r.split("\t")
        for r in _tshark(
            "-r",
            pcap,
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "HI2Operations.iRIContent",
            "-e",
            "HI2Operations.lawfulInterceptionIdentifier",
            "-e",
            "HI2Operations.iMSevent",
            "-e",
            "HI2Operations.cc_item",
            "-e",
            "HI2Operations.sIPMessage",
            "-e",
            "HI2Operations.domainID",
            "-e",
            "HI2Operations.intercepted_Call_Direct",
        ).splitlines()
    ]
    # 12 SIP messages (6 x 2 hops) reported by one POI: BEGIN ... END, then the second
    # hop's copy of the 200 to the BYE after the END is a REPORT
    assert [int(r[0]) for r in rows] == [1] + [3] * 9 + [2, 4]
    liid = default_liid(str(XID)).encode().hex()
    assert {r[1] for r in rows} == {liid}
    assert {r[2] for r in rows} == {"1"}  # unfilteredSIPmessage
    assert {r[3] for r in rows} == {f"{CID:016x}"}  # correlates the IRI to the CC
    assert {r[5] for r in rows} == {codec.HI2_DOMAIN_ID}
    assert {r[6] for r in rows} == {"1"}  # the target originated the call
    # sIPMessage is the intercepted message, byte for byte, in time order
    sent = [bytes.fromhex(r[4]) for r in rows]
    assert sent[0].startswith(b"INVITE sip:bob@ims-b.test SIP/2.0\r\n")
    assert all(f"Call-ID: {CALL_ID}".encode() in m for m in sent)
    assert sent[-1].startswith(b"SIP/2.0 200 OK") and b"2 BYE" in sent[-1]
    # the time stamps are the PDUs' (GeneralizedTime, UTC)
    times = _tshark("-r", pcap, "-T", "fields", "-e", "HI2Operations.generalizedTime").split("\n")
    assert times[0].startswith("Jan 15, 2027 08:00:00.000000000")
    assert times[2].startswith("Jan 15, 2027 08:00:00.100000000")  # the 180, 0.1 s later


def test_hi2_ber_stream_and_summary(call_dir: Path) -> None:
    data = (call_dir / "hi2.ber").read_bytes()
    records = []
    while data:  # a BER stream: each value carries its own length
        length, header = data[1], 2
        if length & 0x80:
            n = length & 0x7F
            length, header = int.from_bytes(data[2 : 2 + n], "big"), 2 + n
        records.append(codec.decode(data[: header + length]))
        data = data[header + length :]
    assert len(records) == 12
    assert records[0].record_type is RecordType.BEGIN
    assert records[0].originating == "sip:alice@ims-a.test"
    assert records[0].terminating == "sip:bob@ims-b.test"
    assert records[0].call_state is CallState.SETUP and records[4].call_state is CallState.CONNECTED
    assert [r.time for r in records] == sorted(r.time for r in records)
    pcap_payloads = [r.data[len(exported_pdu_header()) :] for r in read_pcap(call_dir / "hi2.pcap")]
    assert [codec.decode(p) for p in pcap_payloads] == records
    summary = json.loads((call_dir / "summary.json").read_text())
    assert summary["hi2"] == {"liid": default_liid(str(XID)), "records": 12, "not_encodable": 0}
    assert summary["file_records"]["hi2.pcap"] == 12
    assert (call_dir / "hi2.ber").stat().st_mode & 0o777 == 0o600


def test_cli_decodes_both_files(call_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    docs = {}
    for name in ("hi2.pcap", "hi2.ber"):
        assert main(["hi2", "decode", str(call_dir / name)]) == 0
        docs[name] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert docs["hi2.pcap"] == docs["hi2.ber"]
    assert [d["record"] for d in docs["hi2.ber"]][:2] == ["BEGIN", "CONTINUE"]
    assert docs["hi2.ber"][0]["sip"] == "INVITE sip:bob@ims-b.test SIP/2.0"
    assert main(["hi2", "decode", str(call_dir / "summary.json")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("imslab hi2 decode: ") and "right file" in line


def test_a_configured_liid_is_used(tmp_path: Path) -> None:
    from li.lemf.mediation import Mediation
    from li.x2x3.pdu import encode_pdu

    med = Mediation(tmp_path, liids={str(XID): "OP-A.WARRANT-0042"})
    for _, pdu in call_pdus()[:4]:
        med.handle(pdu, encode_pdu(pdu), ("127.0.8.10", 40000))
    med.close()
    call_dir = tmp_path / str(XID) / f"{CID:016x}"
    recs = [codec.decode(v) for v in _ber_values((call_dir / "hi2.ber").read_bytes())]
    assert len(recs) == 4 and {r.liid for r in recs} == {"OP-A.WARRANT-0042"}


def _ber_values(data: bytes) -> list[bytes]:
    from lab.commands.hi2 import ber_values

    return ber_values(data)
