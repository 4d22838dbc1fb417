"""The matrix runner: one real call per row of the study (li.study.EXPECTATIONS).

For each row it

1. derives the topology of the scenario from the built-in lab (roaming through a home P-CSCF
   re-points the roamer at ``pcscf-a`` with the visited network's anchor on the media path; the
   separate-media-provider case gives ``pcscf-a`` the media provider's anchor);
2. provisions the MIKEY credentials of the method (:mod:`lab.matrix.credentials`) for the UEs;
3. starts the lab in-process and attaches lawful interception of the *intercepting* operator
   only: IRI-POIs on its P-CSCF/S-CSCF, the CC-POI on its anchor (or a passive tap when it only
   carries media), the hop-by-hop MIKEY intermediaries (a network function of both home
   operators, psk-hop only) and -- when the task authorises it -- the signalling/media MITM;
   the task targets one user, so nothing else is reported;
4. places the call (both UEs send a 440 Hz tone), hangs up, drains the exporters into one LEMF;
5. reads what the LEMF made of it (keys, decrypted WAVs, the tone in each direction) and what LI
   had to do, and compares with the study.

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
from pathlib import Path
from typing import Any

from ims.log import get_logger
from ims.mikey.certs import Credentials
from lab import topology
from lab.matrix.credentials import LabPki, Pki, provision, self_signed
from lab.matrix.report import CallResult, LadderStep
from lab.orchestrator import Lab
from lab.topology import Topology
from li.keys import HopByHopIntermediary, KeyRecord, KeySource, MikeySecrets, OperatorKeyPolicy
from li.lemf.receiver import LemfServer
from li.mitm.media import MediaMitm
from li.mitm.mikey import MikeyMitm, MitmFunction, MitmState
from li.mitm.signalling import SignallingMitm
from li.poi.cc import AnchorCcPoi, CcRecord, PassiveTapPoi
from li.poi.export import cc_pdu, iri_pdus
from li.poi.iri import CcTrigger, IriPoi, IriRecord
from li.poi.x1 import wire as x1_wire
from li.study import (
    EXPECTATIONS,
    Expectation,
    Method,
    Need,
    Observed,
    Scenario,
    compare,
    ts33106_outcome,
)
from li.x1.client import X1Client
from li.x1.model import (
    DeliveryType,
    DestinationDetails,
    ImslabTaskExtension,
    MitmAuthorisation,
    TargetIdentifier,
    TaskDetails,
)
from li.x1.ne import NetworkElementLI
from li.x1.tlsutil import LabPki as X1Pki
from li.x1.tlsutil import client_context, issue_client_cert, make_lab_pki
from li.x2x3.exporter import X2X3Exporter
from ue import keying_mikey
from ue.keying_mikey import PUBLIC_PSK, MikeyCredentials, aor

_log = get_logger("lab.matrix")

TONE = 440.0
DOMAINS = ["ims-a.test", "ims-b.test", "internet.test"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioPlan:
    """Who calls whom and which operator intercepts where."""

    caller: str  # UE name in the topology
    callee: str
    operator: str  # the intercepting operator
    iri_elements: tuple[str, ...]  # its IRI-POIs (P-CSCF first: it triggers CC)
    cc_anchor: str | None  # its anchor on the media path (CC-POI), None if none
    tap_anchor: str | None = None  # a passive tap (operator without signalling)
    tap_operator: str | None = None
    elements: dict[str, dict[str, Any]] = field(default_factory=dict)  # topology overrides
    ues: dict[str, dict[str, Any]] = field(default_factory=dict)


PLANS: dict[Scenario, ScenarioPlan] = {
    Scenario.HOME: ScenarioPlan(
        caller="alice",
        callee="bob",
        operator="a",
        iri_elements=("pcscf-a", "scscf-a"),
        cc_anchor="anchor-a",
    ),
    Scenario.ROAMING_VISITED_PCSCF: ScenarioPlan(
        caller="carol", callee="bob", operator="v", iri_elements=("pcscf-v",), cc_anchor="anchor-v"
    ),
    # the roamer keeps its home P-CSCF over a protected (TLS) hop; the visited network only
    # carries the media (its anchor stands for the visited access network's gateway)
    Scenario.ROAMING_HOME_PCSCF: ScenarioPlan(
        caller="carol",
        callee="bob",
        operator="v",
        iri_elements=(),
        cc_anchor=None,
        tap_anchor="anchor-v",
        tap_operator="v",
        elements={"pcscf-a": {"anchor": "anchor-v"}},
        ues={"carol": {"pcscf": "pcscf-a"}},
    ),
    Scenario.NON_IMS_PEER: ScenarioPlan(
        caller="alice",
        callee="dave",
        operator="a",
        iri_elements=("pcscf-a", "scscf-a"),
        cc_anchor="anchor-a",
    ),
    # operator A buys its media path from the media provider: A sees signalling, M the media
    Scenario.MEDIA_PROVIDER: ScenarioPlan(
        caller="alice",
        callee="bob",
        operator="a",
        iri_elements=("pcscf-a", "scscf-a"),
        cc_anchor=None,
        tap_anchor="anchor-m",
        tap_operator="m",
        elements={"pcscf-a": {"anchor": "anchor-m"}},
    ),
}

#: keying name, PKI, MITM functions authorised, operators that assist with substitutes
METHODS: dict[Method, tuple[str, Pki, frozenset[str], frozenset[str]]] = {
    Method.SDES: ("sdes", Pki.NONE, frozenset(), frozenset()),
    Method.PSK_E2E: ("psk", Pki.NONE, frozenset(), frozenset()),
    Method.PSK_PUBLIC: ("psk-public", Pki.NONE, frozenset(), frozenset()),
    Method.PSK_HOP: ("psk-hop", Pki.NONE, frozenset(), frozenset()),
    Method.PKE_A: ("pke", Pki.EXTERNAL, frozenset({"pke"}), frozenset({"a", "b"})),
    Method.PKE_B: ("pke", Pki.OPERATOR, frozenset({"pke"}), frozenset({"a", "b"})),
    Method.PKE_B_ONE: ("pke", Pki.OPERATOR, frozenset({"pke"}), frozenset({"a"})),
    Method.PKE_C: ("pke", Pki.OPERATOR, frozenset(), frozenset()),
    Method.PKE_D: ("pke", Pki.SELF_SIGNED, frozenset({"pke"}), frozenset()),
    Method.RSA_R: ("rsa-r", Pki.OPERATOR, frozenset({"rsa-r"}), frozenset({"a", "b"})),
    Method.DH_SIGN: ("dh", Pki.OPERATOR, frozenset({"dh"}), frozenset({"a", "b"})),
    Method.DH_SIGN_ONE: ("dh", Pki.OPERATOR, frozenset({"dh"}), frozenset({"a"})),
    Method.DH_SELF_SIGNED: ("dh", Pki.SELF_SIGNED, frozenset({"dh"}), frozenset()),
    Method.DHHMAC: ("dhhmac", Pki.NONE, frozenset({"dhhmac"}), frozenset()),
    Method.DHHMAC_PUBLIC: ("dhhmac", Pki.NONE, frozenset({"dhhmac"}), frozenset()),
}

OPERATOR_OF_DOMAIN = {"ims-a.test": "a", "ims-b.test": "b", "internet.test": "inet"}


def scenario_topology(base: Topology, plan: ScenarioPlan) -> Topology:
    """The built-in topology with the scenario's overrides (frozen dataclasses: replaced)."""
    elements = dict(base.elements)
    for name, changes in plan.elements.items():
        elements[name] = dataclasses.replace(elements[name], **changes)
    ues = dict(base.ues)
    for name, changes in plan.ues.items():
        ues[name] = dataclasses.replace(ues[name], **changes)
    return dataclasses.replace(base, elements=elements, ues=ues)


class _Substitutes:
    """Substitute credentials the assisting operators issue for the MITM (cached)."""

    def __init__(self, pki: LabPki, assisting: frozenset[str], *, now: float, bits: int) -> None:
        self.pki, self.assisting, self.now, self.bits = pki, assisting, now, bits
        self.issued: dict[str, Credentials] = {}
        self.domains_used: set[str] = set()

    def __call__(self, identity: str) -> Credentials | None:
        ident = aor(identity)
        domain = ident.rpartition("@")[2]
        if ident not in self.issued:
            if self.pki.kind is Pki.SELF_SIGNED:
                creds = self_signed(ident, now=self.now, bits=self.bits)  # anyone can make one
            elif (
                OPERATOR_OF_DOMAIN.get(domain) in self.assisting and domain in self.pki.operator_cas
            ):
                creds = self.pki.issue(domain, ident, now=self.now, bits=self.bits)
            else:
                return None
            self.issued[ident] = creds
        if self.pki.kind is not Pki.SELF_SIGNED:
            self.domains_used.add(domain)  # that operator's CA vouched for the substitute
        return self.issued[ident]


@dataclass(slots=True)
class _Capture:
    """What the LI side of one row did (besides what reached the LEMF)."""

    iri: list[IriRecord] = field(default_factory=list)
    cc: int = 0
    key_records: list[KeyRecord] = field(default_factory=list)
    mitm: list[MikeyMitm] = field(default_factory=list)
    nes: dict[str, NetworkElementLI] = field(default_factory=dict)
    removers: list[Callable[[], None]] = field(default_factory=list)
    xids: dict[str, uuid.UUID] = field(default_factory=dict)  # operator -> XID
    target_ip: str = ""
    call_id: str = ""
    names: dict[str, str] = field(default_factory=dict)  # address -> element/UE name


class MatrixRunner:
    """Runs rows; one LEMF for the whole run (the agency)."""

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

    async def __aenter__(self) -> MatrixRunner:
        self.work.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("IMSLAB_PKI", str(self.work / "pki"))
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

    # --- one row ---------------------------------------------------------------------------

    async def run(self, exp: Expectation) -> CallResult:
        t0 = time.monotonic()
        plan = PLANS[exp.scenario]
        topo = scenario_topology(self.base, plan)
        keying, pki_kind, mitm_funcs, assisting = METHODS[exp.method]
        caller_aor = topo.subscribers[topo.ues[plan.caller].subscriber].sip_impu
        callee_aor = topo.subscribers[topo.ues[plan.callee].subscriber].sip_impu
        now = time.time()
        creds, pki = provision(
            pki_kind,
            [caller_aor, callee_aor],
            DOMAINS,
            now=now,
            bits=self.bits,
            dhhmac_public=exp.method is Method.DHHMAC_PUBLIC,
        )
        subs = _Substitutes(pki, assisting, now=now, bits=self.bits)
        if "pke" in mitm_funcs:
            # study 2.3.1 case B step 1: the responder's operator hands out the substitute
            # certificate (case D: anyone can make a self-signed one)
            fake = subs(callee_aor)
            if fake is not None:
                creds.directory[aor(callee_aor)] = fake.certificate
        keying_mikey.configure(creds)
        result = CallResult(
            key=exp.key,
            method=exp.method.value,
            scenario=exp.scenario.value,
            section=exp.section,
            expected_needs=[n.value for n in sorted(exp.needs, key=list(Need).index)],
            expected_keys=exp.keys_recoverable,
            expected_audio=exp.audio_recoverable,
            expected_call=exp.call_succeeds,
        )
        cap = _Capture(
            target_ip=topo.ues[plan.caller].address,
            names={
                **{e.address: n for n, e in topo.elements.items()},
                **{u.address: n for n, u in topo.ues.items()},
            },
        )
        async with Lab(topo, mode="inprocess") as lab:
            try:
                await self._attach(
                    lab, topo, plan, exp, creds, pki, subs, mitm_funcs, caller_aor, cap
                )
                await self._provision(plan, exp, mitm_funcs, caller_aor, topo, cap)
                cap.call_id = await self._call(topo, plan, keying, callee_aor, result)
                for ne in cap.nes.values():
                    await ne.exporter.drain(timeout=15)
            finally:
                for remove in cap.removers:
                    remove()
                for ne in cap.nes.values():
                    await ne.close()
        await asyncio.sleep(0.1)
        if self.lemf is not None:
            # every exporter drained (the LEMF acknowledged all of it): the explicit flush
            # request, after which the LEMF's files hold everything (calls whose BYE was
            # seen say "complete": true); from here on the runner reads only those files
            self.lemf.flush()
        self._evaluate(exp, plan, cap, subs, result)
        result.duration_s = round(time.monotonic() - t0, 2)
        return result

    async def _attach(
        self,
        lab: Lab,
        topo: Topology,
        plan: ScenarioPlan,
        exp: Expectation,
        creds: MikeyCredentials,
        pki: LabPki,
        subs: _Substitutes,
        mitm_funcs: frozenset[str],
        target_aor: str,
        cap: _Capture,
    ) -> None:
        clock = time.time
        assert self.x1_pki is not None
        x1_pki = self.x1_pki
        assert self.x2x3_pki is not None
        x2x3_pki = self.x2x3_pki

        async def network_element(name: str) -> X2X3Exporter:
            """The element's LI side: X1 server (HTTPS, mutual TLS), store, X2/X3 exporter."""
            ne = NetworkElementLI(
                ne_id=name,
                state_dir=self.work / "ne" / exp.key.replace("/", "-") / name,
                x1_host=self.x1_host,
                x1_tls=x1_pki.server_context(),
                x2x3_tls=client_context(
                    x2x3_pki.ca, *dataclasses.astuple(issue_client_cert(x2x3_pki.ca.parent, name))
                ),
            )
            await ne.start()
            cap.nes[name] = ne
            return ne.exporter

        # hop-by-hop MIKEY intermediaries: a network function of the home P-CSCFs (psk-hop)
        if exp.method is Method.PSK_HOP:
            network = os.urandom(32)
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
                    inter = HopByHopIntermediary(ue_psks=mine, network_psk=network)
                    cap.removers.append(
                        lab.elements[name].sip_hooks.add(_intermediary_hook(inter, ue_at, clock))
                    )
            hop_secrets = {k: v for k, v in creds.hop_psk.items()}
        else:
            network, hop_secrets = None, {}

        op = plan.operator
        cap.xids[op] = uuid.uuid4()
        op_domain = topo.operators[op].domain
        secrets = MikeySecrets(
            public_psks=(PUBLIC_PSK,),
            hop_psks={k: v for k, v in hop_secrets.items() if k.endswith("@" + op_domain)},
            network_psk=network,
            private_keys=(
                {u: c.private_key for u, c in pki.users.items()}
                if exp.method is Method.PKE_C
                else None
            ),
        )
        policy = OperatorKeyPolicy(mikey=secrets)
        cc_poi: AnchorCcPoi | None = None
        media_mitm: MediaMitm | None = None
        if plan.cc_anchor is not None:
            anchor = lab.elements[plan.cc_anchor].anchor
            cc_exp = await network_element(plan.cc_anchor)
            cc_poi = AnchorCcPoi(element=plan.cc_anchor, emit=_cc_sender(cc_exp, cap))
            cap.removers.append(anchor.hooks.add(cc_poi.hook(clock)))
            if mitm_funcs & {"dh", "dhhmac"}:
                media_mitm = MediaMitm()
                cap.removers.append(anchor.hooks.add(media_mitm.hook()))
        for i, name in enumerate(plan.iri_elements):
            el_exp = await network_element(name)
            poi = IriPoi(
                element=name,
                address=(topo.elements[name].address, topo.elements[name].sip_port),
                emit=_iri_sender(el_exp, cap),
                trigger_cc=(_trigger(cc_poi) if (i == 0 and cc_poi is not None) else None),
                extract_keys=policy,
            )
            x1_wire(cap.nes[name], iri=[poi], clock=clock)  # armed by X1 ActivateTask
            cap.removers.append(lab.elements[name].sip_hooks.add(poi.hook(clock)))
            if i == 0 and mitm_funcs:
                sig = SignallingMitm(
                    poi=poi,
                    substitutes=subs,
                    real_certificates=lambda ident: (
                        pki.users[aor(ident)].certificate if aor(ident) in pki.users else None
                    ),
                    on_keys=_mitm_sender(el_exp, cap),
                    media=media_mitm,
                    known_psk=PUBLIC_PSK,
                    clock=clock,
                )
                cap.removers.append(lab.elements[name].sip_hooks.add(sig.hook()))
        if plan.tap_anchor is not None:
            assert plan.tap_operator is not None
            cap.xids[plan.tap_operator] = uuid.uuid4()
            tap_exp = await network_element(plan.tap_anchor)
            tap_ne = cap.nes[plan.tap_anchor]
            # the media provider is tasked with the target's address (it never sees SIP)
            tap_ne.handler.supported_targets = tap_ne.handler.supported_targets | {"ipv4Address"}
            tap = PassiveTapPoi(element=plan.tap_anchor, emit=_cc_sender(tap_exp, cap))
            x1_wire(tap_ne, taps=[tap], clock=clock)
            cap.removers.append(lab.elements[plan.tap_anchor].anchor.hooks.add(tap.hook(clock)))

    def _lemf_calls(self, xid: uuid.UUID) -> list[tuple[Path, dict[str, Any]]]:
        """A task's calls as the agency sees them: the LEMF's output files only (each call
        directory's summary.json; the runner has asked the LEMF to flush first)."""
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

    async def _provision(
        self,
        plan: ScenarioPlan,
        exp: Expectation,
        mitm_funcs: frozenset[str],
        target_aor: str,
        topo: Topology,
        cap: _Capture,
    ) -> None:
        """The ADMF: CreateDestination + ActivateTask over X1 (HTTPS) on every element."""
        assert self.lemf is not None and self.x1_pki is not None
        did = uuid.uuid4()
        dest = DestinationDetails(
            did=did,
            delivery_type=DeliveryType.X2_AND_X3,
            host=self.lemf_host,
            port=self.lemf.port,
            friendly_name="LEMF",
        )
        mitm = None
        if mitm_funcs:
            mitm = MitmAuthorisation(
                reference=f"matrix {exp.key}",
                signalling=True,
                media=bool(mitm_funcs & {"dh", "dhhmac"}),
            )
        for name, ne in cap.nes.items():
            tap = name == plan.tap_anchor
            op = plan.tap_operator if tap else plan.operator
            assert op is not None
            target = (
                TargetIdentifier(kind="ipv4Address", value=topo.ues[plan.caller].address)
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
                    extension=ImslabTaskExtension(mitm=mitm) if mitm and not tap else None,
                )
            )

    async def _call(
        self, topo: Topology, plan: ScenarioPlan, keying: str, callee_aor: str, result: CallResult
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
            callee.audio = f"tone:{TONE:.0f}"
            try:
                call = await caller.call(callee_aor, audio=f"tone:{TONE:.0f}")
            except (CallFailed, KeyingError) as exc:
                result.notes.append(f"call failed: {exc}")
                return ""
            incoming = await callee.next_call(timeout=5)
            await asyncio.sleep(self.media_seconds)
            result.call_succeeded = bool(call.detect_tone(TONE) and incoming.detect_tone(TONE))
            if not result.call_succeeded:
                result.notes.append("call set up but the parties did not hear each other")
            await call.hangup()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(incoming.ended.wait(), 3)
            return str(call.call_id)

    # --- evaluation ------------------------------------------------------------------------

    def _evaluate(
        self,
        exp: Expectation,
        plan: ScenarioPlan,
        cap: _Capture,
        subs: _Substitutes,
        result: CallResult,
    ) -> None:
        summaries: dict[str, tuple[Path, dict[str, Any]]] = {}
        unavailable: list[dict[str, Any]] = []
        for op, xid in cap.xids.items():
            found = self._lemf_calls(xid)
            for call_dir, _ in found:
                unavailable.extend(self._lemf_iri_events(call_dir, "cc-unavailable"))
            # the call's own directory (a tap has no Call-ID: its busiest flow)
            found.sort(key=lambda f: (f[1].get("call_id") == cap.call_id, f[1].get("x3_pdus", 0)))
            if found:
                summaries[op] = found[-1]
        result.iri_count = sum(1 for r in cap.iri if r.sip)
        result.cc_count = cap.cc
        result.key_records = sum(1 for k in cap.key_records if k.available)
        result.ladder = [
            LadderStep(
                time=r.time,
                src=cap.names.get(r.src[0], f"{r.src[0]}:{r.src[1]}"),
                dst=cap.names.get(r.dst[0], f"{r.dst[0]}:{r.dst[1]}"),
                label=_first_line(r.sip),
                poi=r.element,
            )
            for r in cap.iri
            if r.sip and r.src and r.dst and r.element == (plan.iri_elements or ("",))[0]
        ]
        for ev in sorted(unavailable, key=lambda e: float(e.get("time") or 0)):
            result.notes.append(
                f"{ev.get('element') or ev.get('poi')}: content unavailable: {ev.get('reason')}"
            )
        for m in cap.mitm:
            if m.reason:
                result.notes.append(f"MITM ({m.function}): {m.state.value}: {m.reason}")
        # keys: what the intercepting operator's LEMF directory holds
        keys_sources: set[str] = set()
        main = summaries.get(plan.operator)
        if main is not None:
            keys_sources = {k.get("source", "") for k in main[1].get("keys", [])}
            if main[1].get("keys_unavailable_reason"):
                result.notes.append(f"LEMF: {main[1]['keys_unavailable_reason']}")
            if result.call_succeeded and not main[1].get("complete"):
                # the LEMF's own end-of-call marker: BYE seen and its files flushed
                why = (
                    "content without the call's signalling"
                    if not main[1].get("established")
                    else "no BYE seen"
                )
                result.notes.append(f"LEMF: call not complete ({why})")
        result.keys_recovered = bool(keys_sources)
        # audio: the tone in the decrypted WAVs of both directions
        wav_dir: Path | None = None
        if plan.tap_operator is not None and plan.tap_operator in summaries:
            wav_dir = summaries[plan.tap_operator][0]
            if main is not None and result.keys_recovered:
                # the agency joins the media provider's CC with the IMS provider's keys
                from lab.matrix.combine import decrypt_with_keys

                decrypt_with_keys(
                    cc_dir=wav_dir,
                    keys_dir=main[0],
                    out_dir=wav_dir / "joined",
                    target_ip=cap.target_ip,
                )
                wav_dir = wav_dir / "joined"
        elif main is not None:
            wav_dir = main[0]
        if wav_dir is not None:
            from lab.matrix.combine import tone_in_wav

            for direction in ("from-target", "to-target"):
                wav = wav_dir / f"audio-{direction}.wav"
                if wav.exists():
                    result.wavs[direction] = str(wav)
                    ok, peak = tone_in_wav(wav, TONE)
                    result.tones_hz[direction] = peak
                    if not ok:
                        result.notes.append(
                            f"no {TONE:.0f} Hz in {direction} audio (peak {peak:.0f} Hz)"
                        )
        result.audio_recovered = len(result.wavs) == 2 and all(
            _tone_ok(Path(w)) for w in result.wavs.values()
        )
        needs = _observed_needs(exp, plan, cap, subs, keys_sources, result)
        result.needs = [n.value for n in sorted(needs, key=list(Need).index)]
        result.ts33106 = ts33106_outcome(exp.method, result.keys_recovered)
        result.differences = compare(
            exp,
            Observed(
                needs=frozenset(needs),
                keys_recovered=result.keys_recovered,
                audio_recovered=result.audio_recovered,
                call_succeeded=result.call_succeeded,
            ),
        )


def _tone_ok(wav: Path) -> bool:
    from lab.matrix.combine import tone_in_wav

    return tone_in_wav(wav, TONE)[0]


def _observed_needs(
    exp: Expectation,
    plan: ScenarioPlan,
    cap: _Capture,
    subs: _Substitutes,
    keys_sources: set[str],
    result: CallResult,
) -> set[Need]:
    """What LI actually had to do for this call (derived from what happened, not the row)."""
    needs: set[Need] = set()
    keyed = [m for m in cap.mitm if m.state is MitmState.KEYED]
    attempted = [m for m in cap.mitm if m.function is not None and m.authorised]
    if keyed:
        needs.add(Need.MITM_SIGNALLING)
        if any(m.media_mitm_needed for m in keyed):
            needs.add(Need.MITM_MEDIA)
        other_domains = {d for d in subs.domains_used if OPERATOR_OF_DOMAIN.get(d) != plan.operator}
        if other_domains:
            needs.add(Need.BOTH_OPERATORS)
    elif keys_sources & {KeySource.MIKEY_PKE_ESCROW.value}:
        needs.add(Need.BREAK_KM)
    elif keys_sources:
        needs.add(Need.NOTHING)
    elif attempted and any(
        "does not assist" in m.reason or "one operator" in m.reason for m in attempted
    ):
        needs |= {Need.MITM_SIGNALLING, Need.BOTH_OPERATORS}
        if any(m.function in (MitmFunction.DH, MitmFunction.DHHMAC) for m in attempted):
            needs.add(Need.MITM_MEDIA)  # DH keys per leg: the media would need it too
    elif plan.tap_anchor is not None and not plan.iri_elements:
        needs.add(Need.HOME_NETWORK)  # the visited network saw only encrypted media
    elif plan.tap_anchor is not None and exp.method in (Method.DH_SIGN, Method.DHHMAC_PUBLIC):
        # the IMS operator could MITM the signalling but the media path is another provider's
        needs |= {Need.MITM_SIGNALLING, Need.MITM_MEDIA}
    else:
        needs.add(Need.BREAK_KM)
    if plan.tap_anchor is not None and plan.iri_elements:
        needs.discard(Need.NOTHING)  # keys from one provider, content from the other
        needs.add(Need.BOTH_PROVIDERS)
    return needs


def _first_line(sip: bytes) -> str:
    line = sip.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    return line.replace(" SIP/2.0", "") if not line.startswith("SIP/") else line[8:]


def _iri_sender(exp: X2X3Exporter, cap: _Capture) -> Callable[[IriRecord], None]:
    def emit(r: IriRecord) -> None:
        cap.iri.append(r)
        cap.key_records.extend(r.keys)
        for pdu in iri_pdus(r):
            exp.send_pdu(pdu)

    return emit


def _cc_sender(exp: X2X3Exporter, cap: _Capture) -> Callable[[CcRecord], None]:
    def emit(r: CcRecord) -> None:
        cap.cc += 1
        exp.send_pdu(cc_pdu(r))

    return emit


def _mitm_sender(
    exp: X2X3Exporter, cap: _Capture
) -> Callable[[Any, str, list[KeyRecord], MikeyMitm], None]:
    from li.x2x3.pdu import correlation_id_for

    def on_keys(xid: Any, call_id: str, records: list[KeyRecord], m: MikeyMitm) -> None:
        if m not in cap.mitm:
            cap.mitm.append(m)
        for k in records:
            cap.key_records.append(k)
            exp.send_key_record(xid=xid, correlation_id=correlation_id_for(call_id), record=k)

    return on_keys


def _trigger(cc: AnchorCcPoi) -> Callable[[CcTrigger], None]:
    def trigger(t: CcTrigger) -> None:
        cc.trigger(t)

    return trigger


def _intermediary_hook(
    inter: HopByHopIntermediary, ue_at: dict[str, str], clock: Callable[[], float]
) -> Callable[[Any], Any]:
    from li.mitm.signalling import _find_mikey, _replace_mikey

    def rewrite(event: Any) -> Any:
        if str(event.direction) != "out":
            return None
        msg = event.message
        body = getattr(msg, "body", b"")
        if b"a=key-mgmt:mikey" not in body:
            return None
        data = _find_mikey(body)
        if data is None:
            return None
        if getattr(msg, "method", None) == "INVITE":
            new = inter.reprotect(data, toward_ue=ue_at.get(event.peer[0]), now=clock())
        elif getattr(msg, "status", 0) // 100 == 2:
            new = inter.answer(data)
        else:
            return None
        if new is None:
            return None
        out = msg.copy()
        out.body = _replace_mikey(body, new)
        return out

    return rewrite


def select(methods: Iterable[str] = (), scenarios: Iterable[str] = ()) -> list[Expectation]:
    ms, ss = set(methods), set(scenarios)
    return [
        e
        for e in EXPECTATIONS
        if (not ms or e.method.value in ms) and (not ss or e.scenario.value in ss)
    ]
