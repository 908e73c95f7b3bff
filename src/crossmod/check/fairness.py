"""Fair cycles of a finite labelled graph: the search behind liveness (check/liveness.py).

Owns: `Graph` (states by id, edges labelled with a fairness unit), the units themselves
(a CPU and a kind of move), `sccs` (iterative Tarjan), `fair_components` (Emerson-Lei /
Streett emptiness for weak and strong fairness) and `fair_cycle` (a fair cycle through a
fair component, as choice indices). Imports: stdlib only; knows nothing of machines.

A component with an edge holds a fair cycle iff
  - no weakly fair unit is enabled on all its states and taken on none of its edges, and
  - no strongly fair unit is enabled somewhere in it and taken on none of its edges;
when only the second fails, the states where the offending unit is enabled cannot be on a
fair cycle: they are removed and the rest decomposed again. (A cycle through every state
and edge of a component is fair exactly when the component passes; taking more states and
edges only helps a cycle meet both conditions, so no smaller cycle passes when it fails.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("run", "drain", "irq")  # the fairness units of a CPU, in this order
WEAK = ("run", "drain")
STRONG = ("irq",)


def unit(c: int, kind: str) -> int:
    """The bit of (CPU, kind of move) in a fairness mask; -1 for moves with no fairness."""
    return c * len(KINDS) + KINDS.index(kind) if kind in KINDS else -1


def masks(ncpus: int, kinds: tuple[str, ...]) -> int:
    return sum(1 << unit(c, k) for c in range(ncpus) for k in kinds)


@dataclass
class Graph:
    """The reachable states by id in breadth-first order (so a smaller id is no deeper),
    each with its edges `(target, choice index, fairness unit or -1)`, the fairness units
    enabled in it, a bitmask of what it has pending (liveness: the CPUs that owe an
    obligation), and its breadth-first parent `(id, choice index)`."""

    states: list[tuple] = field(default_factory=list)
    succ: list[list[tuple[int, int, int]]] = field(default_factory=list)
    enabled: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    parent: list[tuple[int, int] | None] = field(default_factory=list)
    transitions: int = 0


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


def fair_cycle(g: Graph, entry: int, comp: set[int], taken: int, weak: int
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


def path(g: Graph, i: int) -> list[int]:
    out: list[int] = []
    link = g.parent[i]
    while link is not None:
        i, idx = link
        out.append(idx)
        link = g.parent[i]
    out.reverse()
    return out
