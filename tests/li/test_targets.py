"""Target normalisation and matching (li/targets.py): case, parameters, tel/E.164 equivalence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from li.targets import (
    Side,
    TargetError,
    TargetKind,
    TargetTable,
    identities_of,
    normalize_target,
    normalize_uri,
    split_values,
    uri_of,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:alice@home.test", {"sip:alice@home.test"}),
        ("SIP:alice@HOME.Test:5060;transport=tcp", {"sip:alice@home.test"}),
        ("sips:alice@home.test", {"sip:alice@home.test"}),
        ("sip:alice:secret@home.test", {"sip:alice@home.test"}),
        ("sip:al%69ce@home.test?subject=x", {"sip:alice@home.test"}),
        ("<sip:alice@home.test;gr=urn:uuid:1>", {"sip:alice@home.test"}),
        ("sip:home.test", {"sip:home.test"}),
        (
            "sip:+44-20-7946-0000@ims.test;user=phone",
            {"sip:+44-20-7946-0000@ims.test", "tel:+442079460000"},
        ),
        ("sip:+442079460000@ims.test", {"sip:+442079460000@ims.test", "tel:+442079460000"}),
        ("tel:+44-20-7946-0000", {"tel:+442079460000"}),
        ("tel:+1.(212).555.0100;ext=7", {"tel:+12125550100"}),
        ("tel:5550100;phone-context=+1-212", {"tel:+12125550100"}),
        ("tel:5550100;phone-context=example.com", set()),
        ("mailto:x@y", set()),
        ("garbage", set()),
    ],
)
def test_normalize_uri(uri: str, expected: set[str]) -> None:
    assert normalize_uri(uri) == frozenset(expected)


def test_user_part_case_is_kept_host_case_is_not() -> None:
    assert normalize_uri("sip:Alice@HOME.TEST") != normalize_uri("sip:alice@home.test")
    assert normalize_uri("sip:alice@HOME.TEST") == normalize_uri("sip:alice@home.test")


def test_header_value_forms() -> None:
    assert uri_of('"Alice" <sip:alice@home.test;user=x>;tag=abc') == "sip:alice@home.test;user=x"
    assert uri_of("sip:alice@home.test;tag=abc") == "sip:alice@home.test"
    assert split_values('"A, b" <sip:a@x>, <tel:+1234>') == ['"A, b" <sip:a@x>', "<tel:+1234>"]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (TargetKind.E164, "442079460000", {"tel:+442079460000"}),
        (TargetKind.E164, "+44 20 7946 0000", {"tel:+442079460000"}),
        (TargetKind.TEL_URI, "tel:+442079460000", {"tel:+442079460000"}),
        (TargetKind.SIP_URI, "sip:bob@other.test", {"sip:bob@other.test"}),
        (TargetKind.IMPU, "sip:bob@other.test", {"sip:bob@other.test"}),
    ],
)
def test_normalize_target(kind: TargetKind, value: str, expected: set[str]) -> None:
    assert normalize_target(kind, value) == frozenset(expected)


@pytest.mark.parametrize(
    ("kind", "value"),
    [(TargetKind.E164, "44abc"), (TargetKind.TEL_URI, "sip:bob@x"), (TargetKind.SIP_URI, "x")],
)
def test_normalize_target_rejects(kind: TargetKind, value: str) -> None:
    with pytest.raises(TargetError):
        normalize_target(kind, value)


def test_match_pai_over_from_and_terminating_side() -> None:
    table = TargetTable()
    table.add("x-tel", normalize_target(TargetKind.E164, "442079460000"))
    table.add("x-bob", normalize_target(TargetKind.SIP_URI, "sip:bob@other.test"))
    parties = identities_of(
        request_uri="sip:bob@10.0.0.9:5070;transport=udp",
        from_='"spoof" <sip:bob@other.test>;tag=1',
        to="<sip:bob@other.test>",
        p_asserted_identity=["<sip:alice@home.test>, <tel:+44-20-7946-0000>"],
    )
    matches = table.match(parties)
    assert [(m.xid, m.side) for m in matches] == [
        ("x-bob", Side.TERMINATING),
        ("x-tel", Side.ORIGINATING),
    ]
    # From is not trusted when a PAI is present: bob is not the originator here.
    assert all(not (m.xid == "x-bob" and m.side is Side.ORIGINATING) for m in matches)


def test_from_used_without_pai_and_remove() -> None:
    table = TargetTable()
    table.add("x1", normalize_target(TargetKind.SIP_URI, "sips:alice@home.test"))
    parties = identities_of(from_="<sip:alice@home.test>;tag=9", to="<sip:carol@x.test>")
    assert [m.side for m in table.match(parties)] == [Side.ORIGINATING]
    table.remove("x1")
    assert table.match(parties) == []
    assert len(table) == 0


def test_no_task_no_match() -> None:
    parties = identities_of(from_="<sip:alice@home.test>", to="<sip:bob@other.test>")
    assert TargetTable().match(parties) == []


@given(st.text(max_size=60))
def test_normalize_never_raises(text: str) -> None:
    normalize_uri(text)
    uri_of(text)
    split_values(text)


def test_on_the_sip_layers_uri_classes() -> None:
    """The SIP stack's parsed URIs (ims.sip.uri) normalise like their text."""
    from ims.sip.uri import TelUri, parse_uri

    sip = parse_uri("sips:+49-30-11@IMS-A.test:5061;user=phone;transport=tls")
    parties = identities_of(request_uri=sip)
    assert parties[Side.TERMINATING] == {"sip:+49-30-11@ims-a.test", "tel:+493011"}
    tel = parse_uri("tel:+49-30-11")
    assert isinstance(tel, TelUri)
    assert normalize_uri(str(tel)) == {f"tel:{tel.digits}"} == {"tel:+493011"}
    table = TargetTable()
    table.add("x", normalize_target(TargetKind.E164, "493011"))
    assert [m.side for m in table.match(parties)] == [Side.TERMINATING]
