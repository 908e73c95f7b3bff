"""Sets of litmus tests as herdtools7 keeps them: index files, kinds files, tiers.

Owns: `expand(paths)` (files, directories and herd's `@all`-style index files -> test
files), `read_kinds(path)` (a `kinds.txt`: test name -> Allowed / Forbidden / Required)
and `tier(test)`, the three groups the README counts agreement in. Imports: litmus.syntax.
"""

from __future__ import annotations

from pathlib import Path

from crossmod.litmus.syntax import Litmus, LitmusError

KINDS = ("Allowed", "Forbidden", "Required")
# herd7 reads both spellings (lib/constrGen.ml's parse_kind)
_SPELLINGS = {"Allow": "Allowed", "Allowed": "Allowed", "Forbid": "Forbidden",
              "Forbidden": "Forbidden", "Require": "Required", "Required": "Required"}
TIERS = ("jump-label core", "calls and arithmetic", "faults and exceptions")
# The jump-label core: stores and loads (of instructions and of data), branches -- direct
# and conditional, which the tests use to observe a fetch and to build control
# dependencies --, NOP and MOV, cache maintenance and barriers.
CORE = frozenset({"LDR", "STR", "B", "B.cond", "CBZ", "CBNZ", "NOP", "MOV", "DC", "IC", "DMB",
                  "DSB", "ISB"})
EXCEPTIONS = frozenset({"SVC", "ERET", "MSR", "MRS", "UDF", "BRK"})


def expand(paths: list[str]) -> list[Path]:
    """Every test file named: a `.litmus` file, each `.litmus` file under a directory
    (sorted), or the entries of an index file whose name starts with `@` (one path per
    line, relative to the index, `#` comments, nested indexes), each once, in order."""
    out: dict[Path, None] = {}
    for p in paths:
        for f in _expand(Path(p), set()):
            out.setdefault(f, None)
    return list(out)


def _expand(p: Path, seen: set[Path]) -> list[Path]:
    if p.is_dir():
        return sorted(p.rglob("*.litmus"))
    if p.name.startswith("@"):
        key = p.resolve()
        if key in seen:
            raise LitmusError(str(p), 1, 1, "index file includes itself")
        seen = seen | {key}
        try:
            lines = p.read_text().splitlines()
        except OSError as e:
            raise LitmusError(str(p), 0, 0, f"cannot read: {e.strerror}") from None
        out = []
        for n, line in enumerate(lines, 1):
            entry = line.split("#", 1)[0].strip()
            if entry:
                target = p.parent / entry
                if not target.exists():
                    raise LitmusError(str(p), n, 1, f"{entry}: no such file")
                out.extend(_expand(target, seen))
        return out
    if not p.exists():
        raise LitmusError(str(p), 0, 0, "no such file")
    return [p]


def read_kinds(path: str | Path) -> dict[str, str]:
    """`NAME KIND` lines (herd7's -kinds file); a name given twice must agree."""
    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LitmusError(str(path), 0, 0, f"cannot read: {e}") from None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        kind = _SPELLINGS.get(parts[1]) if len(parts) == 2 else None
        if kind is None:
            raise LitmusError(str(path), n, 1, f"expected 'NAME {'|'.join(KINDS)}', not "
                                               f"{line.strip()[:60]!r}")
        if out.get(parts[0], kind) != kind:
            raise LitmusError(str(path), n, 1, f"{parts[0]} given two kinds")
        out[parts[0]] = kind
    return out


def mnemonics(test: Litmus) -> set[str]:
    out = set()
    for th in test.threads:
        for line in th.code + (th.handler or []):
            if line.insn is not None:
                out.add("B.cond" if line.insn.op.startswith("B.") else line.insn.op)
    return out


def tier(test: Litmus) -> str:
    """Which of `TIERS` a test belongs to: faults and exceptions if it has a handler
    column, a fault(...) term or an exception instruction; else the jump-label core if
    it uses only `CORE`; else calls and arithmetic."""
    ops = mnemonics(test)
    faulty = any(th.handler for th in test.threads) or "fault(" in "".join(
        test.condition_text.split())
    if faulty or ops & EXCEPTIONS:
        return TIERS[2]
    return TIERS[0] if ops <= CORE else TIERS[1]
