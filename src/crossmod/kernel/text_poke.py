"""x86 int3-based batch text patching: arch/x86/kernel/alternative.c (2025, smp_text_poke_*).

Owns: `text_poke`, `smp_text_poke_sync_each_cpu`, `smp_text_poke_batch_add`,
`smp_text_poke_batch_finish` (KERNEL.md B.4, steps F0-F7 and S1-S3), `smp_text_poke_single`
and the #BP hook `smp_text_poke_int3_handler` (B.6, steps H1-H5). Historic refcount schemes
(the 2019 pointer to an on-stack descriptor, fixed in 2022 by a global descriptor) are
variants of the same routines, selected by `PokeVariant`. Imports: machine.ops, kernel.smp.

Memory the routines use (declare it with `text_poke_memory()`):
  text_mutex                      holder CPU or None
  text_poke_array.vec / .nr       the queued entries, published before the first INT3
  text_poke_array_refs (per-CPU)  handler references (F0 sets 1, H2 inc_not_zero, F6 drops)
  bp_desc, desc.*                 2019 scheme: pointer to the patcher's on-stack descriptor
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossmod.kernel.smp import Gen, do_sync_core, on_each_cpu
from crossmod.machine import ops
from crossmod.machine.ops import (
    atomic_dec,
    atomic_dec_and_test,
    atomic_inc_not_zero,
    is_zero,
    this_cpu,
)

INT3 = 0xCC
DESC = ("desc.vec", "desc.nr", "desc.refs")


@dataclass(frozen=True)
class PokeVariant:
    """Which version of the protocol runs; each field is one KERNEL.md K item flipped.

    sync1/sync2/sync3   S1/S2/S3 present (K2, K3, K4)
    publish_barrier     the F2 smp_wmb / H1 smp_rmb pair (K6)
    refs                "percpu" (today), "global" (2022 fix), "stack" (2019 on-stack
                        descriptor, K5)
    poke                "temporary-mm": text_poke switches CR3 to text_poke_mm around the
                        write (v5.2+, serializing before and after); "fixmap": the older
                        text_poke writes through a fixmap alias, serializing only after
    defer               None, or `defer(label, vec)`: the deferrable S1-S3 of the IPI
                        deferral series (kernel/history/deferral.py)
    handler             "emulate" (H1-H5, today), or "spin": a #BP handler that waits for
                        the batch to finish instead of emulating (a mistake, for liveness)
    """

    sync1: bool = True
    sync2: bool = True
    sync3: bool = True
    publish_barrier: bool = True
    refs: str = "percpu"
    poke: str = "temporary-mm"
    defer: Any = None
    handler: str = "emulate"


CURRENT = PokeVariant()
"""The protocol as the kernel has it today: the default of every routine here, so that
`smp_text_poke_int3_handler` is itself a `MachineConfig.int3_handler`."""


@dataclass(frozen=True)
class TextPokeLoc:
    """`struct smp_text_poke_loc`: one queued site and what the handler emulates."""

    site: str
    new: bytes
    emulate: str | None  # the effect H5 emulates; None for an intentional INT3

    def __repr__(self) -> str:
        new = " ".join(f"{b:02X}" for b in self.new)
        return f"{{{self.site}: {new}, emulate {self.emulate or 'none (INT3)'}}}"


def text_poke_memory() -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]:
    """(globals, per-CPU variables) these routines use, with their initial values."""
    glob = (("text_mutex", None), ("text_poke_array.vec", ()), ("text_poke_array.nr", 0),
            ("bp_desc", None), ("bp_desc.refs", 0), *((n, 0) for n in DESC))
    return glob, (("text_poke_array_refs", 0),)


def text_poke(site: str, offset: int, data: bytes, v: PokeVariant = CURRENT,
              label: str = "") -> Gen:
    """arch/x86/kernel/alternative.c `text_poke()` -> `__text_poke()`.

    IRQs off; (temporary-mm) switch CR3 to text_poke_mm -- serializing; copy the bytes
    through the alias (plain stores); switch back / flush the alias -- serializing; IRQs
    back. Only the local CPU is serialized.
    """
    flags = yield ops.IrqSave(label=label)
    if v.poke == "temporary-mm":
        yield ops.Serialize(label=f"{label} use_temporary_mm")
    yield ops.TextStore(site, offset, data, label=label)
    yield ops.Serialize(label=f"{label} unuse_temporary_mm")
    yield ops.IrqRestore(flags, label=label)


def smp_text_poke_sync_each_cpu(label: str) -> Gen:
    """`smp_text_poke_sync_each_cpu()` = on_each_cpu(do_sync_core, NULL, 1)."""
    yield from on_each_cpu(do_sync_core, (), wait=True, label=label)


def _sync_each_cpu(vec: tuple, v: PokeVariant, label: str) -> Gen:
    """S1-S3: `smp_text_poke_sync_each_cpu()`, or the deferrable sync `v.defer` (v6 patch
    24: on_each_cpu_cond(cond, do_sync_core, NULL, 1))."""
    if v.defer is None:
        yield from smp_text_poke_sync_each_cpu(label)
    else:
        yield from v.defer(label, vec)


def smp_text_poke_batch_add(site: str, new: bytes, emulate: str | None) -> Gen:
    """`smp_text_poke_batch_add()` (B.3): append an entry to text_poke_array (plain stores,
    published to the handler by F0/F2 of the finish)."""
    yield ops.AssertHeld("text_mutex", label="batch_add")
    vec = yield ops.Load("text_poke_array.vec", label="batch_add")
    yield ops.Store("text_poke_array.vec", (*vec, TextPokeLoc(site, new, emulate)),
                    label="batch_add")
    yield ops.Store("text_poke_array.nr", len(vec) + 1, label="batch_add")


def smp_text_poke_batch_finish(v: PokeVariant = CURRENT) -> Gen:
    """`smp_text_poke_batch_finish()` (B.4):

    F0  refs := 1 on every CPU                  F4  write every tail (all but byte 0)
    F2  smp_wmb()  [pairs with H1]              S2  sync every CPU (if a tail was written)
    F3  INT3 on byte 0 of every site            F5  write every new first byte unless INT3
    S1  sync every CPU                          S3  sync every CPU (if one was written)
    F6  drop every CPU's ref, wait for 0        F7  nr_entries := 0

    An empty batch returns at once (``if (!text_poke_array.nr_entries) return;``, before
    the lockdep assertion in the C; here the assertion comes first, and every caller in
    the catalogue holds text_mutex either way).
    """
    yield ops.AssertHeld("text_mutex", label="F0")
    vec = yield ops.Load("text_poke_array.vec", label="F0")
    if not vec:
        return
    yield from _publish(vec, v)
    for e in vec:
        yield from text_poke(e.site, 0, bytes([INT3]), v, label="F3")
    if v.sync1:
        yield from _sync_each_cpu(vec, v, "S1")
    tails = 0
    for e in vec:
        if len(e.new) > 1:
            yield from text_poke(e.site, 1, e.new[1:], v, label="F4")
            tails += 1
    if tails and v.sync2:
        yield from _sync_each_cpu(vec, v, "S2")
    firsts = 0
    for e in vec:
        if e.new[0] != INT3:
            yield from text_poke(e.site, 0, e.new[:1], v, label="F5")
            firsts += 1
    if firsts and v.sync3:
        yield from _sync_each_cpu(vec, v, "S3")
    yield from _unpublish(v)


def _publish(vec: tuple, v: PokeVariant) -> Gen:
    """F0-F2: make the entries and the references visible before any INT3 is."""
    if v.refs == "percpu":
        yield ops.StorePerCpu("text_poke_array_refs", 1, label="F0")
    elif v.refs == "global":
        yield ops.Store("bp_desc.refs", 1, label="F0")
    else:
        yield ops.Store("desc.vec", vec, label="F0")
        yield ops.Store("desc.nr", len(vec), label="F0")
        yield ops.Store("desc.refs", 1, label="F0")
        yield ops.Store("bp_desc", "desc", label="F0 rcu_assign_pointer")
    if v.publish_barrier:
        yield ops.Fence("wmb", label="F2", pairs_with="H1")


def _unpublish(v: PokeVariant) -> Gen:
    """F6-F7: wait out every handler still using this batch, then retire it."""
    if v.refs == "percpu":
        yield ops.RmwPerCpu("text_poke_array_refs", atomic_dec_and_test, label="F6")
        yield ops.WaitPerCpu("text_poke_array_refs", is_zero, label="F6")
    elif v.refs == "global":
        if not (yield ops.Rmw("bp_desc.refs", atomic_dec_and_test, label="F6")):
            yield ops.WaitUntil("bp_desc.refs", is_zero, label="F6")
    else:
        yield ops.Store("bp_desc", None, label="F6 WRITE_ONCE(bp_desc, NULL)")
        if not (yield ops.Rmw("desc.refs", atomic_dec_and_test, label="F6")):
            yield ops.WaitUntil("desc.refs", is_zero, label="F6")
    yield ops.Store("text_poke_array.vec", (), label="F7")
    yield ops.Store("text_poke_array.nr", 0, label="F7")
    if v.refs == "stack":
        yield ops.StackFree(DESC, label="return")


def smp_text_poke_single(site: str, new: bytes, emulate: str | None,
                         v: PokeVariant = CURRENT) -> Gen:
    """`smp_text_poke_single()`: one entry, finished at once."""
    yield from smp_text_poke_batch_add(site, new, emulate)
    yield from smp_text_poke_batch_finish(v)


def smp_text_poke_int3_handler(site: str, v: PokeVariant = CURRENT) -> Gen:
    """`smp_text_poke_int3_handler()` (B.6), called from the #BP exception:

    H1  smp_rmb()  [pairs with F2]     H4  find the entry for the trapping address
    H2  take a reference, or decline   H5  emulate the entry's instruction
    PUT drop the reference
    Returns the effect emulated, or NOT_HANDLED.
    """
    if v.publish_barrier:
        yield ops.Fence("rmb", label="H1", pairs_with="F2")
    if v.refs == "stack":
        return (yield from _int3_via_desc_pointer(site))
    if v.handler == "spin":
        return (yield from _int3_spin_until_done(site))
    ref = this_cpu("text_poke_array_refs") if v.refs == "percpu" else "bp_desc.refs"
    if not (yield ops.Rmw(ref, atomic_inc_not_zero, label="H2 try_get_text_poke_array")):
        return ops.NOT_HANDLED
    nr = yield ops.Load("text_poke_array.nr", label="H4")
    vec = yield ops.Load("text_poke_array.vec", label="H4")
    effect = _emulate(vec[:nr], site)
    yield ops.Rmw(ref, atomic_dec, label="PUT put_text_poke_array")
    return effect


def _int3_via_desc_pointer(site: str) -> Gen:
    """The 2019 handler (1f676247f36a): `try_get_desc()` reads the pointer, then takes a
    reference through it -- the window in which the descriptor can vanish (K5)."""
    desc = yield ops.Load("bp_desc", label="H2 try_get_desc: READ_ONCE(bp_desc)")
    if desc is None:
        return ops.NOT_HANDLED
    if not (yield ops.Rmw(f"{desc}.refs", atomic_inc_not_zero, label="H2 try_get_desc")):
        return ops.NOT_HANDLED
    nr = yield ops.Load(f"{desc}.nr", label="H4")
    vec = yield ops.Load(f"{desc}.vec", label="H4")
    effect = _emulate(vec[:nr], site)
    yield ops.Rmw(f"{desc}.refs", atomic_dec, label="PUT put_desc")
    return effect


def _int3_spin_until_done(site: str) -> Gen:
    """A #BP handler that does not emulate (not the kernel's: the mistake this variant
    makes): it claims the trap when a batch is queued, spins -- interrupts off, as in every
    #BP handler -- until the patcher retires the batch (F7), then re-executes the
    instruction. The patcher's next sync IPI cannot be taken on this CPU until then, so the
    patcher never gets that far (DESIGN.md property 5)."""
    if not (yield ops.Load("text_poke_array.nr", label="H4")):
        return ops.NOT_HANDLED
    yield ops.WaitUntil("text_poke_array.nr", is_zero, label="spin until the batch is done")
    return ops.RETRY


def _emulate(vec: tuple, site: str) -> str | None:
    """H4-H5: the entry for `site`; an intentional INT3 is declined (its owner handles it)."""
    for e in vec:
        if e.site == site:
            return e.emulate
    return ops.NOT_HANDLED
