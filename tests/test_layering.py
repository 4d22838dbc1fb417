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
