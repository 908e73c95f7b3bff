"""Model-only routines: the code around the kernel routines that a check needs.

Owns: tasks that are not kernel functions -- a CPU running code that passes through a patch
site, a CPU running user code forever, the NMI handler that executes a site, the patcher's
caller that declares when a patch has returned. Named `model_*` so that they cannot be
mistaken for kernel functions.
Imports: machine.ops, kernel.smp.
"""

from __future__ import annotations

from collections.abc import Callable

from crossmod.kernel.smp import Gen
from crossmod.machine import ops
from crossmod.machine.ops import this_cpu

USER_MEMORY = (("user_data", 0),)
"""The per-CPU variables `model_user_loop` reads: declare them in the machine's `percpu`."""


def model_exec_loop(site: str, times: int) -> Gen:
    """Kernel code on another CPU that runs through `site` `times` times, IRQs on."""
    for i in range(times):
        yield ops.ExecSite(site, label=f"pass {i + 1}")


def model_user_loop() -> Gen:
    """A CPU that runs user code forever with interrupts on, as the other CPUs of a real
    machine do while one patches: it executes no kernel text, and the kernel runs on it
    only in the handlers of the interrupts it takes. Its CPU must be declared
    `MachineConfig.endless` (its task never returns, by design).

    MODEL: user code is one load of this CPU's own user memory per step, nothing else: the
    loop revisits one state, so the search stays finite, and the CPU is never blocked.
    """
    while True:
        yield ops.Load(this_cpu("user_data"), label="user code")


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
