"""``imslab li ...``: the ADMF side of X1 (ETSI TS 103 221-1) from the command line.

    imslab li pki DIR                           lab CA + NE server cert + ADMF client cert
    imslab li --ne 127.0.0.1:8443 --pki DIR destination add --did UUID --address HOST:PORT
    imslab li --ne ... --pki DIR task add --target sip:alice@ims.test --did UUID
    imslab li --ne ... --pki DIR task show XID | task list | task modify ... | task remove XID
    imslab li --ne ... --pki DIR destination show|list|modify|remove ...
    imslab li --ne ... --pki DIR ping

Against the running lab (``imslab up`` with the topology's ``[li]``), name elements instead of
``--ne/--pki``: the X1 address, NE identifier and the operator's PKI come from the topology and
its state dir, and ``task add`` without ``--did`` delivers to the lab's LEMF (its destination is
created on each NE when missing). A P-CSCF named with ``--element`` brings its operator's LI
anchor along (the CC-POI needs the same task)::

    imslab li task add --config lab.toml --element pcscf-a --target sip:alice@ims-a.test
    imslab li task add --operator a --target sip:alice@ims-a.test     (every LI element of A)
    imslab li task list --operator a
    imslab li task remove --operator a --all

Every answer is printed as one JSON object (one line per NE in lab mode, with ``"ne"``); an X1
error prints its code and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from lab.errors import NO_LAB_HINT
from li.x1.client import X1Client, X1ErrorResponse, X1TransportError
from li.x1.model import (
    DeliveryType,
    DestinationDetails,
    ImslabTaskExtension,
    KeyDelivery,
    KeyDeliveryMode,
    MitmAuthorisation,
    TargetIdentifier,
    TaskDetails,
    TaskStatus,
    X1Response,
)
from li.x1.tlsutil import client_context, make_lab_pki


def _lab_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config/--net-offset/--subnet`` + ``--element/--operator``: address NEs of the lab."""
    g = p.add_argument_group("the running lab (instead of --ne/--pki)")
    g.add_argument("--config", dest="lab_config", help="topology TOML (default: built-in lab)")
    g.add_argument(
        "--net-offset",
        dest="lab_net_offset",
        type=int,
        default=0,
        help="the lab was started with this --net-offset",
    )
    g.add_argument(
        "--subnet", dest="lab_subnet", default=None, help="the lab was started with this --subnet"
    )
    g.add_argument(
        "--element",
        dest="lab_elements",
        action="append",
        default=[],
        help="an LI element of the topology (repeatable; a P-CSCF brings its LI anchor)",
    )
    g.add_argument("--operator", dest="lab_operator", help="every LI element of this operator")
    return p


def register(sub: Any) -> None:
    p = sub.add_parser("li", help="X1 client (ADMF): tasks and destinations on an NE")
    p.add_argument("--ne", default="127.0.0.1:8443", help="NE X1 address HOST:PORT")
    p.add_argument("--ne-id", default="ne-1", help="neIdentifier (default %(default)s)")
    p.add_argument("--admf-id", default="admf-1", help="admfIdentifier (= client cert CN)")
    p.add_argument("--pki", type=Path, help="directory with ca.pem, client.pem, client.key")
    p.add_argument("--ca", type=Path, help="CA certificate the NE's X1 certificate chains to")
    p.add_argument("--cert", type=Path, help="ADMF client certificate (PEM)")
    p.add_argument("--key", type=Path, help="ADMF client private key (PEM)")
    p.add_argument("--plain", action="store_true", help="plain HTTP (tests only)")
    ls = p.add_subparsers(dest="li_cmd", required=True, metavar="CMD")

    pki = ls.add_parser("pki", help="create a lab PKI (CA, NE server cert, ADMF client cert)")
    pki.add_argument("dir", type=Path, help="directory to write the PEM files into")
    pki.add_argument("--host", action="append", default=[], help="SAN for the server cert")
    pki.set_defaults(func=_pki)

    _lab_options(ls.add_parser("ping", help="X1 Ping")).set_defaults(func=_run(_ping))

    task = ls.add_parser("task", help="ActivateTask / ModifyTask / DeactivateTask / details")
    ts = task.add_subparsers(dest="task_cmd", required=True, metavar="ACTION")
    for name in ("add", "modify"):
        t = ts.add_parser(name, help=f"{'Activate' if name == 'add' else 'Modify'}Task")
        _lab_options(t)
        t.add_argument(
            "--xid",
            type=uuid.UUID,
            required=name == "modify",
            help="the task's XID (UUID); add: default a new random one",
        )
        t.add_argument(
            "--target",
            action="append",
            required=True,
            help="sip:..., tel:..., or KIND:VALUE with KIND sipUri|telUri|impu|impi|e164Number",
        )
        t.add_argument(
            "--did",
            type=uuid.UUID,
            action="append",
            help="destination(s); in lab mode default: the lab's LEMF",
        )
        t.add_argument(
            "--delivery",
            choices=[d.value for d in DeliveryType],
            default="X2andX3",
            help="what the NE delivers for the task (default %(default)s)",
        )
        t.add_argument(
            "--key-delivery", choices=[m.value for m in KeyDeliveryMode], help="imslab extension"
        )
        t.add_argument("--mikey-psk-hex", help="MIKEY PSK lent to the POI (imslab extension)")
        t.add_argument("--mitm-ref", help="authorisation reference enabling MITM (extension)")
        t.add_argument(
            "--mitm-signalling",
            action="store_true",
            help="authorise MITM on signalling (needs --mitm-ref; extension)",
        )
        t.add_argument(
            "--mitm-media",
            action="store_true",
            help="authorise MITM on the media path too (needs --mitm-ref; extension)",
        )
        t.set_defaults(func=_run(_task_add if name == "add" else _task_modify))
    r = _lab_options(
        ts.add_parser("remove", help="DeactivateTask (or DeactivateAllTasks with --all)")
    )
    r.add_argument("xid", type=uuid.UUID, nargs="?", help="the task to deactivate")
    r.add_argument("--all", action="store_true", help="deactivate every task (DeactivateAllTasks)")
    r.set_defaults(func=_run(_task_remove))
    s = _lab_options(ts.add_parser("show", help="GetTaskDetails"))
    s.add_argument("xid", type=uuid.UUID, help="the task's XID")
    s.set_defaults(func=_run(_task_show))
    _lab_options(ts.add_parser("list", help="GetAllDetails (tasks)")).set_defaults(
        func=_run(_task_list)
    )

    dest = ls.add_parser("destination", help="Create/Modify/RemoveDestination / details")
    ds = dest.add_subparsers(dest="dest_cmd", required=True, metavar="ACTION")
    for name in ("add", "modify"):
        d = ds.add_parser(name, help=f"{'Create' if name == 'add' else 'Modify'}Destination")
        _lab_options(d)
        d.add_argument(
            "--did",
            type=uuid.UUID,
            required=name == "modify",
            help="the destination's DID (UUID); add: default a new random one",
        )
        d.add_argument("--address", help="LEMF HOST:PORT (lab mode default: the lab's LEMF)")
        d.add_argument(
            "--delivery",
            choices=[x.value for x in DeliveryType],
            default="X2andX3",
            help="what this destination receives (default %(default)s)",
        )
        d.add_argument("--name", help="friendlyName")
        d.set_defaults(func=_run(_dest_add if name == "add" else _dest_modify))
    r = _lab_options(
        ds.add_parser("remove", help="RemoveDestination (or RemoveAllDestinations with --all)")
    )
    r.add_argument("did", type=uuid.UUID, nargs="?", help="the destination to remove")
    r.add_argument(
        "--all", action="store_true", help="remove every destination (RemoveAllDestinations)"
    )
    r.set_defaults(func=_run(_dest_remove))
    s = _lab_options(ds.add_parser("show", help="GetDestinationDetails"))
    s.add_argument("did", type=uuid.UUID, help="the destination's DID")
    s.set_defaults(func=_run(_dest_show))
    _lab_options(ds.add_parser("list", help="GetAllDetails (destinations)")).set_defaults(
        func=_run(_dest_list)
    )


# -- helpers --------------------------------------------------------------------------------


def _pki(args: argparse.Namespace) -> int:
    hosts = tuple(args.host) or ("127.0.0.1", "::1", "localhost")
    pki = make_lab_pki(args.dir, server_name=args.ne_id, client_name=args.admf_id, hosts=hosts)
    print(
        json.dumps(
            {"ca": str(pki.ca), "server": str(pki.server.cert), "client": str(pki.client.cert)}
        )
    )
    return 0


def _client(args: argparse.Namespace) -> X1Client:
    host, _, port = args.ne.rpartition(":")
    ctx = None
    if not args.plain:
        ca, cert, key = args.ca, args.cert, args.key
        if args.pki is not None:
            ca = ca or args.pki / "ca.pem"
            cert = cert or args.pki / "client.pem"
            key = key or args.pki / "client.key"
        if ca is None:
            raise SystemExit("imslab li: give --pki DIR or --ca/--cert/--key (or --plain)")
        ctx = client_context(ca, cert, key)
    return X1Client(host.strip("[]"), int(port), ssl=ctx, admf_id=args.admf_id, ne_id=args.ne_id)


def _lab_mode(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "lab_config", None)
        or getattr(args, "lab_elements", None)
        or getattr(args, "lab_operator", None)
    )


def lab_targets(args: argparse.Namespace) -> list[tuple[str, X1Client]]:
    """(element, X1 client) for every NE the lab options name (see the module docstring)."""
    from lab import topology
    from lab.roles import _li

    topo = topology.load(args.lab_config, net_offset=args.lab_net_offset, subnet=args.lab_subnet)
    li = topo.li
    if li is None:
        raise SystemExit(f"imslab li: the topology {topo.source} has no [li] part")
    names: list[str] = []
    if args.lab_operator:
        if args.lab_operator not in li.operators:
            raise SystemExit(f"imslab li: operator {args.lab_operator!r} has no [li.operators]")
        names += li.operators[args.lab_operator].elements
    for name in args.lab_elements:
        if li.operator_of(name) is None:
            raise SystemExit(f"imslab li: {name} is not an LI element ({topo.li_elements()})")
        names.append(name)
        anchor = topo.element(name).anchor
        if anchor is not None and li.operator_of(anchor) == li.operator_of(name):
            names.append(anchor)
    if not names:
        names = topo.li_elements()
    out = []
    for name in dict.fromkeys(names):
        op = li.operator_of(name)
        assert op is not None
        pki = _li.operator_pki(topo, op.operator)
        ctx = client_context(pki.ca, pki.client.cert, pki.client.key)
        addr = topo.element(name).address
        out.append((name, X1Client(addr, op.x1_port, ssl=ctx, admf_id=args.admf_id, ne_id=name)))
    if hasattr(args, "did") and hasattr(args, "address") and args.address is None:
        args.address = f"{li.lemf.address}:{li.lemf.port}"  # destination add: the lab's LEMF
        args.did = args.did or _li.destination_did(topo)
    if hasattr(args, "target") and not args.did:  # task add/modify: the lab's LEMF
        args.did = [_li.destination_did(topo)]
        args.lab_destination = DestinationDetails(
            did=args.did[0],
            delivery_type=DeliveryType.X2_AND_X3,
            host=li.lemf.address,
            port=li.lemf.port,
            friendly_name=li.lemf.name.upper(),
        )
    if hasattr(args, "xid") and hasattr(args, "target") and args.xid is None:
        args.xid = uuid.uuid4()  # one XID for the task on every NE
    return out


def _run_lab(coro_fn: Any, args: argparse.Namespace) -> int:
    targets = lab_targets(args)

    async def each() -> list[tuple[str, object]]:
        results: list[tuple[str, object]] = []
        for name, client in targets:
            try:
                out = await coro_fn(client, args)
            except X1ErrorResponse as exc:
                out = {"error": exc.code, "description": exc.description}
            except (X1TransportError, OSError) as exc:
                out = {"error": "transport", "description": str(exc)}
            results.append((name, out))
        return results

    rc = 0
    silent = []
    for name, out in asyncio.run(each()):
        item = dict(out) if isinstance(out, dict) else {"result": out}
        if "error" in item:
            rc = 1  # an NE refused, or did not answer: a failed request, not bad input
            if item["error"] == "transport":
                silent.append(name)
        item.pop("ne", None)
        print(json.dumps({"ne": name, **item}, default=str))
    if silent:
        print(f"imslab li: no X1 answer from {', '.join(silent)}; {NO_LAB_HINT}", file=sys.stderr)
    return rc


def _run(coro_fn: Any) -> Any:
    def func(args: argparse.Namespace) -> int:
        if _lab_mode(args):
            return _run_lab(coro_fn, args)
        if getattr(args, "target", None) is not None and not args.did:
            raise SystemExit("imslab li task: give --did (or name lab elements, see --help)")
        if getattr(args, "dest_cmd", None) in ("add", "modify") and args.address is None:
            raise SystemExit("imslab li destination: give --address (or name lab elements)")
        try:
            out = asyncio.run(coro_fn(_client(args), args))
        except X1ErrorResponse as exc:
            print(json.dumps({"error": exc.code, "description": exc.description}))
            return 1
        except (X1TransportError, OSError) as exc:
            print(json.dumps({"error": "transport", "description": str(exc)}))
            print(f"imslab li: no X1 answer from {args.ne}; {NO_LAB_HINT}", file=sys.stderr)
            return 1
        print(json.dumps(out, default=str))
        return 0

    return func


def _target(text: str) -> TargetIdentifier:
    low = text.lower()
    if low.startswith(("sip:", "sips:")):
        return TargetIdentifier(kind="sipUri", value=text)
    if low.startswith("tel:"):
        return TargetIdentifier(kind="telUri", value=text)
    kind, sep, value = text.partition(":")
    if not sep:
        return TargetIdentifier(kind="e164Number", value=text)
    return TargetIdentifier(kind=kind, value=value)


def _task(args: argparse.Namespace, xid: uuid.UUID) -> TaskDetails:
    ext = None
    kd = None
    if args.key_delivery or args.mikey_psk_hex:
        kd = KeyDelivery(
            mode=KeyDeliveryMode(args.key_delivery or "keyRecords"),
            mikey_psk=bytes.fromhex(args.mikey_psk_hex) if args.mikey_psk_hex else None,
        )
    mitm = None
    if args.mitm_ref:
        mitm = MitmAuthorisation(
            reference=args.mitm_ref, signalling=args.mitm_signalling, media=args.mitm_media
        )
    if kd is not None or mitm is not None:
        ext = ImslabTaskExtension(key_delivery=kd, mitm=mitm)
    return TaskDetails(
        xid=xid,
        targets=tuple(_target(t) for t in args.target),
        delivery_type=DeliveryType(args.delivery),
        dids=tuple(args.did),
        extension=ext,
    )


def task_json(t: TaskDetails, s: TaskStatus | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "xid": str(t.xid),
        "targets": [f"{x.kind}:{x.value}" for x in t.targets],
        "delivery_type": t.delivery_type.value,
        "dids": [str(d) for d in t.dids],
    }
    if t.extension is not None:
        kd, mitm = t.extension.key_delivery, t.extension.mitm
        out["imslab"] = {
            "key_delivery": kd.mode.value if kd else None,
            "mitm": None
            if mitm is None
            else {"reference": mitm.reference, "signalling": mitm.signalling, "media": mitm.media},
        }
    if s is not None:
        out["status"] = s.provisioning_status
        out["modifications"] = s.number_of_modifications
    return out


def dest_json(d: DestinationDetails) -> dict[str, object]:
    return {
        "did": str(d.did),
        "address": f"{d.host}:{d.port}",
        "delivery_type": d.delivery_type.value,
        "name": d.friendly_name,
    }


def _ok(r: X1Response, **extra: object) -> dict[str, object]:
    return {"ok": r.ok or "AcknowledgedAndCompleted", **extra}


# -- actions --------------------------------------------------------------------------------


async def _ping(c: X1Client, args: argparse.Namespace) -> object:
    return _ok(await c.ping(), ne=args.ne_id)


async def _ensure_destination(c: X1Client, args: argparse.Namespace) -> None:
    """Lab mode: create the lab LEMF's destination on the NE when it is not there yet."""
    dest: DestinationDetails | None = getattr(args, "lab_destination", None)
    if dest is None:
        return
    try:
        await c.get_destination_details(dest.did)
    except X1ErrorResponse:
        await c.create_destination(dest)


async def _task_add(c: X1Client, args: argparse.Namespace) -> object:
    await _ensure_destination(c, args)
    t = _task(args, args.xid or uuid.uuid4())
    return _ok(await c.activate_task(t), xid=str(t.xid))


async def _task_modify(c: X1Client, args: argparse.Namespace) -> object:
    await _ensure_destination(c, args)
    t = _task(args, args.xid)
    return _ok(await c.modify_task(t), xid=str(t.xid))


async def _task_remove(c: X1Client, args: argparse.Namespace) -> object:
    if args.all:
        return _ok(await c.deactivate_all_tasks())
    if args.xid is None:
        raise SystemExit("task remove: give an XID or --all")
    return _ok(await c.deactivate_task(args.xid), xid=str(args.xid))


async def _task_show(c: X1Client, args: argparse.Namespace) -> object:
    r = await c.get_task_details(args.xid)
    assert r.task is not None
    return task_json(r.task, r.task_status)


async def _task_list(c: X1Client, args: argparse.Namespace) -> object:
    r = await c.get_all_details()
    return {"tasks": [task_json(t, s) for t, s in r.tasks]}


def _dest(args: argparse.Namespace, did: uuid.UUID) -> DestinationDetails:
    host, _, port = args.address.rpartition(":")
    return DestinationDetails(
        did=did,
        delivery_type=DeliveryType(args.delivery),
        host=host.strip("[]"),
        port=int(port),
        friendly_name=args.name,
    )


async def _dest_add(c: X1Client, args: argparse.Namespace) -> object:
    d = _dest(args, args.did or uuid.uuid4())
    return _ok(await c.create_destination(d), did=str(d.did))


async def _dest_modify(c: X1Client, args: argparse.Namespace) -> object:
    d = _dest(args, args.did)
    return _ok(await c.modify_destination(d), did=str(d.did))


async def _dest_remove(c: X1Client, args: argparse.Namespace) -> object:
    if args.all:
        return _ok(await c.remove_all_destinations())
    if args.did is None:
        raise SystemExit("destination remove: give a DID or --all")
    return _ok(await c.remove_destination(args.did), did=str(args.did))


async def _dest_show(c: X1Client, args: argparse.Namespace) -> object:
    r = await c.get_destination_details(args.did)
    assert r.destination is not None
    return dest_json(r.destination)


async def _dest_list(c: X1Client, args: argparse.Namespace) -> object:
    r = await c.get_all_details()
    return {"destinations": [dest_json(d) for d in r.destinations]}
