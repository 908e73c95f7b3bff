"""Behaviours a deliberately broken copy of the model survived: each test here fails when the
one semantic rule it names is changed (a locked RMW's barrier, smp_wmb's order under PSO,
the reduction's cycle proviso and its patch-contract guard, the int3 handler's reference,
arm64 stop_machine's ISB, the step bound)."""

from __future__ import annotations

import pytest

from crossmod.check.explore import explore
from crossmod.check.verdict import Bounds
from crossmod.kernel import arm64_patching as ap
from crossmod.kernel import text_poke as tp
from crossmod.machine import ops
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, jmp32

from .conftest import finished, terminal_states

SITE = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes")))


def _outcomes(tasks, memory: str, globals_: tuple, results: tuple[str, ...]) -> set[tuple]:
    cfg = MachineConfig(ncpus=len(tasks), sites=(SITE,), memory=memory,
                        tasks=tuple((t, ()) for t in tasks), globals=globals_)
    system = System("litmus", cfg)
    _, ends = terminal_states(system)
    idx = [cfg.gidx[r] for r in results]
    return {tuple(s[0][i] for i in idx) for s in ends if finished(s)}


def _xchg(v):
    return 1, v


def _sb_with_rmw(mine: str, other: str, result: str, rmw: bool):
    def thread():
        yield ops.Store(mine, 1)
        if rmw:
            yield ops.Rmw(f"lock_{mine}", _xchg, label="xchg")
        r = yield ops.Load(other)
        yield ops.Store(result, r)
    return thread


@pytest.mark.parametrize("memory", ["tso", "pso"])
def test_a_locked_rmw_is_a_full_barrier(memory):
    """Store buffering with an xchg between each store and the load never ends (0, 0):
    a locked instruction drains the store buffer first (KERNEL.md F.5). Without it, it can."""
    g = (("x", 0), ("y", 0), ("lock_x", 0), ("lock_y", 0), ("r0", None), ("r1", None))

    def outs(rmw: bool) -> set[tuple]:
        return _outcomes([_sb_with_rmw("x", "y", "r0", rmw), _sb_with_rmw("y", "x", "r1", rmw)],
                         memory, g, ("r0", "r1"))
    assert (0, 0) in outs(rmw=False)
    assert outs(rmw=True) == {(0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("memory", ["tso", "pso", "sc"])
def test_a_locked_rmw_is_coherent_with_its_own_buffered_store(memory):
    """`x = 1; atomic_inc(&x)` always ends with x == 2, whatever else runs: the RMW reads the
    CPU's own store and nothing drains over its result later."""
    def inc():
        yield ops.Store("x", 1)
        yield ops.Rmw("x", ops.atomic_inc)

    def reader():
        yield ops.Load("x")
    assert _outcomes([inc, reader], memory, (("x", 0),), ("x",)) == {(2,)}


def _mp_writer(wmb: bool):
    def writer():
        yield ops.Store("data", 1)
        if wmb:
            yield ops.Fence("wmb", pairs_with="reader's smp_rmb")
        yield ops.Store("flag", 1)
    return writer


def _mp_reader():
    f = yield ops.Load("flag")
    yield ops.Fence("rmb", pairs_with="writer's smp_wmb")
    d = yield ops.Load("data")
    yield ops.Store("seen", (f, d))


@pytest.mark.parametrize("memory,wmb,reordered", [
    ("tso", False, False), ("tso", True, False),
    ("pso", False, True), ("pso", True, False), ("sc", False, False)])
def test_message_passing_needs_smp_wmb_only_under_pso(memory, wmb, reordered):
    """The MP litmus: the reader sees the flag but not the data (1, 0) only when stores may
    pass each other (pso) and no smp_wmb() keeps them in order; every other outcome stays."""
    got = _outcomes([_mp_writer(wmb), _mp_reader], memory,
                    (("data", 0), ("flag", 0), ("seen", None)), ("seen",))
    assert {((0, 0),), ((0, 1),), ((1, 1),)} <= got
    assert (((1, 0),) in got) == reordered


NEW = jmp32(0x40)


def _write_then_poll_forever():
    """Writes the site with no sync at all, then polls a flag nobody sets: the patcher's
    every step is local to it, and its loop closes a cycle of the reduced graph."""
    yield ops.TextStore("site", 0, NEW, label="memcpy")
    while not (yield ops.Load("flag", label="poll")):
        pass


def _exec_once():
    yield ops.ExecSite("site")


def test_reduction_cycle_proviso_lets_the_reader_run():
    """Without the cycle proviso the reduced search takes the patcher's poll alone forever
    and never lets the reader fetch the half-drained site: it would say "safe"."""
    cfg = MachineConfig(ncpus=2, sites=(SITE,), tasks=((_write_then_poll_forever, ()),
                                                       (_exec_once, ())),
                        globals=(("flag", 0),), readers=frozenset({1}))
    reduced = explore(System("poll-forever", cfg), Bounds(por=True))
    full = explore(System("poll-forever", cfg), Bounds(por=False))
    assert (reduced.verdict, reduced.property) == (full.verdict, full.property) == (
        "violation", "torn-instruction")


BYTE_SITE = Site("site", b"\x90", ((b"\x90", "nop"), (b"\xc3", "ret")))


def _patch_declare_then_repatch():
    yield ops.TextStore("site", 0, b"\xc3", label="patch")
    yield ops.Serialize(label="sync_core")
    yield ops.PatchReturned("site", label="patch returned")
    yield ops.TextStore("site", 0, b"\x90", label="patch again")


def test_reduction_keeps_a_live_patch_contract_open():
    """Between `PatchReturned` and the next write of the site, a reader that has not
    serialized may still run the old byte: a patch-visibility violation. The reduction must
    not take that next write alone (it ends the contract before the reader could run)."""
    cfg = MachineConfig(ncpus=2, sites=(BYTE_SITE,), tasks=((_patch_declare_then_repatch, ()),
                                                            (_exec_once, ())),
                        readers=frozenset({1}))
    reduced = explore(System("repatch", cfg), Bounds(por=True))
    full = explore(System("repatch", cfg), Bounds(por=False))
    assert (reduced.verdict, reduced.property) == (full.verdict, full.property) == (
        "violation", "patch-visibility")


def _int3_with_refs(refs: int):
    v = tp.PokeVariant()

    def patcher():
        yield ops.MutexLock("text_mutex")
        yield from tp.smp_text_poke_batch_add("site", NEW, "jmp l_yes")
        if refs:
            yield ops.StorePerCpu("text_poke_array_refs", refs, label="F0")
        yield ops.Fence("mb", label="F2")
        yield from tp.text_poke("site", 0, b"\xcc", v, label="F3")

    def int3(site: str):
        return tp.smp_text_poke_int3_handler(site, v)

    glob, percpu = tp.text_poke_memory()
    cfg = MachineConfig(ncpus=2, sites=(SITE,), tasks=((patcher, ()), (_exec_once, ())),
                        int3_handler=int3, globals=glob, percpu=percpu)
    return System("int3-refs", cfg)


def test_int3_handler_declines_once_the_references_are_gone():
    """`smp_text_poke_int3_handler()` takes a reference first (try_get_text_poke_array):
    with the batch still in text_poke_array but no reference left, it declines the trap and
    the INT3 is unexpected; with a reference it emulates the queued instruction."""
    assert explore(_int3_with_refs(1)).verdict == "safe"
    v = explore(_int3_with_refs(0))
    assert v.property == "unexpected-int3"
    assert "not claimed by smp_text_poke_int3_handler" in v.message


def _arm64_initiator_runs_the_site(cpus: int) -> System:
    from crossmod.catalogue.arm64 import BRK, KPROBE_EFFECT, PROBE_SITE, PROBED
    from crossmod.catalogue.static_keys import model_exec_sites
    from crossmod.kernel import jump_label as jl
    from crossmod.kernel.smp import generic_smp_call_function_single_interrupt

    def initiator():
        yield from ap.arch_arm_kprobe(PROBE_SITE, BRK, cpus, "last", probe=PROBE_SITE)
        yield ops.PatchReturned(PROBE_SITE, label="arm_kprobe returned")
        yield ops.ExecSite(PROBE_SITE, label="the initiating CPU runs the site")

    def handler(site: str):
        return ap.kprobe_breakpoint_handler(site, KPROBE_EFFECT)

    site = Site(PROBE_SITE, PROBED, ((PROBED, "mov x0, x19"),), int3_effect=KPROBE_EFFECT,
                arch="arm64")
    tasks = ((initiator, ()), *(((model_exec_sites, ((PROBE_SITE,), 1)),) * (cpus - 1)))
    cfg = MachineConfig(ncpus=cpus, sites=(site,), tasks=tasks, int3_handler=handler,
                        ipi_handler=generic_smp_call_function_single_interrupt,
                        globals=(("text_mutex", None), *jl.jump_label_memory(()),
                                 *ap.arm64_patching_memory()),
                        fetch="arm64", memory="sc", arch="arm64")
    return System("arm64-stop-machine-initiator", cfg)


def _patch_text_cb_without_isb(sites, insns, ncpus, master):
    n = yield ops.Rmw(ap.CPU_COUNT, ops.atomic_inc, label="C1")
    if n == (ncpus if master == "last" else 1):
        for site, insn in zip(sites, insns, strict=True):
            yield from ap.aarch64_insn_patch_text_nosync(site, insn)
        yield ops.Rmw(ap.CPU_COUNT, ops.atomic_inc, label="C3")
    else:
        yield ops.WaitUntil(ap.CPU_COUNT, lambda v: v > ncpus, label="C4 cpu_relax()")


def test_arm64_stop_machine_every_released_cpu_runs_its_isb(monkeypatch):
    """aarch64_insn_patch_text_cb(): every CPU the master releases executes `isb()` (C5).
    The others also return from the stopper's IPI through ERET, but the CPU that called
    stop_machine() takes no exception: when it is not the master and runs the patched site
    after the patch returned, its ISB alone discards the old instruction."""
    assert explore(_arm64_initiator_runs_the_site(2)).verdict == "safe"
    monkeypatch.setattr(ap, "aarch64_insn_patch_text_cb", _patch_text_cb_without_isb)
    v = explore(_arm64_initiator_runs_the_site(2))
    assert v.verdict == "violation"
    assert v.counterexample[-1].cpu == 0
