"""The layering rules of docs/architecture.md, checked on every module's imports.

lab -> ue/proxies/li -> ims; inside ims, sdp/sdes/mikey/media never import ims.sip;
proxies never import li (li attaches to the proxies' hook points instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (package prefix of the importing module, forbidden import prefixes)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("ims", ("proxies", "ue", "li", "lab")),
    ("ims.sdp", ("ims.sip",)),
    ("ims.sdes", ("ims.sip",)),
    ("ims.mikey", ("ims.sip",)),
    ("ims.media", ("ims.sip",)),
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
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = module.split(".")
                is_pkg = path.name == "__init__.py"
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
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
