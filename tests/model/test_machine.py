"""Litmus-style checks of the machine's semantics: collect the outcomes of a whole
exploration and assert which are possible (STYLE.md rule 5)."""

from __future__ import annotations

import pytest

from crossmod.machine import ops
from crossmod.machine.routines import ModelError, RoutineTable
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, fetch_outcomes, jmp32

from .conftest import finished, terminal_states

SITE = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes")))


def sb_thread(mine: str, other: str, result: str):
    def thread():
        yield ops.Store(mine, 1)
        r = yield ops.Load(other)
        yield ops.Store(result, r)
        yield ops.Fence("mb")
    thread.__name__ = f"sb_{mine}"
    return thread


def store_buffering(memory: str, fence: bool = False) -> set[tuple]:
    def with_fence(mine, other, result):
        def thread():
            yield ops.Store(mine, 1)
            if fence:
                yield ops.Fence("mb")
            r = yield ops.Load(other)
            yield ops.Store(result, r)
            yield ops.Fence("mb")
        return thread
    cfg = MachineConfig(ncpus=2, sites=(SITE,), memory=memory,
                        tasks=((with_fence("x", "y", "r0"), ()), (with_fence("y", "x", "r1"), ())),
                        globals=(("x", 0), ("y", 0), ("r0", None), ("r1", None)))
    _, ends = terminal_states(System("sb", cfg))
    return {(s[0][2], s[0][3]) for s in ends if finished(s)}


def test_store_buffering_litmus():
    """x86-TSO allows both loads to miss the other CPU's store (the SB litmus, K18's
    pattern); sequential consistency does not; smp_mb() between store and load forbids it."""
    assert (0, 0) in store_buffering("tso")
    assert (0, 0) not in store_buffering("sc")
    assert (0, 0) not in store_buffering("tso", fence=True)
    assert {(1, 1), (0, 1), (1, 0)} <= store_buffering("tso")


def test_per_byte_fetch_can_tear_snapshot_cannot_mix():
    """A CPU that has not serialized since the site held NOP5 and then JMP may, per byte,
    combine them (torn); as whole snapshots it sees one or the other."""
    per_byte = (frozenset({0x0F, 0xE9}), frozenset({0x1F, 0x40}), frozenset({0x44, 0x00}),
                frozenset({0x00}), frozenset({0x00}))
    kinds = {o[0] for o in fetch_outcomes("per-byte", SITE, per_byte)}
    assert kinds == {"effect", "torn"}
    snap = frozenset({NOP5, jmp32(0x40)})
    outs = fetch_outcomes("snapshot", SITE, snap)
    assert sorted(o[1] for o in outs) == ["jmp l_yes", "nop"]


def test_unhashable_local_is_reported_with_the_routine_name():
    def bad():
        lst = [1, 2]
        yield ops.Note(text=str(lst))
    with pytest.raises(ModelError, match="bad: lst"):
        RoutineTable().start(bad)


def test_yielding_something_else_names_routine_and_line():
    def wrong():
        yield 42
    with pytest.raises(ModelError, match=r"wrong yielded 42 at line \d+"):
        RoutineTable().start(wrong)


def test_routine_table_interns_equal_suspension_points():
    def loop():
        for _ in range(3):
            yield ops.Note(text="tick")
    table = RoutineTable()
    a = table.start(loop)
    b = table.advance(a, None)
    assert a != b and table.advance(a, None) == b
    assert table.start(loop) == a


def test_csd_queue_cond_publishes_the_senders_stores_with_llist_add():
    """on_each_cpu_cond(): the cond reads may pass the sender's buffered stores (K18), but
    the llist_add() that queues the function is a locked cmpxchg, a full barrier: the
    function, run on the target from the IPI, sees every store the sender made before the
    call -- under TSO and PSO alike. With no target passing the cond there is no llist_add
    and no barrier: the store may still be buffered when the sender has moved on."""
    from crossmod.kernel.smp import generic_smp_call_function_single_interrupt

    def seen_by_target(memory: str, passes: bool) -> set[object]:
        def read_x():
            r = yield ops.Load("x")
            yield ops.Store("seen", r)

        def sender():
            yield ops.Store("x", 1)
            yield ops.CsdQueueCond("flag", lambda v: passes, read_x, ())
            r = yield ops.Load("seen")  # what the target saw, if it ran
            yield ops.Store("mine", r)

        cfg = MachineConfig(ncpus=2, sites=(SITE,), memory=memory,
                            tasks=((sender, ()), None),
                            ipi_handler=generic_smp_call_function_single_interrupt,
                            globals=(("x", 0), ("seen", None), ("mine", None)),
                            percpu=(("flag", 0),))
        m, ends = terminal_states(System("cond", cfg))
        gidx = m.cfg.gidx
        return {s[0][gidx["seen"]] for s in ends if finished(s)}

    for memory in ("tso", "pso"):
        assert seen_by_target(memory, passes=True) == {1}
        assert seen_by_target(memory, passes=False) == {None}  # nothing was queued
