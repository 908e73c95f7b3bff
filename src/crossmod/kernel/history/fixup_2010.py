"""The 2010 `text_poke_fixup()` protocol (jump label v4, patch 2/8), as Masami Hiramatsu
restated it on 2010-01-14 (seeds/003; KERNEL.md C.1):

    (1) lock text_mutex
    (2) setup breakpoint fixup addresses (source and destination)
    (3) store int3 to 1st byte, and smp_wmb()
    (4) send IPI and issue smp_mb() (or cpuid) for sync all cores
    (5) store new instruction except 1st byte, and smp_wmb()
    (6) store 1st byte of new instruction
    (7) send IPI to all cores for waiting for all running breakpoint handlers
    (8) clear fixup addresses
    (9) unlock text_mutex

There is no sync between (5) and (6): hpa's unofficial Intel answer was that step 4's sync
suffices. Imports: machine.ops, kernel.smp, kernel.text_poke.
"""

from __future__ import annotations

from crossmod.kernel.smp import Gen, do_sync_core, on_each_cpu
from crossmod.kernel.text_poke import PokeVariant, text_poke
from crossmod.machine import ops

FIXMAP = PokeVariant(poke="fixmap")  # the 2010 text_poke wrote through a fixmap alias


def fixup_memory() -> tuple[tuple[str, object], ...]:
    return (("fixup.src", None), ("fixup.dst", None))


def text_poke_fixup(site: str, new: bytes, fixup_effect: str) -> Gen:
    """Steps (2)-(8) above; the caller holds text_mutex."""
    yield ops.Store("fixup.dst", fixup_effect, label="(2)")
    yield ops.Store("fixup.src", site, label="(2)")
    yield from text_poke(site, 0, b"\xcc", FIXMAP, label="(3)")
    yield ops.Fence("wmb", label="(3)", pairs_with="(4)")
    yield from on_each_cpu(do_sync_core, (), wait=True, label="(4)")
    yield from text_poke(site, 1, new[1:], FIXMAP, label="(5)")
    yield ops.Fence("wmb", label="(5)")
    yield from text_poke(site, 0, new[:1], FIXMAP, label="(6)")
    yield from on_each_cpu(do_sync_core, (), wait=True, label="(7)")
    yield ops.Store("fixup.src", None, label="(8)")


def text_poke_fixup_int3_handler(site: str) -> Gen:
    """The 2010 #BP hook: a trap at the fixup source resumes at the fixup destination."""
    src = yield ops.Load("fixup.src", label="fixup handler")
    if src != site:
        return ops.NOT_HANDLED
    return (yield ops.Load("fixup.dst", label="fixup handler"))
