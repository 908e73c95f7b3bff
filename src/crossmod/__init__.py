"""crossmod: cross-CPU kernel text patching and IPI deferral, checked.

The Linux kernel rewrites its own code while other CPUs run it. On x86 a patch must never be
executed half-written: the int3 protocol (`smp_text_poke_batch_finish()`) writes an INT3
over the first byte, makes every CPU serialize, writes the tail, serializes again, writes
the first byte and serializes a third time. Drop the first sync and a CPU that fetched the
old first byte executes it with new tail bytes:

    >>> from crossmod.catalogue import build
    >>> v = check(build("x86-int3-batch", "no-sync1"))
    >>> print(v.verdict, v.property)
    violation torn-instruction
    >>> replay(v.token)[-1].text.startswith("VIOLATION torn-instruction")
    True

Writing your own protocol: build a `MachineConfig` (sites with their legal encodings, the
memory your routines use, one task per CPU, the kernel's IPI and #BP handlers -- the stock
ones are exported here), wrap it in a `System`, and call `check(system, bounds,
progress=..., ignore=...)`; `replay(verdict.token, system)` re-runs its counterexample.
Routines are generator functions that yield `crossmod.ops` operations; see README.md and
examples/ for worked examples, and crossmod/catalogue/ for every protocol of the catalogue
written the same way.

`check` is the subpackage `crossmod.check` made callable (crossmod/check/__init__.py says
why), so both `crossmod.check(system)` and `import crossmod.check.explore` work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossmod import _engine

try:
    _engine.select()  # before any engine module is imported: compiled or interpreted
except _engine.EngineError as e:
    import sys

    print(f"crossmod: {e}", file=sys.stderr)
    raise SystemExit(2) from None

if TYPE_CHECKING:  # a type checker sees a module it cannot call; this is its true type
    from crossmod.check import FrontDoor

    check: FrontDoor
else:
    from crossmod import check  # the subpackage, callable (see above)
from crossmod.check.explore import ReplayError
from crossmod.check.schedule import ScheduleError
from crossmod.check.verdict import Bounds, Step, Verdict
from crossmod.front import replay
from crossmod.kernel.smp import (
    do_nothing,
    do_sync_core,
    generic_smp_call_function_single_interrupt,
    kick_all_cpus_sync,
    on_each_cpu,
    send_IPI_allbutself,
    send_IPI_mask,
    smp_call_function,
    smp_call_function_many_cond,
)
from crossmod.kernel.text_poke import (
    PokeVariant,
    smp_text_poke_batch_add,
    smp_text_poke_batch_finish,
    smp_text_poke_int3_handler,
    smp_text_poke_single,
    text_poke,
    text_poke_memory,
)
from crossmod.machine import ops
from crossmod.machine.routines import ModelError
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, call32, jmp32

__all__ = [
    "NOP5",
    "Bounds",
    "MachineConfig",
    "ModelError",
    "PokeVariant",
    "ReplayError",
    "ScheduleError",
    "Site",
    "Step",
    "System",
    "Verdict",
    "call32",
    "check",
    "do_nothing",
    "do_sync_core",
    "generic_smp_call_function_single_interrupt",
    "jmp32",
    "kick_all_cpus_sync",
    "on_each_cpu",
    "ops",
    "replay",
    "send_IPI_allbutself",
    "send_IPI_mask",
    "smp_call_function",
    "smp_call_function_many_cond",
    "smp_text_poke_batch_add",
    "smp_text_poke_batch_finish",
    "smp_text_poke_int3_handler",
    "smp_text_poke_single",
    "text_poke",
    "text_poke_memory",
]
