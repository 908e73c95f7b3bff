"""Property 6 in numbers: the IPIs each CPU took while in user mode, by callback, over every
run (DESIGN.md "Properties"; kernel/entry.py keeps the per-CPU ghost `ipi_user`).

Owns: `user_ipi_counts(system)`. Imports: machine, check.verdict. The explorer checks the
property itself (a deferred callback reaching a CPU that stays in userspace is an
"isolation" violation); this module reports the counts a verdict cannot carry -- the IPIs
that are allowed (policy `none`, or the inherent window of a CPU that just left the kernel)
and how many of them a run may take.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from crossmod.check.verdict import Bounds
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
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


def user_ipi_counts(system: System, bounds: Bounds | None = None) -> IpiCounts:
    """Explore `system` (no CPU symmetry: counts are per CPU number) and count."""
    bounds = bounds or Bounds()
    m = Machine(system.config, identity=bounds.identity)
    idx = system.config.pidx["ipi_user"]
    init = m.initial_state()
    seen, frontier = {init}, deque([init])
    out = IpiCounts()
    finals: set[tuple] = set()
    while frontier:
        s = frontier.popleft()
        counts = tuple(dict(cpu[PERCPU][idx]) for cpu in s[CPUS])
        _raise_high(out, counts)
        moves = m.moves(s)
        if not moves and not any(cpu[STACK] for cpu in s[CPUS]):
            finals.add(tuple(cpu[PERCPU][idx] for cpu in s[CPUS]))
        for mv in moves:
            try:
                t, _ = m.step(s, mv)
            except Violation as v:
                raise ValueError(f"not a safe configuration: {v.prop}: {v.message}") from v
            if t not in seen:
                if len(seen) >= bounds.max_states:
                    raise ValueError(f"state limit {bounds.max_states} reached")
                seen.add(t)
                frontier.append(t)
    out.states, out.runs = len(seen), len(finals)
    for final in finals:
        for c, counts in enumerate(final):
            d = dict(counts)
            low = out.low.setdefault(c, dict(d))
            for name in set(low) | set(d):
                low[name] = min(low.get(name, 0), d.get(name, 0))
            out.with_ipi[c] = out.with_ipi.get(c, 0) + bool(d)
    return out


def _raise_high(out: IpiCounts, counts: tuple[dict[str, int], ...]) -> None:
    for c, d in enumerate(counts):
        high = out.high.setdefault(c, {})
        for name, n in d.items():
            high[name] = max(high.get(name, 0), n)
