"""IPI deferral as posted (v5-v9, 2025-2026), one knob per design decision or K item.

Owns: `Deferral` (which design runs and which of its steps are present: KERNEL.md G.3, H.2,
H.4, K12-K20), the sender-side conds (`do_sync_core_defer_cond`, `flush_tlb_kernel_cond`),
`on_each_cpu_cond` over them, and the deferrable text sync of the batch finish
(`smp_text_poke_sync_each_cpu_deferrable`). Imports: machine.ops, kernel.smp,
kernel.context_tracking.

None of this is in mainline: v6 patch 24 ("context_tracking,x86: Defer kernel text
patching IPIs"), v7/v8 "x86/mm/pti: Introduce a kernel/user CR3 software signal" and
"x86/mm, mm/vmalloc: Defer kernel TLB flush IPIs when tracking CR3 switches" are followed
as KERNEL.md G and H describe them; where the patch text was not retrievable the choice is
marked MODEL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crossmod.kernel.context_tracking import CT_WORK_SYNC, ct_set_cpu_work
from crossmod.kernel.smp import Gen, do_sync_core, on_each_cpu, smp_call_function_many_cond
from crossmod.machine import ops


@dataclass(frozen=True)
class Deferral:
    """One deferral design and its variants.

    policy           "none" (IPI every CPU), "ct" (v6: context-tracking work bits), "cr3"
                     (v8: kernel_cr3_loaded + the kPTI CR3 write)
    ct_gate          v6 sender gate: "rcu-watching" (v5+), "state-field" (v4, K12),
                     "plain-read" (2023 RFC, K13)
    tlb              kernel TLB flush IPIs: "ipi" (not deferred), "cr3" (v8: the entry CR3
                     write flushes), "ct-work" (flushed in ct_work_flush, K16)
    signal           v8 "before-cr3" (flag := 1; MOV CR3) or v7 "after-flush" (K17)
    sender_mb        the sender's smp_mb() between its stores and the flag reads (K18)
    pte_clear        "xchg" (ptep_get_and_clear, a locked op) or "plain" (set_pte)
    pti              kPTI on: user page tables do not map the kernel; CR3 switch on entry
    entry_flush      the entry CR3 write flushes (no NOFLUSH bit) on isolated CPUs
    entry_key        a static branch in the entry danger zone: None, "mutable" (K14),
                     "ro" (__ro_after_init: never flipped) or "noinstr" (_NOINSTR: always IPI)
    noinstr_check    v6: a batch touching .noinstr.text is never deferred (K15 removes it)
    noinstr_site     the patched site is noinstr code run on entry before ct_work_flush
    danger_vmalloc   entry code between SWITCH_TO_KERNEL_CR3 and ct_work_flush dereferences
                     a vmalloc address (a vmapped stack; K16)
    paranoid_fix     paranoid (NMI) entry catches up when kernel_cr3_loaded is 0 even if
                     CR3 is already the kernel's (a candidate answer to K20)
    """

    policy: str = "none"
    ct_gate: str = "rcu-watching"
    tlb: str = "ipi"
    signal: str = "before-cr3"
    sender_mb: bool = True
    pte_clear: str = "xchg"
    pti: bool = True
    entry_flush: bool = False
    entry_key: str | None = None
    noinstr_check: bool = True
    noinstr_site: bool = False
    danger_vmalloc: bool = False
    paranoid_fix: bool = False

    def deferred(self) -> frozenset[str]:
        """The callbacks this design claims it need not IPI to a CPU in userspace (F.6)."""
        out = set()
        if self.policy in ("ct", "cr3"):
            out.add("do_sync_core")
        if self.tlb != "ipi":
            out.add("do_kernel_range_flush")
        return frozenset(out)


def kernel_cr3_loaded(v: int) -> bool:
    """v8 `cond_func`: the target is (or may be) on the kernel CR3 -- it needs the IPI."""
    return v == 1


def on_each_cpu_cond_percpu(name: str, pred: Callable, func: Callable, info: tuple,
                            label: str) -> Gen:
    """include/linux/smp.h `on_each_cpu_cond(cond_func, func, info, wait=1)` with a cond
    that reads one per-CPU variable of each target (KERNEL.md F.3):

    1. warn if IRQs are disabled;
    2. for each other online CPU with cond true: csd_lock, llist_add, IPI (one step);
    3. run func locally with IRQs off;
    4. csd_lock_wait on the CPUs queued.
    """
    if not (yield ops.IrqsEnabled(label=label)):
        yield ops.Warn("on_each_cpu_cond() called with IRQs disabled", label=label)
    yield ops.CsdQueueCond(name, pred, func, info, sync=True, label=label)
    flags = yield ops.IrqSave(label=label)
    yield from func(*info)
    yield ops.IrqRestore(flags, label=label)
    yield ops.CsdLockWait("others", label=label)


def on_each_cpu_cond_ct(work: int, others: tuple[int, ...], func: Callable, info: tuple,
                        d: Deferral, label: str) -> Gen:
    """`on_each_cpu_cond(do_sync_core_defer_cond, ...)` of v6: for each other CPU,
    cond(cpu) = `!ct_set_cpu_work(cpu, work)` on the sender, then IPI those that need it.

    MODEL: the CPU numbers in the loop keep these configurations out of CPU symmetry.
    """
    targets: tuple[int, ...] = ()
    for cpu in others:
        if not (yield from ct_set_cpu_work(cpu, work, d.ct_gate, label)):
            targets = (*targets, cpu)
    yield from smp_call_function_many_cond(targets, func, info, wait=True, run_local=True,
                                           label=label)


def smp_text_poke_sync_each_cpu_deferrable(label: str, vec: tuple, d: Deferral,
                                           others: tuple[int, ...],
                                           noinstr: frozenset[str]) -> Gen:
    """S1-S3 of `smp_text_poke_batch_finish()` with deferral (v6 patch 24, v8 patch 09):

    D1  a batch with an address in .noinstr.text cannot be deferred: cond := NULL (v6)
    D2  v8: smp_mb() -- the store-buffer pattern of KERNEL.md H.5 [pairs with the entry
        CR3 write]
    D3  on_each_cpu_cond(cond, do_sync_core, NULL, 1): v6 cond = !ct_set_cpu_work(cpu,
        CT_WORK_SYNC); v8 cond = per_cpu(kernel_cr3_loaded, cpu)
    """
    if d.noinstr_check and any(e.site in noinstr for e in vec):
        yield ops.Note(label=f"{label} D1", text="batch touches .noinstr.text: cond := NULL")
        yield from on_each_cpu(do_sync_core, (), wait=True, label=label)
    elif d.policy == "ct":
        yield from on_each_cpu_cond_ct(CT_WORK_SYNC, others, do_sync_core, (), d, label)
    else:
        if d.sender_mb:
            yield ops.Fence("mb", label=f"{label} D2", pairs_with="SWITCH_TO_KERNEL_CR3")
        yield from on_each_cpu_cond_percpu("kernel_cr3_loaded", kernel_cr3_loaded,
                                           do_sync_core, (), label)
