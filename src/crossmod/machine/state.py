"""Machine configuration and state layout, with the memory accessors every op uses.

Owns: `MachineConfig` (what the machine is made of), the plain-tuple `State` and `Cpu`
layouts, address resolution, loads with store-buffer forwarding, and writes to memory.
Imports: stdlib, machine.ops, machine.text, machine.routines.

A configuration is checked when it is built (every name it mentions declared, every CPU
number in range) and every op when a routine first yields it (`check_declared`: the memory,
sites and CPUs it names exist), so that a protocol missing a declaration gets one line naming
the op, the routine and what to declare, not a KeyError from deep inside a step.

State is plain data -- nested tuples of ints, bytes, strings and frozensets -- so that
hashing it is the canonical fingerprint (after CPU symmetry, machine/symmetry.py):

    State = (mem, text, cpus, nmis_left, committed)
      mem        global variables, in `MachineConfig.globals` order
      text       every site's bytes, concatenated in `MachineConfig.sites` order
      cpus       one Cpu per CPU
      nmis_left  the NMI budget still unspent in this run
      committed  per site: the effect every later execution must have (property 2), or None
    Cpu = (stack, irq_on, percpu, views, sb, ipi, csdq, locked, running)
      stack      frames, bottom first: (kind, node, saved_irq_on, site) with kind in
                 task / irq / nmi / bp; an empty stack is an idle CPU (its task finished)
      irq_on     the interrupt-enable flag (EFLAGS.IF)
      percpu     this CPU's instances of the per-CPU variables
      views      per site: the values it may fetch (machine/text.py)
      sb         the store buffer, oldest first: ((kind, ...), value) entries
      ipi        a function-call IPI is pending
      csdq       call_single_queue: (sender, func, args, sync), oldest first
      locked     senders whose CSD aimed at this CPU is locked (csd_lock .. csd_unlock)
      running    senders of the entries the IPI handler has dequeued, by index
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crossmod.machine import ops as O
from crossmod.machine import text as T
from crossmod.machine.ops import Addr
from crossmod.machine.routines import ModelError, Node

if TYPE_CHECKING:
    from crossmod.machine.events import Ctx, Event

POISON = "<freed stack>"
"""The value of an on-stack variable after its frame was popped (ops.StackFree)."""

MEMORY_MODELS = ("tso", "pso", "sc")

# Cpu tuple fields
STACK, IRQ, PERCPU, VIEWS, SB, IPI, CSDQ, LOCKED, RUNNING = range(9)
# State tuple fields
MEM, TEXT, CPUS, NMIS, COMMITTED = range(5)


@dataclass(frozen=True)
class MachineConfig:
    """Everything the machine is made of; protocols build one, engines consume it.

    `tasks[c]` is the routine CPU c runs at the bottom of its stack (or None: idle).
    `int3_handler(site)` and `ipi_handler()` are the kernel's handlers, supplied by the
    protocol (the machine knows no protocol). `nmi_handler` runs on NMIs, at most `nmis` per
    run, on the CPUs in `nmi_cpus` (all when None); `nmi_regions` narrows where they hit:
    `(cpu, (fn, ...))` lets an NMI reach that CPU only while one of its contexts is inside
    one of the routines `fn` (a generator function, directly or through `yield from`), the
    other CPUs staying "anywhere" (routines, not names: a misspelt name would silently keep
    every NMI out). `symmetric` lists classes of CPUs whose
    tasks are identical and that no routine names by number (check/explore.py exploits it).
    `cpu_valued` names variables holding a CPU number or a frozenset of them (cpumasks),
    which symmetry must renumber. `percpu_init` gives CPU-specific initial values
    `(cpu, name, value)` (a CPU that starts in user mode). `tlb_vas` names the kernel
    virtual addresses whose translations CPUs cache (kernel/tlb.py): global `pte.<va>` holds
    the page mapped there (None: unmapped), global `freed_pages` the pages freed, per-CPU
    `tlb` a CPU's cached `(va, page, global)` entries (None: not modelled on that CPU) and
    per-CPU `cr3` "kernel" or "user"; a CPU may cache a mapped address at any time while its
    page tables map it (the kernel ones, or any with `pti` off). `arch` decides what
    synchronizes instruction fetch: on x86 serializing instructions and IRET (not interrupt
    entry); on arm64 every context synchronization event -- ISB (`Serialize`), exception
    entry and exception return. `endless` names CPUs whose task never returns by design (a
    CPU running user code forever while another patches): liveness (DESIGN.md property 5)
    asks of them only that every handler they take returns.
    """

    ncpus: int
    sites: tuple[T.Site, ...]
    tasks: tuple[tuple[Callable, tuple] | None, ...]
    int3_handler: Callable | None = None
    ipi_handler: Callable | None = None
    nmi_handler: tuple[Callable, tuple] | None = None
    nmis: int = 0
    nmi_cpus: tuple[int, ...] | None = None
    nmi_regions: tuple[tuple[int, tuple[Callable, ...]], ...] = ()
    globals: tuple[tuple[str, Any], ...] = ()
    percpu: tuple[tuple[str, Any], ...] = ()
    cpu_valued: frozenset[str] = frozenset()
    fetch: str = "per-byte"
    memory: str = "tso"
    arch: str = "x86"
    symmetric: tuple[tuple[int, ...], ...] = ()
    # CPUs that write only their own per-CPU variables and their own CSD unlocks (enforced:
    # anything else is a ModelError); the explorer's partial-order reduction relies on it.
    readers: frozenset[int] = frozenset()
    percpu_init: tuple[tuple[int, str, Any], ...] = ()
    tlb_vas: tuple[str, ...] = ()
    pti: bool = True
    endless: frozenset[int] = frozenset()
    gidx: dict[str, int] = field(init=False, compare=False, repr=False)
    pidx: dict[str, int] = field(init=False, compare=False, repr=False)
    sidx: dict[str, int] = field(init=False, compare=False, repr=False)
    soff: tuple[int, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.fetch not in T.FETCH_MODELS:
            raise ValueError(f"unknown fetch model {self.fetch!r}; valid: {T.FETCH_MODELS}")
        if self.memory not in MEMORY_MODELS:
            raise ValueError(f"unknown memory model {self.memory!r}; valid: {MEMORY_MODELS}")
        if self.arch not in ("x86", "arm64"):
            raise ValueError(f"unknown arch {self.arch!r}; valid: x86, arm64")
        if len(self.tasks) != self.ncpus:
            raise ValueError(f"{len(self.tasks)} tasks for {self.ncpus} CPUs")
        if not all(0 <= c < self.ncpus and self.tasks[c] for c in self.endless):
            raise ValueError(f"endless CPUs {sorted(self.endless)}: each must be one of "
                             f"0..{self.ncpus - 1} and have a task")
        offs, off = [], 0
        for s in self.sites:
            offs.append(off)
            off += s.size
        object.__setattr__(self, "gidx", {n: i for i, (n, _) in enumerate(self.globals)})
        object.__setattr__(self, "pidx", {n: i for i, (n, _) in enumerate(self.percpu)})
        object.__setattr__(self, "sidx", {s.name: i for i, s in enumerate(self.sites)})
        object.__setattr__(self, "soff", tuple(offs))
        self._check_names()
        self._check_cpus()
        self._check_symmetric()

    def _check_names(self) -> None:
        """Every name the configuration mentions is declared once."""
        for what, names in (("global variable", [n for n, _ in self.globals]),
                            ("per-CPU variable", [n for n, _ in self.percpu]),
                            ("site", [s.name for s in self.sites])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what} {dup[0]!r} declared twice")
        for _, name, _ in self.percpu_init:
            if name not in self.pidx:
                raise ValueError(f"percpu_init sets {name!r}: declare it in "
                                 "MachineConfig.percpu")
        if self.tlb_vas:
            need = [("percpu", "tlb")] + [("percpu", "cr3")] * self.pti
            need += [("globals", f"pte.{va}") for va in self.tlb_vas]
            for table, name in need:
                if name not in (self.pidx if table == "percpu" else self.gidx):
                    kind = "per-CPU" if table == "percpu" else "global"
                    raise ValueError(f"tlb_vas needs a {kind} variable {name!r} (declare it "
                                     f"in MachineConfig.{table})")

    def _check_cpus(self) -> None:
        """Every CPU number the configuration mentions is one of its CPUs."""
        lists = [("nmi_cpus", self.nmi_cpus or ()), ("readers", sorted(self.readers)),
                 ("percpu_init", [c for c, _, _ in self.percpu_init]),
                 ("nmi_regions", [c for c, _ in self.nmi_regions])]
        for what, cpus in lists:
            for c in cpus:
                if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < self.ncpus:
                    raise ValueError(f"{what} names cpu {c!r}; this machine has CPUs "
                                     f"0..{self.ncpus - 1}")
        if self.nmis and self.nmi_handler is None:
            raise ValueError(f"nmis={self.nmis} but no nmi_handler: no NMI could arrive")
        exposed = range(self.ncpus) if self.nmi_cpus is None else self.nmi_cpus
        regions = [c for c, _ in self.nmi_regions]
        for c, fns in self.nmi_regions:
            if regions.count(c) > 1 or c not in exposed:
                raise ValueError(f"nmi_regions: cpu{c} is listed twice or is not in nmi_cpus")
            if not fns or not all(callable(f) and hasattr(f, "__code__") for f in fns):
                raise ValueError(f"nmi_regions: cpu{c}'s region must be one or more routines "
                                 f"(generator functions), not {fns!r}")

    def _check_symmetric(self) -> None:
        """A symmetry class is a promise that renumbering its members changes nothing
        (machine/symmetry.py, point 1): refuse a class whose members differ in what the
        machine itself knows of them -- their task, per-CPU initial values, whether NMIs
        reach them, whether they are readers. (That no routine holds a member's number is
        the author's part: ops address per-CPU data as `this_cpu`.)"""
        seen: set[int] = set()
        nmi = set(range(self.ncpus)) if self.nmi_cpus is None else set(self.nmi_cpus)
        regions = dict(self.nmi_regions)
        for cls in self.symmetric:
            if len(cls) < 2 or len(set(cls)) != len(cls) or seen & set(cls) or \
                    not all(0 <= c < self.ncpus for c in cls):
                raise ValueError(f"symmetry class {cls}: needs two or more distinct CPUs "
                                 f"of 0..{self.ncpus - 1}, in no other class")
            seen |= set(cls)
            for what, of in (("task", lambda c: self.tasks[c]),
                             ("per-CPU initial values", lambda c: sorted(
                                 ((n, repr(v)) for k, n, v in self.percpu_init if k == c))),
                             ("NMI exposure", lambda c: (c in nmi, regions.get(c))),
                             ("endless declaration", lambda c: c in self.endless),
                             ("reader declaration", lambda c: c in self.readers)):
                if any(of(c) != of(cls[0]) for c in cls):
                    raise ValueError(f"symmetry class {cls}: its CPUs differ in their {what}")

    def site_bytes(self, text: bytes, si: int) -> bytes:
        o = self.soff[si]
        return text[o:o + self.sites[si].size]


def resolve(cfg: MachineConfig, cpu: int, addr: Addr) -> tuple:
    """A routine's address as a store-buffer/memory key: ("g", i) or ("p", cpu, i)."""
    if isinstance(addr, str):
        try:
            return ("g", cfg.gidx[addr])
        except KeyError:
            raise ModelError(f"no global variable {addr!r} in this machine (declare it in "
                             "MachineConfig.globals)") from None
    _, name, who = addr
    try:
        idx = cfg.pidx[name]
    except KeyError:
        raise ModelError(f"no per-CPU variable {name!r} in this machine (declare it in "
                         "MachineConfig.percpu)") from None
    return ("p", cpu if who == "this" else who, idx)


def check_declared(cfg: MachineConfig, node: Node) -> None:
    """Raise a one-line ModelError when the op `node` yields names memory, a site or a CPU
    this machine does not have (called once per op, when a routine first yields it)."""
    op = node.op
    if op is None:
        return
    why = missing_declaration(cfg, op)
    if why:
        label = f" [{op.label}]" if op.label else ""
        where = node.func or getattr(node.root[0], "__name__", "?")
        raise ModelError(f"{type(op).__name__}{label} in {where} (line {node.line}) {why}")


_PERCPU_NAMED = (O.StorePerCpu, O.RmwPerCpu, O.WaitPerCpu, O.CsdQueueCond)
_GLOBAL_NAMED = (O.MutexLock, O.MutexUnlock, O.AssertHeld)
_SITED = (O.ExecSite, O.TextStore, O.PatchReturned, O.ReadText)
_TARGETED = (O.CsdQueue, O.CsdLockWait, O.SendIpi)
# what the TLB and CR3 ops use (machine/cpu.py, kernel TLB and CR3)
_NEEDS = {O.WriteCr3: (("percpu", "cr3"),), O.TlbFlushKernel: (("percpu", "tlb"),),
          O.FreePage: (("globals", "freed_pages"),),
          O.TlbAccess: (("percpu", "tlb"), ("globals", "freed_pages"))}


def missing_declaration(cfg: MachineConfig, op: O.Op) -> str | None:
    """What `op` needs that `cfg` does not declare, as the end of a sentence, or None."""
    names: list[tuple[str, str]] = list(_NEEDS.get(type(op), ()))
    if isinstance(op, O.TlbAccess):
        names.append(("globals", f"pte.{op.va}"))
    if isinstance(op, _PERCPU_NAMED):
        names.append(("percpu", op.name))
    elif isinstance(op, _GLOBAL_NAMED):
        names.append(("globals", op.name))
    elif isinstance(op, O.StackFree):
        names += [("globals", n) for n in op.names]
    addrs = (op.addr,) if hasattr(op, "addr") else getattr(op, "addrs", ())
    for a in addrs:
        why = _addr_missing(cfg, a)
        if why:
            return why
    for table, name in names:
        if name not in (cfg.pidx if table == "percpu" else cfg.gidx):
            kind = "per-CPU variable" if table == "percpu" else "global variable"
            return f"needs a {kind} {name!r} (declare it in MachineConfig.{table})"
    if isinstance(op, _SITED):
        return _site_missing(cfg, op)
    if isinstance(op, _TARGETED) and op.targets != "others" and not (
            isinstance(op.targets, tuple) and all(_is_cpu(cfg, t) for t in op.targets)):
        return (f"targets {op.targets!r}: give \"others\" or a tuple of CPU numbers "
                f"0..{cfg.ncpus - 1}")
    if isinstance(op, O.Choose) and (isinstance(op.n, bool) or not isinstance(op.n, int)
                                     or op.n < 1):
        return f"needs one alternative or more, not {op.n!r}"
    return None


def _is_cpu(cfg: MachineConfig, c: Any) -> bool:
    return isinstance(c, int) and not isinstance(c, bool) and 0 <= c < cfg.ncpus


def _addr_missing(cfg: MachineConfig, a: Any) -> str | None:
    if isinstance(a, str):
        if a not in cfg.gidx:
            return f"needs a global variable {a!r} (declare it in MachineConfig.globals)"
        return None
    if not (isinstance(a, tuple) and len(a) == 3 and a[0] == "percpu"):
        return (f"names {a!r}, which is not an address (a global's name, this_cpu(name) or "
                "per_cpu(name, cpu))")
    if a[1] not in cfg.pidx:
        return f"needs a per-CPU variable {a[1]!r} (declare it in MachineConfig.percpu)"
    if a[2] != "this" and not _is_cpu(cfg, a[2]):
        return f"names per_cpu({a[1]}, {a[2]!r}); this machine has CPUs 0..{cfg.ncpus - 1}"
    return None


def _site_missing(cfg: MachineConfig, op: Any) -> str | None:
    si = cfg.sidx.get(op.site)
    if si is None:
        have = ", ".join(s.name for s in cfg.sites) or "none"
        return f"names no site of this machine: {op.site!r} (sites: {have})"
    if isinstance(op, O.TextStore):
        size = cfg.sites[si].size
        if op.offset < 0 or op.offset + len(op.data) > size:
            return (f"writes {len(op.data)} bytes at {op.site}+{op.offset}, outside the "
                    f"site's {size} bytes")
    return None


def _matches(entry_addr: tuple, raddr: tuple) -> bool:
    if entry_addr == raddr:
        return True
    return entry_addr[0] == "pall" and raddr[0] == "p" and entry_addr[1] == raddr[2]


def read(state: tuple, cpu: int, raddr: tuple) -> Any:
    """A load by `cpu`: its newest buffered store to the address, else memory."""
    for eaddr, val in reversed(state[CPUS][cpu][SB]):
        if _matches(eaddr, raddr):
            return val
    return read_memory(state, raddr)


def read_memory(state: tuple, raddr: tuple) -> Any:
    if raddr[0] == "g":
        return state[MEM][raddr[1]]
    return state[CPUS][raddr[1]][PERCPU][raddr[2]]


class Work:
    """A copy-on-write editor for one transition: lists only where something changes.

    `ev` collects the transition's events while the machine narrates (None: it does not);
    `at` is then who performs the current op: (cpu, context, routine, label, eager)."""

    __slots__ = ("_cpu_lists", "at", "cfg", "committed", "cpus", "ev", "mem", "nmis", "text")
    ev: list[Event] | None
    at: tuple[int, Ctx, str, str, bool]

    def __init__(self, cfg: MachineConfig, state: tuple) -> None:
        self.cfg = cfg
        self.mem: tuple | list = state[MEM]
        self.text: bytes | bytearray = state[TEXT]
        self.cpus: list = list(state[CPUS])
        self.nmis: int = state[NMIS]
        self.committed: tuple | list = state[COMMITTED]
        self._cpu_lists: set[int] = set()
        self.ev = None

    def cpu(self, c: int) -> list:
        """CPU c's fields as a mutable list (made once per transition)."""
        if c not in self._cpu_lists:
            self.cpus[c] = list(self.cpus[c])
            self._cpu_lists.add(c)
        return self.cpus[c]

    def set_mem(self, raddr: tuple, value: Any) -> None:
        if raddr[0] == "g":
            if isinstance(self.mem, tuple):
                self.mem = list(self.mem)
            self.mem[raddr[1]] = value
        else:
            cl = self.cpu(raddr[1])
            pc = list(cl[PERCPU])
            pc[raddr[2]] = value
            cl[PERCPU] = tuple(pc)

    def get_mem(self, raddr: tuple) -> Any:
        if raddr[0] == "g":
            return self.mem[raddr[1]]
        return self.cpus[raddr[1]][PERCPU][raddr[2]]

    def set_committed(self, si: int, effect: str | None) -> None:
        if self.committed[si] == effect:
            return
        if isinstance(self.committed, tuple):
            self.committed = list(self.committed)
        self.committed[si] = effect

    def write_text(self, si: int, off: int, byte: int) -> None:
        """A text byte reaches memory: every CPU may now fetch the site's new contents."""
        if isinstance(self.text, bytes):
            self.text = bytearray(self.text)
        self.text[self.cfg.soff[si] + off] = byte
        raw = self.cfg.site_bytes(bytes(self.text), si)
        for c in range(len(self.cpus)):
            views = self.cpus[c][VIEWS]
            nv = T.widen_view(self.cfg.fetch, views[si], raw)
            if nv is not views[si]:
                cl = self.cpu(c)
                cl[VIEWS] = (*views[:si], nv, *views[si + 1:])

    def freeze(self, intern: dict[tuple, tuple] | None = None) -> tuple:
        """The edited state. With `intern`, each CPU tuple this transition rebuilt is
        replaced by the equal one the table already holds (hash-consing), so equal CPU
        states are one object and tables keyed by identity see them as one."""
        cpus = list(self.cpus)
        for c in self._cpu_lists:
            t = tuple(cpus[c])
            cpus[c] = t if intern is None else intern.setdefault(t, t)
        text = bytes(self.text) if isinstance(self.text, bytearray) else self.text
        return (tuple(self.mem), text, tuple(cpus), self.nmis, tuple(self.committed))
