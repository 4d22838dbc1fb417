"""The matrix runner: per row of the study (li.study.EXPECTATIONS), a ladder of real calls.

For one row it climbs the capability ladder (:mod:`lab.matrix.ladder`, li.study.LADDER) and at
each rung

1. derives the topology of the scenario from the built-in lab (roaming through a home P-CSCF
   re-points the roamer at ``pcscf-a`` with the visited network's anchor on the media path; the
   separate-media-provider case gives ``pcscf-a`` the media provider's anchor);
2. provisions the MIKEY credentials of the method (:mod:`lab.matrix.credentials`) for the UEs;
3. starts the lab in-process and gives every element of the networks the rung involves its LI
   side (X1 over HTTPS with mutual TLS, X2/X3 exporter), then acts as the ADMF: everything LI
   may do is granted by an X1 ``ActivateTask`` -- the POIs of the intercepting network, those of
   the other networks on the path, the key material an operator holds (imslab task extension
   ``keyDelivery``), the MITM on signalling (``mitm``) with the other operators' assistance
   (an operator issues substitute certificates only while its own task authorises the MITM),
   the MITM on the media path (the anchor's task);
4. places the call (caller 440 Hz, callee 1000 Hz), hangs up, drains the exporters into the LEMF;
5. reads the LEMF's output files (and only those) and decides whether they hold the decrypted
   audio of both directions -- each direction its own tone -- directly or by joining one
   network's keys with another's CC (:mod:`lab.matrix.combine`).

It stops at the first rung that succeeds. "LI needed" is derived from that rung's evidence
(:func:`lab.matrix.ladder.needs_from_evidence`) and compared with the study.

Everything is real: UDP/TLS SIP through the proxies, SRTP through the anchors, X2/X3 over TCP to
the LEMF. Per-row addresses come from the topology override (``subnet``/``net_offset``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ims.log import get_logger
from ims.mikey.certs import Credentials, load_private_key, private_key_pem
from ims.mikey.sakke_store import kms_uri_of
from lab import ticket_credentials, topology
from lab.matrix import kms as matrix_kms
from lab.matrix.combine import direction_tones, joined_audio
from lab.matrix.credentials import LabPki, Pki, provision, self_signed
from lab.matrix.ladder import Evidence, Grants, grants, needs_from_evidence
from lab.matrix.report import CallResult, RungOutcome
from lab.mikey_hop import chain_intermediaries, chain_links, chain_secrets, intermediary_hook
from lab.orchestrator import Lab
from lab.topology import Topology
from li.keys import HopByHopIntermediary, KeyRecord, MikeySecrets, OperatorKeyPolicy
from li.kms_li import DeferredKeyPolicy
from li.lemf.receiver import LemfServer
from li.mitm.media import MediaMitm
from li.mitm.mikey import MikeyMitm
from li.mitm.signalling import SignallingMitm
from li.poi.cc import AnchorCcPoi
from li.study import (
    EXPECTATIONS,
    LADDER,
    Capability,
    Expectation,
    Method,
    Need,
    Observed,
    Scenario,
    compare,
    ts33106_statement,
)
from li.wiring import ElementLi
from li.x1.client import X1Client
from li.x1.model import (
    DeliveryType,
    DestinationDetails,
    ImslabTaskExtension,
    KeyDelivery,
    MitmAuthorisation,
    TargetIdentifier,
    TaskDetails,
)
from li.x1.ne import NetworkElementLI
from li.x1.tlsutil import LabPki as X1Pki
from li.x1.tlsutil import client_context, issue_client_cert, make_lab_pki
from li.x2x3.exporter import X2X3Exporter
from ue import keying_mikey, keying_ticket
from ue.keying_mikey import PUBLIC_PSK, MikeyCredentials, aor

_log = get_logger("lab.matrix")

CALLER_TONE = 440.0
CALLEE_TONE = 1000.0
DOMAINS = ["ims-a.test", "ims-b.test", "internet.test"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """One network's elements on the call's path and how its POIs attach."""

    iri: tuple[str, ...] = ()  # IRI-POIs (the first is the P-CSCF that triggers CC)
    cc: str | None = None  # its anchor, CC-POI triggered by its first IRI-POI
    tap: str | None = None  # an anchor tapped by the target's address (no signalling)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioPlan:
    """Who calls whom, who is the target, which network intercepts, who else is on the path."""

    caller: str  # UE name in the topology
    callee: str
    target: str  # the target UE (caller or callee)
    operator: str  # the intercepting operator (the target's network for this scenario)
    networks: dict[str, Network]  # operator -> its elements on the path (incl. ``operator``)
    media_anchor: str  # the anchor on the target's media path (where a media MITM sits)
    elements: dict[str, dict[str, Any]] = field(default_factory=dict)  # topology overrides
    ues: dict[str, dict[str, Any]] = field(default_factory=dict)


_B = Network(iri=("pcscf-b", "scscf-b"))
_M = Network(tap="anchor-m")

PLANS: dict[Scenario, ScenarioPlan] = {
    Scenario.HOME: ScenarioPlan(
        caller="alice",
        callee="bob",
        target="alice",
        operator="a",
        networks={"a": Network(iri=("pcscf-a", "scscf-a"), cc="anchor-a"), "b": _B, "m": _M},
        media_anchor="anchor-a",
    ),
    Scenario.HOME_TARGET_ANSWERS: ScenarioPlan(
        caller="bob",
        callee="alice",
        target="alice",
        operator="a",
        networks={"a": Network(iri=("pcscf-a", "scscf-a"), cc="anchor-a"), "b": _B, "m": _M},
        media_anchor="anchor-a",
    ),
    Scenario.ROAMING_VISITED_PCSCF: ScenarioPlan(
        caller="carol",
        callee="bob",
        target="carol",
        operator="v",
        networks={
            "v": Network(iri=("pcscf-v",), cc="anchor-v"),
            "a": Network(iri=("scscf-a",)),
            "b": _B,
            "m": _M,
        },
        media_anchor="anchor-v",
    ),
    # the roamer keeps its home P-CSCF over a protected (TLS) hop; the visited network only
    # carries the media (its anchor stands for the visited access network's gateway)
    Scenario.ROAMING_HOME_PCSCF: ScenarioPlan(
        caller="carol",
        callee="bob",
        target="carol",
        operator="v",
        networks={
            "v": Network(tap="anchor-v"),
            "a": Network(iri=("pcscf-a", "scscf-a")),
            "b": _B,
            "m": _M,
        },
        media_anchor="anchor-v",
        elements={"pcscf-a": {"anchor": "anchor-v"}},
        ues={"carol": {"pcscf": "pcscf-a"}},
    ),
    # the Internet SIP service is outside any IMS operator's LI: no other network to task
    Scenario.NON_IMS_PEER: ScenarioPlan(
        caller="alice",
        callee="dave",
        target="alice",
        operator="a",
        networks={"a": Network(iri=("pcscf-a", "scscf-a"), cc="anchor-a")},
        media_anchor="anchor-a",
    ),
    # operator A buys its media path from the media provider: A sees signalling, M the media
    Scenario.MEDIA_PROVIDER: ScenarioPlan(
        caller="alice",
        callee="bob",
        target="alice",
        operator="a",
        networks={"a": Network(iri=("pcscf-a", "scscf-a")), "m": _M, "b": _B},
        media_anchor="anchor-m",
        elements={"pcscf-a": {"anchor": "anchor-m"}},
    ),
}

# issue 13 item 5: the home network intercepts its roamer, who uses the visited P-CSCF: the
# home S-CSCF sees the signalling (and SDES keys), the media stays on the visited anchor
PLANS[Scenario.ROAMING_HOME_NETWORK] = ScenarioPlan(
    caller="carol",
    callee="bob",
    target="carol",
    operator="a",
    networks={
        "a": Network(iri=("scscf-a",)),
        "v": Network(iri=("pcscf-v",), cc="anchor-v"),
        "b": _B,
        "m": _M,
    },
    media_anchor="anchor-v",
)

#: keying name and PKI of each case of the study (its credentials, not its verdict)
METHODS: dict[Method, tuple[str, Pki]] = {
    Method.SDES: ("sdes", Pki.NONE),
    Method.PSK_E2E: ("psk", Pki.NONE),
    Method.PSK_PUBLIC: ("psk-public", Pki.NONE),
    Method.PSK_HOP: ("psk-hop", Pki.NONE),
    Method.PSK_HOP_CSCF: ("psk-hop-cscf", Pki.NONE),  # issue 13 item 6: via the S-CSCFs too
    Method.DHHMAC_HOP: ("dhhmac-hop", Pki.NONE),  # issue 13 item 6: HMAC via intermediaries
    Method.PKE_A: ("pke", Pki.EXTERNAL),
    Method.PKE_A_MITM: ("pke", Pki.EXTERNAL),
    Method.PKE_B: ("pke", Pki.OPERATOR),
    Method.PKE_B_ONE: ("pke", Pki.OPERATOR),
    Method.PKE_C: ("pke", Pki.OPERATOR_ESCROW),
    Method.PKE_D: ("pke", Pki.SELF_SIGNED),
    Method.RSA_R: ("rsa-r", Pki.OPERATOR),
    Method.DH_SIGN: ("dh", Pki.OPERATOR),
    Method.DH_SIGN_ONE: ("dh", Pki.OPERATOR),
    Method.DH_SELF_SIGNED: ("dh", Pki.SELF_SIGNED),
    Method.DHHMAC: ("dhhmac", Pki.NONE),
    Method.DHHMAC_PUBLIC: ("dhhmac", Pki.NONE),
    Method.SAKKE: ("sakke", Pki.NONE),  # keys from the operators' KMSs (lab.matrix.kms)
    Method.TICKET: ("ticket", Pki.NONE),  # tickets from the KMS elements (lab.ticket_credentials)
    # issue 13, item 6: the case variants (same MIKEY modes, other credentials)
    Method.RSA_R_A: ("rsa-r", Pki.EXTERNAL),
    Method.RSA_R_C: ("rsa-r", Pki.OPERATOR_ESCROW),
    Method.RSA_R_D: ("rsa-r", Pki.SELF_SIGNED),
    Method.DH_A: ("dh", Pki.EXTERNAL),
    Method.PKE_B_FLAT: ("pke", Pki.OPERATOR_FLAT),
    # issue 13, item 4: the users' PSK, set up with the caller's operator's help (study Q6)
    Method.PSK_OPERATOR: ("psk", Pki.NONE),
    # issue 13, item 3: SDES through the operator, the users' own SRTP layer inside (ue.user_layer)
    Method.SDES_USER_LAYER: ("sdes-user-layer", Pki.NONE),
    # issue 13, items 2 and 5: SDES to the access edge (proxies.e2ae on every P-CSCF/anchor)
    Method.SDES_E2AE: ("sdes-e2ae", Pki.NONE),
}

#: methods keyed hop by hop through every P-CSCF and S-CSCF (lab.mikey_hop.chain_intermediaries)
CHAIN_METHODS = frozenset({Method.PSK_HOP_CSCF, Method.DHHMAC_HOP})


def target_of(plan: ScenarioPlan, topo: Topology) -> str:
    """The target's AoR (``sip:user@domain``)."""
    return aor(topo.subscribers[topo.ues[plan.target].subscriber].sip_impu)


def _first_hop_keys(
    topo: Topology, inter: HopByHopIntermediary | None, target: str
) -> tuple[bytes, bytes] | None:
    """At the target's P-CSCF in a chain: (the target's link key, the key of the link to the
    P-CSCF's home S-CSCF) -- what the operator's own intermediary holds, so its MITM can
    authenticate toward both sides (DHHMAC through intermediaries, study 2.3.4)."""
    if inter is None or target not in inter.ue_psks:
        return None
    home = topo.peering.get(target.rpartition("@")[2])
    key = None if home is None else inter.link_psks.get(topo.element(home).address)
    return None if key is None else (inter.ue_psks[target], key)


#: methods whose PSK the caller's operator helped set up (and keeps: lent over X1)
OPERATOR_PSK_METHODS = frozenset({Method.PSK_OPERATOR})

OPERATOR_OF_DOMAIN = {"ims-a.test": "a", "ims-b.test": "b", "internet.test": "inet"}


def _domain_of_operator(op: str) -> str | None:
    return next((d for d, o in OPERATOR_OF_DOMAIN.items() if o == op), None)


def scenario_topology(base: Topology, plan: ScenarioPlan) -> Topology:
    """The built-in topology with the scenario's overrides (frozen dataclasses: replaced)."""
    elements = dict(base.elements)
    for name, changes in plan.elements.items():
        elements[name] = dataclasses.replace(elements[name], **changes)
    ues = dict(base.ues)
    for name, changes in plan.ues.items():
        ues[name] = dataclasses.replace(ues[name], **changes)
    return dataclasses.replace(base, elements=elements, ues=ues)


class _Authority:
    """What the X1 tasks currently authorise, per element (fed by the NEs' ``on_change``).

    This is the only way a capability reaches the MITM, the media MITM, the substitute
    certificates and the operator-held keys: no task, no capability.
    """

    def __init__(self, operator_of: dict[str, str]) -> None:
        self.operator_of = operator_of  # element -> operator
        self.tasks: dict[str, dict[uuid.UUID, Any]] = {}  # element -> xid -> TaskDetails
        self.keys: dict[tuple[str, uuid.UUID], Any] = {}  # (element, xid) -> lent private key
        self.psks: dict[tuple[str, uuid.UUID], bytes] = {}  # (element, xid) -> lent PSK (Q6)

    def listener(self, element: str) -> Callable[[Any], None]:
        def on_change(event: Any) -> None:
            task = getattr(event, "task", None)
            if task is not None:
                self.tasks.setdefault(element, {})[task.xid] = task
                kd = getattr(task.extension, "key_delivery", None) if task.extension else None
                if kd is not None and kd.mikey_private_key_pem:
                    # parsed (and validated) once, when the task arrives: never on a call's
                    # signalling path, where RSA key validation would hold up the SIP
                    self.keys[(element, task.xid)] = load_private_key(
                        kd.mikey_private_key_pem.encode()
                    )
                if kd is not None and kd.mikey_psk:
                    self.psks[(element, task.xid)] = kd.mikey_psk
            elif isinstance(getattr(event, "xid", None), uuid.UUID):
                self.tasks.get(element, {}).pop(event.xid, None)
                self.keys.pop((element, event.xid), None)
                self.psks.pop((element, event.xid), None)

        return on_change

    def _mitm(self, element: str) -> list[MitmAuthorisation]:
        out = []
        for t in self.tasks.get(element, {}).values():
            m = getattr(t.extension, "mitm", None) if t.extension else None
            if m is not None and m.valid_at(time.time()):
                out.append(m)
        return out

    def assisting(self) -> set[str]:
        """Operators with a task that authorises the MITM on signalling."""
        return {self.operator_of[e] for e in self.tasks if any(m.signalling for m in self._mitm(e))}

    def media(self, element: str) -> bool:
        return any(m.media for m in self._mitm(element))

    def lent_targets(self, element: str) -> list[str]:
        """Targets of the element's tasks that ask for the operator's key material."""
        return [
            t.value
            for task in self.tasks.get(element, {}).values()
            if task.extension is not None and task.extension.key_delivery is not None
            for t in task.targets
        ]

    def private_keys(self, element: str) -> list[Any]:
        """The private keys the element's active tasks lend it."""
        return [k for (el, _), k in self.keys.items() if el == element]

    def lent_psks(self, element: str) -> tuple[bytes, ...]:
        """The PSKs the element's active tasks lend it (the operator helped set them up)."""
        return tuple(k for (el, _), k in self.psks.items() if el == element)


class _Substitutes:
    """Substitute credentials the assisting operators issue for the MITM (cached).

    An operator issues a certificate for one of its subscribers only while its own X1 task
    authorises the MITM; a self-signed one anybody can make (but only an authorised MITM asks).
    """

    def __init__(self, pki: LabPki, authority: _Authority, *, now: float, bits: int) -> None:
        self.pki, self.authority, self.now, self.bits = pki, authority, now, bits
        self.issued: dict[str, Credentials] = {}
        self.issuers: set[str] = set()  # operators whose CA vouched for a substitute

    def __call__(self, identity: str) -> Credentials | None:
        """The substitute for ``identity``, if its operator assists (the MITM uses it)."""
        return self._get(identity, use=True)

    def prepare(self, identity: str) -> None:
        """Issue in advance what the assisting operators would issue (key generation takes
        100s of ms: never on the call's signalling path); nothing counts as used."""
        self._get(identity, use=False)

    def _get(self, identity: str, *, use: bool) -> Credentials | None:
        ident = aor(identity)
        domain = ident.rpartition("@")[2]
        assisting = self.authority.assisting()
        if self.pki.kind is Pki.SELF_SIGNED:
            if not assisting:
                return None
            if ident not in self.issued:
                self.issued[ident] = self_signed(ident, now=self.now, bits=self.bits)
            return self.issued[ident]
        op = OPERATOR_OF_DOMAIN.get(domain)
        if self.pki.kind is Pki.OPERATOR_FLAT and op not in assisting:
            # a flat trust store: any assisting operator's CA vouches for any name
            op = next((o for o in sorted(assisting) if _domain_of_operator(o)), None)
            domain = (_domain_of_operator(op) if op else None) or ""
        if op is None or op not in assisting or domain not in self.pki.operator_cas:
            return None
        if ident not in self.issued:
            self.issued[ident] = self.pki.issue(domain, ident, now=self.now, bits=self.bits)
        if use:
            self.issuers.add(op)
        return self.issued[ident]


class _TaskKeys:
    """An operator's MIKEY opener: its legitimate secrets plus the private keys its X1 tasks
    lend (``keyDelivery``), matched to the subscriber whose certificate they belong to."""

    def __init__(
        self, base: MikeySecrets, authority: _Authority, element: str, pki: LabPki
    ) -> None:
        self.base, self.authority, self.element, self.pki = base, authority, element, pki
        self._owners: dict[int, list[str]] = {}

    def __call__(self, call_id: str, offer: bytes, answer: bytes | None) -> list[KeyRecord]:
        keys: dict[str, object] = {}
        for key in self.authority.private_keys(self.element):
            if id(key) not in self._owners:  # whose certificate the key belongs to: once
                pub = key.public_key().public_numbers()
                self._owners[id(key)] = [
                    user
                    for user, creds in self.pki.users.items()
                    if creds.certificate.public_key().public_numbers() == pub  # type: ignore[union-attr]
                ]
            keys.update({user: key for user in self._owners[id(key)]})
        opener = dataclasses.replace(
            self.base,
            private_keys=keys or None,
            operator_psks=self.authority.lent_psks(self.element),
        )
        return opener(call_id, offer, answer)


@dataclass(slots=True)
class _Capture:
    """What the LI side of one rung did (besides what reached the LEMF)."""

    mitm: list[MikeyMitm] = field(default_factory=list)
    nes: dict[str, NetworkElementLI] = field(default_factory=dict)
    li: dict[str, ElementLi] = field(default_factory=dict)  # li.wiring, by element
    removers: list[Callable[[], None]] = field(default_factory=list)
    xids: dict[str, uuid.UUID] = field(default_factory=dict)  # operator -> XID
    media_mitm: MediaMitm | None = None
    call_id: str = ""


class MatrixRunner:
    """Runs rows; one LEMF (the agency) for every row this runner runs."""

    def __init__(
        self,
        work: Path,
        *,
        subnet: str | None = None,
        net_offset: int = 0,
        media_seconds: float = 1.2,
        bits: int = 2048,
        lemf_host: str | None = None,
    ) -> None:
        self.work = work
        self.subnet = subnet
        self.net_offset = net_offset
        self.media_seconds = media_seconds
        self.bits = bits
        self.base = topology.load(subnet=subnet, net_offset=net_offset)
        self.lemf_host = (
            lemf_host or self.base.elements["pcscf-a"].address.rsplit(".", 1)[0] + ".250"
        )
        self.lemf: LemfServer | None = None
        self.x1_host = self.lemf_host.rsplit(".", 1)[0] + ".251"
        self.x1_pki: X1Pki | None = None
        self.x2x3_pki: X1Pki | None = None
        self._kms: dict[str, Any] = {}  # a sakke row's KMS cores by domain (lab.matrix.kms)
        # a ticket row's KMS elements by domain, reached over HTTPS as in the running lab
        self._ticket_kms: dict[str, Any] = {}

    async def __aenter__(self) -> MatrixRunner:
        self.work.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("IMSLAB_PKI", str(self.work / "pki"))
        os.environ.setdefault("IMSLAB_STATE", str(self.work / "state"))  # the KMSs' secrets
        self.x1_pki = make_lab_pki(self.work / "x1-pki", hosts=(self.x1_host,))
        # X2/X3 over mutual TLS: the LEMF binds each POI certificate's CN to its NFID
        self.x2x3_pki = make_lab_pki(
            self.work / "x2x3-pki", server_name="lemf", client_name="poi", hosts=(self.lemf_host,)
        )
        self.lemf = LemfServer(
            self.work / "lemf", host=self.lemf_host, ssl=self.x2x3_pki.server_context()
        )
        await self.lemf.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.lemf is not None:
            await self.lemf.close()
        keying_mikey.configure(None)

    def _network_element(self, name: str, state: Path) -> NetworkElementLI:
        """An element's LI side: X1 server (HTTPS, mutual TLS), task store, X2/X3 exporter."""
        assert self.x1_pki is not None and self.x2x3_pki is not None
        x2x3 = self.x2x3_pki
        return NetworkElementLI(
            ne_id=name,
            state_dir=state / name,
            x1_host=self.x1_host,
            x1_tls=self.x1_pki.server_context(),
            # X2/X3 over mutual TLS, the client certificate naming the element (its NFID)
            x2x3_tls=client_context(
                x2x3.ca, *dataclasses.astuple(issue_client_cert(x2x3.ca.parent, name))
            ),
        )

    # --- one row: the ladder ------------------------------------------------------------------

    async def run(self, exp: Expectation, *, withheld: Iterable[Capability] = ()) -> CallResult:
        """Climb the row's ladder from ``exp.first_rung``; stop at the first success."""
        t0 = time.monotonic()
        held_back = frozenset(exp.withheld) | frozenset(withheld)
        result = CallResult.for_expectation(exp)
        result.withheld = sorted(c.value for c in held_back)
        plan = PLANS[exp.scenario]
        topo = scenario_topology(self.base, plan)
        users = [
            topo.subscribers[topo.ues[u].subscriber].sip_impu for u in (plan.caller, plan.callee)
        ]
        # the users' credentials, the same for every rung (what the users and operators hold)
        creds, pki = provision(
            METHODS[exp.method][1],
            users,
            DOMAINS,
            now=time.time(),
            bits=self.bits,
            dhhmac_public=exp.method is Method.DHHMAC_PUBLIC,
            operator_psk=exp.method in OPERATOR_PSK_METHODS,
        )
        self._kms = matrix_kms.provision(users) if exp.method is Method.SAKKE else {}
        self._ticket_kms = {}
        if exp.method is Method.TICKET:
            keying_ticket.configure(ticket_credentials.ensure(topo))
            self._ticket_kms = ticket_credentials.kms_elements(topo)
        previous: Grants | None = None
        success: tuple[RungOutcome, Evidence] | None = None
        for rung in LADDER[LADDER.index(exp.first_rung) :]:
            g, why = _effective(grants(rung, held_back), exp)
            if rung in held_back:
                result.rungs.append(RungOutcome(rung=rung.value, skipped="withheld"))
                continue
            if g == previous:
                result.rungs.append(
                    RungOutcome(
                        rung=rung.value,
                        skipped="grants nothing beyond the rung below"
                        + (f" ({why})" if why else ""),
                    )
                )
                continue
            previous = g
            outcome, evidence = await self._rung(exp, rung, g, creds, pki)
            glitch = _lab_glitch(outcome)
            if evidence is None and glitch:
                # not a capability result but the lab's media path under load: the call once
                # more, and both attempts on record
                first = outcome.summary()
                outcome, evidence = await self._rung(exp, rung, g, creds, pki)
                outcome.repeated = f"{glitch}; first attempt: {first}"
            result.rungs.append(outcome)
            if evidence is not None:
                success = (outcome, evidence)
                break
        self._conclude(exp, result, success)
        result.duration_s = round(time.monotonic() - t0, 2)
        return result

    def _conclude(
        self,
        exp: Expectation,
        result: CallResult,
        success: tuple[RungOutcome, Evidence] | None,
    ) -> None:
        tried = [o for o in result.rungs if not o.skipped]
        shown = success[0] if success is not None else (tried[0] if tried else None)
        needs = needs_from_evidence(success[1] if success is not None else None)
        result.rung = success[0].rung if success is not None else None
        result.needs = [n.value for n in sorted(needs, key=list(Need).index)]
        if shown is not None:
            result.call_succeeded = shown.call_ok
            result.keys_recovered = success is not None
            result.audio_recovered = success is not None
            result.wavs = dict(shown.wavs)
            result.tones_hz = {d: a["peak_hz"] for d, a in shown.audio.items()}
            result.lemf_dirs = dict(shown.lemf_dirs)
            result.xids = dict(shown.xids)
            result.notes = list(shown.notes)
        user_applied = any(o.user_applied for o in tried)
        # the operator's own layer decrypted (keys it legitimately got, no MITM) and still no
        # audio: what is left is the users' own encryption
        own = PLANS[exp.scenario].operator
        outer_only = success is None and any(set(o.keys.get(own, [])) - {"mitm", ""} for o in tried)
        own_keys = success is not None and success[1].keys_from == {own}
        # the audio came from CC the intercepting network decrypted itself (its e2ae anchor)
        en_clair = success is not None and success[0].audio_from.get("media") in (
            set(success[0].en_clair) & {own}
        )
        base = self.base
        target_domain = base.subscribers[
            base.ues[PLANS[exp.scenario].target].subscriber
        ].sip_impu.rpartition("@")[2]
        result.ts33106 = ts33106_statement(
            needs,
            user_applied=user_applied,
            outer_layer_only=outer_only,
            own_keys=own_keys,
            en_clair=en_clair,
            visited=OPERATOR_OF_DOMAIN.get(target_domain) != own,
        )
        result.differences = compare(
            exp,
            Observed(
                rung=Capability(result.rung) if result.rung else None,
                needs=needs,
                keys_recovered=result.keys_recovered,
                audio_recovered=result.audio_recovered,
                call_succeeded=result.call_succeeded,
            ),
        )

    # --- one rung: one call -----------------------------------------------------------------

    async def _rung(
        self, exp: Expectation, rung: Capability, g: Grants, creds: MikeyCredentials, pki: LabPki
    ) -> tuple[RungOutcome, Evidence | None]:
        plan = PLANS[exp.scenario]
        topo = scenario_topology(self.base, plan)
        keying, _ = METHODS[exp.method]
        caller_aor = topo.subscribers[topo.ues[plan.caller].subscriber].sip_impu
        callee_aor = topo.subscribers[topo.ues[plan.callee].subscriber].sip_impu
        target_aor = topo.subscribers[topo.ues[plan.target].subscriber].sip_impu
        now = time.time()
        networks = {
            op: net for op, net in plan.networks.items() if op == plan.operator or g.other_pois
        }
        operator_of = {
            name: op
            for op, net in networks.items()
            for name in (*net.iri, *((net.cc,) if net.cc else ()), *((net.tap,) if net.tap else ()))
        }
        authority = _Authority(operator_of)
        subs = _Substitutes(pki, authority, now=now, bits=self.bits)
        directory = dict(creds.directory)  # the real certificates; restored after the rung
        keying_mikey.configure(creds)
        outcome = RungOutcome(rung=rung.value, grants=g.describe())
        cap = _Capture()
        # the KMS elements only for the rows whose UEs talk to them
        names = [n for n, e in topo.elements.items() if e.role != "kms" or self._ticket_kms]
        async with Lab(topo, mode="inprocess", names=names) as lab:
            try:
                await self._attach(lab, topo, plan, exp, creds, pki, subs, authority, networks, cap)
                await self._provision(plan, topo, g, pki, target_aor, networks, cap)
                # study 2.3.1 case B step 1: the initiator fetches the responder's certificate;
                # an operator whose task authorises the MITM hands out the substitute
                if keying == "pke":
                    fake = subs(callee_aor)
                    if fake is not None:
                        creds.directory[aor(callee_aor)] = fake.certificate
                for party in (caller_aor, callee_aor):
                    subs.prepare(party)
                cap.call_id = await self._call(topo, plan, keying, callee_aor, outcome)
                for ne in cap.nes.values():
                    await ne.exporter.drain(timeout=15)
            finally:
                creds.directory = directory
                for remove in cap.removers:
                    remove()
                for element_li in cap.li.values():
                    await element_li.close()
        await asyncio.sleep(0.1)
        if self.lemf is not None:
            # every exporter drained (the LEMF acknowledged all of it): the explicit flush
            # request, after which the LEMF's files hold everything; from here on the runner
            # reads only those files
            self.lemf.flush()
        evidence = self._evaluate(plan, topo, pki, subs, cap, outcome)
        return outcome, evidence

    async def _attach(
        self,
        lab: Lab,
        topo: Topology,
        plan: ScenarioPlan,
        exp: Expectation,
        creds: MikeyCredentials,
        pki: LabPki,
        subs: _Substitutes,
        authority: _Authority,
        networks: dict[str, Network],
        cap: _Capture,
    ) -> None:
        clock = time.time
        state = self.work / "ne" / exp.key.replace("/", "-") / f"{time.time_ns():x}"

        def network_element(name: str) -> ElementLi:
            """The element's LI (li.wiring), its POIs attached by the caller, then started."""
            ne = self._network_element(name, state)
            ne.on_change.append(authority.listener(name))
            cap.nes[name] = ne
            running = cap.li[name] = ElementLi(ne, clock=clock)
            return running

        # hop-by-hop MIKEY intermediaries: a network function of the home P-CSCFs (psk-hop),
        # running whatever LI does
        network_psk: bytes | None = None
        if exp.method is Method.PSK_HOP:
            network_psk = os.urandom(32)
            ue_at = {
                topo.ues[u].address: topo.subscribers[topo.ues[u].subscriber].sip_impu
                for u in topo.ues
            }
            for name, el in topo.elements.items():
                if el.role != "pcscf":
                    continue
                mine = {
                    aor(topo.subscribers[spec.subscriber].sip_impu): creds.hop_psk[
                        aor(topo.subscribers[spec.subscriber].sip_impu)
                    ]
                    for spec in topo.ues.values()
                    if spec.pcscf == name
                    and aor(topo.subscribers[spec.subscriber].sip_impu) in creds.hop_psk
                }
                if mine:
                    inter = HopByHopIntermediary(ue_psks=mine, network_psk=network_psk)
                    cap.removers.append(
                        lab.elements[name].sip_hooks.add(intermediary_hook(inter, ue_at, clock))
                    )

        # the chain through the S-CSCFs as well (psk-hop-cscf): every P-CSCF and S-CSCF an
        # intermediary, each link its own fresh key for this rung
        # (psk-hop-cscf, dhhmac-hop); hooked last, after the POIs and the MITM function: a MITM
        # at the first hop answers the UE with the UE's key and forwards with the next link's
        chain_link: Callable[[str], bytes] | None = None
        chain: dict[str, HopByHopIntermediary] = {}
        if exp.method in CHAIN_METHODS:
            links = {name: os.urandom(32) for name in chain_links(topo)}
            chain_link = links.__getitem__
            chain = chain_intermediaries(topo, creds.hop_psk, chain_link)

        # the media MITM sits on the target's media path; it re-keys only while the anchor's
        # own task authorises it (hooked after the CC-POIs: they see the packets as they arrived)
        media_anchor = plan.media_anchor
        media_mitm = MediaMitm() if media_anchor in lab.elements else None
        cap.media_mitm = media_mitm

        for op, net in networks.items():
            cap.xids[op] = uuid.uuid4()
            op_domain = topo.operators[op].domain
            # the MIKEY secrets this operator legitimately holds: the publicly known PSK, the
            # hop PSKs of its P-CSCF intermediary; private keys only as its X1 task lends them
            base = MikeySecrets(
                public_psks=(PUBLIC_PSK,),
                hop_psks=(
                    {k: v for k, v in creds.hop_psk.items() if k.endswith("@" + op_domain)}
                    if network_psk is not None
                    else {}
                ),
                network_psk=network_psk,
                link_psks=(
                    chain_secrets(topo, op, creds.hop_psk, chain_link)
                    if chain_link is not None
                    else ()
                ),
            )
            cc_poi: AnchorCcPoi | None = None
            if net.cc is not None:
                cc_li = network_element(net.cc)
                # the CC-POI taps the anchor's content: as relayed, or decrypted where the
                # anchor terminates the SRTP (proxies.e2ae: delivered en clair, study Q4)
                cc_poi = cc_li.attach_cc(lab.elements[net.cc].edge.content_hooks)
                await cc_li.start()
            for i, name in enumerate(net.iri):
                iri_li = network_element(name)
                opener: Any = _TaskKeys(base, authority, name, pki)
                if op_domain in self._kms:  # a sakke row: the KMS LI function, when lent
                    opener = matrix_kms.TaskKmsOpener(
                        self._kms[op_domain], partial(authority.lent_targets, name), opener
                    )
                elif op_domain in self._ticket_kms:  # a ticket row: the KMS over HTTPS
                    opener = matrix_kms.TaskKmsOpener(
                        None,
                        partial(authority.lent_targets, name),
                        opener,
                        client=ticket_credentials.client(
                            topo,
                            self._ticket_kms[op_domain],
                            ticket_credentials.li_identity(op_domain),
                        ),
                        kms_name=kms_uri_of(op_domain),
                    )
                policy: Any = OperatorKeyPolicy(mikey=opener)
                if self._kms or self._ticket_kms:
                    policy = DeferredKeyPolicy(policy)
                # LI_T3 in one process: the operator's first IRI-POI arms its CC-POI directly
                poi = iri_li.attach_iri(
                    lab.elements[name].sip_hooks,
                    address=(topo.elements[name].address, topo.elements[name].sip_port),
                    extract_keys=policy,
                    trigger_cc=cc_poi.trigger if (i == 0 and cc_poi is not None) else None,
                )
                await iri_li.start()  # armed by X1 ActivateTask from here on
                if i == 0 and op == plan.operator:
                    # through intermediaries: the operator's own hop keys at its first hop
                    hop_keys = _first_hop_keys(topo, chain.get(name), target_of(plan, topo))
                    # the intercepting operator's MITM function at its first hop: it acts only
                    # for calls of a task that authorises it (li.mitm.signalling)
                    sig = SignallingMitm(
                        poi=poi,
                        substitutes=subs,
                        real_certificates=lambda ident: (
                            pki.users[aor(ident)].certificate if aor(ident) in pki.users else None
                        ),
                        on_keys=_mitm_sender(iri_li.ne.exporter, cap),
                        media=media_mitm,
                        media_authorised=lambda: authority.media(media_anchor),
                        known_psk=hop_keys[0] if hop_keys else PUBLIC_PSK,
                        responder_psk=hop_keys[1] if hop_keys else None,
                        clock=clock,
                    )
                    cap.removers.append(lab.elements[name].sip_hooks.add(sig.hook()))
            if net.tap is not None:
                # a media provider is tasked with the target's address (it never sees SIP)
                tap_li = network_element(net.tap)
                tap_li.attach_tap(lab.elements[net.tap].anchor.hooks)
                await tap_li.start()

        if chain:
            ue_at = {
                topo.ues[u].address: topo.subscribers[topo.ues[u].subscriber].sip_impu
                for u in topo.ues
            }
            for name, inter in chain.items():
                if name in lab.elements:
                    cap.removers.append(
                        lab.elements[name].sip_hooks.add(intermediary_hook(inter, ue_at, clock))
                    )

        if media_mitm is not None:
            gate = _media_gate(media_mitm, authority, media_anchor)
            cap.removers.append(lab.elements[media_anchor].anchor.hooks.add(gate))

    async def _provision(
        self,
        plan: ScenarioPlan,
        topo: Topology,
        g: Grants,
        pki: LabPki,
        target_aor: str,
        networks: dict[str, Network],
        cap: _Capture,
    ) -> None:
        """The ADMF: CreateDestination + ActivateTask over X1 (HTTPS) on every element, each
        task carrying exactly what the rung grants that operator."""
        assert self.lemf is not None and self.x1_pki is not None
        did = uuid.uuid4()
        dest = DestinationDetails(
            did=did,
            delivery_type=DeliveryType.X2_AND_X3,
            host=self.lemf_host,
            port=self.lemf.port,
            friendly_name="LEMF",
        )
        for op, net in networks.items():
            own = op == plan.operator
            signalling = g.mitm_signalling if own else g.others_assist
            held = _held_key(pki, topo.operators[op].domain) if g.operator_keys else None
            psk = pki.operator_psks.get(topo.operators[op].domain) if g.operator_keys else None
            anchors = tuple(a for a in (net.cc, net.tap) if a is not None)
            for name in (*net.iri, *anchors):
                ne = cap.nes[name]
                tap = name == net.tap
                mitm: MitmAuthorisation | None = None
                if name in anchors:
                    if g.mitm_media and name == plan.media_anchor:  # re-key SRTP here
                        mitm = MitmAuthorisation(
                            reference=f"matrix {op}", signalling=True, media=True
                        )
                elif signalling:  # rewrite key management (DH modes: with the media MITM)
                    mitm = MitmAuthorisation(
                        reference=f"matrix {op}", signalling=True, media=g.mitm_media
                    )
                kd = (
                    KeyDelivery(mikey_private_key_pem=held, mikey_psk=psk)
                    if (held or psk) and name in net.iri
                    else None
                )
                if g.operator_keys and (self._kms or self._ticket_kms) and name in net.iri:
                    kd = KeyDelivery()  # the operator's KMS LI function (lab.matrix.kms)
                ext = ImslabTaskExtension(mitm=mitm, key_delivery=kd) if mitm or kd else None
                target = (
                    TargetIdentifier(kind="ipv4Address", value=topo.ues[plan.target].address)
                    if tap
                    else TargetIdentifier(kind="sipUri", value=target_aor)
                )
                client = X1Client(
                    self.x1_host,
                    ne.x1_port,
                    ssl=self.x1_pki.client_context(),
                    admf_id="admf-1",
                    ne_id=name,
                )
                await client.create_destination(dest)
                await client.activate_task(
                    TaskDetails(
                        xid=cap.xids[op],
                        targets=(target,),
                        delivery_type=DeliveryType.X3_ONLY if tap else DeliveryType.X2_AND_X3,
                        dids=(did,),
                        extension=ext,
                    )
                )

    async def _call(
        self, topo: Topology, plan: ScenarioPlan, keying: str, callee_aor: str, out: RungOutcome
    ) -> str:
        from lab.ues import user_agent
        from ue.agent import CallFailed
        from ue.keying import KeyingError

        async with (
            user_agent(topo, plan.caller, keying=keying) as caller,
            user_agent(topo, plan.callee, keying=keying) as callee,
        ):
            await caller.register()
            await callee.register()
            callee.audio = f"tone:{CALLEE_TONE:.0f}"
            try:
                call = await caller.call(callee_aor, audio=f"tone:{CALLER_TONE:.0f}")
            except KeyingError as exc:
                out.failure = f"caller's UE refused to send the INVITE: {exc}"
                return ""
            except CallFailed as exc:
                out.failure = (
                    f"the caller's UE gave up before anything reached the wire: {exc.reason}"
                    if exc.status == 0
                    else f"INVITE answered {exc.status} {exc.reason}".rstrip()
                )
                return ""
            try:
                incoming = await callee.next_call(timeout=5)
            except TimeoutError:
                out.failure = "timeout: the caller was answered but the callee saw no call"
                await call.hangup()
                return str(call.call_id)
            await asyncio.sleep(self.media_seconds)
            heard = {
                "caller hears the callee": call.detect_tone(CALLEE_TONE),
                "callee hears the caller": incoming.detect_tone(CALLER_TONE),
            }
            out.call_ok = all(heard.values())
            if not out.call_ok:
                out.failure = "media: " + ", ".join(
                    f"{k}: {'yes' if v else 'no'}" for k, v in heard.items()
                )
            await call.hangup()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(incoming.ended.wait(), 3)
            return str(call.call_id)

    # --- evaluation: the LEMF's files only ---------------------------------------------------

    def _lemf_calls(self, xid: uuid.UUID) -> list[tuple[Path, dict[str, Any]]]:
        """A task's calls as the agency sees them: each call directory's summary.json."""
        out = []
        for d in sorted((self.work / "lemf" / str(xid)).glob("*/summary.json")):
            try:
                out.append((d.parent, json.loads(d.read_text())))
            except (OSError, ValueError):
                continue  # never half-written (temp file + rename), but be safe
        return out

    @staticmethod
    def _lemf_iri_events(call_dir: Path, event: str) -> list[dict[str, Any]]:
        """The call's IRI event records of one type, from the LEMF's iri.jsonl."""
        path = call_dir / "iri.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "iri-event" and rec.get("event") == event:
                out.append(rec)
        return out

    def _evaluate(
        self,
        plan: ScenarioPlan,
        topo: Topology,
        pki: LabPki,
        subs: _Substitutes,
        cap: _Capture,
        out: RungOutcome,
    ) -> Evidence | None:
        dirs: dict[str, tuple[Path, dict[str, Any]]] = {}
        flows: dict[str, list[Path]] = {}  # operator -> every directory of its task
        for op, xid in cap.xids.items():
            found = self._lemf_calls(xid)
            # the call's own directory (a tap has no Call-ID: its busiest flow)
            found.sort(key=lambda f: (f[1].get("call_id") == cap.call_id, f[1].get("x3_pdus", 0)))
            if found:
                dirs[op] = found[-1]
                flows[op] = [d for d, s in reversed(found) if s.get("x3_pdus")]
        out.xids = {op: str(x) for op, x in cap.xids.items()}
        out.lemf_dirs = {op: str(d) for op, (d, _) in dirs.items()}
        for op, xid in cap.xids.items():
            # no call directory (the call never reached the wire): the task's own directory,
            # where the LEMF filed what it did get (the registration), is the place to look
            task_dir = self.work / "lemf" / str(xid)
            if op not in out.lemf_dirs and task_dir.is_dir():
                out.lemf_dirs[op] = str(task_dir)
        for op, (d, summary) in dirs.items():
            out.keys[op] = sorted({k.get("source", "") for k in summary.get("keys", [])})
            if any(st.get("decrypted_by_network") for st in summary.get("streams", [])):
                out.en_clair.append(op)
            for ev in self._lemf_iri_events(d, "cc-unavailable"):
                out.notes.append(f"{op}: {ev.get('poi')}: content unavailable: {ev.get('reason')}")
            reason = summary.get("keys_unavailable_reason")
            if reason:
                out.notes.append(f"{op}: LEMF: {reason}")
        for m in cap.mitm:
            if m.reason:
                out.notes.append(f"MITM ({m.function}): {m.state.value}: {m.reason}")
        out.user_applied = _user_issued(pki)
        out.substitutes_from = sorted(subs.issuers)
        out.media_rekeyed = cap.media_mitm.stats["rekeyed"] if cap.media_mitm else 0
        # the target's tone goes from-target, the peer's to-target
        target_is_caller = plan.target == plan.caller
        expected = {
            "from-target": CALLER_TONE if target_is_caller else CALLEE_TONE,
            "to-target": CALLEE_TONE if target_is_caller else CALLER_TONE,
        }
        target_ip = topo.ues[plan.target].address
        # candidates: each directory's own decryption, then one network's keys joined with
        # another's encrypted CC (what the agency does with two deliveries)
        candidates: list[tuple[str, str, Path, Path]] = [
            (op, op, d, d) for op, (d, _) in dirs.items()
        ]
        for kop, (kdir, _) in dirs.items():
            for mop, mdirs in flows.items():
                if kop != mop and (kdir / "keys.jsonl").exists():
                    candidates += [(kop, mop, m, m / f"joined-{kop}") for m in mdirs]
        best: dict[str, dict[str, Any]] = {}
        # the intercepting operator's own keys first (its own CC, then another's): the
        # evidence then says whose keys were needed, not merely whose also worked
        own = plan.operator
        candidates.sort(key=lambda c: (c[0] != own, c[1] != own))
        for kop, mop, cc_dir, wav_dir in candidates:
            if kop != mop:
                joined_audio(
                    cc_dir=cc_dir, keys_dir=dirs[kop][0], out_dir=wav_dir, target_ip=target_ip
                )
            tones = direction_tones(wav_dir, expected)
            if not best or sum(t["ok"] for t in tones.values()) > sum(
                t["ok"] for t in best.values()
            ):
                best = tones
                out.audio_from = {"keys": kop, "media": mop}
                out.wavs = {
                    d: str(wav_dir / f"audio-{d}.wav")
                    for d in expected
                    if (wav_dir / f"audio-{d}.wav").exists()
                }
            if len(tones) == len(expected) and all(t["ok"] for t in tones.values()):
                break
        out.audio = best
        out.audio_ok = len(best) == len(expected) and all(t["ok"] for t in best.values())
        if not out.audio_ok:
            out.audio_from = {}
            return None
        kop = out.audio_from["keys"]
        key_sources = frozenset(out.keys.get(kop, []))
        out.key_source = sorted(key_sources)
        if kop == out.audio_from["media"] and kop in out.en_clair:
            # the network decrypted the CC itself (e2ae): no key was needed to hear it
            key_sources = frozenset()
            out.key_source = ["none: CC delivered en clair"]
        return Evidence(
            intercepting_operator=plan.operator,
            keys_from=frozenset({kop}),
            media_from=frozenset({out.audio_from["media"]}),
            key_sources=key_sources,
            substitutes_from=frozenset(out.substitutes_from),
            media_rekeyed=out.media_rekeyed,
        )


def _lab_glitch(o: RungOutcome) -> str:
    """Why a rung's call says more about the loaded lab than about LI ("" when it does not):
    the parties heard each other but the intercepted media holds one direction only (the
    media bypassed the POI's anchor), a keyed media MITM failed to relay one direction, or the
    call timed out."""
    ok = [d for d, a in o.audio.items() if a["ok"]]
    if o.call_ok and len(ok) == 1:
        return f"call ok but only {ok[0]} intercepted"
    if not o.call_ok and o.failure.startswith("media:") and o.media_rekeyed > 0:
        return "media MITM keyed but one direction not relayed"
    if not o.call_ok and (o.failure.startswith("timeout") or " 408" in o.failure):
        return "the call timed out"
    return ""


def _effective(g: Grants, exp: Expectation) -> tuple[Grants, str]:
    """The grants as they can take effect in this row's setup, and why one cannot: no other
    network on the path to task, no operator holding any key material."""
    plan = PLANS[exp.scenario]
    why = []
    if len(plan.networks) == 1 and (g.other_pois or g.others_assist):
        g = dataclasses.replace(g, other_pois=False, others_assist=False)
        why.append("no other network on the path")
    holds = (
        METHODS[exp.method][1] is Pki.OPERATOR_ESCROW
        or exp.method in (Method.SAKKE, Method.TICKET)
        or exp.method in OPERATOR_PSK_METHODS
    )
    if g.operator_keys and not holds:
        g = dataclasses.replace(g, operator_keys=False)
        why.append("no operator holds key material for these users")
    return g, "; ".join(why)


def _held_key(pki: LabPki, domain: str) -> str | None:
    """The private key an operator holds for its subscriber on the call (case C escrow)."""
    if not pki.operator_holds_private_keys:
        return None
    for user, creds in sorted(pki.users.items()):
        if user.endswith("@" + domain):
            return private_key_pem(creds.private_key).decode()
    return None


def _user_issued(pki: LabPki) -> bool:
    """Whether the users, not a CSP, provided the credentials (their own PSKs, their own CA,
    self-signed certificates): TS 33.106's "encryption by the user"."""
    if pki.operator_psks:  # the PSK came from an operator's key service (study Q6)
        return False
    return pki.kind not in (Pki.OPERATOR, Pki.OPERATOR_ESCROW, Pki.OPERATOR_FLAT)


def _media_gate(
    media: MediaMitm, authority: _Authority, element: str
) -> Callable[[Any], bytes | None]:
    inner = media.hook()

    def rewrite(event: Any) -> bytes | None:
        if not authority.media(element):
            return None
        return inner(event)

    return rewrite


def _mitm_sender(
    exp: X2X3Exporter, cap: _Capture
) -> Callable[[Any, str, list[KeyRecord], MikeyMitm], None]:
    from li.x2x3.pdu import correlation_id_for

    def on_keys(xid: Any, call_id: str, records: list[KeyRecord], m: MikeyMitm) -> None:
        if m not in cap.mitm:
            cap.mitm.append(m)
        for k in records:
            exp.send_key_record(xid=xid, correlation_id=correlation_id_for(call_id), record=k)

    return on_keys


def select(methods: Iterable[str] = (), scenarios: Iterable[str] = ()) -> list[Expectation]:
    ms, ss = set(methods), set(scenarios)
    return [
        e
        for e in EXPECTATIONS
        if (not ms or e.method.value in ms) and (not ss or e.scenario.value in ss)
    ]
