"""Property 6 in numbers: the IPIs each CPU took while in user mode, by callback, over every
run (DESIGN.md "Properties"; kernel/entry.py keeps the per-CPU ghost `ipi_user`).

Owns: `user_ipi_counts(system)`, an observer of the explorer (check/explore.py).
Imports: machine, check.explore, check.verdict. The explorer checks the property itself (a
deferred callback reaching a CPU that stays in userspace is an "isolation" violation); this
module reports the counts a verdict cannot carry -- the IPIs that are allowed (policy
`none`, or the inherent window of a CPU that just left the kernel) and how many of them a
run may take.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from crossmod.check.explore import Move, Observer, explore
from crossmod.check.verdict import Bounds, VerdictKind
from crossmod.machine.state import CPUS, PERCPU, STACK
from crossmod.machine.system import System


@dataclass
class IpiCounts:
    """Per CPU and callback: the fewest IPIs taken in user mode over complete runs and the
    most over any run; `runs` counts the distinct vectors of final counts (one per set of
    runs that end alike), `with_ipi` per CPU those in which it took at least one."""

    low: dict[int, dict[str, int]] = field(default_factory=dict)
    high: dict[int, dict[str, int]] = field(default_factory=dict)
    runs: int = 0
    with_ipi: dict[int, int] = field(default_factory=dict)
    states: int = 0


class _Counts(Observer):
    """Raises the per-CPU maxima at every state and keeps the counts of every final one."""

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.out = IpiCounts()
        self.finals: set[tuple] = set()

    def expand(self, state: tuple, moves: list[Move]) -> None:
        cpus = state[CPUS]
        for c, cpu in enumerate(cpus):
            high = self.out.high.setdefault(c, {})
            for name, n in cpu[PERCPU][self.idx]:
                high[name] = max(high.get(name, 0), n)
        if not moves and not any(cpu[STACK] for cpu in cpus):
            self.finals.add(tuple(cpu[PERCPU][self.idx] for cpu in cpus))


def user_ipi_counts(system: System, bounds: Bounds | None = None) -> IpiCounts:
    """Explore `system` and count: every state is seen, so the search runs with no CPU
    symmetry (counts are per CPU number), no partial-order reduction (which would skip
    states) and no stop at a deadlock. A violation, or a bound hit, is an error."""
    bounds = replace(bounds or Bounds(), symmetry=False, por=False,
                     ignore=(bounds.ignore if bounds else frozenset()) | {"deadlock"})
    counts = _Counts(system.config.pidx["ipi_user"])
    v = explore(system, bounds, observer=counts)
    if v.verdict is VerdictKind.BOUND:
        raise ValueError(v.message)
    if v.verdict is not VerdictKind.SAFE:
        raise ValueError(f"not a safe configuration: {v.property}: {v.message}")
    out = counts.out
    out.states, out.runs = v.states, len(counts.finals)
    for final in counts.finals:
        for c, cpu_counts in enumerate(final):
            d = dict(cpu_counts)
            low = out.low.setdefault(c, dict(d))
            for name in set(low) | set(d):
                low[name] = min(low.get(name, 0), d.get(name, 0))
            out.with_ipi[c] = out.with_ipi.get(c, 0) + bool(d)
    return out
