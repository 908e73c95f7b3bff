"""Liveness (DESIGN.md property 5, check/liveness.py): the catalogue's lassos and passes,
fairness on hand-made machines (an unfair cycle is no violation; IPIs are strongly fair),
obligations of tasks and of handlers, and the lasso's token, trail and JSON."""

from __future__ import annotations

import base64
import itertools
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmod.catalogue import build
from crossmod.check import fairness as F
from crossmod.check import liveness as L
from crossmod.check.explore import explore
from crossmod.check.schedule import ScheduleError, decode_for, record_token
from crossmod.check.verdict import Bounds, Verdict
from crossmod.kernel.model import USER_MEMORY, model_user_loop
from crossmod.kernel.smp import do_nothing, generic_smp_call_function_single_interrupt
from crossmod.machine import ops
from crossmod.machine.machine import Machine
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site
from crossmod.report import narrate

LIVE = Bounds(liveness=True)
SITE = Site("site", NOP5, ((NOP5, "nop"),))


def _graph(system: System) -> F.Graph:
    return L.state_graph(Machine(system.config), Bounds())


def _assert_fair_lasso(system: System, v: Verdict) -> None:
    """The reported cycle closes, is fair by itself (every weakly fair unit enabled on all
    its states and every strongly fair unit enabled on one of them is taken on it), and
    some CPU's obligation is pending on all its states."""
    assert v.counterexample is not None and v.cycle_start is not None
    start = v.cycle_start
    m = Machine(system.config)
    choices = [s.index for s in v.counterexample]
    s = m.initial_state()
    states = [s]
    taken = 0
    for n, idx in enumerate(choices):
        move = m.moves(s)[idx]
        if n >= start:
            taken |= 1 << F.unit(move[0], move[1]) if move[1] in F.KINDS else 0
        s, _ = m.step(s, move)
        states.append(s)
    cycle = states[start:-1]
    assert states[-1] == states[start], "the cycle does not close"
    enabled = [sum({1 << F.unit(c, k) for c, k, _ in m.moves(t) if k in F.KINDS})
               for t in cycle]
    always, some = -1, 0
    for e in enabled:
        always &= e
        some |= e
    n = system.config.ncpus
    assert not always & F.masks(n, F.WEAK) & ~taken
    assert not some & F.masks(n, F.STRONG) & ~taken
    common = -1
    for t in cycle:
        common &= L.pending_mask(m, t)
    assert common, "no obligation stays pending on the whole cycle"


# ---- the catalogue ---------------------------------------------------------------------

def test_cpumask_2019_with_an_nmi_on_the_patcher_fails_liveness_while_cpu1_runs():
    """K8 with CPU 1 in user code: no state is a deadlock (the safety search says safe),
    but the patcher, under its NMI and #BP handler, waits forever while CPU 1 runs."""
    system = build("x86-cpumask-2019", users=1)
    assert explore(system).verdict == "safe"
    v = explore(system, LIVE)
    assert (v.verdict, v.property) == ("violation", "liveness")
    assert (len(v.counterexample), v.cycle_start) == (13, 12)
    assert v.message.startswith("cpu0's task model_text_mutex_caller never finishes: in a "
                                "fair cycle of 1 move that repeats forever cpu1 keeps moving "
                                "while cpu0 never moves: int3_wait_for_patch waits in "
                                "WaitUntil [#BP wait for patch] (contexts task/nmi/bp")
    assert [s.cpu for s in v.counterexample[12:]] == [1]
    assert "takes an NMI" in v.counterexample[9].text
    assert v.stats["liveness"]["states"] == 707
    _assert_fair_lasso(system, v)


def test_cpumask_2019_last_clearer_completes_passes_liveness_in_the_same_configurations():
    for knobs, states in (({"users": 1}, 856), ({"users": 1, "cpus": 3, "nmis": 0}, 5297)):
        v = explore(build("x86-cpumask-2019", "last-clearer-completes", **knobs), LIVE)
        assert (v.verdict, v.stop_reason) == ("safe", "exhausted")
        assert v.stats["liveness"]["states"] == states
        assert "every started routine completes under fairness" in v.message


def test_cpumask_2019_without_nmis_a_cpu_waiting_in_bp_misses_the_next_sync():
    """Andy's second worry: the #BP handler waits with IRQs off, so a sync whose mask is
    published after it trapped is never answered; cpu2 in user code keeps moving."""
    system = build("x86-cpumask-2019", cpus=3, nmis=0, users=1)
    v = explore(system, LIVE)
    assert (v.verdict, v.property, len(v.counterexample)) == ("violation", "liveness", 23)
    assert "cpu0's task model_text_mutex_caller never finishes" in v.message
    assert "[sync1 wait]" in v.message
    assert "cpu1's task model_exec_loop never finishes either: int3_wait_for_patch waits" \
        in v.message
    _assert_fair_lasso(system, v)


def test_a_spinning_bp_handler_that_ignores_new_syncs_fails_liveness():
    """x86-int3-batch with a #BP handler that spins, IRQs off, for the batch to finish: the
    S1 IPI is never taken on the spinning CPU. With two CPUs that is a deadlock; with a
    third in user code it is a liveness violation only."""
    two = explore(build("x86-int3-batch", "spin-in-handler"), LIVE)
    assert (two.verdict, two.property, two.cycle_start) == ("deadlock", "deadlock", None)
    assert "liveness" not in two.stats  # no liveness pass after a safety violation
    system = build("x86-int3-batch", "spin-in-handler", cpus=3, execs=1, users=1)
    v = explore(system, LIVE)
    assert (v.verdict, v.property) == ("violation", "liveness")
    assert "cpu0's task model_patch_task never finishes" in v.message
    assert "while cpu0 never moves: model_patch_task waits in CsdLockWait [S1]" in v.message
    assert "smp_text_poke_int3_handler waits in WaitUntil [spin until the batch is done] " \
           "(contexts task/bp, irqs off)" in v.message
    assert {s.cpu for s in v.counterexample[v.cycle_start:]} == {2}
    assert v.stats["liveness"] == {**v.stats["liveness"], "states": 3210,
                                   "transitions": 9039}
    _assert_fair_lasso(system, v)


@pytest.mark.parametrize("name,knobs,states", [
    ("x86-int3-batch", {}, 1057),
    ("x86-int3-batch", {"cpus": 3, "execs": 1, "users": 1}, 4238),
    ("x86-stop-machine", {}, 405),
    ("x86-stop-machine", {"cpus": 3, "users": 1}, 2061),
])
def test_safe_protocols_pass_liveness(name, knobs, states):
    v = explore(build(name, **knobs), LIVE)
    assert (v.verdict, v.stop_reason, v.cycle_start) == ("safe", "exhausted", None)
    assert v.stats["liveness"]["states"] == states
    # the safety search's own figures are kept as they are without liveness
    plain = explore(build(name, **knobs))
    assert (v.states, v.transitions) == (plain.states, plain.transitions)


def test_ignoring_liveness_skips_the_pass():
    v = explore(build("x86-cpumask-2019", users=1),
                Bounds(liveness=True, ignore=frozenset({"liveness"})))
    assert v.verdict == "safe" and "liveness" not in v.stats


def test_a_liveness_pass_that_hits_the_state_limit_says_bound():
    system = build("x86-int3-batch", cpus=3, execs=1, users=1)
    v = explore(system, Bounds(liveness=True, max_states=2000))
    assert v.states == 1509  # the safety search finished within the limit
    assert (v.verdict, v.describe_stop()) == ("bound", "state limit 2000 reached")
    assert v.message == "liveness not decided: state limit 2000 reached"


# ---- fairness on hand-made machines ----------------------------------------------------

def _load_once():
    yield ops.Load("x", label="load")


def _machine(*tasks, endless=(), ipi=None, globals_=(("x", 0),)) -> System:
    cfg = MachineConfig(ncpus=len(tasks), sites=(SITE,), tasks=tuple(tasks),
                        globals=globals_, percpu=USER_MEMORY, endless=frozenset(endless),
                        ipi_handler=ipi)
    return System("hand-made", cfg)


def test_an_unfair_cycle_is_not_reported():
    """cpu1 runs user code forever while cpu0 could always do its one load: the self-loop
    at the initial state keeps cpu0's task pending forever, but it never lets cpu0 move
    although cpu0 always could -- weak fairness excludes it."""
    system = _machine((_load_once, ()), (model_user_loop, ()), endless=(1,))
    g = _graph(system)
    nodes = [i for i, p in enumerate(g.pending) if p & 1]
    loops = [c for c in F.sccs(g, nodes) if any(j in c for i in c for j, _, _ in g.succ[i])]
    assert loops, "the pending states hold a cycle"
    n = system.config.ncpus
    assert F.fair_components(g, nodes, F.masks(n, F.WEAK), F.masks(n, F.STRONG)) == []
    assert F.fair_components(g, nodes, 0, 0), "without fairness it would be a violation"
    v = explore(system, LIVE)
    assert (v.verdict, v.cycle_start) == ("safe", None)


def _irq_flicker():
    """User code that keeps disabling and re-enabling interrupts."""
    while True:
        flags = yield ops.IrqSave(label="local_irq_save")
        yield ops.Load(ops.this_cpu("user_data"), label="user code, irqs off")
        yield ops.IrqRestore(flags, label="local_irq_restore")


def _irqs_off_forever():
    yield ops.IrqSave(label="local_irq_save")
    while True:
        yield ops.Load(ops.this_cpu("user_data"), label="user code, irqs off")


def _call_cpu1():
    yield ops.CsdQueue((1,), do_nothing, (), sync=True, label="smp_call_function_single")
    yield ops.CsdLockWait((1,), label="csd_lock_wait")


def test_a_pending_ipi_is_strongly_fair():
    """cpu1 enables interrupts on every turn of its loop but not on every state: weak
    fairness would let it dodge cpu0's IPI forever, strong fairness (the hardware takes a
    pending interrupt at the first boundary with IF=1) does not."""
    system = _machine((_call_cpu1, ()), (_irq_flicker, ()), endless=(1,),
                      ipi=generic_smp_call_function_single_interrupt)
    v = explore(system, LIVE)
    assert (v.verdict, v.cycle_start) == ("safe", None)
    g = _graph(system)
    nodes = [i for i, p in enumerate(g.pending) if p & 1]
    weak_only = F.masks(2, F.WEAK + F.STRONG)
    assert F.fair_components(g, nodes, weak_only, 0), "weakly fair, it would starve cpu0"


def test_an_ipi_never_deliverable_starves_the_sender():
    system = _machine((_call_cpu1, ()), (_irqs_off_forever, ()), endless=(1,),
                      ipi=generic_smp_call_function_single_interrupt)
    v = explore(system, LIVE)
    assert (v.verdict, v.property) == ("violation", "liveness")
    assert v.message.startswith("cpu0's task _call_cpu1 never finishes: in a fair cycle of "
                                "1 move that repeats forever cpu1 keeps moving while cpu0 "
                                "never moves: _call_cpu1 waits in CsdLockWait")
    _assert_fair_lasso(system, v)


def _spin_on_flag():
    while not (yield ops.Load("flag", label="while (!READ_ONCE(flag))")):
        pass


def _set_flag():
    yield ops.Store("flag", 1, label="WRITE_ONCE(flag, 1)")


def test_a_routine_that_spins_forever_is_a_violation_and_one_that_is_released_is_not():
    flag = (("flag", 0),)
    v = explore(_machine((_spin_on_flag, ()), (model_user_loop, ()), endless=(1,),
                         globals_=flag), LIVE)
    assert (v.verdict, v.property) == ("violation", "liveness")
    assert "cpu0's task _spin_on_flag never finishes" in v.message
    assert "cpu1 keeps moving while cpu0 spins" in v.message
    assert {s.cpu for s in v.counterexample[v.cycle_start:]} == {0, 1}
    # the store that releases it must drain (weakly fair): then the spin ends
    ok = explore(_machine((_spin_on_flag, ()), (_set_flag, ()), (model_user_loop, ()),
                          endless=(2,), globals_=flag), LIVE)
    assert (ok.verdict, ok.cycle_start) == ("safe", None)


def _wait_forever_callback():
    yield ops.WaitUntil("flag", lambda v: v == 1, label="wait for a flag nobody sets")


def _queue_to_cpu1():
    yield ops.CsdQueue((1,), _wait_forever_callback, (), sync=False, label="queue")


def test_an_endless_cpu_owes_the_return_of_its_handlers():
    """cpu1 runs user code forever (its task owes nothing) but the IPI handler it takes
    never returns, while cpu2 keeps running: a violation on cpu1's handler."""
    system = _machine((_queue_to_cpu1, ()), (model_user_loop, ()), (model_user_loop, ()),
                      endless=(1, 2), ipi=generic_smp_call_function_single_interrupt,
                      globals_=(("flag", 0),))
    v = explore(system, LIVE)
    assert (v.verdict, v.property) == ("violation", "liveness")
    assert v.message.startswith("cpu1's IPI handler generic_smp_call_function_single_"
                                "interrupt never returns: in a fair cycle of 1 move that "
                                "repeats forever cpu2 keeps moving while cpu1 never moves: "
                                "generic_smp_call_function_single_interrupt waits in "
                                "WaitUntil [wait for a flag nobody sets] (contexts task/irq, "
                                "irqs off)")
    _assert_fair_lasso(system, v)


def test_endless_cpus_must_exist_and_have_a_task():
    with pytest.raises(ValueError, match="endless CPUs"):
        _machine((_load_once, ()), (model_user_loop, ()), endless=(2,))


def test_the_liveness_pass_reports_a_deadlock_the_safety_search_did_not():
    """Defence in depth: the full graph is built anyway, so a deadlock (or a violation) the
    reduced search missed is reported rather than passed over."""
    system = _machine((_call_cpu1, ()), (_irqs_off_forever, ()), endless=())
    fake = Verdict("hand-made", "default", "", "safe", None, "no violation", 1, 0, 0, 0.0,
                   "exhausted")
    v = L.liveness(system, Bounds(), fake)
    assert (v.verdict, v.property) == ("violation", "liveness")  # it loops: no deadlock
    stuck = _machine((_call_cpu1, ()), (_load_once, ()))
    v = L.liveness(stuck, Bounds(), fake)
    assert (v.verdict, v.property) == ("deadlock", "deadlock")
    assert v.message.startswith("no CPU can move; cpu0: _call_cpu1 waits in CsdLockWait")


# ---- tokens, trails, JSON --------------------------------------------------------------

def test_a_lasso_token_round_trips_and_replays_to_its_cycle():
    system = build("x86-cpumask-2019", users=1)
    v = explore(system, LIVE)
    token = record_token(system, [s.index for s in v.counterexample], v.cycle_start)
    back = decode_for(None, token)
    assert back.cycle_start == 12
    steps, outcome = L.replay_lasso(build(back.protocol, back.variant, **back.params),
                                    list(back.choices), back.cycle_start)
    assert outcome == "cycle" and [s.text for s in steps] == [s.text for s in v.counterexample]
    # the same choices with the cycle said to start elsewhere do not close
    assert L.replay_lasso(system, list(back.choices), 3)[1] == "open"
    # a token without a cycle holds no cycle field at all
    body = record_token(system, [1, 2]).split("-", 1)[1]
    doc = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    assert "cyc" not in doc and doc["c"] == [1, 2]


def test_a_token_whose_cycle_starts_outside_it_is_refused():
    bad = record_token(build("x86-int3-batch"), [0, 1], cycle_start=2)
    with pytest.raises(ScheduleError, match="the cycle starts outside it"):
        decode_for(None, bad)


def test_the_trail_marks_the_cycle():
    system = build("x86-cpumask-2019", users=1)
    v = explore(system, LIVE)
    lines = narrate.columns(v.counterexample, 2, cycle_start=v.cycle_start).splitlines()
    i = lines.index("     " + narrate.CYCLE)
    assert lines[i - 3].split()[0] == "12" and "cpumask_clear_cpu(cpu0" in lines[i - 2]
    assert lines[i + 1].split()[0] == "13"
    assert lines[-2] == "     --- back to step 13: step 13 repeats forever ---"
    assert lines[-1] == "trail ends after 13 steps"
    assert v.to_json()["cycle_start"] == 12


# ---- the search against brute force on small random graphs ------------------------------

@st.composite
def _graphs(draw):
    """A small graph in the liveness pass's shape: edges labelled with a fairness unit
    (0, 1 weak; 2, 3 strong; -1 none), each state enabling its out-edges' units."""
    n = draw(st.integers(1, 5))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1),
                                    st.integers(-1, 3)), max_size=9, unique=True))
    g = F.Graph(states=[(i,) for i in range(n)], succ=[[] for _ in range(n)])
    for k, (i, j, u) in enumerate(edges):
        g.succ[i].append((j, k, u))
    g.enabled = [sum({1 << u for _, _, u in g.succ[i] if u >= 0}) for i in range(n)]
    pending = draw(st.lists(st.integers(0, n - 1), unique=True))
    return g, sorted(pending)


WEAK_BITS, STRONG_BITS = 0b0011, 0b1100


def _fair(g: F.Graph, states: set[int], units: int) -> bool:
    always, some = -1, 0
    for i in states:
        always &= g.enabled[i]
        some |= g.enabled[i]
    return not (always & WEAK_BITS & ~units) and not (some & STRONG_BITS & ~units)


def _strongly_connected(nodes: set[int], edges: list[tuple[int, int]]) -> bool:
    start = next(iter(nodes))
    for forward in (True, False):
        seen, todo = {start}, [start]
        while todo:
            i = todo.pop()
            for a, b in edges:
                x, y = (a, b) if forward else (b, a)
                if x == i and y not in seen:
                    seen.add(y)
                    todo.append(y)
        if seen != nodes:
            return False
    return True


def _brute_force_fair_cycle_exists(g: F.Graph, pending: list[int]) -> bool:
    """Some infinite run inside `pending` is fair iff some set of edges, all taken
    infinitely often, forms a strongly connected graph on the states it visits and
    satisfies fairness there."""
    inside = set(pending)
    edges = [(i, j, u) for i in pending for j, _, u in g.succ[i] if j in inside]
    for r in range(1, len(edges) + 1):
        for sub in itertools.combinations(edges, r):
            nodes = {i for i, _, _ in sub} | {j for _, j, _ in sub}
            units = sum({1 << u for _, _, u in sub if u >= 0})
            if _strongly_connected(nodes, [(i, j) for i, j, _ in sub]) and \
                    _fair(g, nodes, units):
                return True
    return False


@given(_graphs())
@settings(max_examples=400, deadline=None)
def test_fair_components_agree_with_brute_force(case):
    g, pending = case
    found = F.fair_components(g, pending, WEAK_BITS, STRONG_BITS)
    assert bool(found) == _brute_force_fair_cycle_exists(g, pending)
    for comp, taken in found:
        entry = min(comp)
        choices, _, visited = F.fair_cycle(g, entry, set(comp), taken, WEAK_BITS)
        # walk the cycle by its choice indices: it closes, stays inside, and is fair
        i, units = entry, 0
        for idx in choices:
            j, u = next((j, u) for j, k, u in g.succ[i] if k == idx)
            assert j in comp
            units |= 1 << u if u >= 0 else 0
            i = j
        assert i == entry and choices
        assert _fair(g, visited, units)


@given(_graphs())
@settings(max_examples=200, deadline=None)
def test_sccs_are_the_mutual_reachability_classes(case):
    g, pending = case
    inside = set(pending)

    def reach(i: int) -> set[int]:
        seen, todo = {i}, [i]
        while todo:
            for j, _, _ in g.succ[todo.pop()]:
                if j in inside and j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen
    r = {i: reach(i) for i in pending}
    got = sorted(sorted(c) for c in F.sccs(g, pending))
    want = sorted({tuple(sorted(j for j in pending if j in r[i] and i in r[j]))
                   for i in pending})
    assert got == [list(c) for c in want]


def test_the_cycle_told_visits_a_state_where_an_untaken_weak_unit_is_disabled():
    """State 0 loops on itself by a move with no fairness (a fill) while a weakly fair
    move (unit 0, to state 2, off the subgraph) stays enabled there; state 1 disables it.
    The component {0, 1} is fair only through state 1, so the cycle must pass there."""
    g = F.Graph(states=[(0,), (1,), (2,)],
                succ=[[(0, 0, -1), (1, 1, -1), (2, 2, 0)], [(0, 0, -1)], []])
    g.enabled = [1, 0, 0]
    (comp, taken), = F.fair_components(g, [0, 1], WEAK_BITS, STRONG_BITS)
    choices, _, visited = F.fair_cycle(g, 0, set(comp), taken, WEAK_BITS)
    assert (choices, visited) == ([1, 0], {0, 1})


def test_a_liveness_pass_past_the_step_bound_says_bound():
    """The pass keeps the step bound: a state further than it from the initial one stops
    the pass there, never "safe" (the int3 batch's farthest state is 67 moves away)."""
    system = build("x86-int3-batch")
    safe = explore(system)
    assert L.liveness(system, Bounds(max_depth=67), safe).verdict == "safe"
    v = L.liveness(system, Bounds(max_depth=66), safe)
    assert (v.verdict, v.describe_stop(), v.states) == ("bound", "step bound 66 reached", 815)
