"""What a litmus test's code and locations are, and the values its reads may predict.

Owns: `Program` (the instructions by address, what every location starts out holding, which
addresses are fetched as events), `Domains` (the values a read may take), `Path` (one
thread's path, as the interpreter hands it on) and `Dropped`. Imports: litmus.syntax,
litmus.isa, machine.aarch64.order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossmod.litmus.isa import as_value
from crossmod.litmus.syntax import Code, Insn, Litmus, Loc
from crossmod.machine.aarch64.order import ThreadOrder

MASK64 = (1 << 64) - 1


class Dropped(Exception):
    """This prediction leads nowhere herd7 would go (a branch to a non-address, arithmetic
    on an instruction): the path is not an execution."""


@dataclass
class Program:
    """The test's code by address, and what every address starts out holding."""

    test: Litmus
    code: dict[Code, Insn]
    lines: dict[Code, Any]
    names: dict[Code, str]
    ends: dict[tuple[int, bool], int]

    @classmethod
    def of(cls, test: Litmus) -> Program:
        code: dict[Code, Insn] = {}
        lines: dict[Code, Any] = {}
        names: dict[Code, str] = {}
        ends: dict[tuple[int, bool], int] = {}
        for th in test.threads:
            for handler, column in ((False, th.code), (True, th.handler or [])):
                index = 0
                for ln in column:
                    here = Code(th.proc, handler, index)
                    for lab in ln.labels:
                        names.setdefault(here, f"P{th.proc}:{lab}")
                    if ln.insn is not None:
                        code[here], lines[here] = ln.insn, ln
                        index += 1
                ends[(th.proc, handler)] = index
        return cls(test, code, lines, names, ends)

    def name(self, c: Code) -> str:
        return self.names.get(Code(c.proc, c.handler, c.index)) or str(c)

    def at(self, c: Code) -> Code:
        """`c` with its label's name, if it has one (for display)."""
        return Code(c.proc, c.handler, c.index,
                    self.names.get(Code(c.proc, c.handler, c.index), ""))

    def initial(self, loc: Any) -> Any:
        """What a location holds first: an address its instruction (as memory holds it),
        a data location its initial value (0 unless the test says)."""
        if isinstance(loc, Code):
            here = Code(loc.proc, loc.handler, loc.index)
            insn = self.code.get(here)
            return 0 if insn is None else as_value(insn, here)
        return norm(self.test.init.get(Loc(addr=loc), 0))

    def exported(self) -> set[Code]:
        """The addresses whose instructions are fetched as events: the labels the initial
        state names, and those an ADR names (herd7's get_exported_labels)."""
        out = {Code(c.proc, c.handler, c.index) for c in self.test.exported}
        for insn in self.code.values():
            if insn.op == "ADR" and isinstance(insn.args[1], Code):
                t = insn.args[1]
                out.add(Code(t.proc, t.handler, t.index))
        return out


@dataclass
class Domains:
    """The values a read by one thread may take: the location's initial value and what
    any path of any *other* thread writes there -- its own thread's writes it sees only
    po-earlier ones, which the path itself knows (a read never reads its own thread's
    po-later write: coherence), so a thread's arithmetic on a location feeds back only
    through another thread."""

    prog: Program
    values: dict[Any, dict[int, set]] = field(default_factory=dict)

    def of(self, loc: Any, reader: int, own: set | frozenset = frozenset()) -> list:
        vals = {self.prog.initial(loc), *own}
        for writer, vs in self.values.get(loc, {}).items():
            if writer != reader:
                vals |= vs
        return sorted(vals, key=value_key)

    def add(self, loc: Any, value: Any, writer: int) -> bool:
        vals = self.values.setdefault(loc, {}).setdefault(writer, set())
        if value in vals:
            return False
        vals.add(value)
        return True


def value_key(v: Any) -> tuple:
    return (type(v).__name__, str(v))


@dataclass
class Path:
    """One path of one thread: its events in order, their static order, its final
    registers (by number), the faults it took (where, kind) and what it ran."""

    order: ThreadOrder
    regs: dict[int, Any]
    faults: tuple[tuple[Code, str], ...]
    ran: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def norm(v: Any) -> Any:
    return v & MASK64 if isinstance(v, int) else v
