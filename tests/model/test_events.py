"""What a step reports as data (machine/events.py): the events of known steps, trails told
from events exactly as the narration told them before, the explorer's event-free fast path
agreeing with the narrating one, and `compare`'s counts computed from events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmod.catalogue import ROWS, build
from crossmod.check.explore import Observer, explore, replay_schedule
from crossmod.check.stats import cost_rows, flip_costs
from crossmod.check.verdict import Bounds, Outcome, Property, StopReason, VerdictKind
from crossmod.cli import main
from crossmod.machine import events as E
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine

from .test_user_ops import NEW_OP_EVENTS

GOLDEN = Path(__file__).parent / "data" / "narration_golden.txt"


def first_move_events(system):
    """Every event of the run that always takes the first enabled move."""
    m = Machine(system.config)
    s, out = m.initial_state(), []
    while mv := m.moves(s):
        s, events = m.step(s, mv[0])
        out.extend(events)
    return out


# ---- events of known steps ---------------------------------------------------------------

def test_a_torn_fetch_is_a_violation_event_naming_the_site_and_the_bytes():
    """x86-memcpy: cpu1 fetches the first new byte with the old tail: the step's last
    event is the violation, with the site and the bytes it fetched."""
    v = explore(build("x86-memcpy"))
    last = v.counterexample[-1]
    message = ("cpu1 exec site: fetched E9 1F 44 00 00 -> not an instruction the site may "
               "hold (torn)")
    assert last.events == (E.Violated(1, Property.TORN_INSTRUCTION, message, "site",
                                      bytes.fromhex("e91f440000")),)
    assert last.outcome is Outcome.VIOLATION and v.counterexample.outcome is Outcome.VIOLATION
    assert last.text == f"VIOLATION torn-instruction: {message}"
    # the same event travels on the exception `Machine.step` raises
    m = Machine(build("x86-memcpy").config)
    s = m.initial_state()
    for st_ in v.counterexample[:-1]:
        s, _ = m.step(s, m.moves(s)[st_.index])
    with pytest.raises(Violation) as e:
        m.step(s, m.moves(s)[last.index])
    assert e.value.events == last.events and e.value.prop is Property.TORN_INSTRUCTION


def test_a_csd_ipi_send_names_its_callback_its_targets_and_their_mode():
    """defer-none: the patcher's first sync IPI goes to cpu1 while it runs in userspace;
    cpu1 takes it there, with do_sync_core in its queue, and enters the kernel."""
    events = first_move_events(build("defer-none"))
    send = next(e for e in events if isinstance(e, E.IpiSend))
    assert send == E.IpiSend(0, E.Ctx.TASK, "smp_call_function_many_cond", "S1", False,
                             "do_sync_core", (1,), (1,), ("user",))
    assert E.describe(send) == ("smp_call_function_many_cond [S1]: smp_call_function_many_"
                                "cond(do_sync_core): IPI -> cpu1")
    taken = next(e for e in events if isinstance(e, E.Entry) and e.ctx is E.Ctx.IRQ)
    assert taken == E.Entry(1, E.Ctx.IRQ, False, "user", ("do_sync_core",))
    at = events.index(taken)
    assert E.ModeChange(1, "user", "kernel") in events[at:at + 6]
    dequeue = next(e for e in events[at:] if isinstance(e, E.CsdDequeue))
    assert (dequeue.callbacks, dequeue.senders) == (("do_sync_core",), (0,))


def test_a_cond_send_that_skips_every_cpu_sends_no_ipi():
    """defer-cr3: cpu1 runs on the user CR3, so kernel_cr3_loaded() skips it."""
    send = next(e for e in first_move_events(build("defer-cr3")) if isinstance(e, E.IpiSend))
    assert (send.func, send.targets, send.raised, send.cond, send.skipped) == (
        "do_sync_core", (), (), "kernel_cr3_loaded", (1,))
    assert send.words() == ("smp_call_function_many_cond(do_sync_core): no CPU passes the "
                            "cond; kernel_cr3_loaded: skips cpu1")


def test_a_deadlock_is_the_trails_end_not_a_step():
    """x86-ipi-irqs-off (K9): six moves, then both CPUs wait in csd_lock_wait with
    interrupts off; the last step's outcome says so and the trail holds who waits in what."""
    v = explore(build("x86-ipi-irqs-off"))
    trail = v.counterexample
    assert (v.verdict, v.property, v.depth, len(trail)) == (VerdictKind.DEADLOCK,
                                                            Property.DEADLOCK, 6, 6)
    assert trail.outcome is Outcome.DEADLOCK and trail[-1].outcome is Outcome.DEADLOCK
    assert all(s.outcome is Outcome.OK for s in trail[:-1])
    assert [(b.cpu, b.op, b.irqs) for b in trail.deadlock.blocked] == [
        (0, "CsdLockWait", False), (1, "CsdLockWait", False)]
    assert trail.deadlock.message == v.message
    again = replay_schedule(build("x86-ipi-irqs-off"), list(trail.choices))
    assert again == trail


def test_verdict_kind_property_and_stop_reason_are_enums_with_the_old_strings():
    v = explore(build("x86-memcpy"))
    assert (v.verdict, v.property, v.stop_reason) == ("violation", "torn-instruction",
                                                      "first violation")
    assert isinstance(v.verdict, VerdictKind) and isinstance(v.property, Property)
    doc = v.to_json()
    assert (doc["verdict"], doc["property"], doc["stop_reason"]) == (
        "violation", "torn-instruction", "first violation")
    assert json.loads(json.dumps(doc))["counterexample"][-1]["events"][0] == {
        "event": "Violated", "cpu": 1, "prop": "torn-instruction",
        "message": v.message, "site": "site", "fetched": "E9 1F 44 00 00"}
    bound = explore(build("x86-int3-batch"), Bounds(max_states=10))
    assert (bound.verdict, bound.stop_reason, bound.stop_limit) == (
        VerdictKind.BOUND, StopReason.STATE_LIMIT, 10)
    assert bound.to_json()["stop_reason"] == bound.message == "state limit 10 reached"


# ---- trails told from events, exactly as before ------------------------------------------

def golden_walks() -> list[tuple[list, list[str]]]:
    """(protocol, variant, knobs, choices) and the lines told, per walk of the file."""
    walks: list[tuple[list, list[str]]] = []
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("== "):
            walks.append((json.loads(line[3:]), []))
        else:
            walks[-1][1].append(line)
    return walks


@pytest.mark.parametrize("walk,want", [
    pytest.param(w, lines, id=f"{w[0]}:{w[1]}:{i}") for i, (w, lines) in
    enumerate(golden_walks())])
def test_trails_are_told_from_events_exactly_as_the_narration_told_them(walk, want):
    """Seeded random walks (and the deadlock counterexamples), replayed: every line is the
    one the text narration of commit 6b0204a printed, byte for byte."""
    protocol, variant, knobs, choices = walk
    trail = replay_schedule(build(protocol, variant, **knobs), choices)
    got = [s.text for s in trail]
    if trail.deadlock is not None:
        got.append(f"DEADLOCK: {trail.deadlock.message}")
    assert got == want


def test_the_golden_walks_tell_every_kind_of_event():
    """The golden file exercises the words of every event kind that has words, but those of
    the ops no catalogue protocol uses (tests/model/test_user_ops.py tells them)."""
    seen: set[type] = set()
    for (protocol, variant, knobs, choices), _ in golden_walks():
        trail = replay_schedule(build(protocol, variant, **knobs), choices)
        seen |= {type(e) for s in trail for e in s.events}
    spoken = {c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.Event)
              and c.words is not E.Event.words and c is not E.OpEvent}
    assert spoken - seen == NEW_OP_EVENTS  # no catalogue protocol uses their ops: told there


# ---- the fast path and the narrating path ------------------------------------------------

ROW_IDS = list(range(len(ROWS)))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ROW_IDS), st.lists(st.integers(0, 1_000), max_size=80))
def test_steps_agree_with_and_without_events(ri, picks):
    """A random walk of a catalogue row: the explorer's event-free steps reach exactly the
    states the narrating steps reach and break the same property; every event is plain
    data (hashable, JSON-ready) about the CPU that moved, and the trail's line is its
    events' words."""
    row = ROWS[ri]
    system = build(row.protocol, row.variant, **row.knobs)
    fast, told = Machine(system.config), Machine(system.config)
    fast.narrate = False
    s = fast.initial_state()
    assert told.initial_state() == s
    for pick in picks:
        moves = fast.moves(s)
        if not moves:
            break
        move = moves[pick % len(moves)]
        try:
            t, none = fast.step(s, move)
        except Violation as v:
            with pytest.raises(Violation) as again:
                told.step(s, move)
            assert (again.value.prop, again.value.message) == (v.prop, v.message)
            assert again.value.events[-1] == E.Violated(move[0], v.prop, v.message,
                                                        v.site, v.fetched)
            break
        t2, events = told.step(s, move)
        assert (t2, none) == (t, ())
        assert events and all(e.cpu == move[0] for e in events)
        hash(events)
        json.dumps([E.to_json(e) for e in events])
        words = [w for e in events if (w := E.describe(e)) is not None]
        assert E.narrate(move[0], events) == f"cpu{move[0]} " + "; ".join(words)
        s = t


# ---- the explorer's observer hook -------------------------------------------------------

class Census(Observer):
    """Counts what the search shows it: states expanded, transitions, IPIs sent."""

    events = True

    def __init__(self) -> None:
        self.states: set[tuple] = set()
        self.transitions = self.sends = 0

    def expand(self, state, moves):
        self.states.add(state)

    def transition(self, state, move, succ, events):
        self.transitions += 1
        self.sends += sum(isinstance(e, E.IpiSend) for e in events)


def test_an_observer_sees_every_state_and_transition_with_its_events():
    """x86-int3-batch, no reduction: the observer is shown every state once and every
    transition with its events; narrating the steps changes nothing the search counts."""
    census = Census()
    bounds = Bounds(symmetry=False, por=False)
    v = explore(build("x86-int3-batch"), bounds, observer=census)
    plain = explore(build("x86-int3-batch"), bounds)
    assert (v.verdict, v.states, v.transitions) == ("safe", plain.states, plain.transitions)
    assert len(census.states) == v.states and census.transitions == v.transitions
    assert census.sends > 0


# ---- compare's counts, from events -------------------------------------------------------

COMPARE_3CPU = [
    ("x86-int3-batch (1 site)", 6, 0, {"do_sync_core": 6}),
    ("x86-stop-machine (1 site)", 2, 1, {"multi_cpu_stop": 2}),
    ("x86-static-key K=1", 6, 0, {"do_sync_core": 6}),
    ("arm64-jump-label K=1", 2, 0, {"do_nothing": 2}),
    ("arm64-stop-machine patch=jump-label K=1", 2, 1, {"multi_cpu_stop": 2}),
    ("x86-static-key K=2", 6, 0, {"do_sync_core": 6}),
    ("arm64-jump-label K=2", 2, 0, {"do_nothing": 2}),
    ("arm64-stop-machine patch=jump-label K=2", 4, 2, {"multi_cpu_stop": 4}),
    ("x86-static-key K=4", 6, 0, {"do_sync_core": 6}),
    ("arm64-jump-label K=4", 2, 0, {"do_nothing": 2}),
    ("arm64-stop-machine patch=jump-label K=4", 8, 4, {"multi_cpu_stop": 8}),
]


def test_compare_counts_ipis_from_events():
    """`crossmod compare`'s rows (3 CPUs), pinned: IPIs and rendezvous counted from the
    runs' `IpiSend` events."""
    from crossmod.catalogue.arm64 import key_flip_systems

    labelled = [("x86-int3-batch (1 site)", build("x86-int3-batch", cpus=3)),
                ("x86-stop-machine (1 site)", build("x86-stop-machine", cpus=3)),
                *key_flip_systems(cpus=3)]
    rows = cost_rows(labelled)
    assert [(r["label"], r["ipis"], r["rendezvous"], r["ipis_by_function"])
            for r in rows] == COMPARE_3CPU
    sends = [e for e in first_move_events(build("x86-stop-machine", cpus=3))
             if isinstance(e, E.IpiSend) and e.raised]
    assert [(e.func, e.raised) for e in sends] == [("multi_cpu_stop", (1, 2))]
    assert flip_costs(build("x86-stop-machine", cpus=3)).ipis == 2


def test_compare_table_is_pinned():
    out = CliRunner().invoke(main, ["compare"]).output
    assert out.splitlines()[2:5] == [
        "x86-int3-batch (1 site)                     3     6           0  do_sync_core 6",
        "x86-stop-machine (1 site)                   3     2           1  multi_cpu_stop 2",
        "x86-static-key K=1                          3     6           0  do_sync_core 6"]
    assert len(out.splitlines()) == 2 + len(COMPARE_3CPU)
