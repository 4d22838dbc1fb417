"""Lawful interception in the running lab: an element's X1 NE + POIs, built from ``[li]``.

When the topology's ``[li]`` lists an element, its role starts a
:class:`li.x1.ne.NetworkElementLI` (X1 HTTPS server with mutual TLS on ``address:x1_port``, task
store, X2/X3 exporter toward the LEMF) and attaches the POIs:

* P-CSCF / S-CSCF: an :class:`li.poi.iri.IriPoi` on the proxy's SIP hooks (X2: SIP, keys);
* anchor: an :class:`li.poi.cc.AnchorCcPoi` on its media hooks (X3: the packets as relayed).

The wiring itself is :class:`li.wiring.ElementLi` (the matrix runner uses the same); this
module decides what to wire from the topology. The anchor runs in another process than the
P-CSCF, so the P-CSCF's IRI-POI arms the anchor's CC-POI over LI_T3 (:mod:`li.poi.t3`: one JSON
datagram per :class:`li.poi.iri.CcTrigger` to the anchor's ``address:t3_port``); the anchor
accepts it only from its operator's LI P-CSCFs. The anchor's NE must be tasked with the same
XID (``imslab li ... --element pcscf-a`` does that).

PKIs are generated on first start under the lab state dir (one X1 PKI per operator: CA, an NE
server certificate for all its LI element addresses, the ADMF client certificate; and with
``delivery = "tls"`` one X2/X3 PKI for the LEMF and the POIs), under a file lock so elements
starting in parallel share them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ims.log import get_logger
from ims.mikey.sakke_store import kms_uri_of
from ims.store import open_store
from lab import credentials as lab_credentials
from lab import ticket_credentials
from lab.topology import LiConfig, Topology, TopologyError
from li.keys import OperatorKeyPolicy
from li.kms_li import DeferredKeyPolicy, KmsLiOpener
from li.wiring import ElementLi
from li.x1.ne import NetworkElementLI
from li.x1.tlsutil import CertFiles, LabPki, client_context, issue_client_cert, make_lab_pki
from proxies.kms import KmsCore

_log = get_logger("lab.li")
ADMF_ID = "admf-1"
LEMF_TLS_NAME = "lemf"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (directory / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ensure_pki(directory: Path, *, server_name: str, client_name: str, hosts: list[str]) -> LabPki:
    """The PKI in ``directory``, made (or remade, when the addresses changed) under a lock."""
    marker = directory / "hosts.json"
    want = json.dumps({"server": server_name, "client": client_name, "hosts": hosts})
    with _locked(directory):
        have = marker.read_text() if marker.exists() else None
        if have != want or not all((directory / f).exists() for f in ("client.key", "ca.key")):
            make_lab_pki(
                directory, server_name=server_name, client_name=client_name, hosts=tuple(hosts)
            )
            marker.write_text(want)
    return LabPki(
        ca=directory / "ca.pem",
        server=CertFiles(cert=directory / "server.pem", key=directory / "server.key"),
        client=CertFiles(cert=directory / "client.pem", key=directory / "client.key"),
    )


def operator_pki(topo: Topology, operator: str) -> LabPki:
    """The operator's X1 PKI: NE server certificate (every LI element address) + ADMF client."""
    li = _li(topo)
    op = li.operators[operator]
    hosts = sorted({topo.element(n).address for n in op.elements} | {"127.0.0.1", "localhost"})
    return _ensure_pki(
        li.pki_dir(operator), server_name=f"ne-{operator}", client_name=ADMF_ID, hosts=hosts
    )


def delivery_pki(topo: Topology) -> LabPki:
    """The X2/X3 PKI (``delivery = "tls"``): LEMF server certificate, POI client certificate."""
    li = _li(topo)
    return _ensure_pki(
        li.delivery_pki_dir(),
        server_name=LEMF_TLS_NAME,
        client_name="poi",
        hosts=[li.lemf.address, "127.0.0.1", "localhost"],
    )


def _li(topo: Topology) -> LiConfig:
    if topo.li is None:
        raise TopologyError("the topology has no [li] part")
    return topo.li


def destination_did(topo: Topology) -> uuid.UUID:
    """The LEMF's X1 destination ID in this lab (stable, so every NE shares it)."""
    li = _li(topo)
    return uuid.uuid5(uuid.NAMESPACE_URL, f"imslab:{topo.name}:{li.lemf.name}")


def _make_ne(topo: Topology, name: str) -> NetworkElementLI | None:
    """The element's NE, not started: its POIs are wired first (see :func:`_start`)."""
    li = topo.li
    op = li.operator_of(name) if li is not None else None
    if li is None or op is None:
        return None
    pki = operator_pki(topo, op.operator)
    x2x3_tls = None
    if li.delivery == "tls":
        # one certificate per POI, CN = the element name = the NFID of its PDUs: the LEMF
        # accepts from it only PDUs naming that NFID
        d = delivery_pki(topo)
        with _locked(d.ca.parent):
            mine = issue_client_cert(d.ca.parent, name)
        x2x3_tls = client_context(d.ca, mine.cert, mine.key)
    return NetworkElementLI(
        ne_id=name,
        state_dir=li.ne_state(name),
        x1_host=topo.element(name).address,
        x1_port=op.x1_port,
        x1_tls=pki.server_context(),
        x2x3_tls=x2x3_tls,
        # [store]: Redis (or an explicit url) holds every NE's tasks; the embedded default
        # keeps them in the NE's own file in its state dir
        store=None
        if topo.store.url is None and topo.store.backend == "sqlite"
        else open_store(topo.store.resolved_url(topo.name)),
    )


async def _start(running: ElementLi) -> None:
    """Start the NE once its POIs are attached (li.wiring: stored tasks replayed into them,
    then X1 accepts requests); the caller starts the element's traffic after this returns."""
    await running.start()
    ne = running.ne
    _log.info("x1 ne started", element=ne.ne_id, x1_port=ne.x1_port, tasks=len(ne.tasks))


def _t3_anchor(topo: Topology, name: str) -> tuple[str, int] | None:
    """Where ``name`` (a P-CSCF) sends LI_T3: its anchor, when the same operator's LI runs it."""
    li = topo.li
    e = topo.element(name)
    if li is None or e.anchor is None:
        return None
    mine, theirs = li.operator_of(name), li.operator_of(e.anchor)
    if mine is None or theirs is None or mine.operator != theirs.operator:
        return None
    return (topo.element(e.anchor).address, li.t3_port)


_KMS_CORES: dict[int, dict[str, KmsCore]] = {}


def _key_policy(
    topo: Topology, name: str, ne: NetworkElementLI | None = None
) -> OperatorKeyPolicy | DeferredKeyPolicy:
    """What the element's operator can open: SDES always; MIKEY with the secrets it holds in
    a lab whose credentials ``imslab up`` made (public PSK, hop PSKs, escrowed keys), and
    MIKEY-SAKKE / MIKEY-TICKET through its own KMS's LI function (li.kms_li) for the NE's
    tasked targets -- the KMS element over HTTPS (mutual TLS, ``li.<domain>``) when the
    topology has one."""
    creds = lab_credentials.from_environment()
    if creds is None:
        return OperatorKeyPolicy()
    operator = topo.element(name).operator
    secrets = lab_credentials.operator_secrets(topo, operator, creds)
    domain = topo.operators[operator].domain
    cores = _KMS_CORES.get(id(topo))
    if cores is None:  # one core per KMS in this process: its POIs share its recoveries
        cores = _KMS_CORES[id(topo)] = lab_credentials.kms_cores(topo)
    if ne is None or domain not in cores:
        return OperatorKeyPolicy(mikey=secrets)
    tasks = ne.tasks

    def targets() -> list[str]:
        return [t.value for task in tasks.values() for t in task.targets]

    element = ticket_credentials.kms_elements(topo).get(domain)
    if element is not None:  # the operator's KMS element, over HTTPS as its LI function
        opener = KmsLiOpener(
            targets=targets,
            client=ticket_credentials.client(topo, element, ticket_credentials.li_identity(domain)),
            kms_name=kms_uri_of(domain),
            fallback=secrets,
        )
    else:  # a topology without KMS elements: the operator's KMS core in this process
        opener = KmsLiOpener(
            kms=cores[domain],
            targets=targets,
            audit_path=lab_credentials.kms_dir(topo, domain) / "audit.jsonl",
            fallback=secrets,
        )
    return DeferredKeyPolicy(OperatorKeyPolicy(mikey=opener))


# --- per role ------------------------------------------------------------------------------------


async def attach_proxy(topo: Topology, name: str, proxy: Any) -> ElementLi | None:
    """P-CSCF / S-CSCF: NE + IRI-POI on the SIP hooks (+ LI_T3 toward the anchor). Call it
    before the proxy accepts traffic: it returns with every stored task armed."""
    ne = _make_ne(topo, name)
    if ne is None:
        return None
    running = ElementLi(ne, clock=time.time)
    try:
        e = topo.element(name)
        t3 = _t3_anchor(topo, name)
        running.attach_iri(
            proxy.sip_hooks,
            address=(e.address, e.sip_port),
            extract_keys=_key_policy(topo, name, ne),
            trigger_cc=await running.t3_sender(e.address, t3) if t3 is not None else None,
        )
        await _start(running)
    except BaseException:
        await running.close()
        raise
    return running


async def attach_anchor(
    topo: Topology, name: str, anchor: Any, *, tap: Any = None
) -> ElementLi | None:
    """Anchor: NE + CC-POI on the media hooks (``tap``: another hook chain, the e2ae content
    as decrypted), armed over LI_T3 by its operator's P-CSCFs. Call it before the anchor
    accepts traffic: it returns with every stored task armed."""
    ne = _make_ne(topo, name)
    if ne is None:
        return None
    li = _li(topo)
    running = ElementLi(ne, clock=time.time)
    try:
        # (an empty hook chain is falsy: test for None, not truth); the packets of a loop
        # iteration share one spool append (issue 19)
        cc = running.attach_cc(anchor.hooks if tap is None else tap, batch=True)
        op = li.operator_of(name)
        assert op is not None
        allowed = {
            topo.element(n).address
            for n in op.elements
            if topo.element(n).role == "pcscf" and topo.element(n).anchor == name
        }
        await running.listen_t3(cc, (topo.element(name).address, li.t3_port), allowed)
        await _start(running)
    except BaseException:
        await running.close()
        raise
    return running
