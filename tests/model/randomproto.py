"""Random small protocols, and the differential check that runs them under every reduction.

Owns: `Protocol` (a protocol as plain data: per-CPU programs of a small instruction set, the
NMI handler's program, the machine's models, which CPUs are declared readers and which are
declared symmetric), `build(protocol) -> System`, the hypothesis strategy `protocols()`, the
reference search `reference_properties(system)` (a plain breadth-first walk of the machine
that does not stop at the first violation and shares no code with the explorer but
`Machine.moves`/`Machine.step`), and `compare(protocol) -> Comparison`, the lasting guard of
check/reduction.py and machine/symmetry.py.

Used by tests/model/test_differential.py (a bounded profile in CI) and by
benchmarks/differential_soundness.py (the long profile).

The instruction set covers every op kind the reductions reason about: stores, loads and
RMWs of globals and per-CPU variables, the three fences, text stores of every kind (whole
instruction, INT3, head or tail byte, the old bytes), executions of the site, serialization,
`PatchReturned`, IPIs with and without wait (to every other CPU, or to those a per-CPU
condition selects) and bare IPIs, interrupt masking, nondeterministic choices, waits on two
addresses at once, reads of the site's bytes as data, `smp_processor_id()` (which forbids
symmetry on that CPU), blocking waits and polling loops (cycles of the state
graph), assertions on memory and on loaded registers, a mutex with its lockdep assertion,
and loads of a named CPU's per-CPU variable (which forbid symmetry on that CPU). Readers and
symmetric classes are declared only where the declaration is legal; the generator decides
legality from the programs, and the machine enforces it independently.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from crossmod.check.explore import explore, replay_schedule
from crossmod.check.verdict import Bounds, Verdict
from crossmod.kernel.smp import Gen, do_sync_core, generic_smp_call_function_single_interrupt
from crossmod.machine import ops
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.machine.state import CPUS, STACK, MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import A64_NOP, BRK64_OPCODE_KPROBES, Site, a64, a64_b

Instr = tuple[Any, ...]

X86_SITE = Site("site", b"\x66\x90", ((b"\x66\x90", "nop"), (b"\xeb\x00", "jmp")))
A64_MOV = a64(0xAA1303E0)
ARM64_SITE = Site("site", a64(A64_NOP), ((a64(A64_NOP), "nop"), (a64_b(0x40), "b"),
                                         (A64_MOV, "mov")), arch="arm64")
# (offset, bytes) a text store writes, by name
X86_TEXT = {"new": (0, b"\xeb\x00"), "old": (0, b"\x66\x90"), "int3": (0, b"\xcc"),
            "head": (0, b"\xeb"), "tail": (1, b"\x00")}
ARM64_TEXT = {"new": (0, a64_b(0x40)), "old": (0, a64(A64_NOP)),
              "int3": (0, a64(BRK64_OPCODE_KPROBES)), "mov": (0, A64_MOV)}

GLOBALS = (("x", 0), ("y", 0), ("emu", None), ("m", None))
EFFECTS = ("nop", "jmp", "b", "mov")
VALUES = (0, 1, 2)


def _addr(name: str) -> ops.Addr:
    return ops.this_cpu("r") if name == "r" else name


@functools.cache
def _equals(v: Any):
    def equals(x: Any) -> bool:
        return x == v
    equals.__name__ = f"equals_{v}"
    return equals


@functools.cache
def _differs(v: Any):
    def differs(x: Any) -> bool:
        return x != v
    differs.__name__ = f"differs_{v}"
    return differs


@functools.cache
def _both(v: Any):
    def both(a: Any, b: Any) -> bool:
        return a == v and b == v
    both.__name__ = f"both_{v}"
    return both


@functools.cache
def _constant(b: bool):
    def constant() -> bool:
        return b
    return constant


def _inc(v: Any) -> tuple[Any, Any]:
    n = (v or 0) + 1
    return min(n, 3), n


def _xchg1(v: Any) -> tuple[Any, Any]:
    return 1, v


RMWS = {"inc": _inc, "xchg": _xchg1}


def model_ipi_exec() -> Gen:
    """An IPI callback that runs through the site and marks this CPU."""
    yield ops.ExecSite("site", label="callback")
    yield ops.Store(ops.this_cpu("r"), 1, label="callback")


CALLBACKS = {"sync": do_sync_core, "exec": model_ipi_exec}


def model_int3_handler(site: str) -> Gen:
    """Claims the trap with whatever `emu` says (None: not handled)."""
    return (yield ops.Load("emu", label="int3 handler"))


def model_program(prog: tuple[Instr, ...], text: tuple[tuple[str, tuple], ...],
                  irqs_on: bool = True) -> Gen:
    """Interpret one CPU's program. The position is a local (`pc`), never an iterator, so
    that two identical instructions at different places are different routine states.
    `irqs_on`: the flags a restore with no save before it restores (an NMI program runs
    with interrupts off, and the machine refuses their enabling there)."""
    pc, regs, flags = 0, (), irqs_on
    while pc < len(prog):
        ins = prog[pc]
        kind = ins[0]
        if kind == "store":
            yield ops.Store(_addr(ins[1]), ins[2])
        elif kind == "load":
            regs = (*regs, (yield ops.Load(_addr(ins[1]))))[-2:]
        elif kind == "peek":
            regs = (*regs, (yield ops.Load(ops.per_cpu("r", ins[1]))))[-2:]
        elif kind == "rmw":
            regs = (*regs, (yield ops.Rmw(_addr(ins[1]), RMWS[ins[2]])))[-2:]
        elif kind == "fence":
            yield ops.Fence(ins[1], pairs_with="random")
        elif kind == "text":
            off, data = next(w for name, w in text if name == ins[1])
            yield ops.TextStore("site", off, data)
        elif kind == "exec":
            regs = (*regs, (yield ops.ExecSite("site")))[-2:]
        elif kind == "serialize":
            yield ops.Serialize()
        elif kind == "returned":
            yield ops.PatchReturned("site")
        elif kind == "ipi":
            yield ops.CsdQueue("others", CALLBACKS[ins[2]], (), sync=ins[1])
            if ins[1]:
                yield ops.CsdLockWait("others")
        elif kind == "ipicond":
            yield ops.CsdQueueCond("r", _equals(ins[1]), do_sync_core, (), sync=True)
            yield ops.CsdLockWait("others")
        elif kind == "irqsave":
            flags = yield ops.IrqSave()
        elif kind == "irqrestore":
            yield ops.IrqRestore(flags)
        elif kind == "wait":
            yield ops.WaitUntil(_addr(ins[1]), _equals(ins[2]))
        elif kind == "waitfor":  # another CPU's per-CPU variable (forbids symmetry on it)
            yield ops.WaitUntil(ops.per_cpu("r", ins[1]), _equals(ins[2]))
        elif kind == "poll":
            while (yield ops.Load(_addr(ins[1]))) != ins[2]:
                pass
        elif kind == "check":
            yield ops.Check((_addr(ins[1]),), _differs(ins[2]), "assert",
                            f"{ins[1]} == {ins[2]}")
        elif kind == "see":  # a litmus outcome: this load must not read that value
            got = yield ops.Load(_addr(ins[1]))
            yield ops.Check((), _constant(got != ins[2]), "assert", f"{ins[1]} read {ins[2]}")
        elif kind == "runs":  # an outcome of an execution: it must not take that path
            got = yield ops.ExecSite("site")
            yield ops.Check((), _constant(got != ins[1]), "assert", f"site ran {ins[1]}")
        elif kind == "checkreg":
            ok = not regs or regs[-1] != ins[1]
            yield ops.Check((), _constant(ok), "assert", f"loaded {ins[1]}")
        elif kind == "storeall":
            yield ops.StorePerCpu("r", ins[1])
        elif kind == "waitall":
            yield ops.WaitPerCpu("r", _equals(ins[1]))
        elif kind == "lock":
            yield ops.MutexLock("m")
        elif kind == "unlock":
            yield ops.MutexUnlock("m")
        elif kind == "held":
            yield ops.AssertHeld("m")
        elif kind == "choose":  # the alternative taken becomes a register
            regs = (*regs, (yield ops.Choose(ins[1])))[-2:]
        elif kind == "waitboth":
            yield ops.WaitAll(tuple(_waddr(a) for a in ins[1]), _both(ins[2]))
        elif kind == "readtext":  # a register compared with ints: only an assertion's input
            regs = (*regs, (yield ops.ReadText("site"))[0])[-2:]
        elif kind == "rawipi":
            yield ops.SendIpi("others", CALLBACKS[ins[1]])
        elif kind == "cpuid":  # forbids symmetry on this CPU
            regs = (*regs, (yield ops.SmpProcessorId()))[-2:]
        pc += 1


def _waddr(a: Any) -> ops.Addr:
    """A `WaitAll` address: a name, or another CPU's instance of `r` by number."""
    return ops.per_cpu("r", a) if isinstance(a, int) else _addr(a)


# Instructions a reader may run (check/reduction.py, assumption A): it writes only its own
# per-CPU variable and reads no other CPU's.
READER_KINDS = frozenset({"load", "fence", "exec", "serialize", "irqsave", "irqrestore",
                          "wait", "poll", "check", "checkreg", "see", "runs", "choose",
                          "readtext", "cpuid"})


def reader_legal(prog: tuple[Instr, ...]) -> bool:
    for ins in prog:
        if ins[0] in READER_KINDS:
            continue
        if ins[0] in ("store", "rmw") and ins[1] == "r":
            continue
        if ins[0] == "waitboth" and not any(isinstance(a, int) for a in ins[1]):
            continue
        return False
    return True


@dataclass(frozen=True)
class Protocol:
    """A random protocol as plain data (its repr is the reproducer hypothesis prints)."""

    programs: tuple[tuple[Instr, ...], ...]
    nmi_program: tuple[Instr, ...] = ()
    nmis: int = 0
    nmi_cpus: tuple[int, ...] | None = None
    arch: str = "x86"
    fetch: str = "per-byte"
    memory: str = "tso"
    readers: frozenset[int] = frozenset()
    symmetric: tuple[tuple[int, ...], ...] = ()


def build(p: Protocol) -> System:
    text = tuple((ARM64_TEXT if p.arch == "arm64" else X86_TEXT).items())
    site = ARM64_SITE if p.arch == "arm64" else X86_SITE
    cfg = MachineConfig(
        ncpus=len(p.programs), sites=(site,),
        tasks=tuple((model_program, (prog, text)) for prog in p.programs),
        int3_handler=model_int3_handler, ipi_handler=generic_smp_call_function_single_interrupt,
        nmi_handler=(model_program, (p.nmi_program, text, False)), nmis=p.nmis,
        nmi_cpus=p.nmi_cpus, globals=GLOBALS, percpu=(("r", 0),),
        cpu_valued=frozenset({"m"}), fetch=p.fetch, memory=p.memory, arch=p.arch,
        readers=p.readers, symmetric=p.symmetric)
    return System("random", cfg)


# ---- the strategy ----------------------------------------------------------------------

_ADDR = st.sampled_from(("x", "y", "r", "emu"))
_VAL = st.sampled_from(VALUES)


def _instr(arch: str, ncpus: int) -> st.SearchStrategy[Instr]:
    texts = tuple(ARM64_TEXT if arch == "arm64" else X86_TEXT)
    return st.one_of(
        st.tuples(st.just("store"), _ADDR, _VAL),
        st.tuples(st.just("store"), st.just("emu"), st.sampled_from(("jmp", "nop", "b"))),
        st.tuples(st.just("load"), _ADDR),
        st.tuples(st.just("peek"), st.integers(0, ncpus - 1)),
        st.tuples(st.just("rmw"), st.sampled_from(("x", "y", "r")),
                  st.sampled_from(("inc", "xchg"))),
        st.tuples(st.just("fence"), st.sampled_from(("mb", "wmb", "rmb"))),
        st.tuples(st.just("text"), st.sampled_from(texts)),
        st.tuples(st.just("exec")), st.tuples(st.just("exec")),
        st.tuples(st.just("serialize")),
        st.tuples(st.just("returned")),
        st.tuples(st.just("ipi"), st.booleans(), st.sampled_from(tuple(CALLBACKS))),
        st.tuples(st.just("ipicond"), _VAL),
        st.tuples(st.just("irqsave")), st.tuples(st.just("irqrestore")),
        st.tuples(st.just("wait"), _ADDR, _VAL),
        st.tuples(st.just("poll"), st.sampled_from(("x", "y", "r")), _VAL),
        st.tuples(st.just("check"), _ADDR, _VAL),
        st.tuples(st.just("checkreg"), _VAL),
        st.tuples(st.just("see"), _ADDR, _VAL),
        st.tuples(st.just("runs"), st.sampled_from(EFFECTS)),
        st.tuples(st.just("storeall"), _VAL),
        st.tuples(st.just("waitall"), _VAL),
        st.tuples(st.just("lock")), st.tuples(st.just("unlock")), st.tuples(st.just("held")),
        st.tuples(st.just("choose"), st.integers(1, 3)),
        st.tuples(st.just("waitboth"), st.sampled_from((("x", "y"), ("x", "r"))), _VAL),
        st.tuples(st.just("readtext")),
        st.tuples(st.just("rawipi"), st.sampled_from(tuple(CALLBACKS))),
        st.tuples(st.just("cpuid")),
    )


def _reader_instr() -> st.SearchStrategy[Instr]:
    return st.one_of(
        st.tuples(st.just("load"), _ADDR),
        st.tuples(st.just("store"), st.just("r"), _VAL),
        st.tuples(st.just("rmw"), st.just("r"), st.sampled_from(("inc", "xchg"))),
        st.tuples(st.just("exec")), st.tuples(st.just("exec")),
        st.tuples(st.just("serialize")),
        st.tuples(st.just("fence"), st.sampled_from(("mb", "rmb"))),
        st.tuples(st.just("wait"), _ADDR, _VAL),
        st.tuples(st.just("poll"), st.sampled_from(("x", "y")), _VAL),
        st.tuples(st.just("check"), _ADDR, _VAL),
        st.tuples(st.just("checkreg"), _VAL),
        st.tuples(st.just("see"), _ADDR, _VAL),
        st.tuples(st.just("runs"), st.sampled_from(EFFECTS)),
        st.tuples(st.just("irqsave")), st.tuples(st.just("irqrestore")),
        st.tuples(st.just("choose"), st.integers(2, 3)),
        st.tuples(st.just("waitboth"), st.sampled_from((("x", "y"), ("y", "r"))), _VAL),
        st.tuples(st.just("readtext")),
    )


def _writer_instr(arch: str, ncpus: int) -> st.SearchStrategy[Instr]:
    """What a patching CPU does: text stores, barriers, serialization, the patch contract,
    flags for the others, IPIs, and waits -- including polls of a flag nobody sets (a
    cycle of the state graph that only the cycle proviso keeps from hiding the others)."""
    texts = tuple(ARM64_TEXT if arch == "arm64" else X86_TEXT)
    return st.one_of(
        st.tuples(st.just("text"), st.sampled_from(texts)),
        st.tuples(st.just("text"), st.sampled_from(texts)),
        st.tuples(st.just("store"), st.sampled_from(("x", "y")), st.sampled_from((1, 2))),
        st.tuples(st.just("store"), st.just("emu"), st.sampled_from(("jmp", "nop", "b"))),
        st.tuples(st.just("fence"), st.sampled_from(("mb", "wmb"))),
        st.tuples(st.just("serialize")),
        st.tuples(st.just("returned")),
        st.tuples(st.just("ipi"), st.booleans(), st.sampled_from(tuple(CALLBACKS))),
        st.tuples(st.just("poll"), st.sampled_from(("x", "y")), st.sampled_from((1, 2))),
        st.tuples(st.just("wait"), st.sampled_from(("x", "y")), st.sampled_from((1, 2))),
        st.tuples(st.just("waitall"), st.sampled_from((0, 1))),
        st.tuples(st.just("load"), st.sampled_from(("x", "y"))),
        st.tuples(st.just("rmw"), st.sampled_from(("x", "y")), st.sampled_from(("inc", "xchg"))),
        st.tuples(st.just("peek"), st.integers(1, ncpus - 1)),
        st.tuples(st.just("waitfor"), st.integers(1, ncpus - 1), st.sampled_from((1, 2))),
        st.tuples(st.just("lock")), st.tuples(st.just("unlock")),
        st.tuples(st.just("rawipi"), st.sampled_from(tuple(CALLBACKS))),
        st.tuples(st.just("choose"), st.integers(2, 3)),
        st.tuples(st.just("waitboth"), st.sampled_from((("x", "y"), ("x", 1), (1, ncpus - 1))),
                  st.sampled_from((1, 2))),
    )


def _watcher_instr() -> st.SearchStrategy[Instr]:
    """What a CPU that runs the patched code does (always legal for a reader)."""
    return st.one_of(
        st.tuples(st.just("exec")), st.tuples(st.just("exec")), st.tuples(st.just("exec")),
        st.tuples(st.just("load"), st.sampled_from(("x", "y"))),
        st.tuples(st.just("check"), st.sampled_from(("x", "y")), _VAL),
        st.tuples(st.just("checkreg"), _VAL),
        st.tuples(st.just("see"), st.sampled_from(("x", "y")), _VAL),
        st.tuples(st.just("see"), st.sampled_from(("x", "y")), _VAL),
        st.tuples(st.just("see"), st.just("m"), st.sampled_from((None, 0))),
        st.tuples(st.just("runs"), st.sampled_from(EFFECTS)),
        st.tuples(st.just("runs"), st.sampled_from(EFFECTS)),
        st.tuples(st.just("serialize")),
        st.tuples(st.just("fence"), st.sampled_from(("mb", "rmb"))),
        st.tuples(st.just("store"), st.just("r"), st.sampled_from((1, 2))),
        st.tuples(st.just("poll"), st.sampled_from(("x", "y")), st.sampled_from((1, 2))),
        st.tuples(st.just("irqsave")), st.tuples(st.just("irqrestore")),
        st.tuples(st.just("choose"), st.integers(2, 3)),
        st.tuples(st.just("readtext")),
    )


def _names(prog: tuple[Instr, ...]) -> set[int]:
    """The CPUs a program names by number (none may be in a symmetry class): per-CPU
    data it reads, and the mutex owner `m` compared with a CPU number."""
    named = {ins[1] for ins in prog if ins[0] in ("peek", "waitfor")}
    named |= {ins[2] for ins in prog if ins[0] == "see" and ins[1] == "m"
              and isinstance(ins[2], int)}
    return named | {a for ins in prog if ins[0] == "waitboth" for a in ins[1]
                    if isinstance(a, int)}


def _knows_its_number(prog: tuple[Instr, ...]) -> bool:
    return any(ins[0] == "cpuid" for ins in prog)


@st.composite
def protocols(draw: st.DrawFn, max_cpus: int = 3, max_len: int = 4) -> Protocol:
    arch = draw(st.sampled_from(("x86", "x86", "x86", "arm64")))
    memory = "sc" if arch == "arm64" else draw(st.sampled_from(("tso", "pso", "sc")))
    fetch = "arm64" if arch == "arm64" else draw(st.sampled_from(("per-byte", "snapshot")))
    ncpus = draw(st.integers(2, max_cpus))
    # Two shapes: free programs over the whole instruction set, or the shape every kernel
    # protocol here has -- one patching CPU and CPUs that run the patched code -- where the
    # reductions apply most and a wrong "safe" would matter most.
    patcher = draw(st.sampled_from((True, True, False)))
    progs: list[tuple[Instr, ...]] = []
    for c in range(ncpus):
        if c and draw(st.booleans()):
            progs.append(progs[draw(st.integers(0, c - 1))])  # a twin: symmetry candidate
            continue
        if patcher:
            gen = _watcher_instr() if c else _writer_instr(arch, ncpus)
        else:
            gen = _reader_instr() if c and draw(st.booleans()) else _instr(arch, ncpus)
        least = 2 if patcher and not c else 1
        progs.append(tuple(draw(st.lists(gen, min_size=least, max_size=max(least, max_len)))))
    nmis = draw(st.integers(0, 2))  # 2: a CPU inside its NMI while one is left (point 1b)
    nmi_program = tuple(draw(st.lists(_reader_instr(), min_size=1, max_size=2))) if nmis else ()
    nmi_cpus = draw(st.sampled_from((None, (0,), (ncpus - 1,)))) if nmis else None
    exposed = set(range(ncpus)) if nmi_cpus is None else set(nmi_cpus)
    named = set().union(*(_names(q) for q in progs))
    # Symmetry classes: CPUs with one program, one NMI exposure, named by no program.
    groups: dict[tuple, list[int]] = {}
    for c in range(ncpus):
        if c not in named and not _knows_its_number(progs[c]) and not (
                c in exposed and _knows_its_number(nmi_program)):
            groups.setdefault((progs[c], c in exposed), []).append(c)
    symmetric = tuple(tuple(g) for g in groups.values()
                      if len(g) > 1 and draw(st.booleans()))
    # Readers: legal programs (and NMI handler, where NMIs reach them), whole classes at once.
    units = [list(g) for g in symmetric]
    units += [[c] for c in range(ncpus) if not any(c in g for g in symmetric)]
    readers: set[int] = set()
    for unit in units:
        legal = all(reader_legal(progs[c]) and (c not in exposed or not nmis
                                                or reader_legal(nmi_program)) for c in unit)
        if legal and (patcher or draw(st.booleans())):
            readers |= set(unit)
    return Protocol(tuple(progs), nmi_program, nmis, nmi_cpus, arch, fetch, memory,
                    frozenset(readers), symmetric)


# ---- the reference and the comparison ----------------------------------------------------

class TooLarge(Exception):
    """The protocol's state space is larger than the comparison's limit."""


def polls(p: Protocol) -> bool:
    """Whether some program loops (a poll): its history grows without bound, so only the
    "locals" identity gives a finite state graph. `model_program` keeps all its state in
    locals (`pc`, `regs`, `flags`), so that identity is exact for it."""
    return any(ins[0] == "poll" for prog in (*p.programs, p.nmi_program) for ins in prog)


def reference_properties(system: System, limit: int, identity: str = "history"
                         ) -> tuple[frozenset[str], int]:
    """Every property some interleaving breaks ("deadlock" included), by a plain walk of
    the machine that does not stop at the first violation, and the number of states."""
    m = Machine(system.config, identity=identity)
    m.narrate = False
    init = m.initial_state()
    seen, queue, props = {init}, deque([init]), set()
    while queue:
        s = queue.popleft()
        moves = m.moves(s)
        if not moves and any(cpu[STACK] for cpu in s[CPUS]):
            props.add("deadlock")
        for mv in moves:
            try:
                t, _ = m.step(s, mv)
            except Violation as v:
                props.add(v.prop)
                continue
            if t not in seen:
                seen.add(t)
                queue.append(t)
                if len(seen) > limit:
                    raise TooLarge(f"more than {limit} states")
    return frozenset(props), len(seen)


@dataclass
class Comparison:
    """What one protocol's comparison found."""

    properties: frozenset[str]
    reference_states: int
    # (symmetry, por, identity, the property sought -- None: all ignored) -> verdict
    runs: dict[tuple[bool, bool, str, str | None], Verdict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def states(self) -> int:
        return self.reference_states + sum(v.states for v in self.runs.values())


def combinations(p: Protocol) -> list[tuple[bool, bool, str]]:
    syms = (True, False) if p.symmetric else (False,)
    pors = (True, False)
    idents = ("locals",) if polls(p) else ("locals", "history")
    return [(s, r, i) for s in syms for r in pors for i in idents]


def compare(p: Protocol, limit: int = 20_000) -> Comparison:
    """Explore `p` under every combination of symmetry, partial-order reduction and routine
    identity, once per property the reference walk can break (ignoring the others, so that
    a reduction that loses one property cannot hide behind another found first) and once
    ignoring them all; raise AssertionError on any disagreement with the reference walk.
    Raises TooLarge when the reference exceeds `limit` states."""
    t0 = time.perf_counter()
    system = build(p)
    props, n = reference_properties(system, limit, "locals" if polls(p) else "history")
    out = Comparison(props, n)
    for sym, por, ident in combinations(p):
        for want in (*sorted(props), None):
            ignore = props - {want}
            v = explore(build(p), Bounds(symmetry=sym, por=por, identity=ident,
                                         max_states=10 * limit, ignore=ignore))
            out.runs[(sym, por, ident, want)] = v
            where = (f"symmetry={sym} por={por} identity={ident} "
                     f"ignoring {sorted(ignore) or 'nothing'}")
            assert v.verdict != "bound", f"{where}: {v.stop_reason}"
            if want is None:
                assert v.verdict == "safe", f"{where}: {v.verdict} ({v.property}: {v.message})"
                assert v.states <= n, f"{where}: {v.states} states, more than the {n} reachable"
                continue
            assert v.verdict != "safe", f"{where}: safe, but the plain walk breaks {want}"
            assert v.property == want, f"{where}: {v.property}, but the plain walk breaks {want}"
            _assert_replays(system, v, where)
    _assert_shortest(out.runs)
    out.seconds = time.perf_counter() - t0
    return out


def _assert_shortest(runs: dict[tuple[bool, bool, str, str | None], Verdict]) -> None:
    """A counterexample found with the partial-order reduction is as short as the unreduced
    search's (check/shorten.py), unless its stats say no shorter one was ruled out."""
    for (sym, por, ident, want), v in runs.items():
        plain = runs.get((sym, False, ident, want))
        if not por or want is None or plain is None or v.stats.get("shortest") is False:
            continue
        assert v.depth == plain.depth, (
            f"symmetry={sym} identity={ident} {want}: {v.depth} moves with the reduction, "
            f"{plain.depth} without")


def compare_system(make: Callable[[], System], limit: int = 20_000,
                   identity: str = "locals") -> Comparison:
    """`compare` for a catalogue configuration (`make` builds it afresh): every property the
    plain walk can break is found, alone, by the search with the partial-order reduction
    (with and without CPU symmetry), in as few moves; ignoring them all, that search is
    safe and stores no more states than the walk. Raises TooLarge past `limit` states."""
    t0 = time.perf_counter()
    system = make()
    props, n = reference_properties(system, limit, identity)
    out = Comparison(props, n)
    syms = (True, False) if system.config.symmetric else (False,)
    for sym in syms:
        for por in (True, False):
            for want in (*sorted(props), None):
                ignore = props - {want}
                v = explore(make(), Bounds(symmetry=sym, por=por, identity=identity,
                                           max_states=10 * limit, ignore=ignore))
                out.runs[(sym, por, identity, want)] = v
                where = f"{system.describe_config()} symmetry={sym} por={por} want={want}"
                assert v.verdict != "bound", f"{where}: {v.stop_reason}"
                if want is None:
                    assert v.verdict == "safe", f"{where}: {v.verdict} ({v.property})"
                    assert v.states <= n, f"{where}: {v.states} states, more than {n}"
                else:
                    assert (v.verdict, v.property) != ("safe", None) and v.property == want, \
                        f"{where}: {v.verdict} {v.property}, but the plain walk breaks {want}"
                    _assert_replays(system, v, where)
    _assert_shortest(out.runs)
    out.seconds = time.perf_counter() - t0
    return out


def _assert_replays(system: System, v: Verdict, where: str) -> None:
    """The counterexample re-runs on the plain machine to the same violation."""
    trail = replay_schedule(system, list(v.counterexample.choices))
    assert [s.text for s in trail] == [s.text for s in v.counterexample], where
    if v.verdict == "deadlock":
        assert trail.deadlock is not None, where
        assert trail.deadlock.message == v.message, (where, trail.deadlock.message, v.message)
    else:
        assert trail[-1].text == f"VIOLATION {v.property}: {v.message}", (
            where, trail[-1].text, v.message)
