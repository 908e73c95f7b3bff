"""What one step of the machine did, as data: the events `Machine.step` reports, and the
one-line account of a step in kernel terms rendered from them.

Owns: one frozen dataclass per kind of event, `Ctx` (the contexts a CPU runs in),
`Property` (the properties the machine itself checks), `Blocked` (what a stuck CPU waits
in), and `describe(event)` / `narrate(cpu, events)` -- the trail's words, rendered from the
events alone. Imports: machine.text.

A step reports its events only while the machine narrates (`Machine.narrate`); the
explorer turns that off, and its steps build neither events nor text.

Every op performed gives one `OpEvent`, which names who performed it: the CPU, the context
(task, irq, nmi, bp), the routine (the innermost function of its `yield from` chain) and the
op's label. `eager` marks an op performed at once after the move because no other CPU can
observe it (`Machine._run_invisible`); the trail tells it without its routine. The machine's
own moves (a store draining, a page walk, an interrupt taken) give an `Event`. A few events
record a fact that another event's words already tell -- `Serialized`, `ModeChange`,
`StoreCommitted`, the `Entry` of a #BP -- and are silent (`describe` gives None).

Values are kept as the routine wrote or read them (a store of `CPU_ONLINE_MASK` says so),
names as the trail prints them: a routine's address as written (`this_cpu(x)`), a store
buffer entry's as resolved (`per_cpu(x, 1)`). A CPU's `mode` is its per-CPU variable `mode`
when the configuration declares one (the ghost kernel/entry.py keeps, "user" or "kernel"),
else None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from crossmod.machine.text import hexbytes as _hex


class Ctx(StrEnum):
    """The context a CPU runs an op in: its task, or a handler pushed above it."""

    TASK = "task"
    IRQ = "irq"
    NMI = "nmi"
    BP = "bp"


class Property(StrEnum):
    """The properties the machine and its engines check themselves (DESIGN.md
    "Properties": no deadlock and liveness are judged on the state graph); a protocol's
    `Check` op may name others (the catalogue's "isolation", "ro-after-init")."""

    TORN_INSTRUCTION = "torn-instruction"
    UNEXPECTED_INT3 = "unexpected-int3"
    INT3_EMULATION = "int3-emulation"
    PATCH_VISIBILITY = "patch-visibility"
    USE_AFTER_RETURN = "use-after-return"
    USE_AFTER_FREE = "use-after-free"
    PAGE_FAULT = "page-fault"
    LOCKDEP = "lockdep"
    DEADLOCK = "deadlock"
    LIVENESS = "liveness"


def as_property(prop: str) -> Property | str:
    """`prop` as a `Property` when it is one of the machine's, else as the protocol named
    it."""
    try:
        return Property(prop)
    except ValueError:
        return prop


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on `cpu` in one step."""

    cpu: int

    def who(self) -> str:
        """Who it happened to, as the trail names it."""
        return f"cpu{self.cpu}"

    def words(self) -> str | None:
        """What happened, in the trail's words (None: told by another event)."""
        return None


@dataclass(frozen=True, slots=True)
class OpEvent(Event):
    """An op performed by a routine."""

    ctx: Ctx
    routine: str
    label: str
    eager: bool


# ---- memory ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Load(OpEvent):
    addr: str
    value: Any

    def words(self) -> str:
        return f"load {self.addr} = {self.value!r}"


@dataclass(frozen=True, slots=True)
class StoreIssued(OpEvent):
    """A store enters the store buffer (`buffered`), or memory at once under `sc`."""

    addr: str
    value: Any
    buffered: bool

    def words(self) -> str:
        return f"store {self.addr} := {self.value!r}"


@dataclass(frozen=True, slots=True)
class StoreDrained(Event):
    """The store buffer's chosen entry reaches memory (a drain move)."""

    addr: str
    value: Any

    def words(self) -> str:
        return f"store buffer drains: {self.addr} := {self.value!r}"


@dataclass(frozen=True, slots=True)
class StoreCommitted(Event):
    """A buffered store reaches memory at a barrier, within another op's step."""

    addr: str
    value: Any


@dataclass(frozen=True, slots=True)
class Rmw(OpEvent):
    fn: str
    addr: str
    old: Any
    new: Any

    def words(self) -> str:
        return f"{self.fn}({self.addr}): {self.old!r} -> {self.new!r}"


@dataclass(frozen=True, slots=True)
class RmwEach(OpEvent):
    """`fn` applied to every CPU's instance of per-CPU variable `name`."""

    fn: str
    name: str
    results: tuple[Any, ...]

    def words(self) -> str:
        return f"{self.fn}(per_cpu({self.name}, each cpu)) -> {self.results}"


@dataclass(frozen=True, slots=True)
class CpumaskClear(OpEvent):
    addr: str
    mask: frozenset[int]

    def words(self) -> str:
        mask = "{" + ",".join(str(c) for c in sorted(self.mask)) + "}"
        return f"cpumask_clear_cpu(cpu{self.cpu}, {self.addr}) -> {mask}"


@dataclass(frozen=True, slots=True)
class WaitDone(OpEvent):
    addr: str
    value: Any

    def words(self) -> str:
        return f"wait {self.addr}: done ({self.value!r})"


@dataclass(frozen=True, slots=True)
class WaitEachDone(OpEvent):
    name: str

    def words(self) -> str:
        return f"wait per_cpu({self.name}, each cpu): done"


@dataclass(frozen=True, slots=True)
class WaitAllDone(OpEvent):
    """A wait on several addresses ended: the values it read, in order."""

    addrs: tuple[str, ...]
    values: tuple[Any, ...]

    def words(self) -> str:
        return f"wait {', '.join(self.addrs)}: done {self.values!r}"


@dataclass(frozen=True, slots=True)
class Fence(OpEvent):
    kind: str

    def words(self) -> str:
        return f"smp_{self.kind}()"


@dataclass(frozen=True, slots=True)
class MutexLock(OpEvent):
    name: str

    def words(self) -> str:
        return f"mutex_lock({self.name})"


@dataclass(frozen=True, slots=True)
class MutexUnlock(OpEvent):
    name: str

    def words(self) -> str:
        return f"mutex_unlock({self.name})"


@dataclass(frozen=True, slots=True)
class StackFree(OpEvent):
    names: tuple[str, ...]

    def words(self) -> str:
        return f"return: stack frame holding {', '.join(self.names)} popped and reused"


@dataclass(frozen=True, slots=True)
class Ghost(OpEvent):
    """A model-only update of this CPU's own state; `text` is how the routine named it."""

    addr: str
    old: Any
    new: Any
    text: str

    def words(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class ModeChange(Event):
    """The CPU's ghost `mode` changed (kernel/entry.py: "user" <-> "kernel")."""

    old: Any
    new: Any


# ---- text and instruction fetch --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TextStore(OpEvent):
    """Bytes written into kernel text at `site + offset`: one buffered store per byte, or
    (`word`) an arm64 instruction written as one single-copy-atomic word."""

    site: str
    offset: int
    data: bytes
    word: bool

    def words(self) -> str:
        where = f"{self.site}+{self.offset}"
        if self.word:
            return f"aarch64_insn_write: {_hex(self.data)} -> {where}"
        what = "INT3" if self.data == b"\xcc" else _hex(self.data)
        return f"text_poke: {what} -> {where}"


@dataclass(frozen=True, slots=True)
class TextRead(OpEvent):
    """A site's bytes read as data (`ReadText`), as this CPU's loads see them."""

    site: str
    data: bytes

    def words(self) -> str:
        return f"read {self.site} as data: {_hex(self.data)}"


@dataclass(frozen=True, slots=True)
class Exec(OpEvent):
    """The CPU fetched `fetched` at `site`: it executed `effect`, or it trapped (`trap`:
    "#BP" on x86, "BRK" on arm64; `effect` None) and the int3 handler is pushed."""

    site: str
    fetched: bytes
    effect: str | None
    trap: str

    def words(self) -> str:
        outcome = self.effect if not self.trap else \
            "BRK exception" if self.trap == "BRK" else self.trap
        return f"exec {self.site}: fetched {_hex(self.fetched)} -> {outcome}"


@dataclass(frozen=True, slots=True)
class PatchReturned(OpEvent):
    """Property 2's contract point: from now on every CPU must execute `effect`."""

    site: str
    effect: str

    def words(self) -> str:
        return f"{self.site} patched: from now on every CPU must execute '{self.effect}'"


@dataclass(frozen=True, slots=True)
class Serialize(OpEvent):
    def words(self) -> str:
        return "serialize (store buffer drained, stale instructions discarded)"


@dataclass(frozen=True, slots=True)
class Serialized(Event):
    """The CPU discarded every stale instruction (a serializing instruction, IRET, a CR3
    write; on arm64 any context synchronization event)."""


# ---- interrupts and IPIs ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IrqSave(OpEvent):
    was: bool

    def words(self) -> str:
        return "local_irq_save()"


@dataclass(frozen=True, slots=True)
class IrqRestore(OpEvent):
    enabled: bool

    def words(self) -> str:
        return "local_irq_restore()" + (" (irqs on)" if self.enabled else "")


@dataclass(frozen=True, slots=True)
class IrqsEnabled(OpEvent):
    value: bool

    def words(self) -> str:
        return "irqs_disabled()?"


@dataclass(frozen=True, slots=True)
class IpiSend(OpEvent):
    """`smp_call_function_many_cond(func)`: a CSD queued on each of `targets`, an IPI sent
    to those of them whose queue was empty (`raised`); `modes` are the targets' modes at
    the send. With a cond (`cond`, its function's name) `skipped` are the CPUs it left
    out."""

    func: str
    targets: tuple[int, ...]
    raised: tuple[int, ...]
    modes: tuple[Any, ...]
    cond: str | None = None
    skipped: tuple[int, ...] = ()

    def words(self) -> str:
        if self.cond is not None and not self.targets:
            out = f"smp_call_function_many_cond({self.func}): no CPU passes the cond"
        else:
            dest = ", ".join(f"cpu{t}" for t in self.raised) or \
                "none (queues already non-empty)"
            out = f"smp_call_function_many_cond({self.func}): IPI -> {dest}"
        if self.skipped:
            out += f"; {self.cond}: skips {', '.join(f'cpu{t}' for t in self.skipped)}"
        return out


@dataclass(frozen=True, slots=True)
class BareIpiSend(IpiSend):
    """`send_IPI_mask(func)`: a bare IPI, no CSD locked, raised on every target."""

    def words(self) -> str:
        dest = ", ".join(f"cpu{t}" for t in self.raised) or "none"
        return f"send_IPI_mask({self.func}): IPI -> {dest}"


@dataclass(frozen=True, slots=True)
class CsdLockWaitDone(OpEvent):
    def words(self) -> str:
        return "csd_lock_wait: every target has run the function"


@dataclass(frozen=True, slots=True)
class CsdDequeue(OpEvent):
    """The IPI handler takes its queue: the callbacks it will run and their senders."""

    callbacks: tuple[str, ...]
    senders: tuple[int, ...]

    def words(self) -> str:
        return f"llist_del_all(call_single_queue): {', '.join(self.callbacks) or 'nothing'}"


@dataclass(frozen=True, slots=True)
class CsdUnlock(OpEvent):
    sender: int

    def words(self) -> str:
        return f"csd_unlock (csd of cpu{self.sender})"


@dataclass(frozen=True, slots=True)
class Entry(Event):
    """A handler pushed on the CPU: the function-call IPI (`callbacks`: the queue it will
    find), an NMI, or the #BP / BRK handler of a trap at `site` (told by its `Exec`).
    `serializing`: the entry is a context synchronization event (arm64), and there an NMI
    is a pseudo-NMI."""

    ctx: Ctx
    serializing: bool
    mode: Any = None
    callbacks: tuple[str, ...] = ()
    site: str | None = None

    def words(self) -> str | None:
        sync = " (exception entry: context synchronization)" if self.serializing else ""
        if self.ctx == Ctx.IRQ:
            return "takes the function-call IPI" + sync
        if self.ctx == Ctx.NMI:
            return "takes a pseudo-NMI" + sync if self.serializing else "takes an NMI"
        return None


@dataclass(frozen=True, slots=True)
class ExceptionReturn(OpEvent):
    """A handler returns by `insn` (IRET / ERET: serializing). From a trap (`trap`: #BP or
    BRK) at `site`: it re-executes the instruction (`retry`) or goes on as if `effect` was
    executed."""

    insn: str
    trap: str = ""
    site: str | None = None
    effect: str | None = None
    retry: bool = False

    def words(self) -> str:
        if not self.trap:
            return f"{self.insn} (serializing)"
        if self.retry:
            return f"{self.insn} from {self.trap}: re-executes {self.site}"
        return f"{self.insn} from {self.trap}: {self.site} executed as '{self.effect}'"


@dataclass(frozen=True, slots=True)
class TaskDone(OpEvent):
    """The CPU's task returned: its stack is empty."""

    def words(self) -> str:
        return f"{self.routine} returns (task done)" if self.eager else "returns (task done)"


# ---- checks, locks, notes ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Chose(OpEvent):
    """A nondeterministic choice inside a routine took alternative `alt` of `n`."""

    alt: int
    n: int

    def words(self) -> str:
        return f"choose: alternative {self.alt} of {self.n}"


@dataclass(frozen=True, slots=True)
class ProcessorId(OpEvent):
    """`smp_processor_id()` returned `value`."""

    value: int

    def words(self) -> str:
        return "smp_processor_id()"


@dataclass(frozen=True, slots=True)
class CheckPassed(OpEvent):
    prop: str

    def words(self) -> str:
        return f"check {self.prop}: ok"


@dataclass(frozen=True, slots=True)
class AssertHeld(OpEvent):
    name: str

    def words(self) -> str:
        return f"lockdep_assert_held({self.name})"


@dataclass(frozen=True, slots=True)
class Warn(OpEvent):
    message: str

    def words(self) -> str:
        return f"WARNING: {self.message}"


@dataclass(frozen=True, slots=True)
class Note(OpEvent):
    text: str

    def words(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Violated(Event):
    """The step broke `prop`; `message` says how in kernel terms. A fetch that broke it
    names its `site` and the bytes `fetched`."""

    prop: Property | str
    message: str
    site: str | None = None
    fetched: bytes | None = None

    def words(self) -> str:
        return f"VIOLATION {self.prop}: {self.message}"


# ---- TLB and CR3 -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TlbAccess(OpEvent):
    va: str
    page: Any
    hit: bool

    def words(self) -> str:
        how = "TLB hit" if self.hit else "page walk"
        return f"access {self.va} ({how} -> {self.page})"


@dataclass(frozen=True, slots=True)
class TlbFill(Event):
    """The page walker speculatively caches the translation of `va`."""

    va: str
    page: Any

    def words(self) -> str:
        return f"page walker (speculative) caches {self.va} -> {self.page}"


@dataclass(frozen=True, slots=True)
class WriteCr3(OpEvent):
    kernel: bool
    flush: bool

    def words(self) -> str:
        which = "kernel" if self.kernel else "user"
        how = "flushing" if self.flush else "NOFLUSH"
        return f"MOV CR3 <- {which} page tables ({how}; serializing)"


@dataclass(frozen=True, slots=True)
class TlbFlush(OpEvent):
    """A local kernel TLB flush of `va`, or of everything (None)."""

    va: str | None

    def words(self) -> str:
        return f"flush kernel TLB ({'invlpg ' + self.va if self.va else 'all, global too'})"


@dataclass(frozen=True, slots=True)
class FreePage(OpEvent):
    page: str

    def words(self) -> str:
        return f"__free_page({self.page}): the page may be reused from now on"


# ---- a stuck CPU -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Blocked:
    """What a CPU that cannot move waits in: its top routine's op (`op`: the op's type
    name, or "return" for a handler that cannot return yet), its contexts bottom first,
    and whether its interrupts are on."""

    cpu: int
    routine: str
    op: str
    label: str
    contexts: tuple[Ctx, ...]
    irqs: bool

    def words(self) -> str:
        label = f" [{self.label}]" if self.label else ""
        return (f"{self.routine} waits in {self.op}{label} (contexts "
                f"{'/'.join(self.contexts)}, irqs {'on' if self.irqs else 'off'})")


# ---- the trail's words -------------------------------------------------------------------

def describe(event: Event) -> str | None:
    """One event in the trail's words: an op performed by a move is told after its
    routine and label, an eager op or a machine move alone; None when silent."""
    words = event.words()
    if words is None or not isinstance(event, OpEvent) or event.eager:
        return words
    label = f" [{event.label}]" if event.label else ""
    return f"{event.routine}{label}: {words}"


def narrate(cpu: int, events: Sequence[Event]) -> str:
    """The trail's line for a step of `cpu`: its events' words, or the violation it ended
    in."""
    if events and isinstance(events[-1], Violated):
        return events[-1].words()
    who = events[0].who() if events else f"cpu{cpu}"
    return f"{who} " + "; ".join(w for e in events if (w := describe(e)) is not None)


def to_json(event: Event) -> dict[str, Any]:
    """An event as JSON-ready data: its kind, then its fields."""
    out: dict[str, Any] = {"event": type(event).__name__}
    for f in fields(event):
        out[f.name] = jsonable(getattr(event, f.name))
    return out


def jsonable(v: Any) -> Any:
    """A value of the machine's as JSON data: bytes as hex, sets sorted, tuples as lists,
    anything else JSON cannot hold as its repr."""
    if v is None or isinstance(v, bool | int | float | str):
        return v.value if isinstance(v, StrEnum) else v
    if isinstance(v, bytes | bytearray):
        return _hex(bytes(v))
    if isinstance(v, frozenset | set):
        return sorted((jsonable(x) for x in v), key=repr)
    if isinstance(v, tuple | list):
        return [jsonable(x) for x in v]
    return repr(v)
