"""crossmod.audit is a leaf (STYLE Part 3): it imports nothing else from crossmod, and outside
the stdlib only pyelftools, capstone, zstandard and lz4."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import crossmod.audit

ALLOWED_THIRD_PARTY = {"elftools", "capstone", "zstandard", "lz4"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_audit_is_a_leaf():
    package = Path(crossmod.audit.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "crossmod":
                assert name.startswith("crossmod.audit"), f"{path.name} imports {name}"
            else:
                assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (
                    f"{path.name} imports {name}")
