"""Machine configuration and state layout, with the memory accessors every op uses.

Owns: `MachineConfig` (what the machine is made of), the plain-tuple `State` and `Cpu`
layouts, address resolution, loads with store-buffer forwarding, and writes to memory.
Imports: stdlib, machine.ops, machine.text, machine.routines.

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

from crossmod.machine import text as T
from crossmod.machine.ops import Addr

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
    run, on the CPUs in `nmi_cpus` (all when None). `symmetric` lists classes of CPUs whose
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
        self._check_symmetric()
        offs, off = [], 0
        for s in self.sites:
            offs.append(off)
            off += s.size
        object.__setattr__(self, "gidx", {n: i for i, (n, _) in enumerate(self.globals)})
        object.__setattr__(self, "pidx", {n: i for i, (n, _) in enumerate(self.percpu)})
        object.__setattr__(self, "sidx", {s.name: i for i, s in enumerate(self.sites)})
        object.__setattr__(self, "soff", tuple(offs))

    def _check_symmetric(self) -> None:
        """A symmetry class is a promise that renumbering its members changes nothing
        (machine/symmetry.py, point 1): refuse a class whose members differ in what the
        machine itself knows of them -- their task, per-CPU initial values, whether NMIs
        reach them, whether they are readers. (That no routine holds a member's number is
        the author's part: ops address per-CPU data as `this_cpu`.)"""
        seen: set[int] = set()
        nmi = set(range(self.ncpus)) if self.nmi_cpus is None else set(self.nmi_cpus)
        for cls in self.symmetric:
            if len(cls) < 2 or len(set(cls)) != len(cls) or seen & set(cls) or \
                    not all(0 <= c < self.ncpus for c in cls):
                raise ValueError(f"symmetry class {cls}: needs two or more distinct CPUs "
                                 f"of 0..{self.ncpus - 1}, in no other class")
            seen |= set(cls)
            for what, of in (("task", lambda c: self.tasks[c]),
                             ("per-CPU initial values", lambda c: sorted(
                                 ((n, repr(v)) for k, n, v in self.percpu_init if k == c))),
                             ("NMI exposure", lambda c: c in nmi),
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
            raise KeyError(f"no global variable {addr!r} in this machine") from None
    _, name, who = addr
    try:
        idx = cfg.pidx[name]
    except KeyError:
        raise KeyError(f"no per-CPU variable {name!r} in this machine") from None
    return ("p", cpu if who == "this" else who, idx)


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

    def freeze(self) -> tuple:
        cpus = tuple(tuple(c) if isinstance(c, list) else c for c in self.cpus)
        text = bytes(self.text) if isinstance(self.text, bytearray) else self.text
        return (tuple(self.mem), text, cpus, self.nmis, tuple(self.committed))
