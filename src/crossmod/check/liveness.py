"""Liveness (DESIGN.md property 5): under fairness, every started routine completes.

Owns: `liveness(system, bounds, safe) -> Verdict`, run after a safe search when
`Bounds.liveness` asks for it, and `replay_lasso`. Imports: machine, check.verdict,
check.explore (to narrate the counterexample by replaying it).

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
per CPU c, take the subgraph of states where c's obligation is pending and decompose it
into strongly connected components (iterative Tarjan). The frame at c's base depth stays
the same along an edge between two such states: a move pops at most the top frame and
pushes nothing after popping, so the frame could change only through a state where the
stack is at or below the base, which is outside the subgraph. A component with an edge
holds a fair cycle iff (Emerson-Lei / Streett emptiness):
  - no weakly fair kind is enabled on all its states and taken on none of its edges, and
  - no strongly fair kind is enabled somewhere in it and taken on none of its edges;
when only the second fails, the states where the offending kind is enabled cannot be on a
fair cycle: they are removed and the rest decomposed again. The cycle told is built inside
a fair component from its state nearest to the initial one (the prefix is a shortest path
there): it takes an edge of every kind the component takes and visits a state where each
weakly fair kind it never takes is disabled, so the cycle itself is fair.

States where a move breaks an ignored property (`Bounds.ignore`) lose that move, as in the
explorer; a violation or a deadlock the reduced search did not report is reported here,
with its shortest path in the full graph (the reductions are meant to make that impossible).
Cycles close only under the "locals" routine identity: under "history" every turn of a loop
is a new state, so a system with a loop is infinite and the pass ends at a bound (never at
"safe").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from crossmod.check.verdict import Bounds, Step, Verdict
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.machine.routines import routine_name
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.system import System

Progress = Callable[[int, int, int], None]

KINDS = ("run", "drain", "irq")  # the fairness units of a CPU, in this order
WEAK = ("run", "drain")
STRONG = ("irq",)
FRAME_NAMES = {"task": "task", "irq": "IPI handler", "nmi": "NMI handler", "bp": "#BP handler"}


def _unit(c: int, kind: str) -> int:
    """The bit of (CPU, kind of move) in a fairness mask; -1 for moves with no fairness."""
    return c * len(KINDS) + KINDS.index(kind) if kind in KINDS else -1


def _masks(ncpus: int, kinds: tuple[str, ...]) -> int:
    return sum(1 << _unit(c, k) for c in range(ncpus) for k in kinds)


@dataclass
class Graph:
    """The reachable states by id in breadth-first order (so a smaller id is no deeper),
    each with its edges `(target, choice index, fairness unit or -1)`, the fairness units
    its moves enable (moves cut for an ignored property excluded), the CPUs with an
    obligation pending, and its breadth-first parent `(id, choice index)`."""

    states: list[tuple] = field(default_factory=list)
    succ: list[list[tuple[int, int, int]]] = field(default_factory=list)
    enabled: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    parent: list[tuple[int, int] | None] = field(default_factory=list)
    transitions: int = 0


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
    """The graph could not be built: a bound was reached, or a property broke."""

    def __init__(self, reason: str, found: tuple[list[int], str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
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
    return replace(safe, verdict="violation", property="liveness",
                   message=describe(m, g.states[lasso.entry], lasso), depth=len(steps),
                   seconds=seconds, stop_reason="first violation", counterexample=steps,
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

    def add(s: tuple, parent: tuple[int, int] | None) -> int:
        index[s] = len(g.states)
        g.states.append(s)
        g.parent.append(parent)
        g.pending.append(pending_mask(m, s))
        return index[s]

    add(m.initial_state(), None)
    level_end, depth, i = 1, 0, 0
    while i < len(g.states):
        if i == level_end:
            level_end, depth = len(g.states), depth + 1
            if progress:
                progress(len(g.states), g.transitions, depth)
        s = g.states[i]
        moves = m.moves(s)
        if not moves and any(cpu[STACK] for cpu in s[CPUS]) and "deadlock" not in bounds.ignore:
            stuck = "; ".join(f"cpu{c}: {m.blocked_on(s, c)}"
                              for c, cpu in enumerate(s[CPUS]) if cpu[STACK])
            raise _Stop("deadlock", (_path(g, i), "deadlock", f"no CPU can move; {stuck}"))
        edges, enabled = [], 0
        for idx, move in enumerate(moves):
            try:
                t, _ = m.step(s, move)
            except Violation as v:
                if v.prop in bounds.ignore:
                    continue
                raise _Stop(v.prop, ([*_path(g, i), idx], v.prop, v.message)) from None
            u = _unit(move[0], move[1])
            if u >= 0:
                enabled |= 1 << u
            j = index.get(t)
            if j is None:
                if depth + 1 > bounds.max_depth:
                    raise _Stop(f"step bound {bounds.max_depth} reached")
                j = add(t, (i, idx))
            edges.append((j, idx, u))
        g.succ.append(edges)
        g.enabled.append(enabled)
        g.transitions += len(edges)
        if len(g.states) > bounds.max_states:
            raise _Stop(f"state limit {bounds.max_states} reached")
        if bounds.max_seconds and time.perf_counter() - t0 + spent > bounds.max_seconds:
            raise _Stop(f"time limit {bounds.max_seconds}s reached")
        i += 1
    return g


def _path(g: Graph, i: int) -> list[int]:
    out: list[int] = []
    link = g.parent[i]
    while link is not None:
        i, idx = link
        out.append(idx)
        link = g.parent[i]
    out.reverse()
    return out


def _stopped(m: Machine, g: Graph, safe: Verdict, stop: _Stop, t0: float) -> Verdict:
    done = replace(safe, stats={**safe.stats, "liveness": _figures(g, t0)},
                   seconds=safe.seconds + time.perf_counter() - t0)
    if stop.found is None:
        return replace(done, verdict="bound", message=f"liveness not decided: {stop.reason}",
                       stop_reason=stop.reason)
    from crossmod.check.explore import replay_steps

    choices, prop, message = stop.found
    steps = replay_steps(m, choices)
    return replace(done, verdict="deadlock" if prop == "deadlock" else "violation",
                   property=prop, message=message, depth=len(steps),
                   stop_reason="first violation", counterexample=steps)


# ---- fair cycles ----------------------------------------------------------------------

def find_lasso(m: Machine, g: Graph) -> Lasso | None:
    """The lasso of the fair component nearest to the initial state, over every CPU's
    obligation (the lowest CPU number among equally near ones); None when there is none."""
    ncpus = m.cfg.ncpus
    weak, strong = _masks(ncpus, WEAK), _masks(ncpus, STRONG)
    best: tuple[int, int, list[int], int] | None = None  # (entry, cpu, component, taken)
    # a cycle of a subgraph is a cycle of the graph: only states on one can be on a lasso
    cyclic = sorted(i for comp in sccs(g, list(range(len(g.states))))
                    if len(comp) > 1 or any(j == comp[0] for j, _, _ in g.succ[comp[0]])
                    for i in comp)
    for c in range(ncpus):
        nodes = [i for i in cyclic if g.pending[i] >> c & 1]
        for comp, taken in fair_components(g, nodes, weak, strong):
            entry = min(comp)
            if best is None or entry < best[0]:
                best = (entry, c, comp, taken)
    if best is None:
        return None
    entry, c, comp, taken = best
    cycle, movers, visited = _fair_cycle(g, entry, set(comp), taken, weak)
    stuck = tuple(k for k in range(ncpus) if all(g.pending[i] >> k & 1 for i in visited))
    return Lasso(c, entry, tuple(_path(g, entry)), tuple(cycle), movers, stuck)


def fair_components(g: Graph, nodes: list[int], weak: int, strong: int
                    ) -> list[tuple[list[int], int]]:
    """The components of the subgraph on `nodes` that hold a fair cycle, each with the
    fairness units its edges take (Streett emptiness, refined on strong fairness)."""
    out, work = [], [nodes]
    while work:
        for comp in sccs(g, work.pop()):
            inside = set(comp)
            taken, has_edge = 0, False
            always, some = -1, 0
            for i in comp:
                always &= g.enabled[i]
                some |= g.enabled[i]
                for j, _, u in g.succ[i]:
                    if j in inside:
                        has_edge = True
                        if u >= 0:
                            taken |= 1 << u
            if not has_edge or always & weak & ~taken:
                continue
            bad = some & strong & ~taken
            if not bad:
                out.append((comp, taken))
                continue
            rest = [i for i in comp if not g.enabled[i] & bad]
            if rest:
                work.append(rest)
    return out


def sccs(g: Graph, nodes: list[int]) -> list[list[int]]:
    """Strongly connected components of the subgraph induced by `nodes` (iterative
    Tarjan), each a list of state ids."""
    n = len(g.states)
    inside = bytearray(n)
    for v in nodes:
        inside[v] = 1
    index = [-1] * n
    low = [0] * n
    on_stack = bytearray(n)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in nodes:
        if index[root] >= 0:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = 1
        work = [(root, 0)]
        while work:
            v, k = work[-1]
            edges = g.succ[v]
            while k < len(edges) and not inside[edges[k][0]]:
                k += 1
            if k < len(edges):
                work[-1] = (v, k + 1)
                w = edges[k][0]
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = 1
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = 0
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def _fair_cycle(g: Graph, entry: int, comp: set[int], taken: int, weak: int
                ) -> tuple[list[int], tuple[int, ...], set[int]]:
    """A cycle from `entry` back to it inside `comp` that takes an edge of every unit in
    `taken` and visits a state where each weakly fair unit never taken is disabled: its
    choices, the CPUs that move on it and the states it visits. Greedy: always on to the
    nearest state that pays something still owed, then home by a shortest path."""
    owed = {"edges": taken, "states": weak & ~taken & g.enabled[entry]}
    choices: list[int] = []
    movers: set[int] = set()
    visited = {entry}

    def walk(path: list[tuple[int, int, int, int]]) -> None:
        for _, idx, j, u in path:
            choices.append(idx)
            visited.add(j)
            owed["states"] &= g.enabled[j]
            if u >= 0:
                owed["edges"] &= ~(1 << u)
                movers.add(u // len(KINDS))

    def owed_edge(i: int) -> tuple[int, int, int, int] | None:
        for j, idx, u in g.succ[i]:
            if j in comp and u >= 0 and owed["edges"] >> u & 1:
                return (i, idx, j, u)
        return None

    cur = entry
    while owed["edges"] or owed["states"]:
        path, cur = _bfs(g, cur, comp, lambda i: bool(
            owed["states"] & ~g.enabled[i]) or owed_edge(i) is not None)
        walk(path)
        edge = owed_edge(cur)
        if edge is not None:
            walk([edge])
            cur = edge[2]
    path, _ = _bfs(g, cur, comp, lambda i: i == entry, at_least_one=not choices)
    walk(path)
    return choices, tuple(sorted(movers)), visited


def _bfs(g: Graph, start: int, comp: set[int], goal: Callable[[int], bool],
         at_least_one: bool = False) -> tuple[list[tuple[int, int, int, int]], int]:
    """The shortest path inside `comp` from `start` to a state satisfying `goal` (with at
    least one edge if asked), as (source, choice index, target, unit) edges, and the state
    reached."""
    if goal(start) and not at_least_one:
        return [], start
    back: dict[int, tuple[int, int, int]] = {}
    queue = deque([start])
    while queue:
        i = queue.popleft()
        for j, idx, u in g.succ[i]:
            if j not in comp or j in back:
                continue
            back[j] = (i, idx, u)
            if goal(j):
                path = []
                k = j
                while True:
                    src, kidx, ku = back[k]
                    path.append((src, kidx, k, ku))
                    if src == start:
                        break
                    k = src
                path.reverse()
                return path, j
            queue.append(j)
    raise AssertionError("a strongly connected component holds a path between any two states")


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
            f"{m.blocked_on(s, c)}")
    for k in lasso.stuck:
        if k != c:
            text += f"; {_obligation(m, s, k)} never {_ends(m, s, k)} either: " \
                    f"{m.blocked_on(s, k)}"
    return text


def _frame(m: Machine, s: tuple, c: int) -> tuple:
    return s[CPUS][c][STACK][base_depth(m, c)]


def _obligation(m: Machine, s: tuple, c: int) -> str:
    frame = _frame(m, s, c)
    name = routine_name(m.routines.nodes[frame[1]].root[0])
    return f"cpu{c}'s {FRAME_NAMES.get(frame[0], frame[0])} {name}"


def _ends(m: Machine, s: tuple, c: int) -> str:
    return "finishes" if _frame(m, s, c)[0] == "task" else "returns"


def replay_lasso(system: System, choices: list[int], cycle_start: int,
                 identity: str = "locals") -> tuple[list[Step], str]:
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
