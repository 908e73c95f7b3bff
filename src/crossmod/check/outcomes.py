"""Every final state a machine can reach: the litmus-test engine (STYLE.md rule 5).

Owns: `final_states(machine) -> Outcomes` -- an exhaustive breadth-first walk of every
move from every initial state, with state caching, that keeps the states in which every
thread has finished -- and `path_to(outcomes, state)`, the moves that reach one of them
(told by replaying them through `step`, never from a log). Imports: stdlib only.

It asks of the machine what `explore` asks of `machine.Machine`: `initial_states()`,
`moves(state)`, `step(state, move) -> (state, events)` and `final(state)`; a state with no
move that is not final (a thread whose prediction memory never fulfils) is a dead end,
counted, not an outcome. Where `explore` stops at the first violation, this walk has to
finish: a litmus test's verdict is a property of the whole set of outcomes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Walkable(Protocol):
    narrate: bool

    def initial_states(self) -> list[Hashable]: ...
    def moves(self, state: Any) -> list[Any]: ...
    def step(self, state: Any, move: Any) -> tuple[Any, Any]: ...
    def final(self, state: Any) -> bool: ...


class StateLimit(Exception):
    """The walk met more distinct states than its bound allows."""


@dataclass
class Outcomes:
    """What the walk found: the final states, and enough to reach any of them again."""

    finals: list[Any]
    states: int
    transitions: int
    dead_ends: int
    seconds: float
    parent: dict[Any, tuple[Any, Any] | None] = field(repr=False, default_factory=dict)
    edges: dict[Any, list[tuple[Any, Any]]] | None = field(repr=False, default=None)

    def can_finish(self) -> set:
        """The states from which some final state is reachable (needs `edges`)."""
        if self.edges is None:
            raise ValueError("walk with keep_edges=True to ask which states can finish")
        back: dict[Any, list[Any]] = {}
        for s, out in self.edges.items():
            for _, t in out:
                back.setdefault(t, []).append(s)
        seen, todo = set(self.finals), list(self.finals)
        while todo:
            for p in back.get(todo.pop(), ()):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen


def final_states(m: Walkable, max_states: int = 5_000_000,
                 progress: Callable[[int, int], None] | None = None,
                 keep_edges: bool = False) -> Outcomes:
    """Walk every move of `m` from every initial state; raises `StateLimit` past
    `max_states` distinct states. `keep_edges` keeps every (move, successor) of every
    state, for questions about the whole graph (`Outcomes.can_finish`)."""
    t0 = time.perf_counter()
    narrate, m.narrate = m.narrate, False
    parent: dict[Any, tuple[Any, Any] | None] = {}
    queue: deque = deque()
    for s in m.initial_states():
        if s not in parent:
            parent[s] = None
            queue.append(s)
    finals, dead, transitions = [], 0, 0
    edges: dict[Any, list[tuple[Any, Any]]] | None = {} if keep_edges else None
    try:
        while queue:
            s = queue.popleft()
            moves = m.moves(s)
            if not moves:
                if m.final(s):
                    finals.append(s)
                else:
                    dead += 1
                continue
            out = edges.setdefault(s, []) if edges is not None else None
            for mv in moves:
                t, _ = m.step(s, mv)
                transitions += 1
                if out is not None:
                    out.append((mv, t))
                if t not in parent:
                    parent[t] = (s, mv)
                    queue.append(t)
            if len(parent) > max_states:
                raise StateLimit(f"more than {max_states:,} states")
            if progress and len(parent) % 50_000 < len(moves):
                progress(len(parent), transitions)
    finally:
        m.narrate = narrate
    return Outcomes(finals, len(parent), transitions, dead, time.perf_counter() - t0, parent,
                    edges)


def path_to(outcomes: Outcomes, state: Any) -> tuple[Any, list[Any]]:
    """The initial state and the moves the walk took to reach `state`."""
    moves = []
    link = outcomes.parent[state]
    while link is not None:
        state, mv = link
        moves.append(mv)
        link = outcomes.parent[state]
    moves.reverse()
    return state, moves
