"""What each instruction of the subset does on one thread's path: one function per mnemonic.

Owns: `SEMANTICS` (mnemonic -> function of the interpreter, the thread's state, the
instruction and its address, giving the successor states) and `holds` (condition codes).
Imports: litmus.syntax, litmus.isa, litmus.program, machine.aarch64.events.

Dependencies are kept as the cat file defines them (aarch64deps.cat): a register's value
carries the reads it depends on through register data flow and through a read of the
thread's own po-latest write to the same location (dtrm), and, separately, through the
condition of a CSEL/CSET too (pick-dtrm: iico_ctrl); a branch on a register or on the flags
adds its reads to every later event's control dependencies (commit_bcc).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crossmod.litmus.isa import BARRIER_OPTS
from crossmod.litmus.program import MASK64, Dropped
from crossmod.litmus.syntax import Code, Insn, Mem
from crossmod.machine.aarch64.events import Deps, Event

if TYPE_CHECKING:
    from crossmod.litmus.interp import Interp, _St

LINK = 30


def _next_pc(st: _St) -> Code:
    """The address after the executing instruction (Interp._execute has moved pc there)."""
    assert st.pc is not None
    return st.pc


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
    ip.put(st, ("X", LINK), ip.prog.at(_next_pc(st)), 0, 0)
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
    link = ip.prog.at(_next_pc(st))
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
    return ip._fault(st, at, "SupervisorCall", _next_pc(st))


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


SEMANTICS = {
    "LDR": _ldr, "STR": _str, "STLR": _str, "MOV": _mov, "ADD": _arith, "SUB": _arith,
    "EOR": _arith, "AND": _arith, "ORR": _arith, "CMP": _cmp, "CSEL": _csel, "CSET": _cset,
    "ADR": _adr, "B": _b, "BL": _bl, "BR": _br, "BLR": _blr, "RET": _br, "CBZ": _cb,
    "CBNZ": _cb, "B.cond": _bcond, "NOP": _nop, "DC": _dc, "IC": _ic, "DMB": _barrier,
    "DSB": _barrier, "ISB": _isb, "SVC": _svc, "ERET": _eret, "MSR": _msr, "MRS": _mrs,
    "BRK": _brk,
}
