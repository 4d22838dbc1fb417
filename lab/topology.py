"""The lab topology: one TOML file describing the whole IMS network.

The model (see ``lab/lab.toml``, the built-in default):

* ``[operators.X]`` — a network operator with its SIP ``domain``. The lab has two home operators
  (A and B), a visited network (its P-CSCF serves inbound roamers), a separate media-path provider
  (it runs a media anchor but sees no signalling) and an Internet SIP service.
* ``[elements.NAME]`` — one network element: ``role`` (``pcscf``, ``scscf``, ``anchor``,
  ``internet_proxy``), its ``operator``, its ``address`` and ports. A P-CSCF names its media
  ``anchor`` and whether it offers SIP over ``tls`` on the UE hop.
* ``[peering]`` — domain -> element serving it (stands in for DNS + the I-CSCF);
  ``[tel]`` — number prefix -> domain (stands in for ENUM).
* ``[[subscribers]]`` — the HSS: IMPI, IMPUs (one may be a tel URI), digest password.
* ``[ues.NAME]`` — a device: which subscriber, which first hop (``pcscf``), its address and the
  transport on the UE hop.
* ``[li]`` (optional) — lawful interception in the running lab: ``[li.lemf]`` the LEMF (its
  ``address``, X2/X3 ``port``, output dir ``out``), ``[li.operators.X]`` which ``elements`` of
  operator X run an X1 NE with POIs (IRI at P-/S-CSCFs, CC at anchors), their ``x1_port`` and the
  operator's X1 ``pki`` dir; ``delivery`` is ``tcp`` (default) or ``tls``; ``state_dir`` holds
  generated PKIs, NE state and (by default) the LEMF output (default ``$IMSLAB_STATE`` or
  ``/tmp/imslab-state``). Relative paths are taken from the topology file's directory.

The file is checked against the schema in :mod:`lab.schema` (types, allowed values, unknown
keys refused, the place of a problem named as ``elements.pcscf-a.address``), then the
cross-references are checked here. ``docs/topology.md`` is the reference generated from it.

Addresses: each element has its own loopback address with the standard ports. Host octets are
unique across the lab, so :func:`load` can *override* the addressing: ``net_offset`` shifts the
third octet (labs side by side: 127.0.10-19 -> 127.0.30-39), ``subnet`` collapses everything
into one /24 keeping the host octets (tests: ``127.0.7``; network namespaces: ``10.231.7``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ims.errors import ImsError
from lab import schema

SIP_PORT = 5060
SIPS_PORT = 5061
ANCHOR_CONTROL_PORT = 2223
RTP_PORTS = (30000, 39999)
ROLES = ("pcscf", "scscf", "anchor", "internet_proxy", "kms")
KMS_PORT = 8444  # the home operator's KMS (MIKEY-SAKKE keys, MIKEY-TICKET), HTTPS with mTLS
X1_PORT = 8443
T3_PORT = 2224  # LI_T3: the P-CSCF's IRI-POI triggers the anchor's CC-POI (UDP, JSON)
LEMF_PORT = 50100
LI_ROLES = ("pcscf", "scscf", "anchor")
DELIVERY = ("tcp", "tls")


class TopologyError(ImsError, ValueError):
    """The topology file is inconsistent (unknown reference, duplicate address...).

    ``path`` is where in the file, when known (``elements.pcscf-a.address``); ``hint`` what
    to do, when it is not "fix the file" (a bad ``--subnet`` is an option, not the file).
    """

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.hint = hint


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    name: str
    domain: str
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Element:
    name: str
    role: str
    operator: str
    address: str
    sip_port: int = SIP_PORT
    tls_port: int = SIPS_PORT
    tls: bool = False
    anchor: str | None = None
    control_port: int = ANCHOR_CONTROL_PORT
    rtp_ports: tuple[int, int] = RTP_PORTS
    engine: str = "imslab"  # an anchor's relay: our MediaAnchor or rtpengine (lab.rtpengine)

    @property
    def sip_uri(self) -> str:
        """The element's own SIP URI (loose routing), as used in Path/Record-Route/Service-Route."""
        return f"sip:{self.address}:{self.sip_port};lr"


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscriber:
    impi: str
    impus: tuple[str, ...]
    password: str

    @property
    def domain(self) -> str:
        return self.impi.rpartition("@")[2]

    @property
    def username(self) -> str:
        return self.impi.rpartition("@")[0]

    @property
    def sip_impu(self) -> str:
        """The first ``sip:`` IMPU: the default public identity."""
        for impu in self.impus:
            if impu.startswith("sip:"):
                return impu
        return self.impus[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class UeSpec:
    name: str
    subscriber: str
    pcscf: str
    address: str
    transport: str = "udp"
    sip_port: int = SIP_PORT


@dataclass(frozen=True, slots=True, kw_only=True)
class LemfSpec:
    """The LEMF (law enforcement monitoring facility): where X2/X3 are delivered."""

    name: str = "lemf"
    address: str
    port: int = LEMF_PORT
    out: str | None = None  # default: <state_dir>/lemf


@dataclass(frozen=True, slots=True, kw_only=True)
class LiOperator:
    """One operator's LI: which of its elements run an X1 NE + POIs, on which X1 port."""

    operator: str
    elements: tuple[str, ...]
    x1_port: int = X1_PORT
    pki: str | None = None  # default: <state_dir>/li/<operator>/pki


@dataclass(frozen=True, slots=True, kw_only=True)
class LiConfig:
    lemf: LemfSpec
    operators: dict[str, LiOperator]
    delivery: str = "tcp"
    state_dir: str | None = None
    t3_port: int = T3_PORT
    plan: str = ""  # set by Topology.remap: "net-offset-N" / "subnet-A.B.C"

    def state(self) -> Path:
        """The LI state dir; a moved lab (``--net-offset``/``--subnet``) gets its own
        sub-directory of the default one, so labs side by side never share NE stores."""
        if self.state_dir:
            return Path(self.state_dir)
        return default_state_dir(self.plan)

    def operator_of(self, element: str) -> LiOperator | None:
        for op in self.operators.values():
            if element in op.elements:
                return op
        return None

    def pki_dir(self, operator: str) -> Path:
        op = self.operators[operator]
        return Path(op.pki) if op.pki else self.state() / "li" / operator / "pki"

    def ne_state(self, element: str) -> Path:
        op = self.operator_of(element)
        assert op is not None
        return self.state() / "li" / op.operator / element

    def delivery_pki_dir(self) -> Path:
        return self.state() / "li" / "x2x3-pki"

    def lemf_out(self) -> Path:
        return Path(self.lemf.out) if self.lemf.out else self.state() / "lemf"


def default_state_dir(plan: str = "") -> Path:
    """``$IMSLAB_STATE`` or ``/tmp/imslab-state``; a moved lab gets its own sub-directory."""
    base = Path(os.environ.get("IMSLAB_STATE") or Path(tempfile.gettempdir()) / "imslab-state")
    return base / plan if plan else base


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """``[store]``: the backend of the elements' shared, durable state (:mod:`ims.store`)."""

    backend: str = "sqlite"
    url: str | None = None
    plan: str = ""  # set by Topology.remap, like LiConfig.plan

    def directory(self) -> Path:
        return default_state_dir(self.plan) / "store"

    def managed_redis(self) -> Path | None:
        """The directory of the lab's own redis-server (redis backend, no ``url``), else None."""
        if self.backend == "redis" and self.url is None:
            return self.directory() / "redis"
        return None

    def resolved_url(self, lab: str) -> str:
        if self.url is not None:
            return self.url
        redis_dir = self.managed_redis()
        if redis_dir is not None:
            return f"unix://{redis_dir / 'redis.sock'}"
        return f"sqlite://{(self.directory() / (lab + '.db')).resolve()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    name: str
    operators: dict[str, Operator]
    elements: dict[str, Element]
    peering: dict[str, str]
    tel: dict[str, str]
    subscribers: dict[str, Subscriber]
    ues: dict[str, UeSpec]
    source: str = field(default="<built-in>")
    net_offset: int = 0
    subnet: str | None = None
    li: LiConfig | None = None
    store: StoreConfig = field(default_factory=StoreConfig)

    # --- look-ups -------------------------------------------------------------------------
    def element(self, name: str) -> Element:
        try:
            return self.elements[name]
        except KeyError:
            raise TopologyError(f"no element named {name!r} in the topology") from None

    def ue(self, name: str) -> UeSpec:
        try:
            return self.ues[name]
        except KeyError:
            raise TopologyError(f"no UE named {name!r} in the topology") from None

    def domain_of(self, element: str) -> str:
        return self.operators[self.element(element).operator].domain

    def by_role(self, role: str) -> list[Element]:
        return [e for e in self.elements.values() if e.role == role]

    def subscribers_of(self, domain: str) -> list[Subscriber]:
        return [s for s in self.subscribers.values() if s.domain == domain]

    def server_for_domain(self, domain: str) -> Element | None:
        """The element serving ``domain`` (S-CSCF or Internet proxy), from the peering table."""
        name = self.peering.get(domain.lower())
        return None if name is None else self.element(name)

    def domain_for_tel(self, number: str) -> str | None:
        """Home domain of a global tel number (longest matching prefix), or None."""
        best: str | None = None
        best_len = -1
        for prefix, domain in self.tel.items():
            if number.startswith(prefix) and len(prefix) > best_len:
                best, best_len = domain, len(prefix)
        return best

    def subscriber_of_ue(self, ue: str) -> Subscriber:
        return self.subscribers[self.ue(ue).subscriber]

    def ue_for_identity(self, identity: str) -> UeSpec | None:
        """The UE whose subscriber owns ``identity`` (an IMPU, IMPI or UE name)."""
        if identity in self.ues:
            return self.ues[identity]
        for ue in self.ues.values():
            sub = self.subscribers[ue.subscriber]
            if identity in sub.impus or identity == sub.impi:
                return ue
        return None

    def addresses(self) -> dict[str, str]:
        """Every element's and UE's address by name."""
        out = {n: e.address for n, e in self.elements.items()}
        out.update({n: u.address for n, u in self.ues.items()})
        if self.li is not None:
            out[self.li.lemf.name] = self.li.lemf.address
        return out

    def li_elements(self) -> list[str]:
        """Every element running an X1 NE + POIs (empty without ``[li]``)."""
        if self.li is None:
            return []
        return [n for op in self.li.operators.values() for n in op.elements]

    def cli_args(self) -> list[str]:
        """The ``--config/--net-offset/--subnet`` arguments that reload this very topology."""
        out = [] if self.source.startswith("<") else ["--config", self.source]
        if self.net_offset:
            out += ["--net-offset", str(self.net_offset)]
        if self.subnet is not None:
            out += ["--subnet", self.subnet]
        return out

    def remap(self, *, net_offset: int = 0, subnet: str | None = None) -> Topology:
        """The same lab on other addresses (see the module docstring)."""
        if not net_offset and subnet is None:
            return self
        fn = _address_mapper(net_offset=net_offset, subnet=subnet)
        elements = {
            n: dataclasses.replace(e, address=fn(e.address)) for n, e in self.elements.items()
        }
        ues = {n: dataclasses.replace(u, address=fn(u.address)) for n, u in self.ues.items()}
        li = self.li
        if li is not None:
            li = dataclasses.replace(
                li,
                lemf=dataclasses.replace(li.lemf, address=fn(li.lemf.address)),
                plan=f"subnet-{subnet}" if subnet is not None else f"net-offset-{net_offset}",
            )
        store = dataclasses.replace(
            self.store,
            plan=f"subnet-{subnet}" if subnet is not None else f"net-offset-{net_offset}",
        )
        topo = dataclasses.replace(
            self,
            elements=elements,
            ues=ues,
            net_offset=net_offset,
            subnet=subnet,
            li=li,
            store=store,
        )
        _check_unique_addresses(topo)
        return topo


def _address_mapper(*, net_offset: int, subnet: str | None) -> Any:
    if subnet is not None:
        parts = subnet.split(".")
        if len(parts) != 3 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
            raise TopologyError(
                f"--subnet {subnet!r} is not three octets",
                hint="give the first three octets of a /24, like 127.0.7",
            )

    def fn(address: str) -> str:
        octets = address.split(".")
        if subnet is not None:
            return f"{subnet}.{octets[3]}"
        third = int(octets[2]) + net_offset
        if not 0 <= third <= 255:
            raise TopologyError(
                f"--net-offset {net_offset} moves {address} out of range",
                hint="pick an offset that keeps every third octet in 0..255",
            )
        return f"{octets[0]}.{octets[1]}.{third}.{octets[3]}"

    return fn


def _check_unique_addresses(topo: Topology) -> None:
    seen: dict[str, str] = {}
    for name, addr in topo.addresses().items():
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            raise TopologyError(f"{name}: {addr!r} is not an IPv4 address") from None
        if addr in seen:
            raise TopologyError(f"{name} and {seen[addr]} share the address {addr}")
        seen[addr] = name


def parse(data: dict[str, Any], *, source: str = "<dict>") -> Topology:
    """Build and validate a :class:`Topology` from parsed TOML (schema: :mod:`lab.schema`)."""
    try:
        spec = schema.convert(data)
    except schema.SchemaError as exc:
        raise TopologyError(f"{source}: {exc}", path=exc.path) from None
    operators = {
        name: Operator(name=name, domain=o.domain.lower(), description=o.description)
        for name, o in spec.operators.items()
    }
    elements = {
        name: Element(
            name=name,
            role=e.role,
            operator=e.operator,
            address=e.address,
            sip_port=e.sip_port,
            tls_port=e.tls_port,
            tls=e.tls,
            anchor=e.anchor,
            control_port=e.control_port,
            rtp_ports=e.rtp_ports,
            engine=e.engine,
        )
        for name, e in spec.elements.items()
    }
    subscribers = {}
    for s in spec.subscribers:
        sub = Subscriber(impi=s.impi.lower(), impus=tuple(s.impus), password=s.password)
        subscribers[sub.impi] = sub
    ues = {
        name: UeSpec(
            name=name,
            subscriber=u.subscriber.lower(),
            pcscf=u.pcscf,
            address=u.address,
            transport=u.transport,
            sip_port=u.sip_port,
        )
        for name, u in spec.ues.items()
    }
    topo = Topology(
        name=spec.lab.name,
        operators=operators,
        elements=elements,
        peering={k.lower(): v for k, v in spec.peering.items()},
        tel={k: v.lower() for k, v in spec.tel.items()},
        subscribers=subscribers,
        ues=ues,
        source=source,
        li=_parse_li(spec.li, source),
        store=StoreConfig(backend=spec.store.backend, url=spec.store.url),
    )
    try:
        _validate(topo)
    except TopologyError as exc:
        raise TopologyError(f"{source}: {exc}", path=exc.path) from None
    return topo


def _parse_li(spec: schema.LiSpec | None, source: str) -> LiConfig | None:
    if spec is None:
        return None
    base = Path(source).parent if not source.startswith("<") else Path.cwd()

    def path(value: str | None) -> str | None:
        return None if value is None else str(base / value)

    return LiConfig(
        lemf=LemfSpec(
            name=spec.lemf.name,
            address=spec.lemf.address,
            port=spec.lemf.port,
            out=path(spec.lemf.out),
        ),
        operators={
            op: LiOperator(
                operator=op, elements=tuple(o.elements), x1_port=o.x1_port, pki=path(o.pki)
            )
            for op, o in spec.operators.items()
        },
        delivery=spec.delivery,
        state_dir=path(spec.state_dir),
        t3_port=spec.t3_port,
    )


def _refuse(path: str, problem: str) -> TopologyError:
    return TopologyError(f"{path}: {problem}", path=path)


def _validate(topo: Topology) -> None:
    """Cross-references the schema cannot check; each error names its place in the file."""
    for e in topo.elements.values():
        at = f"elements.{e.name}"
        if e.role not in ROLES:
            raise _refuse(f"{at}.role", f"unknown role {e.role!r} (one of {', '.join(ROLES)})")
        if e.operator not in topo.operators:
            raise _refuse(f"{at}.operator", f"unknown operator {e.operator!r}")
        if e.anchor is not None and topo.elements.get(e.anchor, None) is None:
            raise _refuse(f"{at}.anchor", f"unknown anchor {e.anchor!r}")
        if e.anchor is not None and topo.elements[e.anchor].role != "anchor":
            raise _refuse(f"{at}.anchor", f"{e.anchor!r} is not an anchor")
    for domain, name in topo.peering.items():
        if name not in topo.elements:
            raise _refuse(f"peering.{domain}", f"unknown element {name!r}")
    for prefix, domain in topo.tel.items():
        if domain not in topo.peering:
            raise _refuse(f"tel.{prefix}", f"domain {domain!r} has no peering entry")
    for u in topo.ues.values():
        at = f"ues.{u.name}"
        if u.subscriber not in topo.subscribers:
            raise _refuse(f"{at}.subscriber", f"unknown subscriber {u.subscriber!r}")
        if u.pcscf not in topo.elements:
            raise _refuse(f"{at}.pcscf", f"unknown first hop {u.pcscf!r}")
        if u.transport not in ("udp", "tcp", "tls"):
            raise _refuse(f"{at}.transport", "transport must be udp, tcp or tls")
        if u.transport == "tls" and not topo.elements[u.pcscf].tls:
            raise _refuse(f"{at}.transport", f"{u.pcscf} does not offer TLS")
    if topo.li is not None:
        _validate_li(topo, topo.li)
    _check_unique_addresses(topo)


def _validate_li(topo: Topology, li: LiConfig) -> None:
    if li.delivery not in DELIVERY:
        raise _refuse("li.delivery", f"delivery must be one of {DELIVERY}, not {li.delivery!r}")
    if li.lemf.name in topo.elements or li.lemf.name in topo.ues:
        raise _refuse("li.lemf.name", f"{li.lemf.name!r} is already an element or UE")
    seen: dict[str, str] = {}
    for op in li.operators.values():
        at = f"li.operators.{op.operator}"
        if op.operator not in topo.operators:
            raise _refuse(at, "unknown operator")
        for name in op.elements:
            e = topo.elements.get(name)
            if e is None:
                raise _refuse(f"{at}.elements", f"unknown element {name!r}")
            if e.operator != op.operator and not _media_provider_of(topo, name, op.operator):
                raise _refuse(f"{at}.elements", f"{name} is not its element")
            if e.role not in LI_ROLES:
                raise _refuse(
                    f"{at}.elements", f"a {e.role} has no POI ({name}; one of {LI_ROLES})"
                )
            if name in seen:
                raise _refuse(f"{at}.elements", f"{name} is listed twice")
            seen[name] = op.operator


def _media_provider_of(topo: Topology, anchor: str, operator: str) -> bool:
    """``anchor`` is another operator's relay that ``operator``'s P-CSCFs buy their media path
    from: the operator's LI may list it, its CC-POI then armed over LI_T3 by those P-CSCFs
    (the media provider assisting the operator's interception, study 2.1 Q2)."""
    e = topo.elements[anchor]
    return e.role == "anchor" and any(
        p.operator == operator and p.role == "pcscf" and p.anchor == anchor
        for p in topo.elements.values()
    )


def default_path() -> Path:
    """Path of the built-in ``lab.toml`` (packaged with :mod:`lab`)."""
    return Path(str(resources.files("lab").joinpath("lab.toml")))


def load(
    path: str | Path | None = None, *, net_offset: int = 0, subnet: str | None = None
) -> Topology:
    """Load a topology file (the built-in one when ``path`` is None) and apply an override."""
    p = default_path() if path is None else Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise TopologyError(
            f"cannot read the topology {p}: {(exc.strerror or str(exc)).lower()}",
            hint="check the path",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{p}: not valid TOML: {exc}") from None
    return parse(data, source=str(p)).remap(net_offset=net_offset, subnet=subnet)


def add_arguments(parser: Any) -> None:
    """The common ``--config/--net-offset/--subnet`` options of every lab command and role."""
    parser.add_argument("--config", default=None, help="topology TOML (default: built-in lab)")
    parser.add_argument(
        "--net-offset", type=int, default=0, help="shift every address's third octet by N"
    )
    parser.add_argument(
        "--subnet", default=None, help="collapse all addresses into one /24, e.g. 127.0.7"
    )


def from_args(args: Any) -> Topology:
    return load(args.config, net_offset=args.net_offset, subnet=args.subnet)
