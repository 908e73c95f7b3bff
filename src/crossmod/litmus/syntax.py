"""What a parsed AArch64 litmus test is made of: values, instructions, the test itself.

Owns: the plain data the parser produces and the interpreter consumes. Imports: stdlib only.

Values, as herd7 has them: an integer; a data location's address (`Sym`: `x`); a code
address (`Code`: the instruction at a label, `P1:L0`); an instruction (`Insn`: `NOP`,
`instr:"B .+12"`). Instructions are compared by what they are, not how they were written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LitmusError(Exception):
    """A litmus file that cannot be read or run: names the file, the line and the column."""

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{col}: {message}")
        self.file, self.line, self.col, self.message = file, line, col, message


@dataclass(frozen=True, order=True)
class Sym:
    """The address of a data location."""

    name: str

    def __str__(self) -> str:
        return self.name


PROC_SIZE, FUNC_SIZE = 100_000, 1_000


@dataclass(frozen=True, order=True)
class Code:
    """The address of an instruction: thread `proc`'s main code or fault handler (`.F`),
    instruction `index` (a label at the end of the code is its length)."""

    proc: int
    handler: bool
    index: int
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name or str(self.addr)

    @property
    def addr(self) -> int:
        """The address herd7 gives it: (proc + 1) * 100000, handlers 1000 further, 4 bytes
        an instruction (herd/loader.ml); unlabelled return addresses print as this."""
        return (self.proc + 1) * PROC_SIZE + (FUNC_SIZE if self.handler else 0) + 4 * self.index

    @classmethod
    def at_addr(cls, addr: int) -> Code:
        proc, rest = divmod(addr, PROC_SIZE)
        handler = rest >= FUNC_SIZE
        rest -= FUNC_SIZE if handler else 0
        if proc < 1 or rest % 4:
            raise ValueError(f"{addr}: not an instruction address")
        return cls(proc - 1, handler, rest // 4)

    def offset(self, nbytes: int) -> Code:
        return Code.at_addr(self.addr + nbytes)


@dataclass(frozen=True, order=True)
class Opaque:
    """A value crossmod only compares and copies (a page-table entry `(oa:phy_x)`)."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Rel:
    """A branch target relative to the branch itself (`B .+12`)."""

    offset: int

    def __str__(self) -> str:
        return f".{self.offset:+d}"


@dataclass(frozen=True)
class Insn:
    """One A64 instruction of the subset (litmus/isa.py): `op` is the mnemonic (`B.NE` for
    a conditional branch), `args` its operands, already resolved (registers as
    ("X"|"W", n), immediates as ints, targets as `Code` or `Rel`, condition codes and
    barrier options as upper-case strings, addresses as `Mem`)."""

    op: str
    args: tuple = ()
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or self.op


@dataclass(frozen=True)
class Mem:
    """An addressing mode: [base], [base,#imm], [base,index{,extend {#amount}}]."""

    base: tuple
    imm: int = 0
    index: tuple | None = None
    extend: str = ""
    shift: int = 0


@dataclass(frozen=True)
class Line:
    """One cell of a thread column: its labels and its instruction (None: labels only)."""

    labels: tuple[str, ...]
    insn: Insn | None
    line: int
    col: int


@dataclass
class Thread:
    """Thread `proc`'s code column, and its fault handler column (`P0.F`) if it has one."""

    proc: int
    code: list[Line]
    handler: list[Line] | None = None


@dataclass(frozen=True)
class Loc:
    """A location a condition or the initial state names: a register of a thread
    (`proc` set, `reg` its number), or memory (`addr` a Sym or Code)."""

    proc: int | None = None
    reg: str | None = None
    addr: Any = None

    def __str__(self) -> str:
        if self.reg is not None:
            return f"{self.proc}:{self.reg}"
        return str(self.addr)


@dataclass(frozen=True)
class Fault:
    """`fault(P0:L0)`, `fault(P0:L0,x)`, `fault(P0:L0,UndefinedInstruction)`."""

    where: Code
    loc: Any = None
    kind: str | None = None

    def __str__(self) -> str:
        parts = [str(self.where)] + [str(p) for p in (self.loc, self.kind) if p is not None]
        return f"fault({','.join(parts)})"


# Propositions: ("atom", Loc, value) | ("fault", Fault) | ("not", p) | ("and", [p...])
# | ("or", [p...]) | ("implies", p, q) | ("true",) | ("false",)
Prop = tuple


@dataclass
class Litmus:
    """A whole test. `quantifier` is exists, ~exists or forall (no condition at all is
    herd7's `forall true`)."""

    file: str
    name: str
    info: dict[str, str]
    init: dict[Loc, Any]
    threads: list[Thread]
    quantifier: str
    prop: Prop
    locations: list[Any] = field(default_factory=list)
    labels: dict[int, dict[str, Code]] = field(default_factory=dict)
    exported: frozenset[Code] = frozenset()
    condition_text: str = ""
    info_lines: dict[str, int] = field(default_factory=dict)
