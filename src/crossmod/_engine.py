"""Which build of the checker's engine runs: the mypyc-compiled modules or their sources.

The modules named in engine_modules.txt (the machine's step and the explorer's loop) are
compiled by setup.py with mypyc from the same Python sources, which stay the reference:
the two builds must give the same answer on every input (tests/model/test_engine.py runs
the catalogue through both). `CROSSMOD_ENGINE` chooses:

  auto      (default) the compiled modules when they are installed and were built from the
            sources beside them (their sha256s, recorded by setup.py in
            _engine_stamp.json, match), else the sources, with a one-line note on stderr
            when compiled modules are present but stale (an edited source in an editable
            install: `pip install -e .` rebuilds them)
  python    always the sources
  compiled  the compiled modules or a one-line error

`ENGINE` says which one this process runs. `select()` must run before any engine module is
imported: crossmod/__init__.py calls it first.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).parent
MODULES = tuple(f"crossmod.{m}" for m in
                (_HERE / "engine_modules.txt").read_text().split())
ENGINE = "python"


class EngineError(RuntimeError):
    """`CROSSMOD_ENGINE` asks for what this installation cannot give."""


def source_of(module: str) -> Path:
    return _HERE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _compiled(module: str) -> bool:
    stem = source_of(module)
    return any(stem.parent.glob(stem.stem + ".*.so"))


def source_digests() -> dict[str, str]:
    """sha256 of each engine module's source (what setup.py records at build time)."""
    return {m: hashlib.sha256(source_of(m).read_bytes()).hexdigest() for m in MODULES}


def _stamp() -> dict[str, str] | None:
    try:
        data = json.loads((_HERE / "_engine_stamp.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads the engine modules from their .py files, ahead of the compiled ones."""

    def find_spec(self, name: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(name, source_of(name))


def select() -> str:
    """Choose the build (see the module docstring); returns and records it in ENGINE."""
    global ENGINE
    want = os.environ.get("CROSSMOD_ENGINE", "auto")
    if want not in ("auto", "python", "compiled"):
        raise EngineError(f"CROSSMOD_ENGINE={want!r}: valid values are auto, python, compiled")
    present = all(_compiled(m) for m in MODULES)
    current = present and _stamp() == source_digests()
    if want == "compiled" and not current:
        why = "is stale (rebuild: pip install -e .)" if present else "is not installed"
        raise EngineError(f"CROSSMOD_ENGINE=compiled: the compiled engine {why}")
    if want == "python" or not current:
        if present and want == "auto":
            print("crossmod: the compiled engine is older than its sources; running the "
                  "sources (rebuild: pip install -e .)", file=sys.stderr)
        if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceFirst())
        ENGINE = "python"
    else:
        ENGINE = "compiled"
    return ENGINE
