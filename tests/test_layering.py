"""The layering rules of docs/architecture.md, checked on every module's imports.

lab -> ue/proxies/li -> ims; inside ims, sdp/sdes/mikey/media never import ims.sip;
proxies never import li (li attaches to the proxies' hook points instead). Inside ims.sip the
layers are pjsip's: transport (sockets, flows) < transaction (the sans-I/O §17 machines) <
the UA endpoint and the proxy core with their asyncio adapters (ims.sip.aio, ims.sip.proxy).
A UE never imports li: its keyings are one explicit table (ue.registry), so an import the
registry makes is an import this test reads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_ABOVE_TRANSACTION = ("ims.sip.aio", "ims.sip.proxy", "ims.sip.dialog")
# (package prefix of the importing module, forbidden import prefixes)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("ims", ("proxies", "ue", "li", "lab")),
    ("ims.sdp", ("ims.sip",)),
    ("ims.sdes", ("ims.sip",)),
    ("ims.mikey", ("ims.sip",)),
    ("ims.media", ("ims.sip",)),
    ("ims.sip.transport", ("ims.sip.transaction", *_ABOVE_TRANSACTION)),
    ("ims.sip.transaction", _ABOVE_TRANSACTION),
    # the sans-I/O cores above the transaction layer never import the asyncio adapters
    ("ims.sip.proxy", ("ims.sip.aio",)),
    ("ims.sip.dialog", ("ims.sip.aio",)),
    ("proxies", ("li", "ue", "lab")),
    ("ue", ("li", "proxies", "lab")),
    ("li", ("lab",)),
]
# A real exception would be listed here, module -> imports, with the reason in a comment.
EXCEPTIONS: dict[str, set[str]] = {}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in ("ims", "proxies", "ue", "li", "lab"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join(parts), path))
    return out


def _imports(path: Path, module: str) -> set[str]:
    return _source_imports(
        path.read_text(encoding="utf-8"), module, is_pkg=path.name == "__init__.py"
    )


def _source_imports(source: str, module: str, *, is_pkg: bool) -> set[str]:
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            # "from ims.sip import transaction" imports the module ims.sip.transaction
            names.update(f"{target}.{alias.name}" for alias in node.names if target)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: str(v))
def test_imports_point_downward(module: str, path: Path) -> None:
    bad = []
    for name in _imports(path, module):
        for owner, forbidden in RULES:
            if _within(module, owner):
                bad += [name for f in forbidden if _within(name, f)]
    bad = [b for b in bad if b not in EXCEPTIONS.get(module, set())]
    assert not bad, f"{module} imports {sorted(set(bad))} against the layering rules"


# --- issue 15: one proxy engine, one hook mechanism ---------------------------------------
#: the IMS elements: routers on the ims.sip.proxy core (proxies/element.py)
ELEMENTS = ("proxies.element", "proxies.pcscf", "proxies.scscf", "proxies.admission")


def _names(path: Path) -> set[str]:
    """Every identifier a module mentions (names and attribute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.rsplit(".", 1)[-1])
    return out


@pytest.mark.parametrize(
    ("module", "path"), [m for m in _modules() if _within(m[0], "proxies")], ids=lambda v: str(v)
)
def test_no_element_uses_sip_endpoint(module: str, path: Path) -> None:
    """The network elements run on the §16 proxy core and its asyncio adapter
    (``ims.sip.proxy.ProxyServer``), never on the UA-style ``SipEndpoint`` (the second proxy
    engine, ``proxies/base.py``, is gone)."""
    # (ims.sip.transport holds only sockets and addresses now; an element may name a Peer or
    # a Flow, never open sockets or run the UA endpoint itself)
    engines = ("ims.sip.aio.endpoint", "ims.sip.transport.udp", "ims.sip.transport.stream")
    bad = {n for n in _imports(path, module) if any(_within(n, e) for e in engines)}
    assert not bad, f"{module} imports {sorted(bad)}: elements run on ims.sip.proxy"
    assert "SipEndpoint" not in _names(path), f"{module} uses SipEndpoint"


def test_the_second_proxy_engine_is_gone() -> None:
    assert not (ROOT / "proxies" / "base.py").exists()


@pytest.mark.parametrize("module", ELEMENTS)
def test_elements_read_no_clock(module: str) -> None:
    """State machines take ``now`` (GUIDE.md): an element's routing decisions use the core's
    ``ctx.now`` / ``rc.now``; none imports ``time`` to read a clock of its own."""
    path = ROOT / (module.replace(".", "/") + ".py")
    assert "time" not in _imports(path, module), f"{module} imports time"
    assert not {"monotonic", "perf_counter"} & _names(path), f"{module} reads a clock"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: str(v))
def test_one_hook_mechanism(module: str, path: Path) -> None:
    """One Direction and one DROP for every hook point (``ims.hooks``): no other module
    defines a drop sentinel, and no hook module its own Direction."""
    if module == "ims.hooks":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            assert node.name not in ("Drop", "_Drop"), f"{module} defines its own {node.name}"
            if module.rsplit(".", 1)[-1] == "hooks":
                assert node.name != "Direction", f"{module} defines its own hook Direction"
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "DROP":
                    raise AssertionError(f"{module} defines its own DROP")


def _forbidden(module: str, names: set[str]) -> list[str]:
    rules = [f for owner, fs in RULES if _within(module, owner) for f in fs]
    return sorted({n for n in names for f in rules if _within(n, f)})


def test_rules_catch_the_imports_they_name() -> None:
    """The rules themselves: a transport module importing the transaction layer, and a UE
    module importing li, are both reported (so a green run above means something)."""
    assert _forbidden("ims.sip.transport.udp", {"ims.sip.transaction.layer"}) == [
        "ims.sip.transaction.layer"
    ]
    assert _forbidden("ims.sip.transport.flow", {"ims.sip.aio.endpoint"}) == [
        "ims.sip.aio.endpoint"
    ]
    assert _forbidden("ue.registry", {"li.keys", "ims.sdp"}) == ["li.keys"]
    assert _forbidden("ims.sip.aio.endpoint", {"ims.sip.transaction", "ims.sip.transport"}) == []
    # a submodule imported by name from its package, or relatively, is read as that submodule
    source = "from ims.sip import transaction\nfrom .. import proxy\n"
    names = _source_imports(source, "ims.sip.transport.udp", is_pkg=False)
    assert _forbidden("ims.sip.transport.udp", names) == ["ims.sip.proxy", "ims.sip.transaction"]


def test_keying_registry_is_static() -> None:
    """ue.registry names every keying module by a plain import this test reads, and no UE
    module loads modules by name (importlib / __import__), which would hide an import."""
    imports = _imports(ROOT / "ue" / "registry.py", "ue.registry")
    assert {"ue.keying_mikey", "ue.keying_sakke", "ue.keying"} <= imports
    for path in sorted((ROOT / "ue").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                assert name not in ("import_module", "__import__"), f"{path} imports by name"
        assert "importlib" not in _imports(path, path.stem)
