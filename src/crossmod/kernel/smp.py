"""Cross-CPU function calls: kernel/smp.c (v6.x), as routines.

Owns: `smp_call_function_many_cond`, `on_each_cpu`, `on_each_cpu_cond`, the IPI handler
`generic_smp_call_function_single_interrupt` / `__flush_smp_call_function_queue`, and
`do_sync_core` / `do_nothing` (arch/x86/kernel/alternative.c, kernel/smp.c), and the bare
IPIs `send_IPI_mask` / `send_IPI_allbutself` (arch/x86/include/asm/apic.h). Imports:
machine.ops only.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from crossmod.machine import ops

Gen = Generator[ops.Op, Any, Any]


def smp_call_function_many_cond(mask: str | tuple[int, ...], func: Callable, info: tuple,
                                wait: bool, run_local: bool, label: str = "") -> Gen:
    """kernel/smp.c `smp_call_function_many_cond()` (KERNEL.md F.3).

    1. warn if called with interrupts disabled (the deadlock of K9 is not prevented, only
       reported, exactly as in the kernel);
    2. csd_lock() each target's CSD, fill it, llist_add() it, IPI the targets whose queue was
       empty (one `CsdQueue` op);
    3. if the local CPU is in the mask, run func locally with interrupts disabled;
    4. if wait, csd_lock_wait() on every target's CSD.
    `mask` is "others" (cpu_online_mask minus this CPU) or a tuple of CPU numbers chosen by
    `cond_func` on the sender.
    """
    if not (yield ops.IrqsEnabled(label=label)):
        yield ops.Warn("smp_call_function_many_cond() called with IRQs disabled", label=label)
    yield ops.CsdQueue(mask, func, info, sync=wait, label=label)
    if run_local:
        flags = yield ops.IrqSave(label=label)
        yield from func(*info)
        yield ops.IrqRestore(flags, label=label)
    if wait:
        yield ops.CsdLockWait(mask, label=label)


def on_each_cpu(func: Callable, info: tuple = (), wait: bool = True, label: str = "") -> Gen:
    """include/linux/smp.h `on_each_cpu()` = on_each_cpu_cond_mask(NULL, func, info, wait,
    cpu_online_mask): every online CPU, this one included (locally with IRQs off)."""
    yield from smp_call_function_many_cond("others", func, info, wait, run_local=True,
                                           label=label)


def smp_call_function(func: Callable, info: tuple = (), wait: bool = True,
                      label: str = "") -> Gen:
    """kernel/smp.c `smp_call_function()`: every *other* online CPU."""
    yield from smp_call_function_many_cond("others", func, info, wait, run_local=False,
                                           label=label)


def generic_smp_call_function_single_interrupt() -> Gen:
    """The function-call IPI handler: `__flush_smp_call_function_queue()` (KERNEL.md F.4).

    Dequeue everything (llist_del_all), then run synchronous entries and csd_unlock() each
    after its function; asynchronous entries are unlocked before their function runs. Runs
    with interrupts disabled; its return is the IRET that serializes this CPU.
    MODEL: a bare IPI's callback (`send_IPI_mask`, sync None) runs here too, in order with
    the asynchronous entries, with no CSD to unlock -- as if its vector's handler were this
    one.
    """
    entries = yield ops.CsdDequeueAll(label="flush_smp_call_function_queue")
    for index, func, info, sync in entries:
        if sync:
            yield from func(*info)
            yield ops.CsdUnlock(index, label="csd_unlock")
    for index, func, info, sync in entries:
        if sync is None:
            yield from func(*info)
        elif not sync:
            yield ops.CsdUnlock(index, label="csd_unlock")
            yield from func(*info)


def send_IPI_mask(mask: str | tuple[int, ...], func: Callable, info: tuple = (),
                  label: str = "") -> Gen:
    """arch/x86/include/asm/apic.h `apic->send_IPI_mask(mask, vector)`: a bare IPI to every
    CPU of `mask` ("others", or a tuple of CPU numbers; never this CPU), with no CSD, no
    csd_lock and no wait -- the 2019 cpumask designs' `text_poke_sync()` sends these. The
    target runs `func(*info)` from the generic IPI handler; the sender learns when only
    from what `func` writes."""
    yield ops.SendIpi(mask, func, info, label=label)


def send_IPI_allbutself(func: Callable, info: tuple = (), label: str = "") -> Gen:
    """`apic->send_IPI_allbutself(vector)`: `send_IPI_mask` to every other online CPU."""
    yield from send_IPI_mask("others", func, info, label=label)


def do_sync_core() -> Gen:
    """arch/x86/kernel/alternative.c `do_sync_core()`: `sync_core()` (SERIALIZE, or an
    IRET-to-self on CPUs without it)."""
    yield ops.Serialize(label="sync_core")


def do_nothing() -> Gen:
    """kernel/smp.c `do_nothing()` (used by `kick_all_cpus_sync()`)."""
    yield ops.Note(label="do_nothing")


def kick_all_cpus_sync() -> Gen:
    """kernel/smp.c `kick_all_cpus_sync()`:

    K1  smp_mb()  -- make the caller's stores (the new instructions) visible before the kick
    K2  smp_call_function(do_nothing, NULL, 1): every other online CPU takes an IPI and runs
        an empty function; the caller waits for all of them.
    On arm64 taking the IPI (exception entry) and returning from it (ERET) are context
    synchronization events: afterwards a CPU fetches only the instructions memory holds.
    """
    yield ops.Fence("mb", label="K1 kick_all_cpus_sync", pairs_with="IPI exception entry")
    yield from smp_call_function(do_nothing, (), wait=True, label="K2 kick_all_cpus_sync")
