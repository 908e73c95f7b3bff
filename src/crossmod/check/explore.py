"""The exhaustive explorer: breadth-first search of every choice, with state caching.

Owns: `explore(system, bounds, observer=) -> Verdict` (the only search: other engines
watch it through an `Observer`) and `replay_schedule(system, choices) -> Trail`. Imports:
machine, check.verdict, check.reduction (and check.store, which runs the search on a
hash-compact or bitstate store when `Bounds.store` asks). Never imports kernel or catalogue.

Breadth-first order makes the first violation found a shortest one (fewest moves); among
equally short ones it is the first in the order the machine lists moves, so the result is
deterministic. States are hashed after CPU symmetry (machine/symmetry.py); the stored
parent links are between representatives, and `_concretize` maps the path back onto real
CPU numbers by renumbering move by move, then re-runs it through `Machine.step` so that the
trail is told by replaying, never from a log (STYLE.md rule 28).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from crossmod import _engine
from crossmod.check.gcpolicy import long_lived_kept
from crossmod.check.observer import Observer
from crossmod.check.reduction import ample
from crossmod.check.shorten import shortest
from crossmod.check.verdict import (
    Bounds,
    Deadlock,
    Outcome,
    Property,
    Step,
    StopReason,
    Trail,
    Verdict,
    VerdictKind,
)
from crossmod.machine.cpu import Violation
from crossmod.machine.events import Event
from crossmod.machine.machine import Machine, Move
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.symmetry import Canonicalizer
from crossmod.machine.system import System

Progress = Callable[[int, int, int], None]


class ParentLinks(Protocol):
    """What the verdict needs of a search's store: how many states it holds and each
    one's parent link (a dict here; check/parallel.py's workers answer for theirs)."""

    def __len__(self) -> int: ...

    def __getitem__(self, s: tuple, /) -> tuple | None: ...  # (parent, move, ...)


def explore(system: System, bounds: Bounds | None = None,
            progress: Progress | None = None, observer: Observer | None = None, *,
            ranking: Callable[[Machine], Canonicalizer] | None = None) -> Verdict:
    """Explore every interleaving of `system` within `bounds`. `ranking` builds the
    symmetry canonicalizer from the machine (default: CPU states ranked by first sight;
    the parallel search's tests pass check/parallel.py's content ranking). A violation
    found with the partial-order reduction on is made a shortest one (check/shorten.py)."""
    with long_lived_kept():
        v = _explore(system, bounds, progress, observer, ranking)
    # a violation the reduction found may have a shorter path in the full graph
    return shortest(system, bounds or Bounds(), v,
                    lambda sys_, b: explore(sys_, b, ranking=ranking))


def _explore(system: System, bounds: Bounds | None, progress: Progress | None,
             observer: Observer | None, ranking: Callable[[Machine], Canonicalizer] | None
             ) -> Verdict:
    bounds = bounds or Bounds()
    if bounds.store != "exact":
        from crossmod.check.store import explore_compact  # it reuses this module's parts

        return explore_compact(system, bounds, progress, observer)
    t0 = time.perf_counter()
    rss0 = _rss()
    m = Machine(system.config, identity=bounds.identity)
    m.narrate = observer is not None and observer.events
    canon = None
    if bounds.symmetry and system.config.symmetric:
        canon = ranking(m) if ranking is not None else Canonicalizer(system.config)
    por = bounds.por
    ignore = bounds.ignore
    init = m.initial_state()
    if canon:
        canon.intern = m.cpu_tuples
        init, _ = canon(init)
    # each state's link: its parent, the move, and the level that found it (so that "known
    # before this level" is read off the link: one hash of a successor, not three)
    parent: dict[tuple, tuple[tuple, Move, int] | None] = {init: None}
    frontier: deque[tuple] = deque([init])
    depth, transitions = 0, 0
    found: tuple[Property | str, tuple, Move | None, str] | None = None
    stop = StopReason.EXHAUSTED
    limit: Any = None  # states, moves or seconds (a float, compiled, would make 10 10.0)
    while frontier and found is None:
        level, frontier = frontier, deque()
        depth += 1
        if depth > bounds.max_depth:
            stop, limit = StopReason.STEP_BOUND, bounds.max_depth
            break
        for s in level:
            mv = m.moves(s)
            if observer is not None:
                observer.expand(s, mv)
            if not mv:
                if any(cpu[STACK] for cpu in s[CPUS]) and "deadlock" not in ignore:
                    found = (Property.DEADLOCK, s, None, "")
                    break
                continue
            amp = _ample(m, s, mv, por)
            reduced = len(amp) < len(mv)
            succ = _successors(m, canon, s, amp, parent, depth if reduced else 0, ignore)
            # C3: a move of the ample set may close a cycle. And a move cut for breaking an
            # ignored property is visible (C2): the persistent set it belongs to may be left
            # with no move at all, so the state is expanded fully (check/reduction.py, 6).
            if reduced and (succ[2] or succ[3]):
                succ = _successors(m, canon, s, mv, parent, 0, ignore)
            found = succ[1]
            transitions += len(succ[0])
            for t, move, events in succ[0]:
                if observer is not None:
                    observer.transition(s, move, t, events)
                n = len(parent)
                parent.setdefault(t, (s, move, depth))
                if len(parent) != n:  # one hash: t is new (no `is` test on a tuple: the
                    # compiled engine boxes tuples afresh, crossmod/_engine.py)
                    frontier.append(t)
            if found:
                break
            if (passed := bounds.exceeded(len(parent), t0)) is not None:
                stop, limit = passed
                frontier.clear()
                break
        if progress:
            progress(len(parent), transitions, depth)
    v = _verdict(system, m, canon, parent, found, (stop, limit), transitions, depth, t0,
                 por, ignore)
    grown = _rss() - rss0
    v.stats.update(store="exact", rss_growth_bytes=grown,
                   bytes_per_state=round(grown / len(parent)) if grown > 0 else None)
    if bounds.liveness and v.verdict == "safe" and "liveness" not in ignore:
        from crossmod.check.liveness import liveness  # it replays through this module

        return liveness(system, bounds, v, progress)
    return v


def _rss() -> int:
    """This process's resident set in bytes (Linux /proc; 0 elsewhere): its growth over a
    search, divided by the states stored, is the bytes a stored state costs (memo tables
    and the routine table included)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _ample(m: Machine, s: tuple, mv: list[Move], por: bool) -> list[Move]:
    if not por:
        return mv
    return ample(m, s, mv)


def _successors(m: Machine, canon: Canonicalizer | None, s: tuple, moves: list[Move],
                parent: dict[tuple, tuple[tuple, Move, int] | None], level: int,
                ignore: frozenset[str] = frozenset()
                ) -> tuple[list[tuple[tuple, Move, tuple[Event, ...]]], tuple | None, bool, bool]:
    """(successor, move, events) triples, the first violation met, whether a successor is
    no deeper than `s` (known before `level`, the level being expanded: its link was made
    by an earlier one): every cycle has such an edge, so expanding its source fully leaves
    no cycle without a fully expanded state (the C3 proviso for breadth-first search; not
    asked, and False, when `level` is 0: the caller expands `s` fully anyway), and whether
    a move was cut for breaking an ignored property."""
    out: list[tuple[tuple, Move, tuple[Event, ...]]] = []
    seen = cut = False
    for move in moves:
        try:
            t, events = m.step(s, move)
        except Violation as v:
            if v.prop in ignore:
                cut = True
                continue
            return out, (v.prop, s, move, v.message), seen, cut
        if canon:
            t, _ = canon(t, s)
        if level and not seen:
            link = parent.get(t, _ABSENT)
            seen = link is None or (link is not _ABSENT and link[2] < level)
        out.append((t, move, events))
    return out, None, seen, cut


_ABSENT: Any = ("absent",)  # `parent.get`'s default: None is the initial state's link


def search_stats(m: Machine, canon: Canonicalizer | None, por: bool,
                 ignore: frozenset[str]) -> dict[str, Any]:
    """What every search's verdict says of how it ran (its store adds its own)."""
    return {"routine_nodes": len(m.routines.nodes), "replays": m.routines.replays,
            "symmetry": canon is not None, "partial_order": por,
            "ignored": sorted(ignore), "engine": _engine.ENGINE}


def _verdict(system: System, m: Machine, canon: Canonicalizer | None, parent: ParentLinks,
             found: tuple | None, stop: tuple[StopReason, Any], transitions: int,
             depth: int, t0: float, por: bool, ignore: frozenset[str] = frozenset()
             ) -> Verdict:
    base: dict[str, Any] = dict(protocol=system.name, variant=system.variant,
                                config=system.describe_config(), states=len(parent),
                                transitions=transitions)
    stats = search_stats(m, canon, por, ignore)
    if found is None:
        reason, limit = stop
        kind = VerdictKind.SAFE if reason is StopReason.EXHAUSTED else VerdictKind.BOUND
        msg = "no violation in any interleaving" if kind is VerdictKind.SAFE else \
            reason.describe(limit)
        if kind is VerdictKind.SAFE and ignore:
            msg += " (ignoring " + ", ".join(sorted(ignore)) + ")"
        return Verdict(**base, verdict=kind, property=None, message=msg, depth=depth,
                       seconds=time.perf_counter() - t0, stop_reason=reason, stats=stats,
                       stop_limit=limit)
    _, s, move, _ = found
    path = _path(parent, s) + ([move] if move else [])
    choices, prop, message = _concretize(m, canon, path)
    trail = replay_steps(m, choices)
    kind = VerdictKind.DEADLOCK if prop == Property.DEADLOCK else VerdictKind.VIOLATION
    return Verdict(**base, verdict=kind, property=prop, message=message, depth=len(trail),
                   seconds=time.perf_counter() - t0, stop_reason=StopReason.FIRST_VIOLATION,
                   counterexample=trail, stats=stats)


def _path(parent: ParentLinks, s: tuple) -> list[Move]:
    moves: list[Move] = []
    link = parent[s]
    while link is not None:
        s, move = link[0], link[1]
        moves.append(move)
        link = parent[s]
    moves.reverse()
    return moves


def _concretize(m: Machine, canon: Canonicalizer | None, path: list[Move]
                ) -> tuple[list[int], Property | str, str]:
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
    deadlock = _deadlock(m, s)
    if deadlock is not None:
        return choices, Property.DEADLOCK, deadlock.message
    raise AssertionError("the concretized path ends in neither a violation nor a deadlock")


def replay_steps(m: Machine, choices: list[int]) -> Trail:
    """Run `choices` (indices into each state's enabled moves), every step narrated: the
    trail ends at the step that breaks a property, if one does, and says whether no CPU
    can move at its end."""
    m.narrate = True
    s = m.initial_state()
    steps: list[Step] = []
    for i, idx in enumerate(choices):
        mv = m.moves(s)
        if not 0 <= idx < len(mv):
            raise ReplayError(f"choice {i}: index {idx} out of range (0..{len(mv) - 1}): the "
                              "schedule does not fit this protocol")
        c, kind, alt = mv[idx]
        try:
            s, events = m.step(s, mv[idx])
        except Violation as v:
            steps.append(Step(idx, c, kind, alt, v.events, Outcome.VIOLATION))
            return Trail(tuple(steps))
        steps.append(Step(idx, c, kind, alt, events))
    deadlock = _deadlock(m, s)
    if deadlock is not None and steps:
        steps[-1] = replace(steps[-1], outcome=Outcome.DEADLOCK)
    return Trail(tuple(steps), deadlock)


class ReplayError(Exception):
    """A schedule that no longer fits the protocol it was recorded on."""


def replay_schedule(system: System, choices: list[int], identity: str = "locals") -> Trail:
    """Re-run a recorded schedule on `system`; the trail ends with the violation, if any."""
    return replay_steps(Machine(system.config, identity=identity), choices)


def _deadlock(m: Machine, s: tuple) -> Deadlock | None:
    """The deadlock of state `s`: no move, and some CPU has work left (else None)."""
    if m.moves(s) or not any(cpu[STACK] for cpu in s[CPUS]):
        return None
    return Deadlock.of(m, s)
