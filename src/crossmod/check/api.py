"""The front door as a user calls it: `crossmod.check(system, ...)`.

Owns: `check()` -- the explorer with a progress callback, properties switched off by name,
and the counterexample's replay token recorded for any `System` -- and `replay(token,
system)`, which re-runs a token on the model it was recorded on. Imports: check.explore,
check.liveness, check.schedule, check.verdict, machine. (`crossmod.replay(token)` with no
system, for a catalogue token, is crossmod/front.py: only it may rebuild catalogue
systems.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from crossmod.check.explore import explore, replay_schedule
from crossmod.check.liveness import replay_lasso
from crossmod.check.schedule import Schedule, decode_for, record_token
from crossmod.check.verdict import Bounds, Trail, Verdict
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System

Progress = Callable[[int, int, int], None]
"""`progress(states, transitions, depth)`, called once per breadth-first level."""


def check(system: System, bounds: Bounds | None = None, *, progress: Progress | None = None,
          ignore: Iterable[str] = ()) -> Verdict:
    """Explore every interleaving of `system` within `bounds` (default `Bounds()`).

    `progress(states, transitions, depth)` is called after each level of the search;
    `ignore` names properties not to stop at ("deadlock", "torn-instruction", a `Check`'s
    own `prop`...), added to `bounds.ignore`: a move that breaks one ends its path and the
    search goes on. A counterexample comes with `verdict.token`, which `crossmod.replay`
    re-runs (fingerprinted: on a changed model it is refused, check/schedule.py).
    """
    if isinstance(system, MachineConfig):
        raise TypeError("check() takes a System: wrap the MachineConfig as "
                        "System(name, config)")
    if not isinstance(system, System):
        raise TypeError(f"check() takes a System, not {type(system).__name__}")
    names = frozenset((ignore,) if isinstance(ignore, str) else ignore)
    bounds = bounds or Bounds()
    if names:
        bounds = replace(bounds, ignore=bounds.ignore | names)
    v = explore(system, bounds, progress)
    if v.counterexample is not None:
        v.token = record_token(system, [s.index for s in v.counterexample if s.index >= 0],
                               v.cycle_start)
    return v


def replay(token: str, system: System) -> Trail:
    """Re-run the counterexample `token` on `system`: its trail, ending in the violation or
    deadlock (`Trail.outcome`; a liveness lasso: its prefix, then one turn of
    its cycle, from `Verdict.cycle_start` on). Raises ScheduleError for a token that is not
    one or was recorded on another model (other protocol, variant, parameters,
    configuration, routine code or machine), ReplayError for one that does not fit it."""
    return replay_fitting(decode_for(system, token), system)


def replay_fitting(sched: Schedule, system: System) -> Trail:
    """Re-run `sched`, already checked to fit `system`."""
    if sched.cycle_start is not None:
        return replay_lasso(system, list(sched.choices), sched.cycle_start)[0]
    return replay_schedule(system, list(sched.choices))
