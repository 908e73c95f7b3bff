"""`x86-int3-batch` and its historic variants (KERNEL.md B, K2-K6), and `x86-memcpy` (K1).

Each builder returns a `System`: a machine description plus the routines its CPUs run.
This file is also the worked example of writing a protocol check: build sites, declare the
memory the routines use, give each CPU a task, hand the config to an engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crossmod.catalogue.params import MachineParams, Task, param
from crossmod.kernel import text_poke as tp
from crossmod.kernel.model import (
    USER_MEMORY,
    model_exec_loop,
    model_nmi_exec,
    model_text_mutex_caller,
    model_user_loop,
)
from crossmod.kernel.smp import Gen, generic_smp_call_function_single_interrupt
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, jmp32

# A static branch: NOP5 while the key is off, JMP to the out-of-line block when on.
JUMP_SITE = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes")))
# An optimized kprobe being unoptimized: JMP to the optprobe trampoline back to INT3 + the
# original tail (arch_unoptimize_kprobe -> smp_text_poke_single): the INT3 outlives the batch.
OPTPROBE_SITE = Site("site", jmp32(0x1000),
                     ((jmp32(0x1000), "jmp optprobe_trampoline"),),
                     int3_effect="kprobe int3")
KPROBE_NEW = bytes([0xCC]) + NOP5[1:]

VARIANTS: dict[str, tp.PokeVariant] = {
    "default": tp.PokeVariant(),
    "no-sync1": tp.PokeVariant(sync1=False),
    "no-sync2": tp.PokeVariant(sync2=False),
    "no-sync3": tp.PokeVariant(sync3=False),
    "no-publish-barrier": tp.PokeVariant(publish_barrier=False, poke="fixmap"),
    "stack-descriptor": tp.PokeVariant(refs="stack"),
    "global-descriptor": tp.PokeVariant(refs="global"),
    "spin-in-handler": tp.PokeVariant(handler="spin"),
}


@dataclass(frozen=True)
class Others:
    """What CPUs 1.. of a patching machine run: `execs` passes through the site each, except
    the last `users`, which run user code forever (`model_user_loop`)."""

    tasks: tuple[tuple, ...]
    symmetric: tuple[tuple[int, ...], ...]
    endless: frozenset[int]
    percpu: tuple[tuple[str, object], ...]


def other_cpus(cpus: int, execs: int, users: int, site: str = "site") -> Others:
    """The tasks of CPUs 1..cpus-1, their symmetry classes (each of two or more CPUs), the
    endless ones and the per-CPU memory their tasks need."""
    if not 0 <= users < cpus:
        raise ValueError(f"users={users}: must be 0..{cpus - 1} (CPU 0 patches)")
    passes = cpus - 1 - users
    tasks = ((model_exec_loop, (site, execs)),) * passes + ((model_user_loop, ()),) * users
    classes = (tuple(range(1, 1 + passes)), tuple(range(1 + passes, cpus)))
    return Others(tasks, tuple(c for c in classes if len(c) > 1),
                  frozenset(range(1 + passes, cpus)), USER_MEMORY if users else ())


def model_patch_task(site: str, new: bytes, emulate: str | None, v: tp.PokeVariant) -> Gen:
    """The caller: under text_mutex, queue one site and finish the batch."""
    yield from model_text_mutex_caller(site, tp.smp_text_poke_single, (site, new, emulate, v))


@dataclass(frozen=True)
class ExecParams(MachineParams):
    """One patcher (CPU 0) and CPUs running through the patched site."""

    execs: int = param(2, "times each CPU but CPU 0 runs through the site", range=(1, 4))


def users_param() -> Any:
    """The `users` field: CPUs that run user code forever (liveness, property 5)."""
    return param(0, "CPUs (the last ones) that run user code forever instead of passing "
                 "through the site", range=(0, 7))


def users_conflict(cpus: int, users: int) -> str | None:
    if users >= cpus:
        return f"--users {users}: must be 0..{cpus - 1} (CPU 0 patches)"
    return None


@dataclass(frozen=True)
class PatchParams(ExecParams):
    """ExecParams, and CPUs that run user code forever instead."""

    users: int = users_param()

    def conflict(self) -> str | None:
        return users_conflict(self.cpus, self.users)


def shown(p: ExecParams) -> dict[str, object]:
    """The parameters a System shows in verdicts: all, but `users` only when some CPU runs
    user code (a verdict's config reads as it did before liveness)."""
    out = asdict(p)
    if out.get("users") == 0:
        del out["users"]
    return out


def build_int3_batch(variant: str, p: PatchParams) -> System:
    """CPU 0 patches one site with the int3 batch protocol; CPUs 1.. run through the site
    `execs` times each, but for the last `users`, which run user code forever; up to `nmis`
    NMIs, on any CPU, execute the site too."""
    cpus = p.cpus
    v = VARIANTS[variant]
    kprobe = variant == "stack-descriptor"
    site = OPTPROBE_SITE if kprobe else JUMP_SITE
    new, emulate = (KPROBE_NEW, None) if kprobe else (jmp32(0x40), "jmp l_yes")
    glob, percpu = tp.text_poke_memory()

    def int3(site_name: str) -> Gen:
        return tp.smp_text_poke_int3_handler(site_name, v)

    int3.__name__ = "smp_text_poke_int3_handler"
    others = other_cpus(cpus, p.execs, p.users)
    tasks: tuple[Task, ...] = ((model_patch_task, ("site", new, emulate, v)), *others.tasks)
    cfg = MachineConfig(
        ncpus=cpus, sites=(site,), tasks=tasks, int3_handler=int3,
        ipi_handler=generic_smp_call_function_single_interrupt,
        nmi_handler=(model_nmi_exec, ("site",)), nmis=p.nmis,
        globals=glob, percpu=percpu + others.percpu, cpu_valued=frozenset({"text_mutex"}),
        fetch=p.fetch, memory=p.memory, symmetric=others.symmetric, endless=others.endless,
        readers=frozenset(range(1, cpus)) if v.refs == "percpu" else frozenset(),
    )
    return System("x86-int3-batch", cfg, variant, shown(p))
