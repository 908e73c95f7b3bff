"""Kernel TLB flushing and vmalloc unmapping: arch/x86/mm/tlb.c, mm/vmalloc.c (v6.x), with
the deferrable flush of the IPI-deferral series (KERNEL.md F.6, H.2-H.4; not in mainline).

Owns: `do_kernel_range_flush`, `flush_tlb_kernel_range`,
`flush_tlb_kernel_range_deferrable`, `vunmap_range`, `__purge_vmap_area_lazy` and
`vmap_pages_range`. Imports: machine.ops, kernel.smp, kernel.context_tracking,
kernel.history.deferral.

Memory: global `pte.<va>` (the page mapped at a vmalloc address, None when unmapped),
`freed_pages` (ghost), per-CPU `tlb` and `cr3` (machine/cpu.py keeps them).
MODEL: one page-sized vmalloc area; "va" stands for [start, end).
"""

from __future__ import annotations

from crossmod.kernel.context_tracking import CT_WORK_TLBI
from crossmod.kernel.history.deferral import (
    Deferral,
    kernel_cr3_loaded,
    on_each_cpu_cond_ct,
    on_each_cpu_cond_percpu,
)
from crossmod.kernel.smp import Gen, on_each_cpu
from crossmod.machine import ops


def ptep_get_and_clear(old: object) -> tuple[None, object]:
    """`native_ptep_get_and_clear()`: xchg(&ptep->pte, 0) -- a locked instruction."""
    return None, old


def do_kernel_range_flush(va: str) -> Gen:
    """arch/x86/mm/tlb.c `do_kernel_range_flush(info)`: for each page of the range,
    `flush_tlb_one_kernel(addr)` (INVLPG; under kPTI also the user PCID's copy)."""
    yield ops.TlbFlushKernel(va, label="do_kernel_range_flush: flush_tlb_one_kernel")


def flush_tlb_kernel_range(va: str, d: Deferral, others: tuple[int, ...] = ()) -> Gen:
    """arch/x86/mm/tlb.c `flush_tlb_kernel_range(start, end)`:

    T1  info := get_flush_tlb_info(NULL, start, end, ...)
    T2  on_each_cpu(do_kernel_range_flush, info, 1)  (do_flush_tlb_all for large ranges)
    T3  put_flush_tlb_info()
    With a deferral policy the deferrable variant runs instead.
    """
    if d.tlb != "ipi":
        yield from flush_tlb_kernel_range_deferrable(va, d, others)
        return
    yield from on_each_cpu(do_kernel_range_flush, (va,), wait=True, label="T2")


def flush_tlb_kernel_range_deferrable(va: str, d: Deferral, others: tuple[int, ...]) -> Gen:
    """The series' `flush_tlb_kernel_range_deferrable()` (v6 patch 28 "x86/mm, mm/vmalloc:
    Defer kernel TLB flush IPIs under CONFIG_COALESCE_TLBI=y", kept in v7/v8):
    `__flush_tlb_kernel_range(flush_tlb_kernel_cond, start, end)`.

    T0  smp_mb()  [pairs with SWITCH_TO_KERNEL_CR3: the PTE clear before the flag reads,
        KERNEL.md H.5]. MODEL: not in the v6 patch, whose cond reads the flag right away;
        vunmap's ptep_get_and_clear (an xchg) is the barrier there (variant
        xchg-no-sender-mb). K18 drops it.
    T2  on_each_cpu_cond(flush_tlb_kernel_cond, do_kernel_range_flush, info, 1):
        cond(cpu) = housekeeping_cpu(cpu, HK_TYPE_KERNEL_NOISE) ||
        per_cpu(kernel_cr3_loaded, cpu); or !ct_set_cpu_work(cpu, CT_WORK_TLBI) with the
        flush in ct_work_flush (the pre-v5 design, K16)
    MODEL: housekeeping CPUs pass the cond through kernel_cr3_loaded = 1 (they never leave
    the kernel here); the housekeeping cpumask test is not modelled. X86_FEATURE_INVLPGB
    (broadcast invalidation, no IPI at all) is not modelled.
    """
    if d.tlb == "ct-work":
        yield from on_each_cpu_cond_ct(CT_WORK_TLBI, others, do_kernel_range_flush, (va,), d,
                                       "T2")
        return
    if d.sender_mb:
        yield ops.Fence("mb", label="T0", pairs_with="SWITCH_TO_KERNEL_CR3")
    yield from on_each_cpu_cond_percpu("kernel_cr3_loaded", kernel_cr3_loaded,
                                       do_kernel_range_flush, (va,), "T2")


def vunmap_range(va: str, d: Deferral) -> Gen:
    """mm/vmalloc.c `vunmap_range_noflush()` -> `vunmap_pte_range()`: clear the leaf PTEs
    (`ptep_get_and_clear`, an xchg; or a plain `set_pte`/`pte_clear` store, as
    change_page_attr's `set_pte_atomic` is on x86-64). Page-table pages are never freed
    (which is why the flush may be deferred at all, F.6 / K19)."""
    if d.pte_clear == "xchg":
        yield ops.Rmw(f"pte.{va}", ptep_get_and_clear, label="V1 vunmap_pte_range")
    else:
        yield ops.Store(f"pte.{va}", None, label="V1 vunmap_pte_range: pte_clear")


def __purge_vmap_area_lazy(va: str, d: Deferral, others: tuple[int, ...]) -> Gen:
    """mm/vmalloc.c `__purge_vmap_area_lazy(start, end)`: flush the kernel TLB over every
    lazily freed area, then return the areas to the free tree (the address may be
    reallocated from now on).

    V2  flush_tlb_kernel_range(start, end) (deferrable in the series)
    V3  the pages are freed (vunmap's caller; vfree frees them before the purge, which the
        model covers too: nothing may use the stale translation after the purge either way)
    """
    yield from flush_tlb_kernel_range(va, d, others)
    yield ops.FreePage("P1", label="V3 __free_page")


def vmap_pages_range(va: str, page: str) -> Gen:
    """mm/vmalloc.c `vmap_pages_range()` -> `vmap_pte_range()`: `set_pte_at()` of the new
    page at a reused address (a plain store)."""
    yield ops.Store(f"pte.{va}", page, label="V4 vmap_pte_range: set_pte_at")
