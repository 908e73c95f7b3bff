"""x86 protocols before and beside today's int3 batch: plain memcpy (K1), the 2010
text_poke_fixup (C.1), the 2019 cpumask sync (C.2, K8), stop_machine patching, and two CPUs
calling on_each_cpu() with interrupts off (K9)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from crossmod.catalogue.params import MachineParams, Task, param
from crossmod.catalogue.x86_int3 import (
    JUMP_SITE,
    ExecParams,
    Others,
    PatchParams,
    other_cpus,
    shown,
    users_conflict,
    users_param,
)
from crossmod.kernel import stop_machine as sm
from crossmod.kernel.history import cpumask_2019 as c19
from crossmod.kernel.history import fixup_2010 as f10
from crossmod.kernel.model import model_exec_loop, model_nmi_exec, model_text_mutex_caller
from crossmod.kernel.smp import Gen, do_nothing, generic_smp_call_function_single_interrupt
from crossmod.kernel.smp import on_each_cpu as _on_each_cpu
from crossmod.kernel.text_poke import text_poke_memory
from crossmod.machine import ops
from crossmod.machine.routines import Routine
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import jmp32

NEW = jmp32(0x40)
NEW_EFFECT = "jmp l_yes"


def _config(tasks: list, cpus: int, nmis: int, fetch: str, memory: str, int3: Routine | None = None,
            extra_globals: tuple = (), cpu_valued: frozenset = frozenset(),
            nmi_cpus: tuple[int, ...] | None = None, symmetric: bool = True,
            others: Others | None = None) -> MachineConfig:
    """The machine; `others`, when given, are the tasks of CPUs 1.. (`tasks` holds CPU 0's
    alone) with their symmetry."""
    glob, percpu = text_poke_memory()
    if others is not None:
        tasks = [*tasks, *others.tasks]
    classes = others.symmetric if others is not None else \
        (tuple(range(1, cpus)),) if cpus > 2 else ()
    return MachineConfig(
        ncpus=cpus, sites=(JUMP_SITE,), tasks=tuple(tasks), int3_handler=int3,
        ipi_handler=generic_smp_call_function_single_interrupt,
        nmi_handler=(model_nmi_exec, ("site",)), nmis=nmis, nmi_cpus=nmi_cpus,
        globals=glob + extra_globals, percpu=percpu + (others.percpu if others else ()),
        cpu_valued=frozenset({"text_mutex"}) | cpu_valued, fetch=fetch, memory=memory,
        symmetric=classes if symmetric else (),
        endless=others.endless if others is not None else frozenset(),
    )


def model_memcpy_patcher(site: str, new: bytes) -> Gen:
    """K1: the new instruction copied over live text with plain stores, no protocol."""
    yield ops.TextStore(site, 0, new, label="memcpy")
    yield ops.Serialize(label="sync_core (local only)")
    yield ops.PatchReturned(site, label="caller")


def build_memcpy(variant: str, p: ExecParams) -> System:
    tasks: list[Task] = [(model_memcpy_patcher, ("site", NEW))]
    tasks += [(model_exec_loop, ("site", p.execs))] * (p.cpus - 1)
    cfg = _config(tasks, p.cpus, p.nmis, p.fetch, p.memory)
    return System("x86-memcpy", cfg, variant, asdict(p))


def build_fixup_2010(variant: str, p: ExecParams) -> System:
    tasks: list[Task] = [(model_text_mutex_caller,
                          ("site", f10.text_poke_fixup, ("site", NEW, NEW_EFFECT)))]
    tasks += [(model_exec_loop, ("site", p.execs))] * (p.cpus - 1)
    cfg = _config(tasks, p.cpus, p.nmis, p.fetch, p.memory,
                  int3=f10.text_poke_fixup_int3_handler, extra_globals=f10.fixup_memory())
    return System("x86-fixup-2010", cfg, variant, asdict(p))


CPUMASK_HANDLERS = {"default": c19.int3_wait_for_patch,
                    "last-clearer-completes": c19.int3_last_clearer_completes}


@dataclass(frozen=True)
class CpumaskParams(ExecParams):
    """K8's configuration: one NMI, on the patching CPU unless `nmi_on` says every CPU."""

    nmis: int = param(1, "NMI budget per run", range=(0, 2))
    execs: int = param(1, "times each CPU but CPU 0 runs through the site", range=(1, 4))
    nmi_on: str = param("patcher", "where NMIs arrive: the patching CPU 0 (K8) or every CPU",
                        choices=("patcher", "all"))
    users: int = users_param()

    def conflict(self) -> str | None:
        return users_conflict(self.cpus, self.users)


def build_cpumask_2019(variant: str, p: CpumaskParams) -> System:
    """K8's configuration: the NMI hits the patching CPU (CPU 0) while it waits
    (`nmi_on="all"` lets NMIs hit every CPU); the last `users` CPUs run user code forever
    instead of passing through the site."""
    tasks: list[Task] = [(model_text_mutex_caller,
                          ("site", c19.text_poke_bp_cpumask, ("site", NEW_EFFECT, NEW)))]
    cfg = _config(tasks, p.cpus, p.nmis, p.fetch, p.memory, int3=CPUMASK_HANDLERS[variant],
                  extra_globals=c19.cpumask_memory(),
                  cpu_valued=frozenset({"text_poke_cpumask"}),
                  nmi_cpus=(0,) if p.nmi_on == "patcher" else None,
                  others=other_cpus(p.cpus, p.execs, p.users))
    return System("x86-cpumask-2019", cfg, variant, shown(p))


def model_irqs_off_caller() -> Gen:
    """K9: a CPU that calls on_each_cpu(..., wait=1) with interrupts disabled."""
    flags = yield ops.IrqSave(label="local_irq_save")
    yield from _on_each_cpu(do_nothing, (), wait=True, label="on_each_cpu")
    yield ops.IrqRestore(flags, label="local_irq_restore")


@dataclass(frozen=True)
class IrqsOffParams(MachineParams):
    """K9: every CPU a caller of on_each_cpu(wait=1) with interrupts off; no NMI."""

    cpus: int = param(2, "number of CPUs, each a caller", range=(2, 4))
    nmis: int = param(0, "NMI budget per run", range=(0, 0))


def build_ipi_irqs_off(variant: str, p: IrqsOffParams) -> System:
    tasks: list[Task] = [(model_irqs_off_caller, ())] * p.cpus
    cfg = _config(tasks, p.cpus, p.nmis, p.fetch, p.memory, symmetric=False)
    return System("x86-ipi-irqs-off", cfg, variant, asdict(p))


@dataclass(frozen=True)
class StopMachineParams(PatchParams):
    cpus: int = param(2, "number of CPUs (CPU 0 patches)", range=(2, 5))


def build_stop_machine(variant: str, p: StopMachineParams) -> System:
    tasks: list[Task] = [(model_text_mutex_caller,
                          ("site", sm.text_poke_smp, ("site", NEW, p.cpus)))]
    cfg = _config(tasks, p.cpus, p.nmis, p.fetch, p.memory,
                  extra_globals=sm.stop_machine_memory(),
                  others=other_cpus(p.cpus, p.execs, p.users))
    return System("x86-stop-machine", cfg, variant, shown(p))
