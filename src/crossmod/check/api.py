"""The front door as a user calls it: `crossmod.check(system, ...)`.

Owns: `check()` -- the explorer with a progress callback, properties switched off by name,
and the counterexample's replay token recorded for any `System` -- and `replay(token,
system)`, which re-runs a token on the system it names. Imports: check.explore,
check.liveness, check.schedule, check.verdict, machine. (`crossmod.replay(token)` with no
system, for a catalogue token, is crossmod/front.py: only it may rebuild catalogue
systems.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from crossmod.check.explore import ReplayError, explore, replay_schedule
from crossmod.check.liveness import replay_lasso
from crossmod.check.schedule import Schedule
from crossmod.check.verdict import Bounds, Step, Verdict
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
    re-runs.
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
        v.token = token_for(system, v)
    return v


def token_for(system: System, verdict: Verdict) -> str:
    """The replay token of `verdict`'s counterexample, found on `system`."""
    assert verdict.counterexample is not None
    choices = tuple(s.index for s in verdict.counterexample if s.index >= 0)
    return Schedule(system.name, system.variant, _knobs(system.params), choices,
                    verdict.cycle_start).encode()


def _knobs(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a token can carry (plain JSON values): what rebuilds a catalogue
    system; a user's own system is handed to `replay` with the token."""
    return {k: v for k, v in params.items()
            if v is None or isinstance(v, str | int | float | bool)}


def replay(token: str, system: System) -> list[Step]:
    """Re-run the counterexample `token` on `system` and narrate it; the last step tells
    the violation or deadlock it ends in (a liveness lasso: its prefix, then one turn of
    its cycle, from `Verdict.cycle_start` on). Raises ScheduleError for a token that is not
    one, ReplayError for one recorded on another system or that no longer fits it."""
    sched = Schedule.decode(token)
    if (sched.protocol, sched.variant) != (system.name, system.variant):
        raise ReplayError(f"the token was recorded on {sched.protocol} (variant "
                          f"{sched.variant}), not on {system.name} (variant {system.variant})")
    if sched.cycle_start is not None:
        return replay_lasso(system, list(sched.choices), sched.cycle_start)[0]
    return replay_schedule(system, list(sched.choices))
