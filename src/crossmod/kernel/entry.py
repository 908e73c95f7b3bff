"""Kernel entry and exit on x86-64: arch/x86/entry/entry_64.S, arch/x86/entry/calling.h,
kernel/entry/common.c, with the CR3 software signal of the IPI-deferral series (v7/v8
"x86/mm/pti: Introduce a kernel/user CR3 software signal"; KERNEL.md G.2, G.5, H.1-H.8).

Owns: `SWITCH_TO_KERNEL_CR3`, `SWITCH_TO_USER_CR3`, `enter_from_user_mode`,
`exit_to_user_mode`, the syscall path, the function-call IPI vector taken from user mode
(`sysvec_call_function`) and the paranoid NMI entry (`asm_exc_nmi`). Imports:
machine.ops, kernel.smp, kernel.context_tracking, kernel.history.deferral.

Per-CPU memory: `kernel_cr3_loaded` (v7/v8 signal), `cr3` (register), `mode` (ghost:
"user" or "kernel"), `ipi_user` (ghost: IPIs taken from user mode, by callback),
`isolated` (ghost: this CPU's task stays in userspace; property 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossmod.kernel import context_tracking as ct
from crossmod.kernel.history.deferral import Deferral
from crossmod.kernel.smp import Gen
from crossmod.machine import ops
from crossmod.machine.ops import this_cpu


def _read(v: Any) -> tuple[Any, Any]:
    return v, v


def _set(value: Any) -> Callable[[Any], tuple[Any, Any]]:
    def fn(old: Any) -> tuple[Any, Any]:
        return value, old
    fn.__name__ = f"mode := {value}"
    return fn


def _count(name: str) -> Callable[[tuple], tuple[tuple, None]]:
    def fn(counts: tuple) -> tuple[tuple, None]:
        d = dict(counts)
        d[name] = d.get(name, 0) + 1
        return tuple(sorted(d.items())), None
    fn.__name__ = f"count IPI {name} taken in user mode"
    return fn


def SWITCH_TO_KERNEL_CR3(d: Deferral, label: str = "E2") -> Gen:
    """arch/x86/entry/calling.h `SWITCH_TO_KERNEL_CR3` (ALTERNATIVE on X86_FEATURE_PTI):

    E2a v8: kernel_cr3_loaded := 1 (written while still on the user CR3)
    E2b mov %cr3: ADJUST_KERNEL_CR3 (clear the user PGD/PCID bits; NOFLUSH unless the
        series needs the flush on isolated CPUs) and write CR3 -- serializing
    E2c v7: kernel_cr3_loaded := 1 after the CR3 write and the flush (K17)
    Without kPTI the whole macro is patched out at boot: no CR3 write.
    MODEL (no kPTI): the signal is still written, so that the sender's skip is what is
    being judged, not an always-1 flag.
    """
    signal = d.policy == "cr3"
    if signal and (d.signal == "before-cr3" or not d.pti):
        yield ops.Store(this_cpu("kernel_cr3_loaded"), 1,
                        label=f"{label}a NOTE_SWITCH_TO_KERNEL_CR3")
    if d.pti:
        yield ops.WriteCr3(True, flush=d.entry_flush, label=f"{label}b SWITCH_TO_KERNEL_CR3")
    if signal and d.signal == "after-flush" and d.pti:
        yield ops.Store(this_cpu("kernel_cr3_loaded"), 1, label=f"{label}c COALESCE_TLBI")


def SWITCH_TO_USER_CR3(d: Deferral, label: str = "X2") -> Gen:
    """calling.h `SWITCH_TO_USER_CR3_STACK` / `_NOSTACK`:

    X2a v7/v8: kernel_cr3_loaded := 0 (NOTE_SWITCH_TO_USER_CR3)
    X2b set the user PGD/PCID bits and write CR3 -- serializing
    """
    if d.policy == "cr3":
        yield ops.Store(this_cpu("kernel_cr3_loaded"), 0,
                        label=f"{label}a NOTE_SWITCH_TO_USER_CR3")
    if d.pti:
        yield ops.WriteCr3(False, flush=False, label=f"{label}b SWITCH_TO_USER_CR3")


def enter_from_user_mode(d: Deferral, label: str = "E3") -> Gen:
    """kernel/entry/common.h `enter_from_user_mode()` (noinstr) -> `user_exit_irqoff()` ->
    `__ct_user_exit(CT_STATE_USER)`:

    E3a noinstr code before context tracking (a patched noinstr site: K15; a vmalloc
        dereference such as the vmapped stack: K16)
    E3b ct_kernel_enter_state(): RCU watches; v6 runs ct_work_flush()
    """
    if d.noinstr_site:
        yield ops.ExecSite("noinstr_site", label=f"{label}a noinstr")
    if d.danger_vmalloc:
        yield from model_touch_vmalloc(f"{label}a vmapped stack")
    if d.policy == "ct":
        yield from ct.__ct_user_exit(True, label)


def exit_to_user_mode(d: Deferral) -> Gen:
    """kernel/entry/common.h `exit_to_user_mode()` and the asm return:

    X0  local_irq_disable()
    X1  user_enter_irqoff() -> __ct_user_enter(CT_STATE_USER) (v6: clears the work bits)
    X2  SWITCH_TO_USER_CR3
    X3  SYSRET / IRET to user mode
    """
    yield ops.IrqSave(label="X0 local_irq_disable")
    if d.policy == "ct":
        yield from ct.__ct_user_enter("X1")
    yield from SWITCH_TO_USER_CR3(d)
    yield ops.Ghost(this_cpu("mode"), _set("user"), label="X3 return to user mode")


def model_user_entry(d: Deferral, label: str) -> Gen:
    """User -> kernel: the asm stub (entry_SYSCALL_64 or idtentry/error_entry), whose danger
    zone may hold a static branch (E1, K14), then the CR3 switch and context tracking."""
    yield ops.Ghost(this_cpu("mode"), _set("kernel"), label=f"{label} enters the kernel")
    yield ops.Ghost(this_cpu("isolated"), _left, label=f"{label}: no longer isolated")
    if d.entry_key is not None:
        yield ops.ExecSite("entry_key", label="E1 danger zone: static branch")
    yield from SWITCH_TO_KERNEL_CR3(d)
    yield from enter_from_user_mode(d)


def model_touch_vmalloc(label: str) -> Gen:
    """Kernel code that dereferences the published vmalloc pointer, if there is one."""
    p = yield ops.Load("vmalloc_ptr", label=f"{label}: READ_ONCE(ptr)")
    if p is not None:
        yield ops.TlbAccess(p, label=label)


def model_kernel_work(patch: bool, vmalloc: bool, label: str) -> Gen:
    """What the kernel does for the user task: run through the patched site, use the
    published vmalloc area."""
    if patch:
        yield ops.ExecSite("site", label=label)
    if vmalloc:
        yield from model_touch_vmalloc(label)


def model_user_task(d: Deferral, syscalls: int, patch: bool, vmalloc: bool) -> Gen:
    """A NOHZ_FULL task in userspace that makes `syscalls` system calls:
    SYSCALL (IF masked) -> entry -> local_irq_enable -> kernel work -> exit -> SYSRET."""
    for _ in range(syscalls):
        yield ops.IrqSave(label="SYSCALL")
        yield from model_user_entry(d, "entry_SYSCALL_64")
        yield ops.IrqRestore(True, label="do_syscall_64: local_irq_enable")
        yield from model_kernel_work(patch, vmalloc, "syscall")
        yield from exit_to_user_mode(d)
        yield ops.IrqRestore(True, label="SYSRET")


def sysvec_call_function(d: Deferral) -> Gen:
    """arch/x86/kernel/smp.c `DEFINE_IDTENTRY_SYSVEC(sysvec_call_function)` ->
    `generic_smp_call_function_interrupt()` -> `__flush_smp_call_function_queue()`:

    I1  from user mode: idtentry/error_entry (danger zone, CR3 switch),
        irqentry_enter_from_user_mode (context tracking)
    I2  llist_del_all; count the callbacks taken in user mode (property 6): a CPU that
        stays in userspace must get none of those the policy defers
    I3  run each SYNC entry and csd_unlock it (ASYNC: unlock first)
    I4  to user mode: irqentry_exit_to_user_mode; IRET (serializing)
    """
    mode = yield ops.Ghost(this_cpu("mode"), _read, label="I1 from which mode")
    isolated = yield ops.Ghost(this_cpu("isolated"), _read, label="I1")
    if mode == "user":
        yield from model_user_entry(d, "I1 idtentry")
    entries = yield ops.CsdDequeueAll(label="I2 flush_smp_call_function_queue")
    if mode == "user":
        yield from _account_user_ipis(entries, d, isolated)
    for index, func, info, sync in entries:
        if sync:
            yield from func(*info)
            yield ops.CsdUnlock(index, label="I3 csd_unlock")
    for index, func, info, sync in entries:
        if not sync:
            yield ops.CsdUnlock(index, label="I3 csd_unlock")
            yield from func(*info)
    if mode == "user":
        yield from exit_to_user_mode(d)


def _account_user_ipis(entries: tuple, d: Deferral, isolated: bool) -> Gen:
    """Property 6 (DESIGN.md): count, and fail on a deferred callback reaching an isolated
    CPU that stayed in userspace (never entered the kernel, NMIs included) until then."""
    for _, func, _, _ in entries:
        name = func.__name__
        yield ops.Ghost(this_cpu("ipi_user"), _count(name), label="I2")
        if isolated and name in d.deferred():
            yield ops.Check((), _false, "isolation",
                            f"{name} IPI taken in user mode by a CPU that stays in userspace, "
                            f"though the '{d.policy}' policy defers it")


def _false() -> bool:
    return False


def _left(isolated: bool) -> tuple[bool, None]:
    return False, None


def asm_exc_nmi(d: Deferral, patch: bool, vmalloc: bool) -> Gen:
    """arch/x86/entry/entry_64.S `asm_exc_nmi` (paranoid entry) -> `exc_nmi()`:

    N1  SAVE_AND_SWITCH_TO_KERNEL_CR3: only if CR3 is the user's, set the signal (as the
        v7 diff does, on that branch only) and write the kernel CR3 (serializing)
    N1' paranoid_fix (MODEL, a candidate answer to K20): save the signal; catch up (signal
        := 1, flushing CR3 write) whenever it was 0, even with CR3 already the kernel's
    N2  irqentry_nmi_enter -> ct_nmi_enter (v6: RCU watches, ct_work_flush)
    N3  the handler: runs through the patched site, uses the vmalloc area
    N4  ct_nmi_exit; PARANOID_RESTORE_CR3 (RESTORE_CR3 before 2024): writes CR3 only when
        the saved one is a user CR3, and then clears the signal (v7); with the fix, the
        saved signal is put back instead
    MODEL: the paranoid entry's CR3 write flushes like the normal entry's (`entry_flush`);
    in mainline ADJUST_KERNEL_CR3 sets NOFLUSH with PCID on both.
    """
    yield ops.Ghost(this_cpu("isolated"), _left, label="N0 NMI: no longer isolated")
    cr3 = yield ops.Ghost(this_cpu("cr3"), _read, label="N1 SAVE_AND_SWITCH_TO_KERNEL_CR3")
    fix = d.paranoid_fix and d.policy == "cr3"
    saved = (yield ops.Load(this_cpu("kernel_cr3_loaded"), label="N1'")) if fix else None
    switched = (d.pti and cr3 == "user") or saved == 0
    if switched:
        yield from SWITCH_TO_KERNEL_CR3(d, label="N1")
    entered = False
    if d.policy == "ct":
        entered = yield from ct.ct_nmi_enter(True, "N2")
    yield from model_kernel_work(patch, vmalloc, "N3 NMI handler")
    if d.policy == "ct":
        yield from ct.ct_nmi_exit(entered, "N4")
    if not fix:
        if switched:
            yield from SWITCH_TO_USER_CR3(d, label="N4 PARANOID_RESTORE_CR3")
        return
    if switched:
        yield ops.Store(this_cpu("kernel_cr3_loaded"), saved, label="N4' restore the signal")
    if d.pti and cr3 == "user":
        yield ops.WriteCr3(False, flush=False, label="N4 PARANOID_RESTORE_CR3")


def entry_memory(user_cpus: tuple[int, ...],
                 isolated: tuple[int, ...]) -> tuple[tuple, tuple]:
    """(per-CPU variables, per-CPU initial overrides) of entry: user CPUs start in user
    mode on the user CR3 with kernel_cr3_loaded = 0; `isolated` ones stay there."""
    percpu = (("mode", "kernel"), ("cr3", "kernel"), ("kernel_cr3_loaded", 1),
              ("ipi_user", ()), ("isolated", False), ("tlb", None))
    init = []
    for c in user_cpus:
        init += [(c, "mode", "user"), (c, "cr3", "user"), (c, "kernel_cr3_loaded", 0)]
    init += [(c, "isolated", True) for c in isolated]
    return percpu, tuple(init)
