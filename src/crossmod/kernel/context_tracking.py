"""Context tracking: kernel/context_tracking.c, include/linux/context_tracking_state.h,
with the v6 deferred-work bits (KERNEL.md G.1-G.4; not in mainline).

Owns: the per-CPU `context_tracking.state` word and its transitions
(`ct_kernel_enter_state`, `ct_kernel_exit_state`, `__ct_user_exit`, `__ct_user_enter`,
`ct_nmi_enter`, `ct_nmi_exit`), and v6's `ct_set_cpu_work` / `ct_work_flush`.
Imports: machine.ops, kernel.smp.

The word, LSB first: [state: 2 bits][work: CT_WORK_SYNC, CT_WORK_TLBI][RCU watching
counter...]; CT_RCU_WATCHING is the counter's lowest bit, set while RCU watches the CPU
(kernel code in task, IRQ or NMI context).
MODEL: the counter is kept modulo 4 (only its lowest bit is ever tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossmod.kernel.smp import Gen
from crossmod.machine import ops
from crossmod.machine.ops import per_cpu, this_cpu

CT_STATE_KERNEL, CT_STATE_IDLE, CT_STATE_USER = 0, 1, 2
CT_STATE_MASK = 0x3
CT_WORK_SYNC = 1 << 2  # arch_context_tracking_work: sync_core()
CT_WORK_TLBI = 1 << 3  # K16: __flush_tlb_all() at ct_work_flush
CT_WORK_MASK = CT_WORK_SYNC | CT_WORK_TLBI
CT_RCU_WATCHING = 1 << 4
_WRAP = 1 << 6

CT = "context_tracking.state"


def context_tracking_memory(user_cpus: tuple[int, ...]) -> tuple[tuple, tuple]:
    """(per-CPU variables, per-CPU initial overrides): kernel CPUs watched by RCU, user CPUs
    in CT_STATE_USER (an extended quiescent state)."""
    return ((CT, CT_RCU_WATCHING),), tuple((c, CT, CT_STATE_USER) for c in user_cpus)


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name
    return fn


def ct_state_inc(offset: int) -> Callable[[int], tuple[int, int]]:
    """`ct_state_inc(offset)` = raw_atomic_add_return(offset, &ct->state)."""
    return _named(lambda old: (((old + offset) % _WRAP),) * 2, "atomic_add_return")


def ct_state_inc_clear_work(offset: int) -> Callable[[int], tuple[int, int]]:
    """v6 `ct_state_inc_clear_work()`: clear every work bit and add `offset`, atomically."""
    def fn(old: int) -> tuple[int, int]:
        new = ((old & ~CT_WORK_MASK) + offset) % _WRAP
        return new, new
    return _named(fn, "ct_state_inc_clear_work")


def _cmpxchg(expected: int, new: int) -> Callable[[int], tuple[int, tuple[bool, int]]]:
    def fn(cur: int) -> tuple[int, tuple[bool, int]]:
        return (new, (True, cur)) if cur == expected else (cur, (False, cur))
    return _named(fn, "atomic_try_cmpxchg")


def ct_work_flush(seq: int, label: str) -> Gen:
    """v6 `ct_work_flush(seq)`: run each deferred work whose bit `seq` carries (noinstr,
    NMI-safe): CT_WORK_SYNC -> `sync_core()`; CT_WORK_TLBI -> `__flush_tlb_all()` (K16)."""
    if seq & CT_WORK_SYNC:
        yield ops.Serialize(label=f"{label} ct_work_flush: sync_core")
    if seq & CT_WORK_TLBI:
        yield ops.TlbFlushKernel(None, label=f"{label} ct_work_flush: __flush_tlb_all")


def ct_kernel_enter_state(offset: int, work: bool, label: str) -> Gen:
    """`ct_kernel_enter_state(offset)`: one atomic add that clears the state field and makes
    RCU watch; v6 then runs `ct_work_flush(seq)` on what the add returned."""
    seq = yield ops.Rmw(this_cpu(CT), ct_state_inc(offset), label=f"{label} ct_kernel_enter_state")
    if work:
        yield from ct_work_flush(seq, label)


def ct_kernel_exit_state(offset: int, label: str) -> Gen:
    """`ct_kernel_exit_state(offset)`: RCU stops watching and the state field is set; v6
    clears the pending work bits in the same atomic update."""
    yield ops.Rmw(this_cpu(CT), ct_state_inc_clear_work(offset),
                  label=f"{label} ct_kernel_exit_state")


def __ct_user_exit(work: bool, label: str) -> Gen:
    """`__ct_user_exit(CT_STATE_USER)` -> `ct_kernel_enter(true, CT_RCU_WATCHING - state)`."""
    yield from ct_kernel_enter_state(CT_RCU_WATCHING - CT_STATE_USER, work, label)


def __ct_user_enter(label: str) -> Gen:
    """`__ct_user_enter(CT_STATE_USER)` -> `ct_kernel_exit(true, CT_RCU_WATCHING + state)`."""
    yield from ct_kernel_exit_state(CT_RCU_WATCHING + CT_STATE_USER, label)


def ct_nmi_enter(work: bool, label: str) -> Gen:
    """`ct_nmi_enter()`: if RCU is not watching (user, guest, idle), make it watch with
    `ct_kernel_enter_state(CT_RCU_WATCHING)` -- the state field is left as it was (G.2).
    Returns whether it did (the matching `ct_nmi_exit` undoes it)."""
    seq = yield ops.Load(this_cpu(CT), label=f"{label} ct_nmi_enter: rcu_is_watching")
    if seq & CT_RCU_WATCHING:
        return False
    yield from ct_kernel_enter_state(CT_RCU_WATCHING, work, label)
    return True


def ct_nmi_exit(entered: bool, label: str) -> Gen:
    """`ct_nmi_exit()`: give the extended quiescent state back (`ct_kernel_exit_state`)."""
    if entered:
        yield from ct_kernel_exit_state(CT_RCU_WATCHING, label)


def ct_set_cpu_work(cpu: int, work: int, gate: str, label: str) -> Gen:
    """v6 `ct_set_cpu_work(cpu, work)` (KERNEL.md G.3): true iff the work was recorded in
    the target's word (the IPI may be skipped).

    W1  old := atomic_read(&ct->state) with CT_RCU_WATCHING cleared ("not in the kernel")
    W2  try_cmpxchg(&ct->state, &old, old | work); on failure old := the current word
    W3  give up (IPI) as soon as the word shows CT_RCU_WATCHING
    Variants: "state-field" (v4, K12) gates on the state field (USER/IDLE) instead;
    "plain-read" (2023 RFC, K13) tests a plain read first and IPIs a CPU it sees watching.
    """
    addr = per_cpu(CT, cpu)
    old = yield ops.Load(addr, label=f"{label} W1 ct_set_cpu_work")
    if gate == "plain-read" and old & CT_RCU_WATCHING:
        return False
    if gate != "state-field":
        old &= ~CT_RCU_WATCHING
    while True:
        if gate == "state-field" and old & CT_STATE_MASK == CT_STATE_KERNEL:
            return False
        ok, cur = yield ops.Rmw(addr, _cmpxchg(old, old | work), label=f"{label} W2")
        if ok:
            return True
        if gate != "state-field" and cur & CT_RCU_WATCHING:
            return False
        old = cur


def describe(word: Any) -> str:
    """The word in CT_* terms, for trails and tests."""
    state = {0: "KERNEL", 1: "IDLE", 2: "USER", 3: "GUEST"}[word & CT_STATE_MASK]
    work = "|SYNC" if word & CT_WORK_SYNC else ""
    work += "|TLBI" if word & CT_WORK_TLBI else ""
    return f"CT_STATE_{state}{work}{'|RCU_WATCHING' if word & CT_RCU_WATCHING else ''}"
