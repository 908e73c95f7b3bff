"""Helpers shared by the model tests: whole-state-space walks for litmus-style checks."""

from __future__ import annotations

from collections import deque

from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.system import System


def terminal_states(system: System, limit: int = 200_000) -> tuple[Machine, list[tuple]]:
    """Every reachable state with no move left (no symmetry, no reduction)."""
    m = Machine(system.config)
    init = m.initial_state()
    seen, queue, out = {init}, deque([init]), []
    while queue:
        s = queue.popleft()
        moves = m.moves(s)
        if not moves:
            out.append(s)
        for mv in moves:
            try:
                t, _ = m.step(s, mv)
            except Violation:
                continue
            if t not in seen:
                seen.add(t)
                queue.append(t)
                assert len(seen) < limit, "state space larger than the test expects"
    return m, out


def all_states(system: System) -> tuple[Machine, set[tuple]]:
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
    return m, seen


def finished(state: tuple) -> bool:
    return not any(cpu[STACK] for cpu in state[CPUS])
