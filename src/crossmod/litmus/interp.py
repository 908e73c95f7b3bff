"""Running a litmus test's threads: every path each thread can take, as events.

Owns: `thread_paths(test, ...)` -> per thread, its `Path`s: the events its instructions make
(machine/aarch64/events.py) with their dependencies, the registers it ends with and the
faults it took. Imports: litmus.syntax, litmus.isa, litmus.program, litmus.semantics,
machine.aarch64.

A thread is run on its own, predicting the value of every read and the instruction every
fetch decodes, from the values the location can hold (`Domains`: a fixpoint over what the
threads' writes can write); the machine later performs the events and keeps only the paths
whose predictions memory fulfils. This is how herd7 builds a thread's event structures
before it chooses rf and co, and how an out-of-order core speculates: a path is a
prediction, the machine its validation.

Which instructions are fetched as events is herd7's rule: those at an address the initial
state names (`0:X1=P1:L0`, `[x]=P1:L0`) or an ADR takes: any other instruction is never
written and always fetched as the test wrote it. A fetch decodes the instruction written
there or one of the test's instruction values that may overwrite it (isa.can_overwrite);
any other value is an UndefinedInstruction fault, as is UDF.

Faults, SVC and BRK enter the thread's handler column (`P0.F`) when it has one -- exception
entry, with ELR_EL1 at the faulting instruction (SVC: the next one) -- and ERET returns to
ELR_EL1; without a handler the thread stops there (herd7's default, `Variant=fatal`), or
goes on as `Variant=skip` / `Variant=handled` say.
A backward branch is followed at most twice (herd7's unrolling bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from crossmod.litmus.isa import as_value, can_overwrite
from crossmod.litmus.program import MASK64, Domains, Dropped, Path, Program, norm, value_key
from crossmod.litmus.semantics import SEMANTICS
from crossmod.litmus.syntax import Code, Insn, Litmus, LitmusError, Mem, Rel, Sym
from crossmod.machine.aarch64.events import INVALID, Deps, Event
from crossmod.machine.aarch64.order import order_thread

UNROLL = 2
MAX_STEPS = 2000


@dataclass
class _St:
    """A thread's interpreter state along one path (copied where a prediction branches)."""

    proc: int
    pc: Code | None
    regs: dict[int, tuple[Any, int, int]]
    flags: tuple[Any, Any, int, int] | None = None
    elr: Any = 0
    in_handler: bool = False
    events: list = field(default_factory=list)
    deps: list = field(default_factory=list)
    ctrl: int = 0
    pctrl: int = 0
    last_w: dict = field(default_factory=dict)
    own: dict = field(default_factory=dict)
    visits: dict = field(default_factory=dict)
    faults: list = field(default_factory=list)
    ran: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    steps: int = 0

    def copy(self) -> _St:
        return _St(self.proc, self.pc, dict(self.regs), self.flags, self.elr,
                   self.in_handler, list(self.events), list(self.deps), self.ctrl,
                   self.pctrl, dict(self.last_w), dict(self.own), dict(self.visits),
                   list(self.faults), list(self.ran), list(self.warnings), self.steps)


class Interp:
    """The interpreter of one test: `paths(proc)` enumerates a thread's paths."""

    def __init__(self, prog: Program, domains: Domains, sc: bool = False,
                 unroll: int = UNROLL, strong_cse: bool = False) -> None:
        self.prog, self.dom, self.sc, self.unroll = prog, domains, sc, unroll
        self.strong_cse = strong_cse
        test = prog.test
        self.exported = prog.exported()
        # herd7's overwriting candidates: the test's instruction values, and the
        # instructions at fetched addresses (its `self` mode adds them to the initial
        # state), less the branches whose encoding depends on where they sit
        cands = {v for v in test.init.values() if isinstance(v, Insn)}
        cands |= {as_value(prog.code[c], c) for c in self.exported
                  if c in prog.code and can_overwrite(prog.code[c])}
        self.overwriters = sorted(cands, key=str)
        self.handlers = {th.proc for th in test.threads if th.handler}
        self.handling = fault_handling(test)

    def paths(self, proc: int) -> list[Path]:
        regs = {int(loc.reg[1:]): (norm(v), 0, 0) for loc, v in self.prog.test.init.items()
                if loc.proc == proc and loc.reg is not None}
        start = _St(proc, Code(proc, False, 0), regs)
        return [self._finish(st) for st in self._run(start)]

    def _finish(self, st: _St) -> Path:
        order = order_thread(st.events, st.deps, sc=self.sc, strong_cse=self.strong_cse)
        return Path(order, {n: v for n, (v, _, _) in st.regs.items()}, tuple(st.faults),
                    tuple(st.ran), tuple(st.warnings))

    # ---- the fetch-decode-execute loop ---------------------------------------------
    def _run(self, st: _St) -> Iterator[_St]:
        todo = [st]
        while todo:
            st = todo.pop()
            if st.pc is None or st.pc.index >= self.prog.ends[(st.pc.proc, st.pc.handler)]:
                yield st
                continue
            st.steps += 1
            if st.steps > MAX_STEPS:
                line = self.prog.lines[st.pc]
                raise LitmusError(self.prog.test.file, line.line, line.col,
                                  f"P{st.proc} runs more than {MAX_STEPS} instructions")
            succ = []
            for s, insn in self._fetch(st):
                with suppress(Dropped):
                    succ.extend(self._execute(s, insn, st.pc))
            todo.extend(reversed(succ))

    def _fetch(self, st: _St) -> list[tuple[_St, Insn | None]]:
        """The instruction at pc; for a fetched address, one successor per instruction
        it may decode (None: none, a fault)."""
        at = st.pc
        assert at is not None  # run() fetches for a running thread only
        orig = self.prog.code[at]
        if at not in self.exported:
            return [(st, orig)]
        decodes = frozenset([as_value(orig, at), *self.overwriters])
        values = self.dom.of(at, st.proc, st.own.get(at, frozenset()))
        guesses: list = [v for v in sorted(decodes, key=value_key) if v in values]
        if any(v not in decodes for v in values):
            guesses.append(INVALID)
        out = []
        for g in guesses:
            s = st.copy() if len(guesses) > 1 else st
            s.events.append(Event("F", at, g, decodes=decodes,
                                  text=f"fetch {self.prog.name(at)}"))
            s.deps.append(Deps())
            out.append((s, None if g is INVALID else g))
        return out

    def _execute(self, st: _St, insn: Insn | None, at: Code) -> list[_St]:
        if insn is None or insn.op == "UDF":
            st.ran.append(f"{self.prog.name(at)}: {insn or '<invalid>'} -> UndefinedInstruction")
            return self._fault(st, at, "UndefinedInstruction", at)
        orig = self.prog.code[at]
        shown = orig if insn == as_value(orig, at) else insn
        st.ran.append(f"{self.prog.name(at)}: {shown}" if at in self.prog.names else str(shown))
        st.pc = Code(at.proc, at.handler, at.index + 1)
        op = "B.cond" if insn.op.startswith("B.") else insn.op
        handler = SEMANTICS.get(op)
        if handler is None:
            raise Dropped
        return handler(self, st, insn, at)

    def _fault(self, st: _St, at: Code, kind: str, elr: Code) -> list[_St]:
        st.faults.append((self.prog.at(at), kind))
        if st.proc not in self.handlers:
            return self._unhandled(st, at, kind)
        if st.in_handler:
            st.warnings.append(f"fault inside the fault handler of P{st.proc} (thread stops)")
            st.pc = None
            return [st]
        self._event(st, Event("EXC", text=f"exception entry ({kind} at {self.prog.name(at)})"),
                    Deps(ctrl=st.ctrl, pctrl=st.pctrl))
        st.elr, st.in_handler = self.prog.at(elr), True
        st.pc = Code(st.proc, True, 0)
        return [st]

    def _unhandled(self, st: _St, at: Code, kind: str) -> list[_St]:
        """A fault with no handler column, as the test's `Variant=` says (herd7's
        Fault.Handling): fatal (the default) ends the thread; skip goes on with the next
        instruction; handled goes on after an SVC and runs a faulting instruction once
        more, discarding the execution if it faults again."""
        if self.handling == "skip" or (self.handling == "handled" and
                                       kind == "SupervisorCall"):
            st.pc = Code(at.proc, at.handler, at.index + 1)
        elif self.handling == "handled":
            if st.in_handler:
                raise Dropped
            st.in_handler, st.pc = True, at
        else:
            st.pc = None
        return [st]

    # ---- registers, events -------------------------------------------------------
    def get(self, st: _St, r: tuple[str, int]) -> tuple[Any, int, int]:
        width, n = r
        if n == 31:
            return (0, 0, 0)
        v, d, p = st.regs.get(n, (0, 0, 0))
        if width == "W" and isinstance(v, int):
            v &= 0xFFFFFFFF
        return (v, d, p)

    def put(self, st: _St, r: tuple[str, int], v: Any, d: int, p: int) -> None:
        width, n = r
        if n == 31:
            return
        if isinstance(v, int):
            v &= 0xFFFFFFFF if width == "W" else MASK64
        st.regs[n] = (v, d, p | d)

    def _event(self, st: _St, e: Event, deps: Deps) -> int:
        st.events.append(e)
        st.deps.append(deps)
        return len(st.events) - 1

    def address(self, st: _St, m: Mem) -> tuple[Any, int, int]:
        base, d, p = self.get(st, m.base)
        off = m.imm
        if m.index is not None:
            iv, id_, ip = self.get(st, m.index)
            if not isinstance(iv, int):
                raise Dropped
            if m.extend == "SXTW" and iv & 0x80000000:
                iv -= 1 << 32
            off += iv << m.shift
            d, p = d | id_, p | ip
        if isinstance(base, Sym):
            if off:
                raise Dropped
            return base, d, p
        if isinstance(base, Code):
            try:
                return Code(base.proc, base.handler, base.index).offset(off), d, p
            except ValueError:
                raise Dropped from None
        raise Dropped

    def target(self, t: Code | Rel, at: Code) -> Code:
        if isinstance(t, Rel):
            try:
                return Code(at.proc, at.handler, at.index).offset(t.offset)
            except ValueError:
                raise Dropped from None
        return Code(t.proc, t.handler, t.index)

    def jump(self, st: _St, tgt: Code, at: Code) -> None:
        """Continue at `tgt`; a jump back within one thread's code (its handler sits after
        its main code, as herd7 lays them out) is taken at most UNROLL times, after which
        the thread stops there (herd7's cutoff, reported)."""
        tgt = Code(tgt.proc, tgt.handler, tgt.index)
        if (tgt.proc, tgt.handler) not in self.prog.ends or tgt.index < 0:
            raise Dropped
        if tgt.proc == at.proc and (tgt.handler, tgt.index) <= (at.handler, at.index):
            st.visits[tgt] = st.visits.get(tgt, 0) + 1
            if st.visits[tgt] > self.unroll:
                st.warnings.append(f"loop unrolling limit reached at {self.prog.name(tgt)}")
                st.pc = None
                return
        st.pc = tgt


HANDLING = {"fatal": "fatal", "precise": "fatal", "handled": "handled",
            "imprecise": "handled", "skip": "skip", "faulttonext": "skip"}


def fault_handling(test: Litmus) -> str:
    """fatal, skip or handled, from the test's `Variant=` line (fatal by default)."""
    words = test.info.get("Variant", "").replace(",", " ").lower().split()
    chosen = [HANDLING[w] for w in words if w in HANDLING]
    return chosen[-1] if chosen else "fatal"


def thread_paths(test: Litmus, sc: bool = False, unroll: int = UNROLL,
                 strong_cse: bool = False, rounds: int = 8
                 ) -> tuple[Program, Domains, list[list[Path]]]:
    """Every path of every thread, with the value domains they were predicted from (grown
    until no path writes a value its location's domain lacks)."""
    prog = Program.of(test)
    dom = Domains(prog)
    for _ in range(rounds):
        interp = Interp(prog, dom, sc, unroll, strong_cse)
        paths = [interp.paths(th.proc) for th in test.threads]
        grew = False
        for th, ps in zip(test.threads, paths, strict=True):
            for p in ps:
                for e in p.order.events:
                    if e.kind == "W":
                        grew |= dom.add(_key(e.loc), e.value, th.proc)
        if not grew:
            return prog, dom, paths
    raise LitmusError(test.file, 1, 1, f"the values written do not settle after {rounds} "
                                       "rounds (a value computed from itself?)")


def _key(loc: Any) -> Any:
    return Code(loc.proc, loc.handler, loc.index) if isinstance(loc, Code) else loc
