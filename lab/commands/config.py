"""``imslab config check FILE`` / ``imslab config schema``: the topology file checked, described.

``check`` loads FILE exactly as ``imslab up --config FILE`` would (schema, cross-references,
and the address override when ``--net-offset``/``--subnet`` are given) and prints a one-line
summary; a problem is one line on stderr naming its place (``elements.pcscf-a.address``), exit 2.
``schema`` prints the schema as JSON Schema, or as the Markdown reference of docs/topology.md.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec

from lab import schema, topology


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="check a topology file, or print its schema")
    cs = parser.add_subparsers(dest="config_cmd", required=True, metavar="ACTION")
    check = cs.add_parser("check", help="validate a topology TOML file and summarise it")
    check.add_argument("file", help="the topology TOML file (`-` is not supported: give a path)")
    check.add_argument(
        "--net-offset", type=int, default=0, help="also check the lab shifted by N (third octet)"
    )
    check.add_argument("--subnet", default=None, help="also check the lab collapsed into A.B.C")
    check.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    check.set_defaults(func=_check)
    sch = cs.add_parser("schema", help="print the topology file's schema")
    sch.add_argument(
        "--markdown", action="store_true", help="the Markdown reference (docs/topology.md)"
    )
    sch.set_defaults(func=_schema)


def _check(args: argparse.Namespace) -> int:
    topo = topology.load(args.file, net_offset=args.net_offset, subnet=args.subnet)
    summary = {
        "file": topo.source,
        "ok": True,
        "elements": len(topo.elements),
        "ues": len(topo.ues),
        "subscribers": len(topo.subscribers),
        "operators": len(topo.operators),
        "li_elements": topo.li_elements(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        li = f", LI on {len(topo.li_elements())} elements" if topo.li is not None else ", no [li]"
        print(
            f"{topo.source}: ok — {len(topo.operators)} operators, {len(topo.elements)} "
            f"elements, {len(topo.subscribers)} subscribers, {len(topo.ues)} UEs{li}"
        )
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        print(schema.markdown())
    else:
        print(json.dumps(msgspec.json.schema(schema.TopologySpec), indent=2))
    return 0
