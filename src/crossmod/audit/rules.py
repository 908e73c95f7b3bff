"""Entry-path rules: which region a site is in, whether its key can still be flipped after
boot, whether it is tracepoint machinery, and whether its bytes are what the table says.

Owns: `Regions`, `Site` and the capstone checks. Imports: stdlib, capstone, crossmod.audit.
Mirrors: tools/objtool/check.c's noinstr static key/call warnings (KERNEL.md I.1-I.3), done on
the linked binary instead of on vmlinux.o.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import capstone

from crossmod.audit import layout
from crossmod.audit.memory import Memory
from crossmod.audit.symbols import Symbols
from crossmod.audit.tables import JumpEntry, StaticCallSite

# Regions whose code runs before (or instead of) the deferred sync on kernel entry; "other"
# is everything else. Order matters: the first range that contains a site wins.
SENSITIVE = ("entry", "noinstr", "cpuidle")
REGION_MARKERS = {
    "entry": ("__entry_text_start", "__entry_text_end"),
    "noinstr": ("__noinstr_text_start", "__noinstr_text_end"),
    "cpuidle": ("__cpuidle_text_start", "__cpuidle_text_end"),
}
REGION_SECTIONS = {"entry": ".entry.text", "noinstr": ".noinstr.text", "cpuidle": ".cpuidle.text"}
RO_MARKERS = ("__start_ro_after_init", "__end_ro_after_init")
RO_SECTION = ".data..ro_after_init"
TRACEPOINT_PREFIXES = ("__tracepoint_", "__SCK__tp_func_")
SCK, SCT = "__SCK__", "__SCT__"
MAX_INSN = 15


@dataclass(slots=True)
class Regions:
    """Address ranges of the sensitive text regions and of __ro_after_init data."""

    text: dict[str, tuple[int, int]] = field(default_factory=dict)
    ro_after_init: tuple[int, int] | None = None

    def region_of(self, addr: int) -> str:
        for name in SENSITIVE:
            r = self.text.get(name)
            if r is not None and r[0] <= addr < r[1]:
                return name
        return "other"

    def key_is_ro(self, addr: int) -> bool:
        r = self.ro_after_init
        return r is not None and r[0] <= addr < r[1]


def nested(inner: tuple[int, int], outer: tuple[int, int] | None) -> bool:
    return outer is not None and outer[0] <= inner[0] and inner[1] <= outer[1]


def regions_from_markers(symbols: Symbols) -> Regions:
    regions = Regions()
    for name, (lo, hi) in REGION_MARKERS.items():
        start, end = symbols.get(lo), symbols.get(hi)
        if start is not None and end is not None and start < end:
            regions.text[name] = (start, end)
    # Newer kernels link .cpuidle.text inside the noinstr range (Debian's 6.12 does, its 6.1
    # does not); it is reported as its own region only where it is separate.
    idle = regions.text.get("cpuidle")
    if idle is not None and nested(idle, regions.text.get("noinstr")):
        del regions.text["cpuidle"]
    start, end = symbols.get(RO_MARKERS[0]), symbols.get(RO_MARKERS[1])
    if start is not None and end is not None:
        regions.ro_after_init = (start, end)
    return regions


def regions_from_sections(sections: dict[str, tuple[int, int]]) -> Regions:
    """A module keeps its section names (the loader relies on them), so use those."""
    regions = Regions()
    for name, sec in REGION_SECTIONS.items():
        if sec in sections:
            regions.text[name] = sections[sec]
    regions.ro_after_init = sections.get(RO_SECTION)
    return regions


@dataclass(frozen=True, slots=True)
class Site:
    """One patchable instruction, classified and checked."""

    kind: str  # "jump" or "static_call"
    addr: int
    func: str
    region: str
    insn: str  # e.g. "nop5", "jmp2", "call5"
    key: int
    key_name: str
    key_section: str
    key_ro: bool
    tracepoint: bool
    flags: tuple[str, ...]
    problem: str | None  # why the bytes do not verify; None when they do

    @property
    def verified(self) -> bool:
        return self.problem is None

    @property
    def hazard(self) -> bool:
        return self.region in SENSITIVE and not self.key_ro

    def allowed_by(self, allow: frozenset[str]) -> bool:
        base = self.key_name.split("+", 1)[0]
        short = base[len(SCK) :] if base.startswith(SCK) else base
        return bool({self.key_name, base, short} & allow)


@dataclass(slots=True)
class Checker:
    """Everything needed to turn decoded records into Sites."""

    memory: Memory
    symbols: Symbols
    regions: Regions
    key_section: Callable[[int], str]  # address -> name of the section holding it
    is_text: Callable[[int], bool]  # address lies in executable, mapped image bytes
    _cs: capstone.Cs = field(default_factory=lambda: capstone.Cs(capstone.CS_ARCH_X86,
                                                                 capstone.CS_MODE_64))

    def decode(self, addr: int) -> tuple[str, int, int | None] | None:
        """(mnemonic, size, branch target or None) of the instruction at addr."""
        code = self.memory.read_upto(addr, MAX_INSN)
        if not code:
            return None
        for _, size, mnemonic, op_str in self._cs.disasm_lite(code, addr, 1):
            target = None
            if mnemonic.startswith(("j", "call")) and op_str.startswith("0x"):
                target = int(op_str, 16)
            return mnemonic, size, target
        return None

    def _key(self, key: int) -> tuple[str, str, bool, bool]:
        name = self.symbols.object_at(key)
        ro = self.regions.key_is_ro(key)
        section = "ro_after_init" if ro else self.key_section(key)
        return name, section, ro, name.startswith(TRACEPOINT_PREFIXES)

    def jump_site(self, e: JumpEntry) -> Site:
        insn = self.decode(e.code)
        problem = self._check_jump(e, insn)
        name, section, ro, tp = self._key(e.key)
        flags = tuple(f for bit, f in ((layout.JUMP_FLAG_BRANCH, "branch"),
                                       (layout.JUMP_FLAG_OBJTOOL_NOP, "objtool_nop"))
                      if e.flags & bit)
        return Site("jump", e.code, self.symbols.function_at(e.code),
                    self.regions.region_of(e.code), _short(insn), e.key, name, section, ro,
                    tp, flags, problem)

    def _check_jump(self, e: JumpEntry, insn: tuple[str, int, int | None] | None) -> str | None:
        if not self.is_text(e.code):
            return "code address outside the kernel text"
        if insn is None:
            return "undecodable bytes"
        mnemonic, size, target = insn
        if mnemonic not in ("nop", "jmp") or size not in (2, 5):
            return f"{mnemonic} ({size} byte{'s' * (size != 1)}) is not a 2/5-byte NOP or JMP"
        if e.flags & layout.JUMP_FLAG_OBJTOOL_NOP and mnemonic != "nop":
            return f"{mnemonic}{size} where objtool should have left a NOP"
        if mnemonic == "jmp" and target != e.target:
            name = self.symbols.function_at
            return f"jmp to {name(target or 0)}, entry says {name(e.target)}"
        return None

    def call_site(self, s: StaticCallSite) -> Site:
        insn = self.decode(s.addr)
        name, section, ro, tp = self._key(s.key)
        problem = self._check_call(s, name, insn)
        flags = tuple(f for bit, f in ((layout.STATIC_CALL_SITE_TAIL, "tail"),
                                       (layout.STATIC_CALL_SITE_INIT, "init")) if s.flags & bit)
        return Site("static_call", s.addr, self.symbols.function_at(s.addr),
                    self.regions.region_of(s.addr), _short(insn), s.key, name, section, ro, tp,
                    flags, problem)

    def _check_call(self, s: StaticCallSite, key_name: str,
                    insn: tuple[str, int, int | None] | None) -> str | None:
        if not self.is_text(s.addr):
            return "site address outside the kernel text"
        if insn is None:
            return "undecodable bytes"
        mnemonic, _, target = insn
        tail = bool(s.flags & layout.STATIC_CALL_SITE_TAIL)
        # A tail call is a JMP, or a Jcc for conditional tail calls (x86 since v6.1).
        if (mnemonic == "call") == tail or not mnemonic.startswith(("call", "j")):
            return f"{mnemonic} at a {'tail ' if tail else ''}call site"
        if target is None:
            return f"indirect {mnemonic}"
        want = self._trampoline(key_name)
        got = self.symbols.object_at(target)
        if want is not None:
            wanted = SCT + key_name[len(SCK) :]
            return None if target == want else f"{mnemonic} to {got}, not {wanted}"
        return None if got.startswith(SCT) else f"{mnemonic} to {got}, not a trampoline"

    def _trampoline(self, key_name: str) -> int | None:
        if not key_name.startswith(SCK) or "+" in key_name:
            return None
        return self.symbols.get(SCT + key_name[len(SCK) :])


def _short(insn: tuple[str, int, int | None] | None) -> str:
    if insn is None:
        return "?"
    mnemonic, size, _ = insn
    return f"{mnemonic}{size}"
