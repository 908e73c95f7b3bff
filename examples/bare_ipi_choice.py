"""A 2019-style int3 patch synchronized with bare IPIs, written from scratch.

hpa's 2019 `text_poke_sync()` (crossmod/kernel/history/cpumask_2019.py) sent bare IPIs, with
no CSD and no csd_lock_wait(), and learnt that every CPU had serialized only from what the
IPI callbacks wrote. Here each CPU acks in its own per-CPU flag and the patcher waits on both
flags at once. The CPUs running the site take one of two paths, chosen nondeterministically
(Promela's `if :: ... :: ... fi`): straight through it, or through it with interrupts off
(which delays their ack). Three ways of acking:

  never cleared   the flags are set to 1 and never reset: the second sync's wait is
                  satisfied by the first sync's acks
  cleared first   the patcher clears every flag before it sends the IPIs
  carry the step  each ack is the number of the sync step it answers

With the flags never cleared, a CPU runs the site torn; with that property switched off,
the search goes on to a CPU trapping on a stale INT3 after the #BP emulation is gone.

Run: python examples/bare_ipi_choice.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossmod import (
    NOP5,
    MachineConfig,
    Site,
    System,
    check,
    generic_smp_call_function_single_interrupt,
    jmp32,
    ops,
    send_IPI_allbutself,
)

NEW = jmp32(0x40)
SITE = Site("site", NOP5, ((NOP5, "nop"), (NEW, "jmp l_yes")))
ACKS = (ops.per_cpu("ack", 1), ops.per_cpu("ack", 2))
WAYS = {"never cleared": "flags", "cleared first": "cleared", "carry the step": "step"}


@dataclass(frozen=True)
class Acked:
    """The wait's predicate over both flags (a value, not a lambda: routine states are
    compared by their locals)."""

    seq: int
    way: str

    def __call__(self, a: Any, b: Any) -> bool:
        return a == b == (self.seq if self.way == "step" else 1)


def text_poke_ack(seq: int, way: str):
    """The IPI callback: ack this sync step. The IRET after it serializes this CPU."""
    yield ops.Store(ops.this_cpu("ack"), seq if way == "step" else 1, label="ack")


def text_poke_sync(seq: int, way: str):
    """Bare IPIs to every other CPU, then spin until both flags say they ran."""
    if way == "cleared":
        yield ops.StorePerCpu("ack", 0, label=f"sync{seq} clear the acks")
    yield from send_IPI_allbutself(text_poke_ack, (seq, way), label=f"sync{seq}")
    yield ops.WaitAll(ACKS, Acked(seq, way), label=f"sync{seq} wait for both acks")


def patcher(way: str):
    yield ops.Store("bp_emulate", "jmp l_yes", label="publish the #BP emulation")
    yield ops.TextStore("site", 0, b"\xcc", label="int3")
    yield from text_poke_sync(1, way)
    yield ops.TextStore("site", 1, NEW[1:], label="tail")
    yield from text_poke_sync(2, way)
    yield ops.TextStore("site", 0, NEW[:1], label="first byte")
    yield from text_poke_sync(3, way)
    yield ops.Store("bp_emulate", None, label="unpublish")
    yield ops.PatchReturned("site")


def int3_handler(site: str):
    """Emulate the new instruction while the patcher publishes it; else not ours."""
    return (yield ops.Load("bp_emulate", label="#BP"))


def runner():
    """A CPU running through the site twice, on one of two paths."""
    path = yield ops.Choose(2, label="if :: irqs on :: irqs off fi")
    flags = (yield ops.IrqSave(label="irqs off")) if path else None
    for _ in range(2):
        yield ops.ExecSite("site")
    if path:
        yield ops.IrqRestore(flags, label="irqs on")


def system(way: str) -> System:
    cfg = MachineConfig(ncpus=3, sites=(SITE,),
                        tasks=((patcher, (way,)), (runner, ()), (runner, ())),
                        int3_handler=int3_handler,
                        ipi_handler=generic_smp_call_function_single_interrupt,
                        globals=(("bp_emulate", None),), percpu=(("ack", 0),),
                        readers=frozenset({1, 2}))
    return System("bare-ipi-sync", cfg, variant=way)


if __name__ == "__main__":
    for title, way in WAYS.items():
        v = check(system(way))
        print(f"acks {title:15} {v.verdict:9} {v.property or '-':17} states={v.states}")
        if v.counterexample:
            print("  " + v.counterexample[-1].text)
    # past the first bug: switch the torn instruction off and the search finds the next
    v = check(system("flags"), ignore={"torn-instruction"})
    print(f"acks never cleared, ignoring torn-instruction: {v.verdict} {v.property} "
          f"states={v.states}")
    if v.counterexample:
        print("  " + v.counterexample[-1].text)
