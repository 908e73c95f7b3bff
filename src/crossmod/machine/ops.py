"""Every operation a kernel routine may yield to the machine.

Owns: the vocabulary routines are written against (the only module `crossmod.kernel` and
user protocols import from `crossmod.machine`). Imports: stdlib only.

A routine is a generator function. Code between two yields is atomic; each yield hands one op
to the machine, which applies its semantics (machine/cpu.py) and sends the result back in.
Blocking ops (`WaitUntil`, `WaitAll`, `CsdLockWait`, `MutexLock`, and anything that must
drain the store buffer first) are *enabled* only when they can complete: a routine never
busy-loops, so a deadlock is a state in which no move at all is enabled. `Choose(n)` is the
one op with several ways to complete: each alternative is a move of its own.

Addresses name memory without naming CPUs where they can avoid it, so that interchangeable
CPUs stay interchangeable (CPU symmetry, check/explore.py):
  `"name"`                      a global variable
  `this_cpu("name")`            this CPU's instance of a per-CPU variable
  `per_cpu("name", cpu)`        a given CPU's instance (breaks symmetry on that CPU)
Size: over 400 lines because it is the whole vocabulary in one place (trio's `_traps.py`):
one small frozen dataclass per op, nothing else.
Per-CPU loops of the C (`for_each_possible_cpu`) are single ops (`StorePerCpu`,
`RmwPerCpu`, `WaitPerCpu`); see their docstrings for why that loses no behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

# A routine's view of an address: a global name, or ("percpu", name, who) with who = "this"
# or a CPU number.
Addr = str | tuple[str, str, Any]


def this_cpu(name: str) -> Addr:
    """`this_cpu_ptr(&name)`: the executing CPU's instance of a per-CPU variable."""
    return ("percpu", name, "this")


def per_cpu(name: str, cpu: int) -> Addr:
    """`per_cpu(name, cpu)`: a named CPU's instance of a per-CPU variable."""
    return ("percpu", name, cpu)


class Op:
    """Base of every yieldable operation; `label` is the kernel step name (F3, S1, H2...)."""

    __slots__ = ()
    label: str


@dataclass(frozen=True, slots=True)
class Load(Op):
    """A plain load (READ_ONCE); forwards from this CPU's own store buffer first."""

    addr: Addr
    label: str = ""


@dataclass(frozen=True, slots=True)
class Store(Op):
    """A plain store (WRITE_ONCE): enters this CPU's store buffer (x86-TSO)."""

    addr: Addr
    value: Hashable
    label: str = ""


@dataclass(frozen=True, slots=True)
class StorePerCpu(Op):
    """`for_each_possible_cpu(c) WRITE_ONCE(per_cpu(name, c), value)` as one buffered store.

    MODEL: one store-buffer entry that drains to every CPU's instance at once. Each instance
    is read only by its own CPU and by the writer, so no third CPU can observe the order in
    which the instances become visible; keeping them together keeps CPU symmetry exact.
    """

    name: str
    value: Hashable
    label: str = ""


@dataclass(frozen=True, slots=True)
class Rmw(Op):
    """A locked read-modify-write (atomic_*, cmpxchg, xchg): drains the store buffer first.

    `fn(old) -> (new, result)`; `result` is sent back to the routine.
    """

    addr: Addr
    fn: Callable[[Any], tuple[Any, Any]]
    label: str = ""


@dataclass(frozen=True, slots=True)
class RmwPerCpu(Op):
    """`for_each_possible_cpu(c) fn(per_cpu(name, c))` as one step; returns a tuple of results
    in CPU order. MODEL: each RMW touches a different CPU's instance, read only by that CPU and
    the caller, so the interleavings the single step omits are equivalent to ones it keeps.
    """

    name: str
    fn: Callable[[Any], tuple[Any, Any]]
    label: str = ""


@dataclass(frozen=True, slots=True)
class WaitUntil(Op):
    """Block until `pred(value at addr)` holds (an acquire load in a `cpu_relax()` loop)."""

    addr: Addr
    pred: Callable[[Any], bool]
    label: str = ""


@dataclass(frozen=True, slots=True)
class WaitPerCpu(Op):
    """Block until `pred(per_cpu(name, c))` holds for every CPU (atomic_cond_read_acquire)."""

    name: str
    pred: Callable[[Any], bool]
    label: str = ""


@dataclass(frozen=True, slots=True)
class Fence(Op):
    """`smp_mb()` ("mb": drains the store buffer), `smp_wmb()` / `smp_rmb()`.

    On x86-TSO wmb and rmb are compiler barriers only; under the weaker `pso` store order a
    wmb keeps earlier stores ahead of later ones. `pairs_with` names the partner barrier.
    """

    kind: str
    label: str = ""
    pairs_with: str = ""


@dataclass(frozen=True, slots=True)
class Serialize(Op):
    """A serializing instruction: CPUID/SERIALIZE (`sync_core()`), MOV to CR3, IRET-to-self.

    Waits for the store buffer to drain, then discards this CPU's stale instruction view.
    """

    label: str = ""


@dataclass(frozen=True, slots=True)
class TextStore(Op):
    """Plain stores of `data` into kernel text at `site + offset` (one buffered store per
    byte: memcpy gives no atomicity across bytes)."""

    site: str
    offset: int
    data: bytes
    label: str = ""


@dataclass(frozen=True, slots=True)
class ExecSite(Op):
    """Fetch and execute the instruction at a patch site; returns the effect executed.

    INT3 pushes the #BP handler; a torn fetch is a property violation.
    """

    site: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class PatchReturned(Op):
    """The caller's contract point: the patch routine for `site` has returned.

    From here on every execution of the site on any CPU must have the effect of the bytes
    now in memory (DESIGN.md property 2), until the site is written again.
    """

    site: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class IrqSave(Op):
    """`local_irq_save()`: disable interrupts; returns whether they were enabled."""

    label: str = ""


@dataclass(frozen=True, slots=True)
class IrqRestore(Op):
    """`local_irq_restore(flags)`."""

    enabled: bool
    label: str = ""


@dataclass(frozen=True, slots=True)
class IrqsEnabled(Op):
    """`!irqs_disabled()`."""

    label: str = ""


@dataclass(frozen=True, slots=True)
class CsdQueue(Op):
    """Queue `func(*args)` on every target's call_single_queue and send the IPIs.

    `smp_call_function_many_cond()` steps: `csd_lock()` each target's CSD (blocks while the
    previous call through it is unfinished), `llist_add()`, and one IPI to each target whose
    queue was empty (`send_call_function_ipi_mask`). `targets` is "others" (online minus
    self) or a tuple of CPU numbers. MODEL: one step; each llist_add is an RMW on a queue
    only its target reads, so adding them together loses no observable interleaving.
    """

    targets: str | tuple[int, ...]
    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    sync: bool = True
    label: str = ""


@dataclass(frozen=True, slots=True)
class CsdLockWait(Op):
    """`csd_lock_wait()` on every target's CSD: block until each target has unlocked it."""

    targets: str | tuple[int, ...]
    label: str = ""


@dataclass(frozen=True, slots=True)
class CsdDequeueAll(Op):
    """`llist_del_all(this_cpu_ptr(&call_single_queue))`, oldest first.

    Returns `(index, func, args, sync)` tuples; `index` names the entry for `CsdUnlock`
    without handing the sender's CPU number to the routine. A bare IPI's entry (`SendIpi`)
    has sync None and index ("bare", position): no CSD was locked for it.
    """

    label: str = ""


@dataclass(frozen=True, slots=True)
class CsdUnlock(Op):
    """`csd_unlock()`: a store-release of the CSD flags, through the store buffer."""

    index: int
    label: str = ""


@dataclass(frozen=True, slots=True)
class MutexLock(Op):
    """`mutex_lock(name)`: blocks while another CPU holds it."""

    name: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class MutexUnlock(Op):
    name: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class AssertHeld(Op):
    """`lockdep_assert_held(name)`: a property, not a comment."""

    name: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Check(Op):
    """An invariant the routine asserts (a B-invariant of KERNEL.md B.8, say).

    `pred(values)` over the loads of `addrs`; false is a violation of `prop`.
    """

    addrs: tuple[Addr, ...]
    pred: Callable[..., bool]
    prop: str
    message: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class StackFree(Op):
    """The routine's stack frame holding `names` is popped: later reads of them are a
    use-after-return (B-I4). Models an on-stack object whose address escaped."""

    names: tuple[str, ...]
    label: str = ""


@dataclass(frozen=True, slots=True)
class Warn(Op):
    """`WARN_ON_ONCE()` fired: recorded in the trail, execution goes on as in the kernel."""

    message: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Note(Op):
    """A narrated marker with no effect (a step name worth seeing in a trail)."""

    label: str = ""
    text: str = field(default="")


@dataclass(frozen=True, slots=True)
class CpumaskClearCpu(Op):
    """`cpumask_clear_cpu(smp_processor_id(), mask)`: atomic clear_bit of this CPU (a locked
    RMW); returns whether the mask is now empty. The mask variable must be `cpu_valued`."""

    addr: Addr
    label: str = ""


@dataclass(frozen=True, slots=True)
class Ghost(Op):
    """A model-only update of this CPU's own ghost or register state (the CPU's mode, its
    per-callback IPI counts, a read of its own CR3): `fn(old) -> (new, result)`, applied to
    memory directly (no store buffer). Nobody else reads it, so it is performed eagerly."""

    addr: Addr
    fn: Callable[[Any], tuple[Any, Any]]
    label: str = ""


@dataclass(frozen=True, slots=True)
class WriteCr3(Op):
    """`MOV CR3` (SWITCH_TO_KERNEL_CR3 / SWITCH_TO_USER_CR3, arch/x86/entry/calling.h):
    serializing (waits for the store buffer, then discards stale instruction views); with
    `flush` (no NOFLUSH bit) it also drops every non-global TLB entry of this CPU. `kernel`
    selects the kernel or the user page tables (per-CPU register `cr3`)."""

    kernel: bool
    flush: bool = True
    label: str = ""


@dataclass(frozen=True, slots=True)
class TlbAccess(Op):
    """Kernel code dereferences the kernel virtual address `va` (a vmalloc area): through
    this CPU's cached translation if it holds one, else by a page walk that caches it. A
    translation to a page already freed is a use-after-free (DESIGN.md property 3)."""

    va: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class TlbFlushKernel(Op):
    """A local kernel TLB flush: INVLPG of `va` (`flush_tlb_one_kernel`), or every kernel
    translation, global ones included, when `va` is None (`__flush_tlb_all`)."""

    va: str | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class FreePage(Op):
    """`__free_page()`: the page returns to the allocator and may be reused at once. Only
    legal after the flush of every translation to it returned; any later use of one is a
    use-after-free."""

    page: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class CsdQueueCond(Op):
    """`smp_call_function_many_cond()` with a `cond_func` that reads a per-CPU variable of
    each target: every other CPU t with `pred(per_cpu(name, t))` gets `func(*args)` queued
    (and an IPI when its queue was empty), as `CsdQueue` does.

    MODEL: the per-target cond reads (plain loads, through this CPU's store buffer, before
    any llist_add) and the queueing are one step. A target that changes after its cond read
    and before the queueing behaves as one that changed just after the step: it still gets
    the IPI (or still was skipped), and the skip decision is the only input the protocol
    has. When a target passes, the step ends with llist_add's barrier: the store buffer is
    drained after the cond reads (which may have passed its stores). Returns nothing, so
    that no CPU number reaches a routine's locals (CPU symmetry).
    """

    name: str
    pred: Callable[[Any], bool]
    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    sync: bool = True
    label: str = ""


@dataclass(frozen=True, slots=True)
class Choose(Op):
    """A nondeterministic choice among `n` alternatives (Promela's `if :: a :: b fi`);
    returns the alternative taken, 0..n-1. Each one is a move of its own, explored (and
    replayed) like any other choice of the machine.

        which = yield ops.Choose(2, label="fast or slow path")
    """

    n: int
    label: str = ""


@dataclass(frozen=True, slots=True)
class WaitAll(Op):
    """`WaitUntil` over several addresses: block until `pred(*values)` holds, the values
    loaded from `addrs` in order at one instant (a `cpu_relax()` loop re-reading them all);
    returns the tuple of values. `WaitAll(("a", "b"), lambda a, b: a and b)`."""

    addrs: tuple[Addr, ...]
    pred: Callable[..., bool]
    label: str = ""


@dataclass(frozen=True, slots=True)
class ReadText(Op):
    """Read the bytes of a patch site as data (`copy_from_kernel_nofault()`, a memcmp of the
    text): what this CPU's loads see -- memory, then its own buffered text stores, as for
    any other load. Not an instruction fetch: stale fetch views play no part."""

    site: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class SmpProcessorId(Op):
    """`smp_processor_id()`: the executing CPU's number.

    A routine that knows its number can name CPUs, which renumbering interchangeable CPUs
    cannot follow (machine/symmetry.py, point 1): a CPU in a `MachineConfig.symmetric`
    class that performs it is a ModelError. Per-CPU data needs no number: use `this_cpu`.
    """

    label: str = ""


@dataclass(frozen=True, slots=True)
class SendIpi(Op):
    """A bare IPI: `apic->send_IPI_mask(mask, vector)` with no CSD and no wait, as the
    2019 cpumask designs send them. Queues `func(*args)` on each target and raises its IPI;
    the generic IPI handler runs it (`CsdDequeueAll` hands it out with sync None and an
    index that names no CSD: there is none to unlock). `targets` is "others" or a tuple of
    CPU numbers (this CPU is never a target). MODEL: the sender's earlier stores are
    visible before the IPI arrives (x2APIC `weak_wrmsr_fence()`, xAPIC's uncached ICR
    write): it waits for the store buffer to drain, as a locked instruction does.
    """

    targets: str | tuple[int, ...]
    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    label: str = ""


NOT_HANDLED = None
"""What an INT3 handler returns when the trap is not its own."""

RETRY = "<retry>"
"""What an INT3 handler returns to re-execute the trapping instruction after IRET."""

CPU_ONLINE_MASK = "<cpu_online_mask>"
"""Stored as a value, becomes the frozenset of every online CPU (`cpumask_copy`)."""


def is_empty(mask: frozenset) -> bool:
    return not mask


def atomic_inc_not_zero(v: int) -> tuple[int, bool]:
    """`atomic_inc_not_zero()` as an `Rmw` function."""
    return (v + 1, True) if v != 0 else (v, False)


def atomic_dec(v: int) -> tuple[int, int]:
    """`atomic_dec()`; returns the new value."""
    return v - 1, v - 1


def atomic_dec_and_test(v: int) -> tuple[int, bool]:
    """`atomic_dec_and_test()`: true when the new value is zero."""
    return v - 1, v - 1 == 0


def atomic_inc(v: int) -> tuple[int, int]:
    return v + 1, v + 1


def is_zero(v: int) -> bool:
    return v == 0
