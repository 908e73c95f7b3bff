"""Model-only routines: the code around the kernel routines that a check needs.

Owns: tasks that are not kernel functions -- a CPU running code that passes through a patch
site, the NMI handler that executes one, the patcher's caller that declares when a patch has
returned. Named `model_*` so that they cannot be mistaken for kernel functions.
Imports: machine.ops, kernel.smp.
"""

from __future__ import annotations

from collections.abc import Callable

from crossmod.kernel.smp import Gen
from crossmod.machine import ops


def model_exec_loop(site: str, times: int) -> Gen:
    """Kernel code on another CPU that runs through `site` `times` times, IRQs on."""
    for i in range(times):
        yield ops.ExecSite(site, label=f"pass {i + 1}")


def model_nmi_exec(site: str) -> Gen:
    """An NMI handler whose path executes `site` (perf, a probe in NMI code...)."""
    yield ops.ExecSite(site, label="in NMI")


def model_text_mutex_caller(site: str, patch: Callable[..., Gen], args: tuple) -> Gen:
    """The caller of a patch routine: take text_mutex, run `patch(*args)`, release it, and
    from then on expect every CPU to execute the new instruction (the contract of
    property 2, `ops.PatchReturned`)."""
    yield ops.MutexLock("text_mutex", label="caller")
    yield from patch(*args)
    yield ops.MutexUnlock("text_mutex", label="caller")
    yield ops.PatchReturned(site, label="caller")
