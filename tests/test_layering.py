"""The import rules of STYLE.md Part 3, checked by scanning imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "crossmod"

# package -> crossmod packages it may import (itself always allowed)
ALLOWED = {
    "machine": set(),
    "kernel": {"machine"},
    "check": {"machine"},
    "report": {"check", "machine"},
    "catalogue": {"machine", "kernel"},
    "litmus": {"machine", "check", "report"},
    "trace": set(),
    "audit": set(),
    "lab": {"trace"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m.split(".")[1] for m in out if m.startswith("crossmod.") and "." in m}


def test_layering():
    bad = []
    for pkg, allowed in ALLOWED.items():
        for path in (SRC / pkg).rglob("*.py"):
            for dep in imports_of(path) - allowed - {pkg}:
                bad.append(f"{path.relative_to(SRC)} imports crossmod.{dep}")
    assert not bad, "\n".join(bad)


def test_kernel_routines_import_only_ops_from_machine():
    for path in (SRC / "kernel").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "crossmod.machine"):
                assert node.module == "crossmod.machine" or node.module == \
                    "crossmod.machine.ops", f"{path.name} imports {node.module}"


def test_only_cli_reads_argv_or_exits():
    for path in SRC.rglob("*.py"):
        if "cli" in path.parts or path.name == "__main__.py":
            continue
        text = path.read_text()
        assert "sys.argv" not in text and "sys.exit(" not in text, path
