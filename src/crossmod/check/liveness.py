"""Liveness (DESIGN.md property 5): under fairness, every started routine completes.

Owns: `liveness(system, bounds, safe) -> Verdict`, run after a safe search when
`Bounds.liveness` asks for it; the obligations a state has pending; the state graph it is
judged on; the lasso told as choices and in kernel terms; `replay_lasso`. Imports:
machine, check.verdict, check.fairness, check.explore (to narrate by replaying).

What is checked. Every CPU owes the machine an *obligation* while it has one: its task
must finish (every patch, flush and key flip a task starts is a routine it runs), and every
handler it takes (IPI, NMI, #BP) must return. A CPU declared `MachineConfig.endless` runs its
task forever on purpose (user code), so it owes only the handlers above its task. An
obligation is pending on CPU c in a state when c's stack is deeper than that base (0 for
the task, 1 for an endless CPU's handlers). A violation is an infinite fair run on which
some obligation stays pending forever: CPU c never gets back to its base -- it waits, or it
spins, while the others go on. The state space is finite, so such a run is a lasso: a path
from the initial state (the prefix) into a cycle that repeats forever.

Fairness (TLA+'s WF and SF, per CPU and kind of move; machine/machine.py lists the kinds):
  run    weak: a CPU that can go on executing, continuously, does (a spin loop whose
         condition only flickers true may miss it forever, so nothing stronger is assumed)
  drain  weak: a store buffer that stays non-empty drains
  irq    strong: a pending IPI that is deliverable infinitely often is taken -- on x86 a
         pending interrupt is taken at the first instruction boundary with IF=1, so every
         real run is fair in this sense, and a CPU that passes through an IRQs-off region
         (a #BP handler) on every turn of a cycle does not dodge its IPI forever
  nmi, fill   none: the environment need never send an NMI nor the page walker fetch.
Fairness only removes runs no real machine has: a real livelock is never excused by it.

The search (SPIN's acceptance-cycle search and TLC's liveness checking do the same in
their ways): build the whole reachable graph breadth first -- no partial-order reduction
(its ample sets preserve what is reachable, not which CPU waits on a cycle) and no CPU
symmetry (a cycle through renumbered states would have to carry the renumbering) -- then,
per CPU c, look for a fair component of the subgraph of states where c's obligation is
pending (check/fairness.py). The frame at c's base depth stays the same along an edge
between two such states: a move pops at most the top frame and pushes nothing after
popping, so the frame could change only through a state where the stack is at or below
the base, which is outside the subgraph. The component told is the one nearest to the
initial state (the prefix is a shortest path to its shallowest state), and its cycle is
fair by itself (`fairness.fair_cycle`).

States where a move breaks an ignored property (`Bounds.ignore`) lose that move, as in the
explorer; a violation or a deadlock the reduced search did not report is reported here,
with its shortest path in the full graph (the reductions are meant to make that impossible).
Cycles close only under the "locals" routine identity: under "history" every turn of a loop
is a new state, so a system with a loop is infinite and the pass ends at a bound (never at
"safe").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from crossmod.check import fairness as F
from crossmod.check.fairness import Graph
from crossmod.check.verdict import (
    Bounds,
    Deadlock,
    Property,
    StopReason,
    Trail,
    Verdict,
    VerdictKind,
)
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.machine.routines import routine_name
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.system import System

Progress = Callable[[int, int, int], None]

FRAME_NAMES = {"task": "task", "irq": "IPI handler", "nmi": "NMI handler", "bp": "#BP handler"}


@dataclass(frozen=True)
class Lasso:
    """A fair cycle on which `cpu`'s obligation stays pending: the choices of the prefix,
    then of the cycle (the cycle ends where it starts, in state `entry`)."""

    cpu: int
    entry: int
    prefix: tuple[int, ...]
    cycle: tuple[int, ...]
    movers: tuple[int, ...]  # CPUs that take a move on the cycle
    stuck: tuple[int, ...]  # CPUs whose obligation is pending on every state of the cycle


class _Stop(Exception):
    """The graph could not be built: a bound was reached (`reason`, `limit`), or a property
    broke (`found`)."""

    def __init__(self, reason: StopReason, limit: float | None = None,
                 found: tuple[list[int], str, str] | None = None) -> None:
        super().__init__(reason.describe(limit))
        self.reason = reason
        self.limit = limit
        self.found = found  # (choices to the violation, property, message)


def base_depth(m: Machine, c: int) -> int:
    """The stack depth CPU c must get back to: its task finished (0), or for an endless
    CPU every handler returned (1)."""
    return 1 if c in m.cfg.endless else 0


def pending_mask(m: Machine, s: tuple) -> int:
    out = 0
    for c, cpu in enumerate(s[CPUS]):
        if len(cpu[STACK]) > base_depth(m, c):
            out |= 1 << c
    return out


def liveness(system: System, bounds: Bounds, safe: Verdict,
             progress: Progress | None = None) -> Verdict:
    """Check property 5 on `system`, whose safety search gave `safe`; the verdict keeps the
    safety search's states and transitions and adds this pass's under stats["liveness"]."""
    t0 = time.perf_counter()
    m = Machine(system.config, identity=bounds.identity)
    m.narrate = False
    g = Graph()
    try:
        state_graph(m, bounds, progress, g, spent=safe.seconds)
    except _Stop as stop:
        return _stopped(m, g, safe, stop, t0)
    lasso = find_lasso(m, g)
    stats = {**safe.stats, "liveness": _figures(g, t0)}
    seconds = safe.seconds + time.perf_counter() - t0
    if lasso is None:
        return replace(safe, stats=stats, seconds=seconds,
                       message=safe.message + "; every started routine completes under "
                       f"fairness ({len(g.states):,} states, no reduction)")
    from crossmod.check.explore import replay_steps

    steps = replay_steps(m, [*lasso.prefix, *lasso.cycle])
    return replace(safe, verdict=VerdictKind.VIOLATION, property=Property.LIVENESS,
                   message=describe(m, g.states[lasso.entry], lasso), depth=len(steps),
                   seconds=seconds, stop_reason=StopReason.FIRST_VIOLATION,
                   counterexample=steps,
                   cycle_start=len(lasso.prefix), stats=stats)


def _figures(g: Graph, t0: float) -> dict[str, float | int]:
    return {"states": len(g.states), "transitions": g.transitions,
            "seconds": round(time.perf_counter() - t0, 3)}


def state_graph(m: Machine, bounds: Bounds, progress: Progress | None = None,
                g: Graph | None = None, spent: float = 0.0) -> Graph:
    """The whole reachable graph, breadth first (into `g` when given, so that a caller
    keeps what was built when it stops); raises `_Stop` when a bound is reached (`spent`:
    seconds of `bounds.max_seconds` already used) or a move breaks a property that is not
    ignored."""
    t0 = time.perf_counter()
    g = Graph() if g is None else g
    index: dict[tuple, int] = {}
    _add(m, g, index, m.initial_state(), None)
    level_end, depth, i = 1, 0, 0
    while i < len(g.states):
        if i == level_end:
            level_end, depth = len(g.states), depth + 1
            if progress:
                progress(len(g.states), g.transitions, depth)
        at_bound = bounds.max_depth if depth >= bounds.max_depth else None
        _expand(m, g, index, i, at_bound, bounds.ignore)
        if (passed := bounds.exceeded(len(g.states), t0 - spent)) is not None:
            raise _Stop(*passed)
        i += 1
    return g


def _add(m: Machine, g: Graph, index: dict[tuple, int], s: tuple,
         parent: tuple[int, int] | None) -> int:
    index[s] = len(g.states)
    g.states.append(s)
    g.parent.append(parent)
    g.pending.append(pending_mask(m, s))
    return index[s]


def _expand(m: Machine, g: Graph, index: dict[tuple, int], i: int, at_bound: int | None,
            ignore: frozenset[str]) -> None:
    """State i's edges and enabled units, adding the states they reach -- none when state
    i is `at_bound` moves deep already: reaching one stops the search there."""
    s = g.states[i]
    moves = m.moves(s)
    if not moves and any(cpu[STACK] for cpu in s[CPUS]) and "deadlock" not in ignore:
        raise _Stop(StopReason.FIRST_VIOLATION, found=(
            F.path(g, i), Property.DEADLOCK, Deadlock.of(m, s).message))
    edges, enabled = [], 0
    for idx, move in enumerate(moves):
        try:
            t, _ = m.step(s, move)
        except Violation as v:
            if v.prop in ignore:
                continue
            raise _Stop(StopReason.FIRST_VIOLATION,
                        found=([*F.path(g, i), idx], v.prop, v.message)) from None
        u = F.unit(move[0], move[1])
        if u >= 0:
            enabled |= 1 << u
        j = index.get(t)
        if j is None:
            if at_bound is not None:
                raise _Stop(StopReason.STEP_BOUND, at_bound)
            j = _add(m, g, index, t, (i, idx))
        edges.append((j, idx, u))
    g.succ.append(edges)
    g.enabled.append(enabled)
    g.transitions += len(edges)


def _stopped(m: Machine, g: Graph, safe: Verdict, stop: _Stop, t0: float) -> Verdict:
    done = replace(safe, stats={**safe.stats, "liveness": _figures(g, t0)},
                   seconds=safe.seconds + time.perf_counter() - t0)
    if stop.found is None:
        return replace(done, verdict=VerdictKind.BOUND,
                       message=f"liveness not decided: {stop.reason.describe(stop.limit)}",
                       stop_reason=stop.reason, stop_limit=stop.limit)
    from crossmod.check.explore import replay_steps

    choices, prop, message = stop.found
    steps = replay_steps(m, choices)
    return replace(done, verdict=VerdictKind.DEADLOCK if prop == Property.DEADLOCK else
                   VerdictKind.VIOLATION,
                   property=prop, message=message, depth=len(steps),
                   stop_reason=StopReason.FIRST_VIOLATION, counterexample=steps)


# ---- fair cycles ----------------------------------------------------------------------

def find_lasso(m: Machine, g: Graph) -> Lasso | None:
    """The lasso of the fair component nearest to the initial state, over every CPU's
    obligation (the lowest CPU number among equally near ones); None when there is none."""
    ncpus = m.cfg.ncpus
    weak, strong = F.masks(ncpus, F.WEAK), F.masks(ncpus, F.STRONG)
    best: tuple[int, int, list[int], int] | None = None  # (entry, cpu, component, taken)
    # a cycle of a subgraph is a cycle of the graph: only states on one can be on a lasso
    cyclic = sorted(i for comp in F.sccs(g, list(range(len(g.states))))
                    if len(comp) > 1 or any(j == comp[0] for j, _, _ in g.succ[comp[0]])
                    for i in comp)
    for c in range(ncpus):
        nodes = [i for i in cyclic if g.pending[i] >> c & 1]
        for comp, taken in F.fair_components(g, nodes, weak, strong):
            entry = min(comp)
            if best is None or entry < best[0]:
                best = (entry, c, comp, taken)
    if best is None:
        return None
    entry, c, comp, taken = best
    cycle, movers, visited = F.fair_cycle(g, entry, set(comp), taken, weak)
    stuck = tuple(k for k in range(ncpus) if all(g.pending[i] >> k & 1 for i in visited))
    return Lasso(c, entry, tuple(F.path(g, entry)), tuple(cycle), movers, stuck)


# ---- telling it -----------------------------------------------------------------------

def describe(m: Machine, s: tuple, lasso: Lasso) -> str:
    """What never completes, in the cycle's first state, and who keeps moving."""
    c = lasso.cpu
    others = [f"cpu{k}" for k in lasso.movers if k != c]
    who = (", ".join(others) + " keep" + "s" * (len(others) == 1) + " moving") if others \
        else "no other CPU moves"
    doing = "spins" if c in lasso.movers else "never moves"
    n = len(lasso.cycle)
    text = (f"{_obligation(m, s, c)} never {_ends(m, s, c)}: in a fair cycle of {n} "
            f"move{'s' * (n != 1)} that repeats forever {who} while cpu{c} {doing}: "
            f"{_waits(m, s, c)}")
    for k in lasso.stuck:
        if k != c:
            text += f"; {_obligation(m, s, k)} never {_ends(m, s, k)} either: " \
                    f"{_waits(m, s, k)}"
    return text


def _waits(m: Machine, s: tuple, c: int) -> str:
    blocked = m.blocked_on(s, c)
    return blocked.words() if blocked is not None else "idle"


def _frame(m: Machine, s: tuple, c: int) -> tuple:
    return s[CPUS][c][STACK][base_depth(m, c)]


def _obligation(m: Machine, s: tuple, c: int) -> str:
    frame = _frame(m, s, c)
    name = routine_name(m.routines.nodes[frame[1]].root[0])
    return f"cpu{c}'s {FRAME_NAMES.get(frame[0], frame[0])} {name}"


def _ends(m: Machine, s: tuple, c: int) -> str:
    return "finishes" if _frame(m, s, c)[0] == "task" else "returns"


def replay_lasso(system: System, choices: list[int], cycle_start: int,
                 identity: str = "locals") -> tuple[Trail, str]:
    """Re-run a lasso: the trail, and "cycle" when its cycle still closes (the state after
    the last choice is the state after the first `cycle_start`), "violation" when a step
    now breaks a property, "open" otherwise."""
    from crossmod.check.explore import replay_steps

    m = Machine(system.config, identity=identity)
    steps = replay_steps(m, choices)  # refuses choices that do not fit (ReplayError)
    s = m.initial_state()
    at = s if cycle_start == 0 else None
    try:
        for n, idx in enumerate(choices, 1):
            s, _ = m.step(s, m.moves(s)[idx])
            if n == cycle_start:
                at = s
    except Violation:
        return steps, "violation"
    return steps, "cycle" if s == at and 0 <= cycle_start < len(choices) else "open"
