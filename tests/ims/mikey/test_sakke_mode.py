"""MIKEY-SAKKE (RFC 6509): payload codecs, Identifiers, key periods, the exchange, failures,
several KMSs, KMS-side key recovery, and tshark's reading of the messages."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ims.buffer import Buffer
from ims.mikey import eccsi, sakke
from ims.mikey.constants import DataType, ErrorNo, IdType, PayloadType, SignType, TsType
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.base import CryptoSession, State
from ims.mikey.modes.sakke import SakkeInitiator, SakkeResponder, kms_recover_keys
from ims.mikey.payloads import (
    CertPayload,
    ErrPayload,
    HdrPayload,
    RandPayload,
    SignPayload,
    SpPayload,
    TPayload,
)
from ims.mikey.payloads_kms import (
    KMS_DECODERS,
    IdRole,
    IdrPayload,
    IdScheme,
    SakkeParams,
    SakkePayload,
)
from ims.mikey.policy import SrtpSuite
from ims.mikey.replay import ReplayCache
from ims.mikey.sakke_keys import (
    KmsKeyIssuer,
    SakkeKeyring,
    acceptable_periods,
    identifier,
    key_period,
    normalize_uri,
)
from tests.conftest import require_tool

from .sip_pcap import write_pcap


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOW = ts("2025-06-15T15:06:40")
JUNE, JULY = "2025-06", "2025-07"
ALICE, BOB, CAROL = "sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@other.lab"


class World:
    """Two operators' KMSs; alice and bob on home.lab's, carol on other.lab's."""

    def __init__(self) -> None:
        self.home = KmsKeyIssuer("kms.ims.lab")
        self.other = KmsKeyIssuer("kms.other.lab")
        self.alice = SakkeKeyring(ALICE, trusted=[self.other.community])
        self.bob = SakkeKeyring(BOB)
        self.carol = SakkeKeyring(CAROL, trusted=[self.home.community])
        for ring, kms, uri in (
            (self.alice, self.home, ALICE),
            (self.bob, self.home, BOB),
            (self.carol, self.other, CAROL),
        ):
            ring.install(kms.issue(uri, JUNE))
        self.bob.install(self.home.issue(BOB, JULY))
        self.alice.install(self.home.issue(ALICE, JULY))


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def offer(world: World, now: float = NOW, **kw: object) -> tuple[SakkeInitiator, bytes]:
    kw.setdefault("responder_uri", BOB)
    i = SakkeInitiator(keyring=world.alice, **kw)  # type: ignore[arg-type]
    return i, i.initiate(now)


def error_no(message: bytes | None) -> ErrorNo:
    assert message is not None
    msg = decode_message(message)
    assert msg.data_type is DataType.ERROR
    err = msg.find(ErrPayload)
    assert err is not None
    return err.error_no


# ------------------------------------------------------------------------ payload codecs
def test_idr_payload_layout() -> None:
    """RFC 6043 §6.6: "! Next Payload ! ID Role ! ID Type ! ID len ... ! ID Data ~" (the next
    payload byte is the chain's); RFC 6509 §4.4 Table 7 "Initiator's KMS (IDRkmsi) | 6"."""
    p = IdrPayload(role=IdRole.INITIATOR_KMS, id_type=IdType.URI, data=b"kms.ims.lab")
    buf = Buffer()
    p.encode_body(buf)
    assert buf.data() == b"\x06\x01\x00\x0bkms.ims.lab"
    assert KMS_DECODERS[PayloadType.IDR](Buffer(buf.data())) == p
    assert [int(r) for r in IdRole] == [1, 2, 3, 4, 5, 6, 7]  # Table 6.11 + Table 7
    assert int(IdType.BYTE_STRING) == 2  # RFC 6043 §6.5 Table 6.10


def test_sakke_payload_layout() -> None:
    """RFC 6509 §4.2: "! Next payload ! SAKKE params ! ID scheme ! SAKKE data length (16) !
    SAKKE data ~"; Table 4 "Parameter Set 1 ... | 1"; Table 5 "tel URI with monthly keys | 1"."""
    p = SakkePayload(
        params=SakkeParams.PARAMETER_SET_1, id_scheme=IdScheme.TEL_URI_MONTHLY, data=b"\xaa" * 3
    )
    buf = Buffer()
    p.encode_body(buf)
    assert buf.data() == b"\x01\x01\x00\x03\xaa\xaa\xaa"
    assert KMS_DECODERS[PayloadType.SAKKE](Buffer(buf.data())) == p
    with pytest.raises(MikeyDecodeError):  # params 2 is unassigned (§7)
        KMS_DECODERS[PayloadType.SAKKE](Buffer(b"\x02\x01\x00\x00"))


def test_new_code_points() -> None:
    """RFC 6509 §7: "26 - Data type", "26 - Next payload", "2 - S type"; RFC 6043 Table 6.2
    "IDR | 14"."""
    assert int(DataType.SAKKE) == 26 and int(PayloadType.SAKKE) == 26
    assert int(SignType.ECCSI) == 2 and int(PayloadType.IDR) == 14


# -------------------------------------------------------------------- Identifiers, periods
def test_identifier_example_of_rfc6509() -> None:
    """§3.2: "suppose a user's telephone number is +447700900123 and the month is 2011-02,
    then the user's Identifier is ... 2011-02\\0tel:+447700900123\\0" (the RFC 6507/6508
    test vector Identifier)."""
    ident = identifier("2011-02", "tel:+447700900123", IdScheme.TEL_URI_MONTHLY)
    assert ident == b"2011-02\0tel:+447700900123\0"


@pytest.mark.parametrize(
    "uri",
    ["tel:+44-7700-900123", "tel:07700900123", "tel:+447700900123;phone-context=x", "sip:a@b"],
)
def test_tel_uri_constraints(uri: str) -> None:
    """§3.2: the tel URI "MUST be formed in global notation", "visual separators MUST NOT be
    included", "MUST NOT include additional parameters", "MUST NOT include phone-context"."""
    with pytest.raises(MikeyError) as exc:
        normalize_uri(uri, IdScheme.TEL_URI_MONTHLY)
    assert exc.value.mikey_error is ErrorNo.INVALID_ID


def test_lab_sip_scheme_normalizes_case_and_refuses_extras() -> None:
    """§3.2 "The normalization procedures described in Section 6 of [RFC3986] MUST be used":
    scheme and host compare case-insensitively; a port or parameters would make two forms
    of one user, so they are refused."""
    scheme = IdScheme.LAB_SIP_URI_MONTHLY
    assert normalize_uri("SIP:alice@IMS.Lab", scheme) == "sip:alice@ims.lab"
    for bad in ("sip:alice@ims.lab:5060", "sip:alice@ims.lab;user=phone", "<sip:a@b>", "a@b"):
        with pytest.raises(MikeyError):
            normalize_uri(bad, scheme)


def test_key_period_acceptance_around_month_change() -> None:
    """§3.3: "commence allowing receipt of calls with the new key material on the
    second-to-last day of the old month, and continue to allow receipt calls with the old key
    material on the first and second days of the new month.  Devices SHOULD cease to receive
    calls with key material corresponding to the previous month on the third day"."""
    assert key_period(NOW) == JUNE
    assert acceptable_periods(ts("2025-06-28T23:59:59")) == {JUNE}
    assert acceptable_periods(ts("2025-06-29T00:00:00")) == {JUNE, JULY}
    assert acceptable_periods(ts("2025-07-02T23:59:59")) == {JUNE, JULY}
    assert acceptable_periods(ts("2025-07-03T00:00:00")) == {JULY}
    assert acceptable_periods(ts("2025-12-31T12:00:00")) == {"2025-12", "2026-01"}


# --------------------------------------------------------------------------- exchange
def test_exchange_agrees_and_message_is_figure_1(world: World) -> None:
    """§2.1 Figure 1 "HDR, T, RAND, [IDRi], [IDRr], [IDRkmsi], [IDRkmsr], [CERT], {SP},
    SAKKE, SIGN"; §2.2.1 "The V bit ... MUST be set to '0'", T "NTP-UTC"; §3.1 "This SSV is
    used as the TGK"; both sides derive the same SRTP keys; no response message (§2.1)."""
    sessions = (
        CryptoSession(suite=SrtpSuite.AES_CM_128_HMAC_SHA1_80, ssrc=0x1111),
        CryptoSession(suite=SrtpSuite.AES_CM_128_HMAC_SHA1_32, ssrc=0x2222),
    )
    i, data = offer(world, sessions=sessions)
    assert i.machine.state is State.ESTABLISHED
    msg = decode_message(data)
    assert msg.encode() == data  # byte-exact re-encode
    assert msg.hdr.data_type is DataType.SAKKE and not msg.hdr.v_flag
    assert [type(p) for p in msg.payloads] == [
        TPayload,
        RandPayload,
        IdrPayload,
        IdrPayload,
        IdrPayload,
        IdrPayload,
        SpPayload,
        SpPayload,
        SakkePayload,
        SignPayload,
    ]
    roles = [(p.role, p.data) for p in msg.find_all(IdrPayload)]
    assert roles == [
        (IdRole.INITIATOR, ALICE.encode()),
        (IdRole.RESPONDER, BOB.encode()),
        (IdRole.INITIATOR_KMS, b"kms.ims.lab"),
        (IdRole.RESPONDER_KMS, b"kms.ims.lab"),
    ]
    t = msg.find(TPayload)
    assert t is not None and t.ts_type is TsType.NTP_UTC
    sig = msg.payloads[-1]
    assert isinstance(sig, SignPayload) and sig.sign_type is SignType.ECCSI
    assert len(sig.signature) == 129  # RFC 6507 §3.3 "4N+1 octets"
    sak = msg.find(SakkePayload)
    assert sak is not None and len(sak.data) == sakke.ENCAPSULATED_LEN
    # the signature is ECCSI over everything before it, by alice's June Identifier
    ident = identifier(JUNE, ALICE, IdScheme.LAB_SIP_URI_MONTHLY)
    assert eccsi.verify(sig.signature, data[:-129], ident, world.home.community.kpak)

    reply = SakkeResponder(keyring=world.bob).receive(data, NOW + 1)
    assert reply.ok and reply.message is None, reply.error
    assert reply.result is not None and i.result is not None
    assert reply.result.tgk == i.result.tgk and len(i.result.tgk) == 16
    assert reply.result.keys == i.result.keys
    assert [k.ssrc for k in i.result.keys] == [0x1111, 0x2222]
    assert reply.result.peer_id == ALICE.encode()


def test_identity_from_signalling_when_no_idr(world: World) -> None:
    """§2.2.1 "It is OPTIONAL to include any IDR payloads, as ... Identifiers could be
    inferred by other means, e.g., through the signaling": without IDRi the responder uses
    the signalled caller; a wrong signalled caller fails the signature (Auth failure)."""
    i, data = offer(world, send_ids=False)
    assert decode_message(data).find(IdrPayload) is None
    assert SakkeResponder(keyring=world.bob).receive(data, NOW).error is not None
    ok = SakkeResponder(keyring=world.bob, initiator_uri=ALICE).receive(data, NOW)
    assert ok.result is not None and i.result is not None and ok.result.keys == i.result.keys
    bad = SakkeResponder(keyring=world.bob, initiator_uri="sip:eve@ims.lab").receive(data, NOW)
    assert error_no(bad.message) is ErrorNo.AUTH_FAILURE


def test_idri_must_match_signalled_caller(world: World) -> None:
    """A valid signature by alice is not a call from the signalled eve (§2.2.2 "The Responder
    MAY compare the IDi payload against his local policy ... 'Auth failure'")."""
    _, data = offer(world)
    r = SakkeResponder(keyring=world.bob, initiator_uri="sip:eve@ims.lab").receive(data, NOW)
    assert error_no(r.message) is ErrorNo.AUTH_FAILURE


def test_month_boundary_uses_the_month_of_t(world: World) -> None:
    """§3.2 "The value of the month used to form the Identifiers MUST be equal to the month as
    specified by the data in the timestamp payload": sent on 30 June 23:59:50, received on
    1 July, it is processed with June's keys; in July's keys it would not decapsulate."""
    sent, got = ts("2025-06-30T23:59:50"), ts("2025-07-01T00:00:20")
    i, data = offer(world, now=sent)
    reply = SakkeResponder(keyring=world.bob).receive(data, got)
    assert reply.result is not None and i.result is not None
    assert reply.result.keys == i.result.keys
    late = SakkeResponder(keyring=world.bob, replay=ReplayCache(window=1e9))
    assert error_no(late.receive(data, ts("2025-07-03T00:00:01")).message) is ErrorNo.INVALID_TS


def test_tampering_fails_the_signature(world: World) -> None:
    """§2.2.2 "it MUST verify the signature according to the method described in Section
    5.2.2 of [RFC6507] ... If the verification of the signature fails, then an 'Auth failure'
    error (Error no. 0) MAY be sent"; every signed byte counts (RFC 3830 §5.2)."""
    _, data = offer(world)
    msg = decode_message(data)
    sak = msg.find(SakkePayload)
    assert sak is not None
    start = data.index(sak.data)
    for pos in (6, 45, start + 5, start + len(sak.data) - 1, len(data) - 1):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        r = SakkeResponder(keyring=world.bob).receive(bytes(bad), NOW)
        assert not r.ok
        if not isinstance(r.error, MikeyDecodeError):
            assert error_no(r.message) is ErrorNo.AUTH_FAILURE, pos


def test_replay_is_refused(world: World) -> None:
    """RFC 6509 §2.2.1 "the I_MESSAGE is integrity and replay protected"; RFC 3830 §5.4."""
    _, data = offer(world)
    r = SakkeResponder(keyring=world.bob)
    assert r.receive(data, NOW).ok
    assert error_no(r.receive(data, NOW + 2).message) is ErrorNo.INVALID_TS
    assert error_no(SakkeResponder(keyring=world.bob).receive(data, NOW + 3600).message) is (
        ErrorNo.INVALID_TS
    )


def test_message_for_someone_else_is_refused(world: World) -> None:
    """§2.2.1 IDRr "MUST contain the URI of the Responder incorporated in the Identifier that
    the Initiator used in SAKKE": alice's offer to bob, delivered to carol, is refused; an
    offer without IDRr still cannot be opened with another RSK (RFC 6508 §6.2.2 TEST)."""
    _, data = offer(world)
    r = SakkeResponder(keyring=world.alice).receive(data, NOW)  # alice as "responder"
    assert error_no(r.message) is ErrorNo.INVALID_ID
    _, anon = offer(world, send_ids=False)
    r = SakkeResponder(keyring=world.alice, initiator_uri=ALICE).receive(anon, NOW)
    assert error_no(r.message) is ErrorNo.AUTH_FAILURE


def test_cert_payload_and_other_signatures_are_refused(world: World) -> None:
    """§2.2.1 "If this signature scheme is used, then the Initiator MUST NOT include a CERT
    payload"; and an RSA-typed SIGN is not verified as ECCSI."""
    _, data = offer(world)
    msg = decode_message(data)
    cert = CertPayload(cert_type=0, data=b"x")  # type: ignore[arg-type]
    with_cert = MikeyMessage(hdr=msg.hdr, payloads=(*msg.payloads[:-1], cert, msg.payloads[-1]))
    r = SakkeResponder(keyring=world.bob).receive(with_cert.encode(), NOW)
    assert not r.ok
    sig = msg.payloads[-1]
    assert isinstance(sig, SignPayload)
    rsa = SignPayload(sign_type=SignType.RSA_PKCS1_V15, signature=sig.signature)
    relabelled = MikeyMessage(hdr=msg.hdr, payloads=(*msg.payloads[:-1], rsa)).encode()
    assert error_no(SakkeResponder(keyring=world.bob).receive(relabelled, NOW).message) is (
        ErrorNo.AUTH_FAILURE
    )


def test_v_bit_is_ignored_by_the_responder(world: World) -> None:
    """§4.1 "V ... MUST be set to '0' and ignored by the Responder in a SAKKE message" - a
    message with V=1 re-signed by alice is processed and still gets no response."""
    _, data = offer(world)
    msg = decode_message(data)
    hdr = HdrPayload(
        data_type=msg.hdr.data_type, csb_id=msg.hdr.csb_id, cs_map=msg.hdr.cs_map, v_flag=True
    )
    body = MikeyMessage(hdr=hdr, payloads=msg.payloads).encode()[:-129]
    resigned = body + world.alice.signer(JUNE).sign(body)
    reply = SakkeResponder(keyring=world.bob).receive(resigned, NOW)
    assert reply.ok and reply.message is None


# --------------------------------------------------------------------------- several KMSs
def test_users_of_two_kms(world: World) -> None:
    """§2.1 "each interoperating KMS MUST provide its users with the KMS public keys for every
    KMS subscriber domain with which its users communicate": alice (home KMS) keys carol
    (other KMS) with carol's KMS's Z, carol checks alice's signature with home's KPAK."""
    i = SakkeInitiator(keyring=world.alice, responder_uri=CAROL, responder_kms="kms.other.lab")
    data = i.initiate(NOW)
    kmsr = [
        p.data for p in decode_message(data).find_all(IdrPayload) if p.role is IdRole.RESPONDER_KMS
    ]
    assert kmsr == [b"kms.other.lab"]
    reply = SakkeResponder(keyring=world.carol).receive(data, NOW)
    assert reply.result is not None and i.result is not None
    assert reply.result.keys == i.result.keys
    # bob has no keys of other.lab's KMS: carol's offers to him cannot be authenticated
    c = SakkeInitiator(keyring=world.carol, responder_uri=BOB, responder_kms="kms.ims.lab")
    r = SakkeResponder(keyring=world.bob).receive(c.initiate(NOW), NOW)
    assert error_no(r.message) is ErrorNo.AUTH_FAILURE


# -------------------------------------------------------------------- the KMS and LI
def test_responders_kms_recovers_the_call_keys(world: World) -> None:
    """RFC 6508 §7 "The KMS ... can create RSKs for arbitrary Identifiers": the responder's
    KMS derives bob's RSK for the period of T and gets exactly the SRTP keys of the call from
    the I_MESSAGE alone - no MITM. The initiator's KMS, when it is another operator's, cannot."""
    i, data = offer(world)
    got = kms_recover_keys(data, world.home)
    assert i.result is not None and got.result.keys == i.result.keys
    assert got.responder_uri == BOB and got.period == JUNE
    assert got.result.peer_id == ALICE.encode()
    c = SakkeInitiator(keyring=world.alice, responder_uri=CAROL, responder_kms="kms.other.lab")
    to_carol = c.initiate(NOW)
    assert c.result is not None
    assert kms_recover_keys(to_carol, world.other).result.keys == c.result.keys
    with pytest.raises(MikeyError) as exc:
        kms_recover_keys(to_carol, world.home)  # alice's operator: not carol's KMS
    assert exc.value.mikey_error is ErrorNo.AUTH_FAILURE


def test_recovery_without_idr_needs_the_signalled_responder(world: World) -> None:
    """Without IDRr the KMS takes the responder from the intercepted signalling."""
    i, data = offer(world, send_ids=False)
    with pytest.raises(MikeyError):
        kms_recover_keys(data, world.home)
    got = kms_recover_keys(data, world.home, responder_uri=BOB)
    assert i.result is not None and got.result.keys == i.result.keys
    # RFC 6508 §2.2 "An Identifier is an integer in the range 2 to q-1": a URI too long for
    # that is an error, not an exception
    with pytest.raises(MikeyError):
        kms_recover_keys(data, world.home, responder_uri="sip:" + "a" * 130 + "@ims.lab")
    with pytest.raises(MikeyError):
        offer(world, responder_uri="sip:" + "a" * 130 + "@ims.lab")


# --------------------------------------------------------------------------- keyring
def test_keyring_validates_before_installing(world: World) -> None:
    """RFC 6507 §5.1.2 "Every SSK MUST be validated before being installed" and RFC 6508
    §6.1.2 "Upon receipt of key material, each user MUST verify its RSK"."""
    ring = SakkeKeyring("sip:dave@ims.lab")
    with pytest.raises(MikeyError):
        ring.install(world.home.issue(BOB, JUNE))  # another user's keys
    good = world.home.issue("sip:dave@ims.lab", JUNE)
    forged_rsk = world.home.issue("sip:erin@ims.lab", JUNE).rsk
    bad = type(good)(
        uri=good.uri,
        period=good.period,
        id_scheme=good.id_scheme,
        kms=good.kms,
        signing_key=good.signing_key,
        rsk=forged_rsk,
    )
    with pytest.raises(sakke.SakkeError):
        ring.install(bad)
    with pytest.raises(MikeyError):
        ring.signer(JUNE)  # nothing installed
    ring.install(good)
    assert ring.periods == (JUNE,)


def test_keyring_holds_two_periods() -> None:
    """§3.3 "Implementations MUST allow devices to hold two periods' keys simultaneously";
    "It is NOT RECOMMENDED for KMSs to distribute multiple key periods' keys" - we keep two."""
    kms = KmsKeyIssuer("kms.t.lab")
    ring = SakkeKeyring("sip:u@t.lab")
    for period in ("2025-05", "2025-06", "2025-07"):
        ring.install(kms.issue("sip:u@t.lab", period))
    assert ring.periods == ("2025-06", "2025-07")


# --------------------------------------------------------------------------- robustness
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_responder_never_raises_on_mutations(world: World, data: st.DataObject) -> None:
    """A responder answers any byte string with a reply (keys or an Error), never an
    exception: truncations and single-byte changes of a real I_MESSAGE, and random bytes."""
    base = world_offer(world)
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        msg = base[: data.draw(st.integers(0, len(base) - 1))]
    elif kind == "flip":
        pos = data.draw(st.integers(0, len(base) - 1))
        msg = base[:pos] + bytes([base[pos] ^ data.draw(st.integers(1, 255))]) + base[pos + 1 :]
    else:
        msg = data.draw(st.binary(max_size=700))
    reply = SakkeResponder(keyring=world.bob).receive(msg, NOW)
    assert reply.ok or reply.message is not None


_OFFER: dict[str, bytes] = {}


def world_offer(world: World) -> bytes:
    if "m" not in _OFFER:
        _OFFER["m"] = offer(world)[1]
    return _OFFER["m"]


# --------------------------------------------------------------------------- tshark
@pytest.mark.peer
def test_tshark_decodes_mikey_sakke(world: World, tmp_path: Path) -> None:
    """tshark (Wireshark's packet-mikey.c) reads data type 26, the IDR roles incl. RFC 6509's
    6/7, the SAKKE payload fields and an ECCSI SIGN, with no malformed packet or expert
    warning; it shows SAKKE data and signature as opaque bytes (it does not split R and H,
    name ID scheme values or verify anything)."""
    tshark = require_tool("tshark")
    _, data = offer(world)
    err = SakkeResponder(keyring=world.alice).receive(data, NOW).message
    assert err is not None
    pcap = tmp_path / "sakke.pcap"
    write_pcap(pcap, [(data, True), (err, False)])
    expert = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-q", "-z", "expert,warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Malformed" not in expert and "Warnings" not in expert and "Errors" not in expert
    fields = [
        "_ws.malformed",
        "mikey.type",
        "mikey.id.role",
        "mikey.id.data",
        "mikey.sakke.params",
        "mikey.sakke.idscheme",
        "mikey.sakke.len",
        "mikey.sakke.data",
        "mikey.sign.type",
        "mikey.sign.len",
        "mikey.sign.data",
        "mikey.err.no",
    ]
    cmd = [
        tshark,
        "-n",
        "-r",
        str(pcap),
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]
    assert len(rows) == 2
    msg = decode_message(data)
    sak = msg.find(SakkePayload)
    sig = msg.payloads[-1]
    assert sak is not None and isinstance(sig, SignPayload)
    first = rows[0]
    assert first["_ws.malformed"] == ""
    assert first["mikey.type"] == "26"
    assert first["mikey.id.role"] == "1|2|6|7"
    assert first["mikey.id.data"] == f"{ALICE}|{BOB}|kms.ims.lab|kms.ims.lab"
    assert first["mikey.sakke.params"] == "1"
    assert first["mikey.sakke.idscheme"] == "240"
    assert first["mikey.sakke.len"] == str(sakke.ENCAPSULATED_LEN)
    assert first["mikey.sakke.data"].replace(":", "") == sak.data.hex()
    assert first["mikey.sign.type"] == "2"
    assert first["mikey.sign.len"] == "129"
    assert first["mikey.sign.data"].replace(":", "") == sig.signature.hex()
    assert rows[1]["mikey.type"] == "6" and rows[1]["mikey.err.no"] == str(int(ErrorNo.INVALID_ID))
