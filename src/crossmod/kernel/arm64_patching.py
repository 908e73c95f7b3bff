"""arm64 instruction patching: arch/arm64/kernel/patching.c (v6.x; the master election as
before and after the 2022 fix "arm64: patch_text: Fixup last cpu should be master"),
arch/arm64/kernel/jump_label.c in its three eras, and the kprobe hooks of
arch/arm64/kernel/probes/kprobes.c that patch through it.

Owns: `__aarch64_insn_write`, `aarch64_insn_patch_text_nosync`, `aarch64_insn_patch_text_cb`,
`aarch64_insn_patch_text`, the jump-label hooks (`ARM64_JUMP_LABEL` = 2024,
`ARM64_JUMP_LABEL_NOSYNC` = f6cc0c501649 .. 2024, `ARM64_JUMP_LABEL_STOP_MACHINE` = before
f6cc0c501649), `arch_arm_kprobe` and `kprobe_breakpoint_handler`. Imports: machine.ops,
kernel.smp, kernel.stop_machine, kernel.jump_label.

Memory (declare it with `arm64_patching_memory()`):
  patch_lock                       raw spinlock around the fixmap write (holder or None)
  aarch64_insn_patch.cpu_count     `struct aarch64_insn_patch.cpu_count` of the current call
  multi_stop.*                     stop_machine()'s rendezvous (kernel/stop_machine.py)

Data memory: the arm64 systems run with `memory="sc"` (every store and RMW is visible to
all CPUs at once). MODEL: that cannot show anything that depends on arm64's weak ordering
-- a missing `smp_mb()` in kick_all_cpus_sync(), the DSB that orders the instruction write
before the IPI, the release in `atomic_set_release(&key->enabled, 1)`, the acquire of the
cpu_count spin. Only instruction fetch is weak here: a CPU may execute any value a word held
since its last context synchronization event (ISB, exception entry, exception return).
"""

from __future__ import annotations

from crossmod.kernel import stop_machine as sm
from crossmod.kernel.jump_label import JUMP_LABEL_JMP, JumpEntry, JumpLabelArch, model_c_name
from crossmod.kernel.smp import Gen, kick_all_cpus_sync
from crossmod.machine import ops
from crossmod.machine.ops import atomic_inc

CPU_COUNT = "aarch64_insn_patch.cpu_count"


def arm64_patching_memory() -> tuple[tuple[str, object], ...]:
    return (("patch_lock", None), (CPU_COUNT, 0), *sm.stop_machine_memory())


def __aarch64_insn_write(site: str, insn: bytes) -> Gen:
    """`__aarch64_insn_write()`: raw_spin_lock_irqsave(&patch_lock); map the page at
    FIX_TEXT_POKE0; copy_to_kernel_nofault() the 32-bit word (one single-copy-atomic STR);
    unmap; unlock."""
    flags = yield ops.IrqSave(label="W1 raw_spin_lock_irqsave(&patch_lock)")
    yield ops.MutexLock("patch_lock", label="W1 raw_spin_lock_irqsave(&patch_lock)")
    yield ops.TextStore(site, 0, insn, label="W2 copy_to_kernel_nofault")
    yield ops.MutexUnlock("patch_lock", label="W3 raw_spin_unlock_irqrestore")
    yield ops.IrqRestore(flags, label="W3 raw_spin_unlock_irqrestore")


def aarch64_insn_patch_text_nosync(site: str, insn: bytes) -> Gen:
    """`aarch64_insn_patch_text_nosync()`:

    N1 (address must be 4-byte aligned: every model site is)
    N2 aarch64_insn_write(addr, insn)
    N3 caches_clean_inval_pou(addr, addr + 4): clean D / invalidate I to the PoU, dsb ish,
       isb -- the new word is fetchable everywhere, and *this* CPU is synchronized. No other
       CPU is: each may keep executing the old word until its own next context
       synchronization event.
    """
    yield from __aarch64_insn_write(site, insn)
    yield ops.Serialize(label="N3 caches_clean_inval_pou: dsb ish; isb")


def aarch64_insn_patch_text_cb(sites: tuple[str, ...], insns: tuple[bytes, ...], ncpus: int,
                               master: str) -> Gen:
    """`aarch64_insn_patch_text_cb()`, run by every online CPU under stop_machine():

    C1 n := atomic_inc_return(&pp->cpu_count)
    C2 master if n == num_online_cpus() (the last CPU to arrive, since 2022)
       -- or n == 1 (the first to arrive, before: K11)
    C3 master: aarch64_insn_patch_text_nosync() each instruction;
               atomic_inc(&pp->cpu_count) to release the others
    C4 others: while (atomic_read(&pp->cpu_count) <= num_online_cpus()) cpu_relax();
    C5         isb()
    """
    n = yield ops.Rmw(CPU_COUNT, atomic_inc, label="C1 atomic_inc_return(&pp->cpu_count)")
    if n == (ncpus if master == "last" else 1):
        for site, insn in zip(sites, insns, strict=True):
            yield from aarch64_insn_patch_text_nosync(site, insn)
        yield ops.Rmw(CPU_COUNT, atomic_inc, label="C3 atomic_inc(&pp->cpu_count)")
    else:
        yield ops.WaitUntil(CPU_COUNT, lambda v: v > ncpus, label="C4 cpu_relax()")
        yield ops.Serialize(label="C5 isb")


def model_multi_cpu_stop_fn(probe: str | None, sites: tuple[str, ...],
                            insns: tuple[bytes, ...], ncpus: int, master: str) -> Gen:
    """`msdata->fn(msdata->data)` as called from multi_cpu_stop() in MULTI_STOP_RUN.

    MODEL: `probe`, when set, is an instruction of multi_cpu_stop() that every CPU executes
    after it saw MULTI_STOP_RUN and before it enters the callback -- where a CPU that is
    late to the callback still runs ordinary kernel text (K11; Catalin Marinas' review:
    "unless you insert probes in the multi_stop_cpu() function").
    """
    if probe is not None:
        yield ops.ExecSite(probe, label="multi_cpu_stop: before msdata->fn()")
    yield from aarch64_insn_patch_text_cb(sites, insns, ncpus, master)


def aarch64_insn_patch_text(sites: tuple[str, ...], insns: tuple[bytes, ...], ncpus: int,
                            master: str = "last", probe: str | None = None) -> Gen:
    """`aarch64_insn_patch_text()`:

    P1 struct aarch64_insn_patch patch = { ..., .cpu_count = ATOMIC_INIT(0) }
    P2 stop_machine_cpuslocked(aarch64_insn_patch_text_cb, &patch, cpu_online_mask)
    MODEL: `patch` and stop_machine's `msdata` live on this function's stack, fresh for
    every call; the model resets their globals before each stop_machine().
    """
    yield ops.Store(CPU_COUNT, 0, label="P1 .cpu_count = ATOMIC_INIT(0)")
    yield ops.Store("multi_stop.arrived", 0, label="P1 msdata (on stack)")
    yield ops.Store("multi_stop.left", 0, label="P1 msdata (on stack)")
    yield from sm.stop_machine(model_multi_cpu_stop_fn, (probe, sites, insns, ncpus, master),
                               ncpus)


# ---- jump labels: arch/arm64/kernel/jump_label.c -----------------------------------------

def _insn(entry: JumpEntry, jtype: int) -> bytes:
    """aarch64_insn_gen_branch_imm(code, target, NOLINK) for JUMP_LABEL_JMP, else a NOP."""
    return entry.jump if jtype == JUMP_LABEL_JMP else entry.nop


def arch_jump_label_transform_queue(entry: JumpEntry, jtype: int) -> Gen:
    """arm64 `arch_jump_label_transform_queue()` (2024, Will Deacon's fix): write the
    branch or NOP with aarch64_insn_patch_text_nosync(); the queue is never full."""
    yield from aarch64_insn_patch_text_nosync(entry.site, _insn(entry, jtype))
    return True


def arch_jump_label_transform_apply() -> Gen:
    """arm64 `arch_jump_label_transform_apply()` (2024): kick_all_cpus_sync() once, after
    every site of the key was written."""
    yield from kick_all_cpus_sync()


def arch_jump_label_transform_nosync(entry: JumpEntry, jtype: int) -> Gen:
    """arm64 `arch_jump_label_transform()` from f6cc0c501649 ("arm64: Avoid calling
    stop_machine() when patching jump labels") until 2024: aarch64_insn_patch_text_nosync()
    and nothing else -- no other CPU is made to synchronize (K10)."""
    yield from aarch64_insn_patch_text_nosync(entry.site, _insn(entry, jtype))


def model_jump_label_transform_stop_machine(ncpus: int, master: str) -> JumpLabelArch:
    """arm64 `arch_jump_label_transform()` before f6cc0c501649: one
    aarch64_insn_patch_text(&addr, &insn, 1) -- one stop_machine() -- per site."""

    def arch_jump_label_transform(entry: JumpEntry, jtype: int) -> Gen:
        yield from aarch64_insn_patch_text((entry.site,), (_insn(entry, jtype),), ncpus,
                                           master)

    return JumpLabelArch(f"arm64 stop_machine per site ({master} CPU is master)",
                         transform=arch_jump_label_transform)


model_c_name(arch_jump_label_transform_nosync, "arch_jump_label_transform")

ARM64_JUMP_LABEL = JumpLabelArch("arm64 2024 (nosync writes + kick_all_cpus_sync)",
                                 transform_queue=arch_jump_label_transform_queue,
                                 transform_apply=arch_jump_label_transform_apply)
ARM64_JUMP_LABEL_NOSYNC = JumpLabelArch("arm64 f6cc0c501649 (nosync writes only)",
                                        transform=arch_jump_label_transform_nosync)


# ---- kprobes: arch/arm64/kernel/probes/kprobes.c ---------------------------------------

def arch_arm_kprobe(site: str, brk: bytes, ncpus: int, master: str = "last",
                    probe: str | None = None) -> Gen:
    """`arm_kprobe()` -> `arch_arm_kprobe()`: cpus_read_lock(); mutex_lock(&text_mutex);
    aarch64_insn_patch_text(&addr, &BRK64_OPCODE_KPROBES, 1); unlock both. Replacing an
    arbitrary instruction by BRK is not CMODX-safe: this is why it goes through
    stop_machine()."""
    yield ops.MutexLock("text_mutex", label="arm_kprobe: mutex_lock(&text_mutex)")
    yield from aarch64_insn_patch_text((site,), (brk,), ncpus, master, probe)
    yield ops.MutexUnlock("text_mutex", label="arm_kprobe: mutex_unlock(&text_mutex)")


def kprobe_breakpoint_handler(site: str, effect: str) -> Gen:
    """`kprobe_breakpoint_handler()` (the BRK64_ESR_KPROBES hook): run the pre-handler and
    single-step the original instruction out of line; returns what the site did."""
    yield ops.Note(label="kprobe_breakpoint_handler",
                   text=f"kprobe at {site}: pre_handler, then the original instruction "
                        "single-stepped out of line")
    return effect
