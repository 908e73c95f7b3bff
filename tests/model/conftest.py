"""Helpers shared by the model tests: whole-state-space walks for litmus-style checks."""

from __future__ import annotations

from collections import deque

from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.system import System


def all_states(system: System, limit: int = 2_000_000) -> tuple[Machine, set[tuple]]:
    """Every reachable state (no symmetry, no reduction; violating moves are cut)."""
    m = Machine(system.config)
    init = m.initial_state()
    seen, queue = {init}, deque([init])
    while queue:
        s = queue.popleft()
        for mv in m.moves(s):
            try:
                t, _ = m.step(s, mv)
            except Violation:
                continue
            if t not in seen:
                seen.add(t)
                queue.append(t)
                assert len(seen) < limit, "state space larger than the test expects"
    return m, seen


def terminal_states(system: System) -> tuple[Machine, list[tuple]]:
    """Every reachable state with no move left."""
    m, seen = all_states(system, limit=200_000)
    return m, [s for s in seen if not m.moves(s)]


def finished(state: tuple) -> bool:
    return not any(cpu[STACK] for cpu in state[CPUS])
