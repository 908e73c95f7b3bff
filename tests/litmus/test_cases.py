"""The project's own litmus tests (tests/litmus/cases, herd7's syntax): each gives, in its
comment, the verdict Arm's model gives and why -- and, where they differ, the verdict with
sequentially consistent data memory (SC) and under crossmod's earlier reading of arm64
instruction fetch (CSE). Between them they use every construct the parser and the
interpreter claim."""

from __future__ import annotations

import pytest

from crossmod.litmus.catalogue import mnemonics
from crossmod.litmus.isa import MNEMONICS
from crossmod.litmus.parse import parse_file
from crossmod.litmus.run import check
from crossmod.litmus.syntax import Code, Insn

from .conftest import CASES, expectations

FILES = sorted(CASES.glob("*.litmus"))
MODES = {"Arm": {}, "SC": {"memory": "sc"}, "CSE": {"fetch": "cse"}}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_case_verdicts(path):
    want = expectations(path)
    assert "Arm" in want, f"{path.name} gives no 'Arm: <verdict>' in its comment"
    test = parse_file(path)
    got = {mode: check(test, **MODES[mode]) for mode in want}
    assert {mode: r.verdict for mode, r in got.items()} == want
    flagged = "Flag: CMODX" in path.read_text()
    assert bool(got["Arm"].flags) == flagged


def test_every_case_says_why():
    """A verdict and a reason: the comment runs on after the verdict."""
    for path in FILES:
        text = path.read_text()
        reason = text.split("Arm:", 1)[1].split("*)", 1)[0]
        assert len(reason.split()) >= 8, path.name


def _constructs():
    """The tests, and every mnemonic they run: in their code or as instruction values."""
    tests = [parse_file(p) for p in FILES]
    values = {v.op for t in tests for v in t.init.values() if isinstance(v, Insn)}
    return tests, set().union(values, *(mnemonics(t) for t in tests))


def test_the_cases_use_every_mnemonic_crossmod_runs():
    _, used = _constructs()
    assert set(MNEMONICS) - used == {"SUB", "AND", "ORR"}  # arithmetic alike to EOR/ADD


def test_the_cases_use_every_construct_of_the_syntax():
    tests, _ = _constructs()
    assert {t.quantifier for t in tests} == {"exists", "~exists", "forall"}
    assert {t.info.get("CacheType", "") for t in tests} == {"", "IDC", "DIC"}
    assert any("Variant" in t.info for t in tests) and any("Stable" in t.info for t in tests)
    assert any(th.handler for t in tests for th in t.threads)
    assert any(t.locations for t in tests)
    inits = [v for t in tests for v in t.init.values()]
    assert any(isinstance(v, Insn) and v.op == "NOP" for v in inits)
    assert any(isinstance(v, Insn) and v.op == "B" for v in inits)  # instr:"B .+8"
    assert any(isinstance(v, Code) for v in inits)
    assert any(loc.reg is None and isinstance(v, Code) for t in tests
               for loc, v in t.init.items())  # [x]=P1:L0

    def atoms(p):
        if p[0] in ("and", "or"):
            return [a for q in p[1] for a in atoms(q)]
        if p[0] == "implies":
            return atoms(p[1]) + atoms(p[2])
        return [p]

    kinds = {a[0] for t in tests for a in atoms(t.prop)}
    assert {"atom", "fault"} <= kinds
    values = [a[2] for t in tests for a in atoms(t.prop) if a[0] == "atom"]
    assert any(isinstance(v, Code) for v in values)  # label:"P1:L1"
    assert any(a[1].reg is None for t in tests for a in atoms(t.prop) if a[0] == "atom")
    texts = " ".join(p.read_text() for p in FILES)
    assert "ins_t" in texts and "void *" in texts and 'label:"' in texts
