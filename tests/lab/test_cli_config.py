"""``imslab config check`` and the topology schema: unknown keys refused with their path,
missing fields naming the element, the docs generated from the same schema (issue 16, item 3)."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lab import schema, topology
from lab.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "topology.md"


def _data() -> dict[str, Any]:
    return tomllib.loads(topology.default_path().read_text())


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    """A TOML file for ``data`` (tomllib reads; we write the few shapes the lab uses)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        return "[" + ", ".join(value(x) for x in v) + "]"

    lines: list[str] = []

    def table(name: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{name}.{json.dumps(k)}", v)

    for key, v in data.items():
        if key == "subscribers":
            for sub in v:
                lines.append("[[subscribers]]")
                lines.extend(f"{k} = {value(x)}" for k, x in sub.items())
        else:
            table(key, v)
    path = tmp_path / "lab.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_round_trip_of_the_builtin_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _data())
    assert tomllib.loads(path.read_text()) == _data()
    assert topology.load(path).elements == topology.load().elements


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["elements"]["pcscf-a"].update(adress="127.0.10.99"),
            "elements.pcscf-a.adress: unknown key (did you mean 'address'?)",
        ),
        (
            lambda d: d["elements"]["scscf-a"].pop("address"),
            "elements.scscf-a.address: missing field (element scscf-a needs it)",
        ),
        (
            lambda d: d["ues"]["bob"].update(transport="sctp"),
            "ues.bob.transport: unknown transport 'sctp' (one of udp, tcp, tls)",
        ),
        (
            lambda d: d["li"]["lemf"].update(port=70000),
            "li.lemf.port: expected int <= 65535",
        ),
        (
            lambda d: d["elements"]["anchor-a"].update(address="127.0.300.1"),
            "elements.anchor-a.address: expected str matching regex",
        ),
        (
            lambda d: d["subscribers"][2].update(impu="sip:x@y"),
            "subscribers[2] (bob@ims-b.test).impu: unknown key (did you mean 'impus'?)",
        ),
        (lambda d: d.update(extra={"x": 1}), "extra: unknown key (allowed: lab, operators"),
        (
            lambda d: d["li"]["operators"]["a"].update(x1port=1),
            "li.operators.a.x1port: unknown key (did you mean 'x1_port'?)",
        ),
        (
            lambda d: d["ues"]["carol"].update(pcscf="pcscf-a", transport="tls", sip_port="5060"),
            "ues.carol.sip_port: expected int, got str",
        ),
        (
            lambda d: d["elements"]["pcscf-v"].update(tls=False),
            "ues.carol.transport: pcscf-v does not offer TLS",
        ),
    ],
)
def test_config_check_names_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Any, expected: str
) -> None:
    data = copy.deepcopy(_data())
    mutate(data)
    path = _write(tmp_path, data)
    assert main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"imslab config check: {path}: ")
    assert expected in line, line
    assert "Traceback" not in line


def test_config_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(topology.default_path()), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True
    assert summary["elements"] == len(topology.load().elements)
    assert "pcscf-a" in summary["li_elements"]


def test_config_check_refuses_a_bad_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(topology.default_path()), "--subnet", "300.1.1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--subnet '300.1.1'" in line and "127.0.7" in line


def test_not_toml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[elements\n")
    assert main(["config", "check", str(bad)]) == 2
    assert main(["config", "check", str(tmp_path / "none.toml")]) == 2
    first, second = capsys.readouterr().err.splitlines()
    assert "not valid TOML" in first
    assert "none.toml: no such file or directory; check the path" in second


def test_json_schema_refuses_unknown_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    element = doc["$defs"]["ElementSpec"]
    assert element["additionalProperties"] is False
    assert set(element["required"]) == {"role", "operator", "address"}


def test_docs_reference_is_the_schema() -> None:
    text = DOCS.read_text()
    m = re.search(r"<!-- schema:begin -->\n(.*)<!-- schema:end -->", text, re.S)
    assert m is not None
    assert m.group(1).strip() == schema.markdown().strip(), (
        "docs/topology.md is stale: paste `imslab config schema --markdown` between the markers"
    )
