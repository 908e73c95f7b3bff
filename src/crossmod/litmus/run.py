"""Checking a litmus test: every execution on the arm64 machine, the final states, the
verdict.

Owns: `check(test, ...) -> Result` and `witness(...)`, the execution behind an outcome.
Imports: litmus, machine.aarch64, check.outcomes, check.verdict.

The verdict is herd7's kind, from the final states the condition's proposition holds in
(herd's `Observation`): an `exists` or `~exists` test is Allowed when some final state
satisfies it and Forbidden when none does; a `forall` test is Required when every final
state does, Allowed when some do, Forbidden when none does (a test without a condition is
`forall true`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from crossmod.check.outcomes import Outcomes, final_states, path_to
from crossmod.check.verdict import Step
from crossmod.litmus.interp import UNROLL, thread_paths
from crossmod.litmus.isa import cmodx_restricted
from crossmod.litmus.program import Path
from crossmod.litmus.syntax import Code, Fault, Insn, Litmus, LitmusError, Loc, Prop
from crossmod.machine.aarch64.cmodx import cmodx_race
from crossmod.machine.aarch64.machine import MEM, PATHS, A64Config, A64Machine

MEMORY_MODELS = ("arm", "sc")


@dataclass
class Result:
    """One test's verdict and what it rests on (`to_json` for --json)."""

    file: str
    test: str
    verdict: str
    states: int
    seconds: float
    quantifier: str
    condition: str
    cache_type: str
    memory: str
    fetch: str
    final_states: list[str]
    positive: int
    negative: int
    paths: list[int]
    dead_ends: int
    transitions: int
    warnings: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    race: str | None = None
    witness: list[Step] | None = None
    witness_paths: list[list[str]] | None = None
    witness_state: str | None = None
    witness_first: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()
             if k not in ("witness", "witness_paths", "witness_first")}
        d["seconds"] = round(self.seconds, 3)
        if self.witness is not None:
            d["witness"] = [s.to_json() for s in self.witness]
            d["witness_paths"] = self.witness_paths
            d["witness_first"] = self.witness_first
        return d


def cache_type(test: Litmus) -> tuple[bool, bool]:
    """(DIC, IDC) from `CacheType=`; DIC implies IDC (herd7's lib/cacheType.mll)."""
    raw = test.info.get("CacheType", "")
    words = raw.replace(",", " ").split()
    bad = [w for w in words if w.upper() not in ("DIC", "IDC")]
    if bad:
        line = test.info_lines.get("CacheType", 1)
        raise LitmusError(test.file, line, 1, f"CacheType={raw}: {bad[0]!r} is not DIC or IDC")
    dic = any(w.upper() == "DIC" for w in words)
    return dic, dic or any(w.upper() == "IDC" for w in words)


class Run:
    """One test made into a machine: its thread paths, locations and condition."""

    def __init__(self, test: Litmus, memory: str = "arm", fetch: str = "arm",
                 unroll: int = UNROLL) -> None:
        if memory not in MEMORY_MODELS:
            raise ValueError(f"unknown memory model {memory!r}; valid: {MEMORY_MODELS}")
        self.test, self.memory, self.fetch = test, memory, fetch
        self.prog, self.domains, self.paths = thread_paths(
            test, sc=memory == "sc", unroll=unroll, strong_cse=fetch == "cse")
        self.dic, self.idc = cache_type(test)
        self.observed = _observed(test)
        locs = self._locations()
        self.locs = locs
        self.cfg = A64Config(
            threads=tuple(tuple(p.order for p in ps) for ps in self.paths),
            locs=tuple(locs), init=tuple(self.prog.initial(loc) for loc in locs),
            names=tuple(self._name(loc) for loc in locs),
            fetched=frozenset(e.loc for ps in self.paths for p in ps
                              for e in p.order.events if e.kind == "F"),
            dic=self.dic, idc=self.idc, fetch=fetch)
        self.machine = A64Machine(self.cfg)

    def _locations(self) -> list[Any]:
        seen: dict[Any, None] = {}
        for ps in self.paths:
            for p in ps:
                for e in p.order.events:
                    if e.loc is not None:
                        seen.setdefault(e.loc, None)
        for loc in self.observed:
            if isinstance(loc, Loc) and loc.reg is None:
                seen.setdefault(loc.addr, None)
        return sorted(seen, key=lambda v: (isinstance(v, Code), str(v)))

    def _name(self, loc: Any) -> str:
        return self.prog.name(loc) if isinstance(loc, Code) else str(loc)

    # ---- outcomes ------------------------------------------------------------------
    def value(self, state: tuple, loc: Loc) -> Any:
        if loc.reg is not None:
            assert loc.proc is not None  # a register is always some thread's
            path = self.paths[loc.proc][state[PATHS][loc.proc]]
            return path.regs.get(int(loc.reg[1:]), 0)
        i = self.cfg.lidx.get(loc.addr)
        return state[MEM][i] if i is not None else self.prog.initial(loc.addr)

    def holds(self, state: tuple, prop: Prop) -> bool:
        kind = prop[0]
        if kind == "atom":
            return _same(self.value(state, prop[1]), prop[2])
        if kind == "fault":
            return self._faulted(state, prop[1])
        if kind == "not":
            return not self.holds(state, prop[1])
        if kind == "and":
            return all(self.holds(state, p) for p in prop[1])
        if kind == "or":
            return any(self.holds(state, p) for p in prop[1])
        if kind == "implies":
            return not self.holds(state, prop[1]) or self.holds(state, prop[2])
        return kind == "true"

    def _faulted(self, state: tuple, f: Fault) -> bool:
        for t, p in enumerate(state[PATHS]):
            for where, kind in self.paths[t][p].faults:
                if where == f.where and (f.kind is None or f.kind == kind) and f.loc is None:
                    return True
        return False

    def show(self, state: tuple) -> str:
        """A final state as herd7 prints one: the observed locations, then faults."""
        parts = []
        for item in self.observed:
            if isinstance(item, Loc):
                parts.append(f"{item}={_show(self.value(state, item))};")
            elif self._faulted(state, item):
                parts.append(f"{item};")
            else:
                parts.append(f"~{item};")
        return " ".join(parts)

    def path_of(self, state: tuple, t: int) -> Path:
        return self.paths[t][state[PATHS][t]]

    def may_race(self) -> bool:
        """Whether a fetch may meet a write of an instruction outside the CMODX list (only
        then is the CMODX flag worth the graph it needs)."""
        fetched = self.cfg.fetched
        for ps in self.paths:
            for p in ps:
                for e in p.order.events:
                    if e.kind == "F" and (cmodx_restricted(e.value) or any(
                            cmodx_restricted(v) for v in e.decodes)):
                        return True
                    if e.kind == "W" and e.loc in fetched and cmodx_restricted(e.value):
                        return True
        return False

    def tell_race(self, out: Outcomes, s: tuple, f: tuple[int, int], w: tuple[int, int]
                  ) -> str:
        m = self.machine
        _, before = path_to(out, s)
        ef, ew = m.path(s, f[0]).events[f[1]], m.path(s, w[0]).events[w[1]]
        return (f"P{f[0]}'s {ef.text} (decoding {ef.value}) and P{w[0]}'s {ew.text} (writing "
                f"{ew.value}) are ordered by nothing: after {len(before)} moves either may "
                "be performed next")


def _observed(test: Litmus) -> list[Any]:
    """The locations and faults a final state shows: `locations`, then the condition's."""
    out: list[Any] = []
    for item in test.locations:
        if item not in out:
            out.append(item)

    def walk(p: Prop) -> None:
        if p[0] in ("atom", "fault"):
            if p[1] not in out:
                out.append(p[1])
        elif p[0] in ("and", "or"):
            for q in p[1]:
                walk(q)
        elif p[0] == "not":
            walk(p[1])
        elif p[0] == "implies":
            walk(p[1])
            walk(p[2])

    walk(test.prop)
    return out


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, Code) and isinstance(expected, int) and not actual.name:
        actual = actual.addr
    if isinstance(expected, int) and isinstance(actual, int):
        return actual & ((1 << 64) - 1) == expected & ((1 << 64) - 1)
    return actual == expected


def _show(v: Any) -> str:
    """A value as herd7 prints it: label:"P0:L1", an unlabelled address as its number,
    NOP, instr:"B .+4"."""
    if isinstance(v, Code):
        return f'label:"{v.name}"' if v.name else str(v.addr)
    if isinstance(v, Insn):
        return "NOP" if v.op == "NOP" else f'instr:"{v}"'
    return str(v)


def verdict_of(quantifier: str, positive: int, negative: int) -> str:
    if positive == 0:
        return "Forbidden"
    if quantifier == "forall" and negative == 0:
        return "Required"
    return "Allowed"


def check(test: Litmus, memory: str = "arm", fetch: str = "arm", explain: bool = False,
          max_states: int = 5_000_000, unroll: int = UNROLL) -> Result:
    """Every execution of `test`; with `explain`, the one behind the verdict too."""
    t0 = time.perf_counter()
    run = Run(test, memory, fetch, unroll)
    cmodx = run.may_race()
    out = final_states(run.machine, max_states=max_states, keep_edges=cmodx)
    finals: dict[str, bool] = {}
    witness_of: dict[bool, tuple] = {}
    for s in out.finals:
        ok = run.holds(s, test.prop)
        finals.setdefault(run.show(s), ok)
        witness_of.setdefault(ok, s)
    pos = sum(finals.values())
    neg = len(finals) - pos
    result = Result(
        test.file, test.name, verdict_of(test.quantifier, pos, neg), out.states,
        time.perf_counter() - t0, test.quantifier, test.condition_text,
        f"DIC{int(run.dic)}-IDC{int(run.idc)}",
        memory, fetch, sorted(finals), pos, neg, [len(ps) for ps in run.paths],
        out.dead_ends, out.transitions,
        sorted({w for ps in run.paths for p in ps for w in p.warnings}))
    race = cmodx_race(run.machine, out, cmodx_restricted) if cmodx else None
    if race is not None:
        result.flags.append("violates-CMODX-requirements")
        result.race = run.tell_race(out, *race)
    if explain:
        wanted = test.quantifier != "forall" or result.verdict == "Required"
        target = witness_of.get(wanted)
        if target is not None:
            result.witness, result.witness_paths, result.witness_first = witness(
                run, out, target)
            result.witness_state = run.show(target)
    result.seconds = time.perf_counter() - t0
    return result


def witness(run: Run, out: Outcomes, state: tuple
            ) -> tuple[list[Step], list[list[str]], list[str]]:
    """The moves that reach `state`, replayed and told, each thread's path in it, and the
    barriers performed before any move."""
    start, moves = path_to(out, state)
    m = run.machine
    m.narrate = True
    steps, s = [], start
    for mv in moves:
        idx = m.moves(s).index(mv)
        s, events = m.step(s, mv)
        steps.append(Step(idx, mv[0], "perform", mv[1], events))
    return steps, [list(run.path_of(start, t).ran) for t in range(len(run.paths))], \
        m.performed_first(start)
