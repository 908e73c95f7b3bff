"""The 2019 cpumask-based `text_poke_sync()` proposal (H. Peter Anvin, "Static calls v3",
2019-01-13, quoted in seeds/004) and Andy Lutomirski's reply (KERNEL.md C.2, K8).

hpa's sync: publish a cpumask of every online CPU but this one, IPI them asynchronously,
and spin until the mask is empty; the IPI handler and the #BP handler clear their CPU's
bit (both return with IRET, which serializes). A #BP handler that traps on the INT3 cannot
emulate in this design: it clears its bit and waits for the breakpoint to go away, then
re-executes. Andy: "if you are in text_poke_bp() and you take an NMI ... and that interrupt
then hits the breakpoint, then you deadlock because no one removes the breakpoint"; his
remedy: whoever clears the bit checks whether all bits are clear and, if so, completes the
step itself -- so no handler ever waits for the CPU it interrupted.
Imports: machine.ops, kernel.text_poke.
"""

from __future__ import annotations

from crossmod.kernel.smp import Gen
from crossmod.kernel.text_poke import PokeVariant, text_poke
from crossmod.machine import ops
from crossmod.machine.ops import is_empty

V = PokeVariant()


def cpumask_memory() -> tuple[tuple[str, object], ...]:
    return (("text_poke_cpumask", frozenset()), ("text_poke_step_done", 0),
            ("text_poke_in_progress", 0), ("text_poke_new", None))


def text_poke_sync_cpu() -> Gen:
    """The IPI callback: `smp_rmb(); cpumask_clear_cpu(smp_processor_id(), mask)`."""
    yield ops.Fence("rmb", label="text_poke_sync_cpu")
    yield ops.CpumaskClearCpu("text_poke_cpumask", label="text_poke_sync_cpu")


def text_poke_sync(step: int) -> Gen:
    """hpa's `text_poke_sync()`: mask := online - self; async IPIs; spin until empty (or,
    with helping, until a helper marked this step done)."""
    yield ops.Fence("wmb", label=f"sync{step}")
    yield ops.Store("text_poke_cpumask", ops.CPU_ONLINE_MASK, label=f"sync{step}")
    yield ops.Fence("wmb", label=f"sync{step}")
    yield ops.CpumaskClearCpu("text_poke_cpumask", label=f"sync{step}")
    yield ops.CsdQueue("others", text_poke_sync_cpu, (), sync=False, label=f"sync{step}")
    yield ops.WaitUntil("text_poke_cpumask", is_empty, label=f"sync{step} wait")


def text_poke_bp_cpumask(site: str, new_effect: str, new: bytes) -> Gen:
    """The three-step int3 patch with hpa's sync after each step."""
    yield ops.Store("text_poke_new", new_effect, label="setup")
    yield ops.Store("text_poke_in_progress", 1, label="setup")
    yield from text_poke(site, 0, b"\xcc", V, label="int3")
    yield from text_poke_sync(1)
    yield from text_poke(site, 1, new[1:], V, label="tail")
    yield from text_poke_sync(2)
    yield from text_poke(site, 0, new[:1], V, label="first byte")
    yield from text_poke_sync(3)
    yield ops.Store("text_poke_in_progress", 0, label="done")


def int3_wait_for_patch(site: str) -> Gen:
    """#BP handler as the proposal implies: clear this CPU's bit, then wait until the
    breakpoint is removed and re-execute the instruction."""
    yield ops.CpumaskClearCpu("text_poke_cpumask", label="#BP clear bit")
    yield ops.WaitUntil("text_poke_in_progress", lambda v: v == 0, label="#BP wait for patch")
    return ops.RETRY


def int3_last_clearer_completes(site: str) -> Gen:
    """Andy Lutomirski's remedy: clear this CPU's bit -- if it was the last, that completes
    the sync step the patcher spins on -- and never wait for the patcher.

    MODEL: the message leaves open what a handler that may not wait does with the trapping
    instruction. Resuming at the *old* instruction out of line is not enough (the model
    finds it executing the old instruction after the patch returned); the answer taken here
    is the one the kernel adopted in 2019: emulate the new instruction (B.6).
    """
    yield ops.CpumaskClearCpu("text_poke_cpumask", label="#BP clear bit, last completes step")
    return (yield ops.Load("text_poke_new", label="#BP emulate the new instruction"))
