"""The exhaustive explorer: breadth-first search of every choice, with state caching.

Owns: `explore(system, bounds) -> Verdict` (the only driver) and `replay(system, choices)`.
Imports: machine, check.verdict. Never imports kernel or catalogue.

Breadth-first order makes the first violation found a shortest one (fewest moves); among
equally short ones it is the first in the order the machine lists moves, so the result is
deterministic. States are hashed after CPU symmetry (machine/symmetry.py); the stored
parent links are between representatives, and `_concretize` maps the path back onto real
CPU numbers by renumbering move by move, then re-runs it through `Machine.step` so that the
trail is told by replaying, never from a log (STYLE.md rule 28).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from crossmod.check.reduction import ample
from crossmod.check.verdict import Bounds, Step, Verdict
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine, Move
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.symmetry import Canonicalizer
from crossmod.machine.system import System

Progress = Callable[[int, int, int], None]


def explore(system: System, bounds: Bounds | None = None,
            progress: Progress | None = None) -> Verdict:
    """Explore every interleaving of `system` within `bounds`."""
    bounds = bounds or Bounds()
    t0 = time.perf_counter()
    m = Machine(system.config, identity=bounds.identity)
    m.narrate = False
    canon = Canonicalizer(system.config) if (bounds.symmetry and system.config.symmetric) else None
    por = bounds.por and bool(system.config.readers)
    ignore = bounds.ignore
    init = m.initial_state()
    if canon:
        init, _ = canon(init)
    parent: dict[tuple, tuple[tuple, Move] | None] = {init: None}
    frontier: deque[tuple] = deque([init])
    depth, transitions, found, stop = 0, 0, None, "exhausted"
    while frontier and found is None:
        level, frontier = frontier, deque()
        fresh: set[tuple] = set()  # discovered at depth+1, while expanding this level
        depth += 1
        if depth > bounds.max_depth:
            stop = f"step bound {bounds.max_depth} reached"
            break
        for s in level:
            mv = m.moves(s)
            if not mv:
                if any(cpu[STACK] for cpu in s[CPUS]) and "deadlock" not in ignore:
                    found = ("deadlock", s, None, _deadlock_message(m, s))
                    break
                continue
            amp = _ample(m, s, mv, por)
            succ = _successors(m, canon, s, amp, parent, fresh, ignore)
            # C3: a move of the ample set may close a cycle. And a move cut for breaking an
            # ignored property is visible (C2): the persistent set it belongs to may be left
            # with no move at all, so the state is expanded fully (check/reduction.py, 6).
            if len(amp) < len(mv) and (succ[2] or succ[3]):
                succ = _successors(m, canon, s, mv, parent, fresh, ignore)
            found = succ[1]
            transitions += len(succ[0])
            for t, move in succ[0]:
                if t not in parent:
                    parent[t] = (s, move)
                    frontier.append(t)
                    fresh.add(t)
            if found:
                break
            if len(parent) > bounds.max_states:
                stop = f"state limit {bounds.max_states} reached"
                frontier.clear()
                break
            if bounds.max_seconds and time.perf_counter() - t0 > bounds.max_seconds:
                stop = f"time limit {bounds.max_seconds}s reached"
                frontier.clear()
                break
        if progress:
            progress(len(parent), transitions, depth)
    v = _verdict(system, m, canon, parent, found, stop, transitions, depth, t0, por, ignore)
    if bounds.liveness and v.verdict == "safe" and "liveness" not in ignore:
        from crossmod.check.liveness import liveness  # it replays through this module

        return liveness(system, bounds, v, progress)
    return v


def _ample(m: Machine, s: tuple, mv: list[Move], por: bool) -> list[Move]:
    if not por:
        return mv
    return ample(m, s, mv)


def _successors(m: Machine, canon: Canonicalizer | None, s: tuple, moves: list[Move],
                parent: dict, fresh: set, ignore: frozenset[str] = frozenset()
                ) -> tuple[list[tuple[tuple, Move]], tuple | None, bool, bool]:
    """(successor, move) pairs, the first violation met, whether a successor is no deeper
    than `s` (known before this level): every cycle has such an edge, so expanding its
    source fully leaves no cycle without a fully expanded state (the C3 proviso for
    breadth-first search), and whether a move was cut for breaking an ignored property."""
    out, seen, cut = [], False, False
    for move in moves:
        try:
            t, _ = m.step(s, move)
        except Violation as v:
            if v.prop in ignore:
                cut = True
                continue
            return out, (v.prop, s, move, v.message), seen, cut
        if canon:
            t, _ = canon(t, s)
        seen = seen or (t in parent and t not in fresh)
        out.append((t, move))
    return out, None, seen, cut


def _verdict(system: System, m: Machine, canon: Canonicalizer | None, parent: dict,
             found: tuple | None, stop: str, transitions: int, depth: int,
             t0: float, por: bool, ignore: frozenset[str] = frozenset()) -> Verdict:
    base = dict(protocol=system.name, variant=system.variant,
                config=system.describe_config(), states=len(parent),
                transitions=transitions)
    stats = {"routine_nodes": len(m.routines.nodes), "replays": m.routines.replays,
             "symmetry": canon is not None, "partial_order": por,
             "ignored": sorted(ignore)}
    if found is None:
        verdict = "safe" if stop == "exhausted" else "bound"
        msg = "no violation in any interleaving" if verdict == "safe" else stop
        if verdict == "safe" and ignore:
            msg += " (ignoring " + ", ".join(sorted(ignore)) + ")"
        return Verdict(**base, verdict=verdict, property=None, message=msg, depth=depth,
                       seconds=time.perf_counter() - t0, stop_reason=stop, stats=stats)
    _, s, move, _ = found
    path = _path(parent, s) + ([move] if move else [])
    choices, prop, message = _concretize(m, canon, path)
    steps = replay_steps(m, choices)
    verdict = "deadlock" if prop == "deadlock" else "violation"
    return Verdict(**base, verdict=verdict, property=prop, message=message, depth=len(steps),
                   seconds=time.perf_counter() - t0, stop_reason="first violation",
                   counterexample=steps, stats=stats)


def _path(parent: dict, s: tuple) -> list[Move]:
    moves: list[Move] = []
    link = parent[s]
    while link is not None:
        s, move = link
        moves.append(move)
        link = parent[s]
    moves.reverse()
    return moves


def _concretize(m: Machine, canon: Canonicalizer | None, path: list[Move]
                ) -> tuple[list[int], str, str]:
    """Map a path of representative moves onto real CPU numbers; returns the choice indices
    of the concrete run and the property it breaks with the message, told in the concrete
    run's CPU numbers (the representative's may differ).

    `sigma[k]` is the number concrete CPU k has in the representative. It is composed move
    by move from the renumberings the canonicalizer chose, never recomputed from the
    concrete state: canonicalizing a concrete state afresh need not give the representative
    the search stored (when CPUs mention one another the representative is not unique), so
    a move read through a fresh renumbering may name the wrong CPU or none at all.
    """
    s = m.initial_state()
    rep, sigma = s, list(range(m.cfg.ncpus))
    if canon:
        rep, perm = canon(s)
        sigma = list(perm) if perm is not None else sigma
    choices: list[int] = []
    for move in path:
        inverse = {new: old for old, new in enumerate(sigma)}
        concrete = (inverse[move[0]], move[1], move[2])
        choices.append(m.moves(s).index(concrete))
        try:
            s, _ = m.step(s, concrete)
        except Violation as v:
            return choices, v.prop, v.message
        if canon:
            t, _ = m.step(rep, move)
            rep, perm = canon(t, rep)
            if perm is not None:
                sigma = [perm[k] for k in sigma]
    if not m.moves(s) and any(cpu[STACK] for cpu in s[CPUS]):
        return choices, "deadlock", _deadlock_message(m, s)
    raise AssertionError("the concretized path ends in neither a violation nor a deadlock")


def replay_steps(m: Machine, choices: list[int]) -> list[Step]:
    """Run `choices` (indices into each state's enabled moves) and narrate every step; the
    last step's text carries the violation when the run ends in one."""
    m.narrate = True
    s = m.initial_state()
    steps: list[Step] = []
    for i, idx in enumerate(choices):
        mv = m.moves(s)
        if not 0 <= idx < len(mv):
            raise ReplayError(f"choice {i}: index {idx} out of range (0..{len(mv) - 1}): the "
                              "schedule does not fit this protocol")
        move = mv[idx]
        try:
            s, text = m.step(s, move)
        except Violation as v:
            steps.append(Step(idx, move[0], move[1], move[2], f"VIOLATION {v.prop}: {v.message}"))
            return steps
        steps.append(Step(idx, move[0], move[1], move[2], text))
    if not m.moves(s) and any(cpu[STACK] for cpu in s[CPUS]):
        steps.append(Step(-1, -1, "deadlock", 0, "DEADLOCK: " + _deadlock_message(m, s)))
    return steps


class ReplayError(Exception):
    """A schedule that no longer fits the protocol it was recorded on."""


def replay_schedule(system: System, choices: list[int], identity: str = "locals") -> list[Step]:
    """Re-run a recorded schedule on `system`; the trail ends with the violation, if any."""
    return replay_steps(Machine(system.config, identity=identity), choices)


def _deadlock_message(m: Machine, s: tuple) -> str:
    stuck = [f"cpu{c}: {m.blocked_on(s, c)}" for c, cpu in enumerate(s[CPUS]) if cpu[STACK]]
    return "no CPU can move; " + "; ".join(stuck)
