"""The A64 instruction subset of the ifetch catalogue: reading an instruction's text.

Owns: `parse_insn(text, resolve) -> Insn` and the list of mnemonics crossmod runs
(`MNEMONICS`). Imports: litmus.syntax.

The subset (33 mnemonics): loads and stores of data and of instruction encodings (LDR,
STR, STLR), branches (B, B.cond, BL, BR, BLR, RET, CBZ, CBNZ), NOP, register arithmetic
(MOV, ADD, SUB, EOR, AND, ORR, CMP, CSEL, CSET, ADR), cache maintenance (DC CVAU, IC IVAU,
IC IALLU, IC IALLUIS), barriers (DMB, DSB, ISB) and exceptions (SVC, ERET, MSR/MRS of
ELR_EL1, UDF, BRK). Anything else is an error naming the mnemonic.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from crossmod.litmus.syntax import Code, Insn, Mem, Rel

CONDS = ("EQ", "NE", "CS", "HS", "CC", "LO", "MI", "PL", "VS", "VC", "HI", "LS", "GE", "LT",
         "GT", "LE", "AL")
BARRIER_OPTS = {
    "SY": "full", "ISH": "full", "OSH": "full", "NSH": "full",
    "LD": "ld", "ISHLD": "ld", "OSHLD": "ld", "NSHLD": "ld",
    "ST": "st", "ISHST": "st", "OSHST": "st", "NSHST": "st",
}
ARITH = ("ADD", "SUB", "EOR", "AND", "ORR")
MNEMONICS = ("LDR", "STR", "STLR", "B", "B.cond", "BL", "BR", "BLR", "RET", "CBZ", "CBNZ",
             "NOP", "MOV", *ARITH, "CMP", "CSEL", "CSET", "ADR", "DC", "IC", "DMB", "DSB",
             "ISB", "SVC", "ERET", "MSR", "MRS", "UDF", "BRK")
SYSREGS = ("ELR_EL1",)

Resolve = Callable[[str], Code] | None


class InsnError(ValueError):
    """An instruction crossmod cannot read; `col` is its offset within the text."""

    def __init__(self, message: str, col: int = 0) -> None:
        super().__init__(message)
        self.col = col


_REG = re.compile(r"^(X|W)(\d+)$|^(XZR|WZR|SP|WSP)$", re.I)
_IMM = re.compile(r"^#?(-?(?:0x[0-9a-f]+|\d+))$", re.I)


def parse_insn(text: str, resolve: Resolve) -> Insn:
    """Read one instruction; `resolve(label)` gives a label's address (None: labels are not
    allowed, as in an `instr:"..."` value, where only `.+N` targets make sense)."""
    text = " ".join(text.split())
    head, _, rest = text.partition(" ")
    op = head.upper()
    ops = _split(rest) if rest else []
    base = "B.cond" if op.startswith("B.") and op[2:] in CONDS else op
    if base not in MNEMONICS:
        raise InsnError(f"unsupported instruction {head!r} (crossmod runs: "
                        f"{', '.join(MNEMONICS)})")
    try:
        args = _ARGS[base](op, ops, resolve)
    except (IndexError, KeyError):
        raise InsnError(f"cannot read the operands of {text!r}") from None
    return Insn(op, args, text)


def _split(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def reg(s: str) -> tuple[str, int]:
    m = _REG.match(s.strip())
    if not m:
        raise InsnError(f"expected a register, not {s!r}")
    if m.group(3):
        name = m.group(3).upper()
        return ("W" if name in ("WZR", "WSP") else "X", 31)
    n = int(m.group(2))
    if n > 30:
        raise InsnError(f"no register {s!r}")
    return (m.group(1).upper(), n)


def imm(s: str) -> int:
    m = _IMM.match(s.strip())
    if not m:
        raise InsnError(f"expected an immediate, not {s!r}")
    text = m.group(1)
    neg = text.startswith("-")
    digits = text[1:] if neg else text
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
    return -value if neg else value


def _reg_or_imm(s: str) -> tuple[str, int] | int:
    return imm(s) if s.strip().startswith("#") or _IMM.match(s.strip()) else reg(s)


def _target(s: str, resolve: Resolve) -> Code | Rel:
    s = s.strip()
    m = re.match(r"^\.\s*([+-])\s*(\d+)$", s)
    if m:
        return Rel(int(m.group(2)) * (1 if m.group(1) == "+" else -1))
    if resolve is None:
        raise InsnError(f"label {s!r} in an instruction value (use .+N)")
    if not re.match(r"^[A-Za-z_]\w*$", s):
        raise InsnError(f"expected a label, not {s!r}")
    return resolve(s)


def _mem(s: str) -> Mem:
    s = s.strip()
    if not (s.startswith("[") and s.endswith("]")):
        raise InsnError(f"expected an address [Xn...], not {s!r}")
    parts = [p.strip() for p in s[1:-1].split(",")]
    base = reg(parts[0])
    if len(parts) == 1:
        return Mem(base)
    if parts[1].startswith("#"):
        return Mem(base, imm=imm(parts[1]))
    index = reg(parts[1])
    extend, shift = "", 0
    if len(parts) > 2:
        ext = parts[2].split()
        extend = ext[0].upper()
        if extend not in ("SXTW", "UXTW", "LSL", "SXTX", "UXTX"):
            raise InsnError(f"unsupported extend {parts[2]!r}")
        shift = imm(ext[1]) if len(ext) > 1 else 0
    return Mem(base, index=index, extend=extend, shift=shift)


def _none(op: str, ops: list[str], r: Resolve) -> tuple:
    if ops:
        raise InsnError(f"{op} takes no operands")
    return ()


def _ldst(op: str, ops: list[str], r: Resolve) -> tuple:
    if len(ops) != 2:
        raise InsnError(f"{op} takes a register and an address")
    return (reg(ops[0]), _mem(ops[1]))


def _branch(op: str, ops: list[str], r: Resolve) -> tuple:
    return (_target(ops[0], r),)


def _cb(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), _target(ops[1], r))


def _regs1(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]),)


def _ret(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]),) if ops else (("X", 30),)


def _mov(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), _reg_or_imm(ops[1]))


def _arith(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), reg(ops[1]), _reg_or_imm(ops[2]))


def _cmp(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), _reg_or_imm(ops[1]))


def _cond(s: str) -> str:
    c = s.strip().upper()
    if c not in CONDS:
        raise InsnError(f"unknown condition {s!r}")
    return c


def _csel(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), reg(ops[1]), reg(ops[2]), _cond(ops[3]))


def _cset(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), _cond(ops[1]))


def _adr(op: str, ops: list[str], r: Resolve) -> tuple:
    return (reg(ops[0]), _target(ops[1], r))


def _dc(op: str, ops: list[str], r: Resolve) -> tuple:
    if ops[0].upper() != "CVAU":
        raise InsnError(f"unsupported DC operation {ops[0]!r} (crossmod runs DC CVAU)")
    return ("CVAU", reg(ops[1]))


def _ic(op: str, ops: list[str], r: Resolve) -> tuple:
    what = ops[0].upper()
    if what == "IVAU":
        return ("IVAU", reg(ops[1]))
    if what in ("IALLU", "IALLUIS") and len(ops) == 1:
        return (what,)
    raise InsnError(f"unsupported IC operation {', '.join(ops)!r}")


def _barrier(op: str, ops: list[str], r: Resolve) -> tuple:
    opt = ops[0].upper() if ops else "SY"
    if opt not in BARRIER_OPTS:
        raise InsnError(f"unknown {op} option {opt!r}")
    return (opt,)


def _imm1(op: str, ops: list[str], r: Resolve) -> tuple:
    return (imm(ops[0]) if ops else 0,)


def _msr(op: str, ops: list[str], r: Resolve) -> tuple:
    if ops[0].upper() not in SYSREGS:
        raise InsnError(f"unsupported system register {ops[0]!r}")
    return (ops[0].upper(), reg(ops[1]))


def _mrs(op: str, ops: list[str], r: Resolve) -> tuple:
    if ops[1].upper() not in SYSREGS:
        raise InsnError(f"unsupported system register {ops[1]!r}")
    return (reg(ops[0]), ops[1].upper())


_ARGS = {
    "LDR": _ldst, "STR": _ldst, "STLR": _ldst, "B": _branch, "B.cond": _branch,
    "BL": _branch, "BR": _regs1, "BLR": _regs1, "RET": _ret, "CBZ": _cb, "CBNZ": _cb,
    "NOP": _none, "MOV": _mov, **dict.fromkeys(ARITH, _arith), "CMP": _cmp, "CSEL": _csel,
    "CSET": _cset, "ADR": _adr, "DC": _dc, "IC": _ic, "DMB": _barrier, "DSB": _barrier,
    "ISB": _none, "SVC": _imm1, "ERET": _none, "MSR": _msr, "MRS": _mrs, "UDF": _imm1,
    "BRK": _imm1,
}

# Branches with a label operand cannot be written by a test (herd7's AArch64.can_overwrite:
# their encoding depends on where they sit); every other instruction a test holds as a
# value may replace the one at a fetched address.
LABEL_BRANCHES = ("B", "B.cond", "BL", "CBZ", "CBNZ")


# Instructions a CPU may execute while another CPU modifies them (Arm ARM B2.2.5, as
# herd7's AArch64Arch_herd.is_cmodx_restricted_instruction has it -- whose code, unlike its
# comment, counts B.cond as restricted -- plus BRK, which herd7's ISA lacks and the Arm ARM
# and the kernel's aarch64_insn_hotpatch_safe() both list).
CMODX_SAFE = frozenset({"B", "BL", "CBNZ", "CBZ", "ISB", "NOP", "SVC", "BRK"})


def cmodx_restricted(value: object) -> bool:
    """Whether a value, fetched or written, is an instruction outside `CMODX_SAFE` (a
    value that is no instruction is not: herd7's is_cmodx_restricted_value)."""
    return isinstance(value, Insn) and value.op not in CMODX_SAFE


def can_overwrite(insn: Insn) -> bool:
    base = "B.cond" if insn.op.startswith("B.") else insn.op
    return not (base in LABEL_BRANCHES and any(isinstance(a, Code) for a in insn.args))


def as_value(insn: Insn, at: Code) -> Insn:
    """The instruction as memory holds it at `at`: label targets become offsets from its
    own address (an A64 branch or ADR encodes one), so that a copy compares and executes
    like the encoding it is (herd7 prints `B L1` at L0 read as data as `instr:"B .+4"`)."""
    if not any(isinstance(a, Code) for a in insn.args):
        return insn if insn.text == fmt(insn) else Insn(insn.op, insn.args, fmt(insn))
    args = tuple(Rel(a.addr - at.addr) if isinstance(a, Code) else a for a in insn.args)
    out = Insn(insn.op, args)
    return Insn(insn.op, args, fmt(out))


def fmt(insn: Insn) -> str:
    """An instruction's canonical text (`B .+4`, `LDR W4,[X5,W6,SXTW]`)."""
    if not insn.args:
        return insn.op
    return f"{insn.op} {','.join(_fmt_arg(a) for a in insn.args)}"


def _fmt_arg(a: object) -> str:
    if isinstance(a, tuple):
        return ("XZR" if a[0] == "X" else "WZR") if a[1] == 31 else f"{a[0]}{a[1]}"
    if isinstance(a, bool):
        return str(a)
    if isinstance(a, int):
        return f"#{a}"
    if isinstance(a, Mem):
        parts = [_fmt_arg(a.base)]
        if a.index is not None:
            parts.append(_fmt_arg(a.index))
            if a.extend:
                parts.append(a.extend + (f" #{a.shift}" if a.shift else ""))
        elif a.imm:
            parts.append(f"#{a.imm}")
        return f"[{','.join(parts)}]"
    return str(a)
