"""BER (DER) encoding of HI2 IRI records (ETSI TS 101 671 HI2Operations ``IRIsContent``).

The ASN.1 modules (``li/hi2/asn1/``) are compiled once by asn1tools; :func:`encode` maps an
:class:`~li.hi2.records.IriRecord` onto ``IRIsContent`` (one ``iRIContent`` per record) and
:func:`decode` is its inverse, used by the tests and by ``imslab hi2 decode``.

Field mapping (TS 101 671 IRI-Parameters; the IMS fields from TS 33.108):

=================================  ======================================================
domainID [0]                       hi2 version18 OID (0.4.0.2.2.1.18)
lawfulInterceptionIdentifier [1]   the task's LIID
communicationIdentifier [2]        communication-Identity-Number: the call's number (ASCII
                                   digits, TS 101 671: "12345678"); network-Identifier:
                                   operator-Identifier and the reporting element (dNS-Format)
timeStamp [3]                      localTime: GeneralizedTime in UTC, winterSummerIndication
                                   notProvided
intercepted-Call-Direct [4]        originating-/terminating-Target
intercepted-Call-State [5]         setUpInProcess / connected / idle
partyInformation [9]               originating and terminating party (sip-uri / tel-url)
iMSevent [29], sIPMessage [30]     the IMS event and the whole SIP message
correlation [35]                   iri-to-CC: cc = the 8-octet X2/X3 Correlation ID
=================================  ======================================================
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ims.errors import DecodeError, EncodeError
from li.hi2.records import CallState, Direction, ImsEvent, IriRecord, RecordType

#: hi2DomainId version18: {itu-t(0) identified-organization(4) etsi(0) securityDomain(2)
#: lawfulIntercept(2) hi2(1) version18(18)} (TS 101 671, HI2Operations)
HI2_DOMAIN_ID = "0.4.0.2.2.1.18"
PDU = "IRIsContent"
_DIRECTION = {
    Direction.NOT_AVAILABLE: "not-Available",
    Direction.ORIGINATING_TARGET: "originating-Target",
    Direction.TERMINATING_TARGET: "terminating-Target",
}


class Hi2DecodeError(DecodeError):
    """Bytes that are not a BER IRIsContent."""


@cache
def spec() -> Any:
    """The compiled HI2 modules (DER), compiled at the first record a process encodes.

    From the parsed form kept next to the ASN.1 (``HI2-IMS-subset.json``, the output of
    ``asn1tools.parse_files`` on the ``.asn``; a test keeps the two equal): parsing with
    pyparsing would add a third of a second to the first IRI of every LEMF process.
    """
    import asn1tools  # here, not at import: it costs 0.4 s every CLI start

    # DER, the canonical subset of BER: asn1tools' BER codec writes a GeneralizedTime whose
    # seconds are 0 without them, which turns ".123" into a fraction of the *minute*; DER
    # always writes seconds (X.690 11.7) and every BER decoder reads DER.
    return asn1tools.compile_dict(parsed_modules(), "der")


def asn1_files() -> list[str]:
    folder = resources.files("li.hi2").joinpath("asn1")
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith(".asn"))


def parsed_modules() -> dict[str, Any]:
    text = resources.files("li.hi2").joinpath("asn1", "HI2-IMS-subset.json").read_text()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def regenerate_parsed() -> None:
    """Rewrite ``HI2-IMS-subset.json`` from the ``.asn`` (after editing the ASN.1)."""
    import asn1tools

    path = Path(asn1_files()[0]).with_suffix(".json")
    path.write_text(json.dumps(asn1tools.parse_files(asn1_files()), indent=1) + "\n")


def _asn1_error() -> type[Exception]:
    import asn1tools

    return asn1tools.Error  # type: ignore[no-any-return]


def _octets(value: str, name: str, limit: int) -> bytes:
    data = value.encode("utf-8")
    if not 1 <= len(data) <= limit:
        raise EncodeError(f"{name} must be 1..{limit} octets, not {len(data)}: {value!r}")
    return data


def _party(qualifier: str, uri: str) -> dict[str, Any]:
    key = "tel-url" if uri.lower().startswith("tel:") else "sip-uri"
    return {"party-Qualifier": qualifier, "partyIdentity": {key: uri.encode("utf-8")}}


def to_value(rec: IriRecord) -> tuple[str, Any]:
    """The asn1tools value of ``IRIsContent`` for ``rec``."""
    network: dict[str, Any] = {"operator-Identifier": _octets(rec.operator_id, "operator id", 5)}
    if rec.element:
        network["network-Element-Identifier"] = (
            "dNS-Format",
            _octets(rec.element, "element", 25),
        )
    params: dict[str, Any] = {
        "domainID": HI2_DOMAIN_ID,
        "lawfulInterceptionIdentifier": _octets(rec.liid, "LIID", 25),
        "communicationIdentifier": {
            "communication-Identity-Number": _octets(rec.communication_id, "call number", 8),
            "network-Identifier": network,
        },
        "timeStamp": (
            "localTime",
            {
                "generalizedTime": dt.datetime.fromtimestamp(rec.time, dt.UTC),
                "winterSummerIndication": "notProvided",
            },
        ),
        "intercepted-Call-Direct": _DIRECTION[rec.direction],
    }
    if rec.call_state is not None:
        params["intercepted-Call-State"] = rec.call_state.value
    parties = []
    if rec.originating:
        parties.append(_party("originating-Party", rec.originating))
    if rec.terminating:
        parties.append(_party("terminating-Party", rec.terminating))
    if parties:
        params["partyInformation"] = parties
    if rec.ims_event is not None:
        params["iMSevent"] = rec.ims_event.value
    if rec.sip is not None:
        params["sIPMessage"] = rec.sip
    params["correlation"] = ("iri-to-CC", {"cc": [rec.correlation_id.to_bytes(8, "big")]})
    return ("iRIContent", (rec.record_type.value, params))


def encode(rec: IriRecord) -> bytes:
    """``rec`` as one BER-encoded ``IRIsContent``."""
    compiled = spec()
    try:
        return bytes(compiled.encode(PDU, to_value(rec)))
    except _asn1_error() as exc:
        raise EncodeError(f"HI2 record not encodable: {exc}") from None


def decode(data: bytes) -> IriRecord:
    """The inverse of :func:`encode` (one ``iRIContent``)."""
    compiled = spec()
    try:
        kind, value = compiled.decode(PDU, data)
    except (_asn1_error(), ValueError, IndexError) as exc:
        raise Hi2DecodeError(f"not an HI2 IRIsContent: {exc}") from None
    if kind != "iRIContent":
        raise Hi2DecodeError("an IRISequence: decode its records one by one")
    rtype, p = value
    comm = p["communicationIdentifier"]
    net = comm["network-Identifier"]
    element = net.get("network-Element-Identifier")
    parties = {
        q["party-Qualifier"]: next(iter(q["partyIdentity"].values())).decode("utf-8", "replace")
        for q in p.get("partyInformation", [])
    }
    cc = p.get("correlation", ("", {"cc": [b"\0" * 8]}))[1]["cc"][0]
    stamp = p["timeStamp"][1]["generalizedTime"]
    direction = {v: k for k, v in _DIRECTION.items()}[
        p.get("intercepted-Call-Direct", "not-Available")
    ]
    return IriRecord(
        record_type=RecordType(rtype),
        liid=p["lawfulInterceptionIdentifier"].decode("utf-8", "replace"),
        time=stamp.replace(tzinfo=stamp.tzinfo or dt.UTC).timestamp(),
        operator_id=net["operator-Identifier"].decode("utf-8", "replace"),
        element=element[1].decode("utf-8", "replace") if element else None,
        communication_id=comm.get("communication-Identity-Number", b"").decode("ascii", "replace"),
        correlation_id=int.from_bytes(cc, "big"),
        direction=direction,
        call_state=CallState(p["intercepted-Call-State"])
        if "intercepted-Call-State" in p
        else None,
        originating=parties.get("originating-Party"),
        terminating=parties.get("terminating-Party"),
        ims_event=ImsEvent(p["iMSevent"]) if "iMSevent" in p else None,
        sip=p.get("sIPMessage"),
    )


if __name__ == "__main__":  # pragma: no cover - maintenance: python -m li.hi2.codec
    regenerate_parsed()
