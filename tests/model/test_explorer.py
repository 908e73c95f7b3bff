"""The explorer's own guarantees: replay round trips, symmetry soundness, the two routine
identities agreeing, determinism."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmod.catalogue import ROWS, build
from crossmod.check.explore import ReplayError, explore, replay_schedule
from crossmod.check.liveness import replay_lasso
from crossmod.check.schedule import Schedule, ScheduleError, decode_for, record_token
from crossmod.check.verdict import Bounds, Outcome, StopReason
from crossmod.machine.machine import Machine
from crossmod.machine.symmetry import Canonicalizer, permute

from .conftest import all_states

BUGS = [r for r in ROWS if r.expected != "safe" and r.knobs.get("cpus", 2) <= 2]


@pytest.mark.parametrize("row", BUGS, ids=lambda r: f"{r.protocol}:{r.variant}:{r.knobs}")
def test_replay_round_trip_reproduces_the_counterexample(row):
    """Explore, encode the schedule, decode, rebuild from the token alone, replay: same
    violation, same trail (never skipped: STYLE.md rule 9)."""
    system = build(row.protocol, row.variant, **row.knobs)
    v = explore(system, Bounds(liveness=row.liveness))
    choices = list(v.counterexample.choices)
    back = decode_for(None, record_token(system, choices, v.cycle_start))
    assert back.params == system.params  # every parameter the system shows
    assert back.cycle_start == v.cycle_start
    rebuilt = build(back.protocol, back.variant, **back.params)
    back.check_fits(rebuilt)
    if back.cycle_start is None:
        again = replay_schedule(rebuilt, list(back.choices))
        assert again.outcome in (Outcome.VIOLATION, Outcome.DEADLOCK)
        if again.outcome is Outcome.DEADLOCK:
            assert again.deadlock is not None and again.deadlock.message == v.message
        else:
            assert again[-1].text == f"VIOLATION {v.property}: {v.message}"
    else:
        again, outcome = replay_lasso(rebuilt, list(back.choices), back.cycle_start)
        assert outcome == "cycle"
    assert [s.text for s in again] == [s.text for s in v.counterexample]
    assert again == v.counterexample


def test_replay_refuses_a_schedule_that_does_not_fit():
    with pytest.raises(ReplayError, match="out of range"):
        replay_schedule(build("x86-int3-batch"), [0, 0, 99])


@given(st.text(max_size=80))
def test_schedule_decoding_never_crashes(junk):
    """Any text is either a schedule or a ScheduleError, never another exception."""
    with contextlib.suppress(ScheduleError):
        Schedule.decode(junk)


@given(st.lists(st.integers(0, 6), max_size=60))
@settings(max_examples=60, deadline=None)
def test_any_prefix_of_moves_replays_identically(choices):
    """Replaying the same choices twice gives byte-identical trails (determinism), and a
    choice list that stops fitting is refused, never misapplied."""
    system = build("x86-int3-batch", "no-sync2")
    try:
        a = replay_schedule(system, choices)
    except ReplayError:
        return
    b = replay_schedule(build("x86-int3-batch", "no-sync2"), choices)
    assert [s.text for s in a] == [s.text for s in b]


def test_symmetry_is_sound_orbit_count_matches():
    """With symmetry on, the explorer visits exactly one state per orbit of the full state
    space: the number of distinct representatives of all reachable states."""
    system = build("x86-int3-batch", cpus=3, execs=1)
    _, full = all_states(system)
    canon = Canonicalizer(system.config)
    orbits = {canon(s)[0] for s in full}
    v = explore(system, Bounds(symmetry=True, por=False))
    assert v.states == len(orbits)
    assert explore(system, Bounds(symmetry=False, por=False)).states == len(full)
    assert len(full) > 1.8 * len(orbits)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=120),
       st.permutations([1, 2, 3]))
@settings(max_examples=40, deadline=None)
def test_fingerprints_are_canonical_on_random_walks(walk, order):
    """Along any walk of the 4-CPU machine (an NMI included), renumbering the three
    interchangeable CPUs in any order leaves the representative unchanged."""
    system = build("x86-int3-batch", cpus=4, nmis=1, execs=1)
    m = Machine(system.config)
    canon = Canonicalizer(system.config)
    perm = (0, *order)
    s = m.initial_state()
    for pick in walk:
        moves = m.moves(s)
        if not moves:
            break
        s, _ = m.step(s, moves[pick % len(moves)])
        assert canon(permute(system.config, s, perm))[0] == canon(s)[0]


def test_canonical_form_is_invariant_under_renumbering():
    """Permuting the interchangeable CPUs of any reachable state gives the same
    representative."""
    system = build("x86-int3-batch", cpus=3, nmis=1, execs=1)
    m = Machine(system.config)
    canon = Canonicalizer(system.config)
    s = m.initial_state()
    checked = 0
    for _ in range(300):
        moves = m.moves(s)
        if not moves:
            break
        s, _ = m.step(s, moves[(checked * 7) % len(moves)])
        swapped = permute(system.config, s, (0, 2, 1))
        assert canon(swapped)[0] == canon(s)[0]
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("row", [r for r in ROWS if r.knobs.get("cpus", 2) <= 2
                                 and not r.knobs.get("nmis")][:12],
                         ids=lambda r: f"{r.protocol}:{r.variant}:{r.knobs}")
def test_history_identity_agrees_with_locals_identity(row):
    """Routine states identified by (resume point, locals) give the same verdicts as the
    always-sound identity by input history (never fewer states than it merges)."""
    system = build(row.protocol, row.variant, **row.knobs)
    fast = explore(system, Bounds(identity="locals"))
    sound = explore(build(row.protocol, row.variant, **row.knobs), Bounds(identity="history"))
    assert (fast.verdict, fast.property) == (sound.verdict, sound.property)
    assert fast.states <= sound.states


@pytest.mark.parametrize("variant,cpus", [("no-sync1", 3), ("no-sync2", 3), ("no-sync3", 3),
                                          ("default", 3)])
def test_partial_order_reduction_keeps_verdicts(variant, cpus):
    """Persistent sets over the reader CPUs explore fewer states and reach the same
    verdict and property as the full search."""
    system = build("x86-int3-batch", variant, cpus=cpus, execs=1)
    reduced = explore(system, Bounds(por=True))
    full = explore(build("x86-int3-batch", variant, cpus=cpus, execs=1), Bounds(por=False))
    assert (reduced.verdict, reduced.property) == (full.verdict, full.property)
    if full.verdict == "safe":
        assert reduced.states * 2 < full.states


def test_reader_declaration_is_enforced():
    """A CPU declared a reader that writes shared memory is a model error, not a silently
    unsound reduction."""
    from dataclasses import replace

    from crossmod.machine.routines import ModelError
    system = build("x86-int3-batch", "global-descriptor", cpus=2)
    bad = replace(system, config=replace(system.config, readers=frozenset({1})))
    with pytest.raises(ModelError, match="declared a reader"):
        explore(bad)


def test_same_run_twice_gives_identical_counterexamples():
    a = explore(build("x86-int3-batch", "no-sync3", cpus=3))
    b = explore(build("x86-int3-batch", "no-sync3", cpus=3))
    assert [s.text for s in a.counterexample] == [s.text for s in b.counterexample]
    assert a.states == b.states


def test_state_limit_is_reported_not_silent():
    v = explore(build("x86-int3-batch", cpus=3), Bounds(max_states=500))
    assert v.verdict == "bound" and "state limit" in v.stop_reason


def _two_patches_task(v):
    """Patch the site to JMP and back to NOP, each under text_mutex, each declared returned."""
    from crossmod.kernel import text_poke as tp
    from crossmod.kernel.model import model_text_mutex_caller
    from crossmod.machine.text import NOP5, jmp32

    yield from model_text_mutex_caller("site", tp.smp_text_poke_single,
                                       ("site", jmp32(0x40), "jmp l_yes", v))
    yield from model_text_mutex_caller("site", tp.smp_text_poke_single,
                                       ("site", NOP5, "nop", v))


@pytest.mark.parametrize("sync3", [True, False])
def test_reduction_agrees_when_a_site_is_patched_twice(sync3):
    """A second patch's first text write ends the first patch's contract (property 2),
    which readers' executions check; the reduction must not reorder it past them."""
    from dataclasses import replace

    from crossmod.kernel import text_poke as tp

    base = build("x86-int3-batch", cpus=3, execs=2)
    v = tp.PokeVariant(sync3=sync3)
    system = replace(base, config=replace(base.config, tasks=(
        (_two_patches_task, (v,)), *base.config.tasks[1:])))
    reduced = explore(system, Bounds(por=True))
    full = explore(system, Bounds(por=False))
    assert (reduced.verdict, reduced.property) == (full.verdict, full.property)
    assert reduced.verdict == ("safe" if sync3 else "violation")


def test_a_path_of_exactly_max_depth_moves_is_explored():
    """The step bound counts moves: a violation on the k-th move is found with
    `max_depth=k` and reported as a bound with k-1; a safe verdict needs every path of the
    reported depth explored, and one move less is a bound, never "safe"."""
    bug = explore(build("x86-memcpy"))
    k = len(bug.counterexample)
    assert k == 3
    at = explore(build("x86-memcpy"), Bounds(max_depth=k))
    assert (at.verdict, at.property, len(at.counterexample)) == ("violation", bug.property, k)
    short = explore(build("x86-memcpy"), Bounds(max_depth=k - 1))
    assert short.verdict == "bound" and short.describe_stop() == f"step bound {k - 1} reached"
    assert (short.stop_reason, short.stop_limit) == (StopReason.STEP_BOUND, k - 1)
    safe = explore(build("x86-int3-batch"))
    assert explore(build("x86-int3-batch"), Bounds(max_depth=safe.depth)).verdict == "safe"
    cut = explore(build("x86-int3-batch"), Bounds(max_depth=safe.depth - 1))
    assert cut.verdict == "bound" and "step bound" in cut.stop_reason


def test_a_search_holds_back_full_collections_and_restores_the_collector() -> None:
    """check/gcpolicy.py: no full collection while a search runs (the young generations as
    usual), the thresholds as they were afterwards."""
    import gc

    from crossmod.check.observer import Observer

    seen: list[tuple[int, int, int]] = []

    class Watch(Observer):
        def expand(self, state: tuple, moves: list) -> None:
            seen.append(gc.get_threshold())

    before = gc.get_threshold()
    explore(build("x86-memcpy"), observer=Watch())
    assert seen and all(t[:2] == before[:2] and t[2] >= 1 << 30 for t in seen)
    assert gc.get_threshold() == before and gc.isenabled()
