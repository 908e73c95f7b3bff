"""Running a litmus test's threads: every path each thread can take, as events.

Owns: `thread_paths(test, ...)` -> per thread, its `Path`s: the events its instructions make
(machine/aarch64/events.py) with their dependencies, the registers it ends with and the
faults it took. Imports: litmus.syntax, litmus.isa, machine.aarch64.

A thread is run on its own, predicting the value of every read and the instruction every
fetch decodes, from the values the location can hold (`Domains`: a fixpoint over what the
threads' writes can write); the machine later performs the events and keeps only the paths
whose predictions memory fulfils. This is how herd7 builds a thread's event structures
before it chooses rf and co, and how an out-of-order core speculates: a path is a
prediction, the machine its validation.

Which instructions are fetched as events is herd7's rule: those at an address the initial
state names (`0:X1=P1:L0`, `[x]=P1:L0`): any other instruction is never written and always
fetched as the test wrote it. A fetch decodes the instruction written there or one of the
test's instruction values that may overwrite it (isa.can_overwrite); any other value is an
UndefinedInstruction fault, as is UDF.

Faults, SVC and BRK enter the thread's handler column (`P0.F`) when it has one -- exception
entry, with ELR_EL1 at the faulting instruction (SVC: the next one) -- and ERET returns to
ELR_EL1; without a handler the thread stops there (herd7's default, `Variant=fatal`).
A backward branch is followed at most twice (herd7's unrolling bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from crossmod.litmus.isa import BARRIER_OPTS, as_value, can_overwrite
from crossmod.litmus.syntax import Code, Insn, Litmus, LitmusError, Loc, Mem, Opaque, Rel, Sym
from crossmod.machine.aarch64.events import INVALID, Deps, Event
from crossmod.machine.aarch64.order import ThreadOrder, order_thread

MASK64 = (1 << 64) - 1
UNROLL = 2
MAX_STEPS = 2000
LINK = 30


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
        code, lines, names, ends = {}, {}, {}, {}
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
        return _norm(self.test.init.get(Loc(addr=loc), 0))

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
        return sorted(vals, key=_value_key)

    def add(self, loc: Any, value: Any, writer: int) -> bool:
        vals = self.values.setdefault(loc, {}).setdefault(writer, set())
        if value in vals:
            return False
        vals.add(value)
        return True


def _value_key(v: Any) -> tuple:
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

    def paths(self, proc: int) -> list[Path]:
        regs = {int(loc.reg[1:]): (_norm(v), 0, 0) for loc, v in self.prog.test.init.items()
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
        orig = self.prog.code[at]
        if at not in self.exported:
            return [(st, orig)]
        decodes = frozenset([as_value(orig, at), *self.overwriters])
        values = self.dom.of(at, st.proc, st.own.get(at, frozenset()))
        guesses: list = [v for v in sorted(decodes, key=_value_key) if v in values]
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
        handler = _SEM.get(op)
        if handler is None:
            raise Dropped
        return handler(self, st, insn, at)

    def _fault(self, st: _St, at: Code, kind: str, elr: Code) -> list[_St]:
        st.faults.append((self.prog.at(at), kind))
        if st.proc not in self.handlers:
            st.pc = None
            return [st]
        if st.in_handler:
            st.warnings.append(f"fault inside the fault handler of P{st.proc} (thread stops)")
            st.pc = None
            return [st]
        self._event(st, Event("EXC", text=f"exception entry ({kind} at {self.prog.name(at)})"),
                    Deps(ctrl=st.ctrl, pctrl=st.pctrl))
        st.elr, st.in_handler = self.prog.at(elr), True
        st.pc = Code(st.proc, True, 0)
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


def _norm(v: Any) -> Any:
    return v & MASK64 if isinstance(v, int) else v


# ---- instruction semantics: one function per mnemonic -------------------------------

def _ldr(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rt, mem = insn.args
    loc, ad, ap = ip.address(st, mem)
    w = st.last_w.get(loc, -1)
    wd = st.deps[w] if w >= 0 else Deps()
    out = []
    values = ip.dom.of(loc, st.proc, st.own.get(loc, frozenset()))
    for v in values:
        s = st.copy() if len(values) > 1 else st
        i = ip._event(s, Event("R", loc, v, text=str(insn)),
                      Deps(addr=ad, paddr=ap, ctrl=s.ctrl, pctrl=s.pctrl, lmrs=w))
        bit = 1 << i
        ip.put(s, rt, v, bit | ad | wd.addr | wd.data,
               bit | ap | wd.paddr | wd.pdata | wd.addr | wd.data)
        out.append(s)
    return out


def _str(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rt, mem = insn.args
    loc, ad, ap = ip.address(st, mem)
    v, d, p = ip.get(st, rt)
    if isinstance(loc, Code):
        loc = ip.prog.at(loc)
    i = ip._event(st, Event("W", loc, v, release=insn.op == "STLR", text=str(insn)),
                  Deps(addr=ad, data=d, ctrl=st.ctrl, paddr=ap, pdata=p, pctrl=st.pctrl))
    st.last_w[loc] = i
    st.own[loc] = st.own.get(loc, frozenset()) | {v}
    return [st]


def _mov(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rd, src = insn.args
    v, d, p = (src, 0, 0) if isinstance(src, int) else ip.get(st, src)
    ip.put(st, rd, v, d, p)
    return [st]


def _arith(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rd, rn, src = insn.args
    a, da, pa = ip.get(st, rn)
    b, db, pb = (src, 0, 0) if isinstance(src, int) else ip.get(st, src)
    ip.put(st, rd, _alu(insn.op, a, b), da | db, pa | pb)
    return [st]


def _alu(op: str, a: Any, b: Any) -> Any:
    if op == "EOR" and a == b:
        return 0
    if op in ("ADD", "SUB") and isinstance(a, Code) and isinstance(b, int):
        try:
            return Code(a.proc, a.handler, a.index).offset(b if op == "ADD" else -b)
        except ValueError:
            raise Dropped from None
    if not (isinstance(a, int) and isinstance(b, int)):
        raise Dropped
    return {"ADD": a + b, "SUB": a - b, "EOR": a ^ b, "AND": a & b, "ORR": a | b}[op]


def _cmp(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rn, src = insn.args
    a, da, pa = ip.get(st, rn)
    b, db, pb = (src, 0, 0) if isinstance(src, int) else ip.get(st, src)
    st.flags = (a, b, da | db, pa | pb | da | db)
    return [st]


def holds(cond: str, flags: tuple | None) -> bool:
    """A condition code on the flags CMP left (integers compare as 64-bit signed/unsigned;
    other values only for equality)."""
    if cond == "AL":
        return True
    if flags is None:
        a = b = 0
    else:
        a, b = flags[0], flags[1]
    if cond in ("EQ", "NE"):
        return (a == b) == (cond == "EQ")
    if not (isinstance(a, int) and isinstance(b, int)):
        raise Dropped
    sa, sb = _signed(a), _signed(b)
    return {"CS": a >= b, "HS": a >= b, "CC": a < b, "LO": a < b, "HI": a > b, "LS": a <= b,
            "GE": sa >= sb, "LT": sa < sb, "GT": sa > sb, "LE": sa <= sb,
            "MI": _signed((a - b) & MASK64) < 0, "PL": _signed((a - b) & MASK64) >= 0,
            "VS": _overflow(sa, sb), "VC": not _overflow(sa, sb)}[cond]


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _overflow(a: int, b: int) -> bool:
    return not -(1 << 63) <= a - b < (1 << 63)


def _flags_taint(st: _St) -> tuple[int, int]:
    return (st.flags[2], st.flags[3]) if st.flags else (0, 0)


def _csel(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    # CSEL's result picks a source by the flags: a pick dependency (iico_ctrl), not dtrm
    rd, rn, rm, cond = insn.args
    v, d, p = ip.get(st, rn if holds(cond, st.flags) else rm)
    fd, fp = _flags_taint(st)
    ip.put(st, rd, v, d, p | fd | fp)
    return [st]


def _cset(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rd, cond = insn.args
    fd, fp = _flags_taint(st)
    ip.put(st, rd, 1 if holds(cond, st.flags) else 0, 0, fd | fp)
    return [st]


def _adr(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    rd, t = insn.args
    ip.put(st, rd, ip.prog.at(ip.target(t, at)), 0, 0)
    return [st]


def _b(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    ip.jump(st, ip.target(insn.args[0], at), at)
    return [st]


def _bl(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    ip.put(st, ("X", LINK), ip.prog.at(st.pc), 0, 0)
    return _b(ip, st, insn, at)


def _indirect(ip: Interp, st: _St, r: tuple[str, int], at: Code) -> None:
    v, d, p = ip.get(st, r)
    if not isinstance(v, Code):
        raise Dropped
    st.ctrl, st.pctrl = st.ctrl | d, st.pctrl | p
    ip.jump(st, v, at)


def _br(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    _indirect(ip, st, insn.args[0], at)
    return [st]


def _blr(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    link = ip.prog.at(st.pc)
    _indirect(ip, st, insn.args[0], at)
    ip.put(st, ("X", LINK), link, 0, 0)
    return [st]


def _cb(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    r, t = insn.args
    v, d, p = ip.get(st, r)
    st.ctrl, st.pctrl = st.ctrl | d, st.pctrl | p
    if (v == 0) == (insn.op == "CBZ"):
        ip.jump(st, ip.target(t, at), at)
    return [st]


def _bcond(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    fd, fp = _flags_taint(st)
    st.ctrl, st.pctrl = st.ctrl | fd, st.pctrl | fp
    if holds(insn.op[2:], st.flags):
        ip.jump(st, ip.target(insn.args[0], at), at)
    return [st]


def _nop(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    return [st]


def _dc(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    loc, d, p = ip.address(st, Mem(insn.args[1]))
    if isinstance(loc, Code):
        loc = ip.prog.at(loc)
    ip._event(st, Event("DC", loc, text=str(insn)),
              Deps(addr=d, paddr=p, ctrl=st.ctrl, pctrl=st.pctrl))
    return [st]


def _ic(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    if insn.args[0] != "IVAU":
        ip._event(st, Event("IC", None, strength=insn.args[0].lower(), text=str(insn)),
                  Deps(ctrl=st.ctrl, pctrl=st.pctrl))
        return [st]
    loc, d, p = ip.address(st, Mem(insn.args[1]))
    if isinstance(loc, Code):
        loc = ip.prog.at(loc)
    ip._event(st, Event("IC", loc, strength="ivau", text=str(insn)),
              Deps(addr=d, paddr=p, ctrl=st.ctrl, pctrl=st.pctrl))
    return [st]


def _barrier(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    ip._event(st, Event(insn.op, strength=BARRIER_OPTS[insn.args[0]], text=str(insn)),
              Deps(ctrl=st.ctrl, pctrl=st.pctrl))
    return [st]


def _isb(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    ip._event(st, Event("ISB", text="ISB"), Deps(ctrl=st.ctrl, pctrl=st.pctrl))
    return [st]


def _svc(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    return ip._fault(st, at, "SupervisorCall", st.pc)


def _brk(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    # a breakpoint (a kprobe's BRK): the exception returns to the BRK itself
    return ip._fault(st, at, "Breakpoint", at)


def _eret(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    if not isinstance(st.elr, Code):
        raise Dropped
    ip._event(st, Event("ERET", text=f"ERET to {ip.prog.name(st.elr)}"),
              Deps(ctrl=st.ctrl, pctrl=st.pctrl))
    st.in_handler = False
    ip.jump(st, st.elr, at)
    return [st]


def _msr(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    st.elr = ip.get(st, insn.args[1])[0]
    return [st]


def _mrs(ip: Interp, st: _St, insn: Insn, at: Code) -> list[_St]:
    ip.put(st, insn.args[0], st.elr, 0, 0)
    return [st]


_SEM = {
    "LDR": _ldr, "STR": _str, "STLR": _str, "MOV": _mov, "ADD": _arith, "SUB": _arith,
    "EOR": _arith, "AND": _arith, "ORR": _arith, "CMP": _cmp, "CSEL": _csel, "CSET": _cset,
    "ADR": _adr, "B": _b, "BL": _bl, "BR": _br, "BLR": _blr, "RET": _br, "CBZ": _cb,
    "CBNZ": _cb, "B.cond": _bcond, "NOP": _nop, "DC": _dc, "IC": _ic, "DMB": _barrier,
    "DSB": _barrier, "ISB": _isb, "SVC": _svc, "ERET": _eret, "MSR": _msr, "MRS": _mrs,
    "BRK": _brk,
}


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


__all__ = ["Domains", "Interp", "Opaque", "Path", "Program", "thread_paths"]
