"""stop_machine()-based patching: kernel/stop_machine.c and the x86 `text_poke_smp()` of
arch/x86/kernel/alternative.c (v2.6.33 - v3.x, before int3 patching).

Owns: `stop_machine`, `multi_cpu_stop` (the rendezvous every CPU runs with IRQs off) and
`stop_machine_text_poke` (the callback: the first CPU to arrive patches, the others spin
until it wrote). Imports: machine.ops, kernel.smp.

MODEL: the stopper threads are woken on each CPU by a reschedule IPI and run in place of
the interrupted task; the model runs `multi_cpu_stop` from that IPI and completes through
the CSD, which gives the same IPI count (one per other CPU) and the same serialization (the
IRET that returns to the interrupted code).
"""

from __future__ import annotations

from collections.abc import Callable

from crossmod.kernel.smp import Gen
from crossmod.machine import ops
from crossmod.machine.ops import atomic_dec_and_test, atomic_inc


def stop_machine_memory() -> tuple[tuple[str, object], ...]:
    return (("multi_stop.arrived", 0), ("multi_stop.left", 0),
            ("stop_machine_first", 1), ("wrote_text", 0))


def multi_cpu_stop(fn: Callable, args: tuple, ncpus: int) -> Gen:
    """kernel/stop_machine.c `multi_cpu_stop()`: every CPU disables IRQs and acknowledges
    each state (MULTI_STOP_DISABLE_IRQ, MULTI_STOP_RUN, MULTI_STOP_EXIT) before any moves on;
    `fn` runs in MULTI_STOP_RUN."""
    flags = yield ops.IrqSave(label="MULTI_STOP_DISABLE_IRQ")
    yield ops.Rmw("multi_stop.arrived", atomic_inc, label="ack_state")
    yield ops.WaitUntil("multi_stop.arrived", lambda n: n == ncpus, label="MULTI_STOP_RUN")
    yield from fn(*args)
    yield ops.Rmw("multi_stop.left", atomic_inc, label="ack_state")
    yield ops.WaitUntil("multi_stop.left", lambda n: n == ncpus, label="MULTI_STOP_EXIT")
    yield ops.IrqRestore(flags, label="MULTI_STOP_EXIT")


def stop_machine(fn: Callable, args: tuple, ncpus: int) -> Gen:
    """`stop_machine_cpuslocked()`: run `multi_cpu_stop(fn)` on every online CPU, this one
    included, and wait until all are done."""
    yield ops.CsdQueue("others", multi_cpu_stop, (fn, args, ncpus), sync=True,
                       label="stop_machine: cpu_stop_queue_work")
    yield from multi_cpu_stop(fn, args, ncpus)
    yield ops.CsdLockWait("others", label="stop_machine: wait for completion")


def stop_machine_text_poke(site: str, new: bytes) -> Gen:
    """`stop_machine_text_poke()`: the first CPU to get here writes the instruction, the
    others wait until `wrote_text` and then order their later fetches after it."""
    if (yield ops.Rmw("stop_machine_first", atomic_dec_and_test, label="first?")):
        flags = yield ops.IrqSave(label="text_poke")
        yield ops.TextStore(site, 0, new, label="text_poke")
        yield ops.Serialize(label="text_poke: sync_core")
        yield ops.IrqRestore(flags, label="text_poke")
        yield ops.Fence("wmb", label="smp_wmb", pairs_with="smp_mb after wrote_text")
        yield ops.Store("wrote_text", 1, label="wrote_text = 1")
    else:
        yield ops.WaitUntil("wrote_text", lambda v: v == 1, label="while (!wrote_text)")
        yield ops.Fence("mb", label="smp_mb", pairs_with="smp_wmb")


def text_poke_smp(site: str, new: bytes, ncpus: int) -> Gen:
    """`text_poke_smp()`: arm the election and run the patch under stop_machine()."""
    yield ops.Store("stop_machine_first", 1, label="atomic_set(&stop_machine_first, 1)")
    yield ops.Store("wrote_text", 0, label="wrote_text = 0")
    yield from stop_machine(stop_machine_text_poke, (site, new), ncpus)
