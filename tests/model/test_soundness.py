"""Regressions for wrong verdicts and crashes found by an independent port of five protocols
(compared with SPIN) and by mutating the model: each test here failed on the code before its
fix, and each names the defect it pins."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

import pytest

from crossmod.catalogue import build
from crossmod.check.explore import explore, replay_schedule
from crossmod.check.verdict import Bounds
from crossmod.machine import ops
from crossmod.machine.state import MachineConfig
from crossmod.machine.symmetry import Canonicalizer, permute
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, jmp32

from .conftest import all_states

NEW = jmp32(0x40)
BYTES = tuple(f"b{i}" for i in range(5))
VALID = {NOP5, NEW}


def _patch_bytes_as_globals():
    """The patcher writes the new instruction over the old one, byte by byte, tail first
    (two stores a fetch can straddle)."""
    for i in (4, 3, 2, 1, 0):
        yield ops.Store(BYTES[i], NEW[i], label=f"byte {i}")


def _is_valid(raw: tuple) -> bool:
    return bytes(raw) in VALID


def _fetch_byte_by_byte():
    """A reader that fetches the site one byte at a time (each byte a global)."""
    got: tuple = ()
    for name in BYTES:
        got = (*got, (yield ops.Load(name)))
    yield ops.Store(ops.this_cpu("fetched"), got)
    yield ops.Check((ops.this_cpu("fetched"),), _is_valid, "torn-instruction",
                    "the bytes fetched are neither the old nor the new instruction")


def _byte_fetch_system(memory: str) -> System:
    cfg = MachineConfig(
        ncpus=2, sites=(), tasks=((_patch_bytes_as_globals, ()), (_fetch_byte_by_byte, ())),
        globals=tuple(zip(BYTES, NOP5, strict=True)), percpu=(("fetched", None),),
        memory=memory, readers=frozenset({1}))
    return System("byte-fetch", cfg)


@pytest.mark.parametrize("memory", ["sc", "tso", "pso"])
def test_por_is_sound_when_stores_reach_memory_at_once(memory):
    """Defect 1: under `sc` a Store is not buffered, so it is not independent of a reader's
    loads; the reduction took the patcher's stores alone and the byte-by-byte fetch never
    straddled two of them ("safe"). Reduced and full search must both find the tear."""
    reduced = explore(_byte_fetch_system(memory), Bounds(por=True))
    full = explore(_byte_fetch_system(memory), Bounds(por=False))
    assert full.property == "torn-instruction"
    assert (reduced.verdict, reduced.property) == (full.verdict, full.property)


def _cr3_signal_system(**knobs) -> System:
    """A port of the CR3-signal protocol with the isolated CPUs declared readers (they
    write only their own per-CPU variables), as a user of the public API would write it."""
    s = build("defer-cr3", "signal-after-flush", cpus=3, **knobs)
    return replace(s, config=replace(s.config, readers=frozenset({1, 2})))


@pytest.mark.parametrize("knobs", [{"patch": False}, {}])
def test_symmetry_with_por_concretizes_the_counterexample(knobs):
    """Defect 2: with symmetry and the reduction both on, buffered stores to the symmetric
    CPUs' own per-CPU variables made the representative path unmappable onto real CPU
    numbers (`ValueError: (2, 'fill', 0) is not in list`). The counterexample must exist,
    replay to the same violation, and its message must name the trail's CPU."""
    system = _cr3_signal_system(**knobs)
    v = explore(system, Bounds(symmetry=True, por=True))
    full = explore(system, Bounds(symmetry=False, por=False))
    assert (v.verdict, v.property) == (full.verdict, full.property) == (
        "violation", "torn-instruction" if knobs.get("patch", True) else "use-after-free")
    again = replay_schedule(system, [s.index for s in v.counterexample])
    assert [s.text for s in again] == [s.text for s in v.counterexample]
    assert again[-1].text == f"VIOLATION {v.property}: {v.message}"


def test_violation_message_names_the_cpu_of_the_trail():
    """Defect 4: under symmetry the message was told in the representative's CPU numbers
    (cpu2) while the trail, mapped back onto real CPUs, showed cpu1 failing."""
    for system in (build("defer-cr3", "signal-after-flush", cpus=3),
                   build("x86-int3-batch", "no-sync1", cpus=4, execs=1)):
        v = explore(system)
        last = v.counterexample[-1]
        assert re.match(rf"cpu{last.cpu}\b", v.message), (v.message, last)


def _symmetric_states(system: System):
    _, states = all_states(system)
    cls = system.config.symmetric[0]
    perms = []
    for order in itertools.permutations(cls):
        p = list(range(system.config.ncpus))
        for old, new in zip(cls, order, strict=True):
            p[old] = new
        perms.append(tuple(p))
    return states, perms


def test_symmetric_cpus_with_buffered_percpu_stores_keep_one_state_per_orbit():
    """Symmetric CPUs that buffer stores to their own per-CPU variables: renaming them maps
    reachable states onto reachable states (the store-buffer addresses carry the CPU's own
    number and must be renamed with it -- forgetting them made 42,824 "states" of 17,261,
    and no test noticed), the canonical form is the same for every renumbering, the search
    with symmetry stores exactly one state per orbit, and the verdict does not change."""
    system = build("defer-cr3", cpus=3, patch=False)
    states, perms = _symmetric_states(system)
    canon = Canonicalizer(system.config)
    buffered_own = 0
    for s in states:
        buffered_own += any(a[0] == "p" and a[1] == c for c in (1, 2)
                            for a, _ in s[2][c][4])
        images = [permute(system.config, s, p) for p in perms]
        assert all(t in states for t in images)
        assert len({canon(t)[0] for t in images}) == 1
    assert buffered_own > 10
    orbits = {canon(s)[0] for s in states}
    with_sym = explore(system, Bounds(symmetry=True, por=False))
    without = explore(system, Bounds(symmetry=False, por=False))
    assert with_sym.states == len(orbits) < len(states) == without.states
    assert with_sym.verdict == without.verdict == "safe"


def test_symmetry_keeps_verdicts_with_buffered_percpu_stores():
    """The same class of protocol, every combination of symmetry and reduction."""
    verdicts = set()
    for sym, por in itertools.product((True, False), repeat=2):
        v = explore(_cr3_signal_system(patch=False), Bounds(symmetry=sym, por=por))
        verdicts.add((v.verdict, v.property))
    assert verdicts == {("violation", "use-after-free")}


def _publish_by_flag(wmb: bool):
    def patcher():
        yield ops.TextStore("site", 0, NEW, label="write the new instruction")
        if wmb:
            yield ops.Fence("wmb", pairs_with="reader's smp_rmb")
        yield ops.Store("published", 1, label="publish")
        yield ops.PatchReturned("site")
    return patcher


def _wait_then_exec():
    yield ops.WaitUntil("published", lambda v: v == 1)
    yield ops.Serialize(label="sync_core")
    yield ops.ExecSite("site")


SNAP_SITE = Site("site", NOP5, ((NOP5, "nop"), (NEW, "jmp l_yes")))


def _flag_system(memory: str, wmb: bool) -> System:
    cfg = MachineConfig(
        ncpus=2, sites=(SNAP_SITE,), tasks=((_publish_by_flag(wmb), ()), (_wait_then_exec, ())),
        globals=(("published", 0),), fetch="snapshot", memory=memory)
    return System("publish-by-flag", cfg)


def test_patch_returned_counts_the_callers_own_buffered_text_store():
    """Defect 3: `PatchReturned` took the contract from memory while the caller's own text
    store still sat in its store buffer, so a CPU that then ran the new instruction was
    reported ("executes 'jmp l_yes' ... every CPU must now execute 'nop'"). Publishing the
    patch through a flag is safe under TSO (the flag drains after the text); under PSO it
    needs the smp_wmb, and without it the reader runs the old instruction after return."""
    assert explore(_flag_system("tso", wmb=False)).verdict == "safe"
    assert explore(_flag_system("pso", wmb=True)).verdict == "safe"
    v = explore(_flag_system("pso", wmb=False))
    assert v.property == "patch-visibility"
    assert "executes 'nop'" in v.message and "must now execute 'jmp l_yes'" in v.message


# ---- independence rules a mutation run showed no test pinned --------------------------------

def _differential(programs, readers):
    from .randomproto import Protocol, compare
    return compare(Protocol(programs=programs, readers=frozenset(readers)))


def test_por_never_takes_a_mutex_lock_alone():
    """A reader may read a mutex (its owner is a CPU-valued global no reader writes), so
    `mutex_lock` is dependent on that read: taken alone first, the reader would only ever
    see it held. The reader asserts it sees it held; the plain walk breaks that."""
    c = _differential(((("lock",),), (("see", "m", None),)), {1})
    assert c.properties == {"assert"}
    assert c.runs[(False, True, "locals", "assert")].property == "assert"


def test_por_never_takes_alone_a_load_of_a_readers_percpu_variable():
    """A reader writes its own per-CPU variable, so the patcher's load of it is dependent
    on that store: taken alone first, the patcher would only ever read the initial 0."""
    c = _differential(((("peek", 1), ("checkreg", 1)), (("store", "r", 1),)), {1})
    assert c.properties == {"assert"}
    assert c.runs[(False, True, "locals", "assert")].property == "assert"


def test_a_reader_is_ample_only_while_it_holds_the_patchers_csd():
    """The patcher waits in csd_lock_wait for cpu1 and cpu2. Once cpu1 has run its callback
    the patcher waits only for cpu2, so cpu1's moves alone are no longer a persistent set:
    taking them would run cpu1's execution of the site to its end before the patcher, freed
    by cpu2, writes the site -- and the torn fetch is lost."""
    c = _differential(((("ipi", True, "sync"), ("text", "new")),
                       (("exec",),), (("fence", "mb"),)), {1, 2})
    assert "torn-instruction" in c.properties
    assert c.runs[(False, True, "locals", "torn-instruction")].property == "torn-instruction"


def test_a_reader_is_ample_only_if_the_patcher_waits_on_its_own_variable():
    """The patcher waits until cpu2's per-CPU variable is 1; cpu1 cannot end that wait, so
    cpu1's moves alone are no persistent set (cpu2's store frees the patcher, whose text
    write then races with cpu1's execution)."""
    c = _differential(((("waitfor", 2, 1), ("text", "new")),
                       (("exec",),), (("store", "r", 1),)), {1, 2})
    assert "torn-instruction" in c.properties
    assert c.runs[(False, True, "locals", "torn-instruction")].property == "torn-instruction"


def _xchg_one(v):
    return 1, v


def _maybe_lock():
    """The first CPU through wins x and takes the mutex; both then stop at the same point
    with the same locals, so their CPU tuples are equal and only `m` tells them apart."""
    if (yield ops.Rmw("x", _xchg_one, label="xchg(&x, 1)")) == 0:
        yield ops.MutexLock("m")
    yield ops.WaitUntil("go", lambda v: v == 1)


def _go():
    yield ops.Store("go", 1)


def _named_members_system() -> System:
    cfg = MachineConfig(
        ncpus=3, sites=(SNAP_SITE,), tasks=((_go, ()), (_maybe_lock, ()), (_maybe_lock, ())),
        globals=(("x", 0), ("go", 0), ("m", None)), cpu_valued=frozenset({"m"}),
        symmetric=((1, 2),))
    return System("named-members", cfg)


def test_symmetry_orbits_tell_members_apart_by_the_cpu_valued_globals_naming_them():
    """Two interchangeable CPUs whose states are equal except that a CPU-valued global (the
    mutex owner) names one of them: the canonical key must include which globals name each
    member, else two states of one orbit get different canonical forms and both are kept."""
    system = _named_members_system()
    states, perms = _symmetric_states(system)
    canon = Canonicalizer(system.config)
    tied = 0
    for s in states:
        tied += s[2][1] == s[2][2] and s[0][system.config.gidx["m"]] in (1, 2)
        images = [permute(system.config, s, p) for p in perms]
        assert all(t in states for t in images)
        assert len({canon(t)[0] for t in images}) == 1
    assert tied >= 2
    orbits = {canon(s)[0] for s in states}
    with_sym = explore(system, Bounds(symmetry=True, por=False))
    assert with_sym.states == len(orbits) < len(states)
    assert with_sym.verdict == "safe"


def test_the_parent_hint_never_changes_the_canonical_form():
    """`Canonicalizer(state, parent)` may skip the sort when no class member's tuple changed
    -- but only if no CPU-valued global changed either: here only the mutex owner moves
    from one member to the other, and the hinted form must equal the fresh one."""
    system = _named_members_system()
    cfg = system.config
    _, states = all_states(system)
    canon = Canonicalizer(cfg)
    mi = cfg.gidx["m"]
    checked = 0
    for s in states:
        rep, _ = canon(s)
        if rep[2][1] != rep[2][2] or rep[0][mi] not in (1, 2):
            continue
        mem = list(rep[0])
        mem[mi] = 3 - rep[0][mi]  # the other member owns it; both tuples are untouched
        child = (tuple(mem), *rep[1:])
        assert canon(child, rep)[0] == canon(child)[0]
        checked += 1
    assert checked >= 1
