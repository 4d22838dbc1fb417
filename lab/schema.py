"""The topology file's schema (msgspec): what each table and key of ``lab.toml`` may hold.

This module is the single description of the file format. :func:`convert` checks a parsed TOML
document against it (types, ranges, allowed values, required keys; unknown keys are errors, so
a typo never silently falls back to a default) and names the place of the first problem in
TOML terms (``elements.pcscf-a.address: missing field``), with the element's name rather than
msgspec's ``[...]``. :func:`markdown` renders the same schema as the reference in
``docs/topology.md`` (``imslab config schema --markdown``; a test keeps the two equal).

Cross-references (an element's operator exists, addresses are unique, a UE's P-CSCF offers
TLS...) are checked after conversion by :mod:`lab.topology`.

Extending the file: add a field to the right ``*Spec`` struct below (with an ``Annotated``
description), the same field to the runtime model in :mod:`lab.topology` and one line in its
``parse``; re-generate the docs with ``imslab config schema --markdown``.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import msgspec

from ims.errors import ImsError

Port = Annotated[int, msgspec.Meta(ge=0, le=65535, description="a TCP/UDP port")]
IPv4 = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$",
        description="an IPv4 address",
    ),
]
Role = Literal["pcscf", "scscf", "anchor", "internet_proxy", "kms"]
Engine = Literal["imslab", "rtpengine"]
Transport = Literal["udp", "tcp", "tls"]
Delivery = Literal["tcp", "tls"]


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every table: unknown keys are errors."""


class LabSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[lab]``: the lab as a whole."""

    name: Annotated[str, msgspec.Meta(description="the lab's name (logs, reports)")] = "imslab"


class OperatorSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[operators.NAME]``: a network operator."""

    domain: Annotated[str, msgspec.Meta(min_length=1, description="its SIP home domain")]
    description: Annotated[str, msgspec.Meta(description="free text")] = ""


class ElementSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[elements.NAME]``: one network element, on its own address."""

    role: Annotated[
        Role,
        msgspec.Meta(
            description="pcscf (first hop), scscf (registrar and core), anchor (media relay), "
            "internet_proxy (a plain SIP service), kms (the home operator's key management "
            "service: MIKEY-SAKKE keys, MIKEY-TICKET)"
        ),
    ]
    operator: Annotated[str, msgspec.Meta(description="its operator (a key of [operators])")]
    address: IPv4
    sip_port: Annotated[Port, msgspec.Meta(description="SIP over UDP and TCP")] = 5060
    tls_port: Annotated[Port, msgspec.Meta(description="SIP over TLS (with tls = true)")] = 5061
    tls: Annotated[bool, msgspec.Meta(description="P-CSCF: offer SIP over TLS on the UE hop")] = (
        False
    )
    anchor: Annotated[
        str | None, msgspec.Meta(description="P-CSCF: the media anchor it steers calls through")
    ] = None
    control_port: Annotated[Port, msgspec.Meta(description="anchor: its control port")] = 2223
    rtp_ports: Annotated[
        tuple[Port, Port], msgspec.Meta(description="anchor: first and last RTP port")
    ] = (30000, 39999)
    engine: Annotated[
        Engine,
        msgspec.Meta(
            description="anchor: imslab (our relay, JSON control) or rtpengine (Debian's "
            "rtpengine daemon, userspace, ng control; its CC-POI taps the relay's interface)"
        ),
    ] = "imslab"


class SubscriberSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[[subscribers]]``: one HSS entry."""

    impi: Annotated[str, msgspec.Meta(min_length=3, description="private identity user@domain")]
    impus: Annotated[
        list[str],
        msgspec.Meta(min_length=1, description="public identities; the first sip: one is default"),
    ]
    password: Annotated[str, msgspec.Meta(description="digest password (lab use only)")]


class UeSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[ues.NAME]``: one device."""

    subscriber: Annotated[str, msgspec.Meta(description="the IMPI of its [[subscribers]] entry")]
    pcscf: Annotated[str, msgspec.Meta(description="its first hop (an element)")]
    address: IPv4
    transport: Annotated[Transport, msgspec.Meta(description="transport on the UE hop")] = "udp"
    sip_port: Annotated[Port, msgspec.Meta(description="the UE's SIP port")] = 5060


class LemfSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[li.lemf]``: the LEMF, where X2/X3 are delivered."""

    name: Annotated[str, msgspec.Meta(description="its name (not an element's or UE's)")] = "lemf"
    address: IPv4
    port: Annotated[Port, msgspec.Meta(description="X2/X3 port")] = 50100
    out: Annotated[str | None, msgspec.Meta(description="output dir (default: STATE_DIR/lemf)")] = (
        None
    )


class LiOperatorSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[li.operators.NAME]``: which elements of an operator run an X1 NE with POIs."""

    elements: Annotated[
        list[str], msgspec.Meta(description="P-CSCFs, S-CSCFs (IRI) and anchors (CC)")
    ] = []
    x1_port: Annotated[Port, msgspec.Meta(description="X1 HTTPS port on each element")] = 8443
    pki: Annotated[
        str | None, msgspec.Meta(description="the operator's X1 PKI dir (default: generated)")
    ] = None


class LiSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[li]``: lawful interception in the running lab."""

    lemf: LemfSpec
    operators: dict[str, LiOperatorSpec] = {}
    delivery: Annotated[Delivery, msgspec.Meta(description="X2/X3 over TCP or mutual TLS")] = "tcp"
    state_dir: Annotated[
        str | None,
        msgspec.Meta(
            description="PKIs, NE state, LEMF output ($IMSLAB_STATE or /tmp/imslab-state)"
        ),
    ] = None
    t3_port: Annotated[Port, msgspec.Meta(description="LI_T3: P-CSCF to anchor CC trigger")] = 2224


StoreBackend = Literal["sqlite", "redis"]


class StoreSpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[store]``: where the elements keep shared, durable state (docs/scale-out.md)."""

    backend: Annotated[
        StoreBackend,
        msgspec.Meta(description="sqlite (embedded, one file) or redis (a redis-server)"),
    ] = "sqlite"
    url: Annotated[
        str | None,
        msgspec.Meta(
            description="redis://HOST:PORT/DB or unix:///PATH?db=N of a running server; "
            "default: the lab's own (redis) or STATE_DIR/store/LAB.db (sqlite)"
        ),
    ] = None


class TopologySpec(_Spec, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A whole topology file. Relative paths are taken from the file's directory."""

    lab: LabSpec = LabSpec()
    operators: dict[str, OperatorSpec] = {}
    elements: dict[str, ElementSpec] = {}
    peering: Annotated[
        dict[str, str],
        msgspec.Meta(description="domain -> element serving it (stands in for DNS + I-CSCF)"),
    ] = {}
    tel: Annotated[
        dict[str, str],
        msgspec.Meta(description="number prefix -> home domain (stands in for ENUM)"),
    ] = {}
    subscribers: list[SubscriberSpec] = []
    ues: dict[str, UeSpec] = {}
    li: LiSpec | None = None
    store: StoreSpec = StoreSpec()


class SchemaError(ImsError, ValueError):
    """The document does not fit the schema; ``path`` is where (``elements.pcscf-a.address``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


def convert(data: dict[str, Any]) -> TopologySpec:
    """Check parsed TOML against the schema; :class:`SchemaError` names the first problem."""
    try:
        return msgspec.convert(data, TopologySpec)
    except msgspec.ValidationError as exc:
        raise _explain(data, str(exc)) from None


# -- error messages ---------------------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> X, ``X | None`` -> X."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        args = [a for a in get_args(tp) if a is not type(None)]
        if type(None) in get_args(tp) and len(args) == 1:
            tp = args[0]
            continue
        return tp


def _fits(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError:
        return False
    return True


def _walk(data: Any, raw_path: str) -> tuple[list[str], Any, Any]:
    """TOML path segments for msgspec's ``$...`` path (``[...]`` resolved to the failing key),
    plus the struct type and value found at its end."""
    out: list[str] = []
    tp: Any = TopologySpec
    cur: Any = data
    for name, index in _SEGMENT.findall(raw_path):
        tp = _unwrap(tp)
        if name:
            out.append(name)
            hints = get_type_hints(tp, include_extras=True) if isinstance(tp, type) else {}
            tp = hints.get(name, Any)
            cur = cur.get(name) if isinstance(cur, dict) else None
        elif index == "...":
            value_tp = get_args(tp)[1] if len(get_args(tp)) == 2 else Any
            key = "?"
            if isinstance(cur, dict):
                key = next((k for k, v in cur.items() if not _fits(v, value_tp)), "?")
            out.append(key)
            tp, cur = value_tp, cur.get(key) if isinstance(cur, dict) else None
        else:
            i = int(index)
            label = f"[{i}]"
            if isinstance(cur, list) and i < len(cur):
                cur = cur[i]
                if isinstance(cur, dict) and isinstance(cur.get("impi"), str):
                    label = f"[{i}] ({cur['impi']})"  # a subscriber: name it
            else:
                cur = None
            out[-1:] = [(out[-1] if out else "") + label]
            args = get_args(tp)
            tp = args[0] if args else Any
    return out, _unwrap(tp), cur


def _explain(data: dict[str, Any], text: str) -> SchemaError:
    m = _AT.match(text)
    assert m is not None
    msg, raw = m.group("msg"), m.group("path") or ""
    segments, tp, _value = _walk(data, raw)
    path = ".".join(segments)
    field_names = [f.name for f in msgspec.structs.fields(tp)] if _is_struct(tp) else []
    if unknown := re.match(r"Object contains unknown field `(.+)`", msg):
        key = unknown.group(1)
        close = difflib.get_close_matches(key, field_names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(field_names)}"
        return SchemaError(f"{path}.{key}" if path else key, f"unknown key ({hint})")
    if missing := re.match(r"Object missing required field `(.+)`", msg):
        key = missing.group(1)
        owner = f"{segments[0].rstrip('s')} {segments[1]}" if len(segments) == 2 else path
        return SchemaError(
            f"{path}.{key}" if path else key,
            f"missing field ({owner or 'the file'} needs it)",
        )
    if enum := re.match(r"Invalid enum value (.+)", msg):
        allowed = _literal_values(data, raw)
        field_name = segments[-1] if segments else "value"
        return SchemaError(
            path, f"unknown {field_name} {enum.group(1)} (one of {', '.join(allowed)})"
        )
    return SchemaError(path, msg[:1].lower() + msg[1:].replace("`", ""))


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _literal_values(data: dict[str, Any], raw: str) -> list[str]:
    parent, _, name = raw.rpartition(".")
    _, tp, _ = _walk(data, parent)
    if not _is_struct(tp):
        return []
    hints = get_type_hints(tp, include_extras=True)
    return [str(v) for v in get_args(_unwrap(hints.get(name, Any)))]


# -- documentation ----------------------------------------------------------------------------

_TABLES: list[tuple[str, type[msgspec.Struct]]] = [
    ("[lab]", LabSpec),
    ("[operators.NAME]", OperatorSpec),
    ("[elements.NAME]", ElementSpec),
    ("[[subscribers]]", SubscriberSpec),
    ("[ues.NAME]", UeSpec),
    ("[li]", LiSpec),
    ("[li.lemf]", LemfSpec),
    ("[li.operators.NAME]", LiOperatorSpec),
    ("[store]", StoreSpec),
]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _type_name(tp: Any) -> str:
    tp = _unwrap(tp)
    if get_origin(tp) is Literal:
        return " \\| ".join(f'`"{v}"`' for v in get_args(tp))
    if get_origin(tp) in (list, tuple):
        inner = ", ".join(_type_name(a) for a in get_args(tp))
        return f"[{inner}]"
    if get_origin(tp) is dict:
        return "table"
    return getattr(tp, "__name__", str(tp))


def _description(tp: Any) -> str:
    parts = []
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        for meta in args[1:]:
            if isinstance(meta, msgspec.Meta) and meta.description:
                parts.append(meta.description)
        tp = args[0]
    return "; ".join(reversed(parts))


def markdown() -> str:
    """The schema as Markdown tables, one per TOML table (the reference in docs/topology.md)."""
    lines: list[str] = []
    for title, struct in _TABLES:
        summary = (struct.__doc__ or "").split("\n")[0].strip()
        lines += [f"### `{title}`", "", _capital(re.sub(r"^``[^`]+``: ", "", summary)), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        hints = get_type_hints(struct, include_extras=True)
        for f in msgspec.structs.fields(struct):
            if _is_struct(_unwrap(f.type)):
                continue  # a sub-table: documented under its own heading
            if f.required:
                default = "**required**"
            else:
                value = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
                default = "—" if value is None else f"`{json.dumps(value)}`"
            hint = hints[f.name]
            lines.append(f"| `{f.name}` | {_type_name(hint)} | {default} | {_description(hint)} |")
        lines.append("")
    hints = get_type_hints(TopologySpec, include_extras=True)
    lines += [
        "### `[peering]`, `[tel]`",
        "",
        f"`[peering]`: {_description(hints['peering'])}. `[tel]`: {_description(hints['tel'])}.",
        "",
    ]
    return "\n".join(lines)
