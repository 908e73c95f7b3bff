"""crossmod: cross-CPU kernel text patching and IPI deferral, checked.

The Linux kernel rewrites its own code while other CPUs run it. On x86 a patch must never be
executed half-written: the int3 protocol (`smp_text_poke_batch_finish()`) writes an INT3
over the first byte, makes every CPU serialize, writes the tail, serializes again, writes
the first byte and serializes a third time. Drop the first sync and a CPU that fetched the
old first byte executes it with new tail bytes:

    >>> from crossmod.catalogue import build
    >>> v = check(build("x86-int3-batch", "no-sync1"))
    >>> v.verdict, v.property
    ('violation', 'torn-instruction')

Writing your own protocol: build a `MachineConfig` (sites with their legal encodings, the
memory your routines use, one task per CPU, the kernel's IPI and #BP handlers), wrap it in a
`System`, and call `check`. Routines are generator functions that yield `crossmod.ops`
operations; see README.md and examples/ for a worked example, and crossmod/catalogue/ for
every protocol of the catalogue written the same way.
"""

from __future__ import annotations

from crossmod.check.explore import explore as _explore
from crossmod.check.explore import replay_schedule as replay
from crossmod.check.verdict import Bounds, Step, Verdict
from crossmod.machine import ops
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, call32, jmp32

__all__ = ["NOP5", "Bounds", "MachineConfig", "Site", "Step", "System", "Verdict", "call32",
           "check", "jmp32", "ops", "replay"]


def check(system: System, bounds: Bounds | None = None) -> Verdict:
    """Explore every interleaving of `system` within `bounds`; the one entry point."""
    return _explore(system, bounds)
