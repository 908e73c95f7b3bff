"""Shortest counterexamples when the partial-order reduction found the violation.

Owns: `shortest(system, bounds, verdict, search)` -> Verdict. Imports: check.verdict,
machine.events. Never imports kernel or catalogue; the search it runs is the caller's
(check/explore.py's sequential one, with the caller's CPU-state ranking).

Why: breadth-first search reports a fewest-move violation of the graph it walks. The reduced
graph (check/reduction.py) keeps every property reachable, but not every path: a persistent
set postpones the moves of the CPUs outside it, and a shorter path to the same violation may
take one of them early. Declaring the isolated CPUs of the deferral protocols readers
lengthened some of their trails by a third (18 moves to 28). The trail is what a kernel
engineer reads, so a violation found with the reduction on is followed by a search of the
full graph bounded to one move fewer, which stops only at the same property (every other is
ignored: a move breaking one ends its path):

- it finds one: that trail is reported, and it is a shortest one (breadth-first, unreduced;
  CPU symmetry stays on, since renumbering CPUs preserves the length of every path);
- it walks every path of that many moves without one: the reduced search's trail is a
  shortest one already, and is kept (with the exact store only: a hash-compact or bitstate
  store may omit states, so its walk rules nothing out);
- it meets its budget first (FACTOR times the reduced search's states, at least FLOOR, at
  most the caller's `max_states`, and what is left of the caller's `max_seconds`): the
  reduced search's trail is kept, and the verdict's `stats["shortest"]` says that no
  shorter one was ruled out.

The verdict's states, transitions and verdict stay the reduced search's; `stats["shorten"]`
tells what the second search cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from crossmod.check.verdict import Bounds, StopReason, Verdict, VerdictKind
from crossmod.machine.events import Property
from crossmod.machine.system import System

# the second search's state budget: this many times the reduced search's states, at least
# FLOOR (a bounded search of the full graph costs more per state found than the reduced one)
FACTOR = 4
FLOOR = 200_000


def shortest(system: System, bounds: Bounds, v: Verdict,
             search: Callable[[System, Bounds], Verdict]) -> Verdict:
    """`v` with a shortest counterexample of its property (the module docstring)."""
    if not bounds.por or v.verdict not in (VerdictKind.VIOLATION, VerdictKind.DEADLOCK) \
            or v.property == Property.LIVENESS or v.counterexample is None or v.depth <= 1:
        return v
    want = str(v.property)
    ignore = set(bounds.ignore) | {str(p) for p in Property if str(p) != want}
    # within the user's bounds: no more states than they allow, and what is left of their
    # time (none left: the reduced search's trail is kept, not ruled shortest)
    budget = min(max(FACTOR * v.states, FLOOR), bounds.max_states)
    t0 = time.perf_counter()
    states = 0
    while True:
        left = None if bounds.max_seconds is None else \
            bounds.max_seconds - v.seconds - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            return replace(v, stats={**v.stats, "shortest": False,
                                     "shorten": {"states": states, "seconds": 0.0,
                                                 "reduced_depth": v.depth}})
        b = replace(bounds, por=False, max_depth=v.depth - 1, max_states=budget,
                    max_seconds=left, ignore=frozenset(ignore), liveness=False)
        w = search(system, b)
        states += w.states
        if w.verdict in (VerdictKind.VIOLATION, VerdictKind.DEADLOCK) \
                and str(w.property) != want:
            ignore.add(str(w.property))  # a property of the protocol's own Check ops
            continue
        break
    cost = {"states": states, "seconds": round(time.perf_counter() - t0, 3),
            "reduced_depth": v.depth}
    seconds = v.seconds + cost["seconds"]
    if w.verdict in (VerdictKind.VIOLATION, VerdictKind.DEADLOCK):
        return replace(v, counterexample=w.counterexample, depth=w.depth, message=w.message,
                       seconds=seconds, stats={**v.stats, "shortest": True, "shorten": cost})
    # a hash-compact or bitstate store may omit states: its walk rules nothing out
    ruled_out = w.stop_reason in (StopReason.STEP_BOUND, StopReason.EXHAUSTED) \
        and bounds.store == "exact"
    return replace(v, seconds=seconds, stats={**v.stats, "shortest": ruled_out,
                                              "shorten": cost})
