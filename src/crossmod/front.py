"""`crossmod.replay(token[, system])`: the front door's one part that knows the catalogue.

Owns: rebuilding the system a catalogue token names, so that a token printed by `crossmod
check` or returned by `crossmod.check()` replays with nothing else. Imports: catalogue and
check (it sits above both, as the CLI does: the explorer never imports the catalogue).
"""

from __future__ import annotations

from crossmod.check import api
from crossmod.check.schedule import ScheduleError, decode_for
from crossmod.check.verdict import Trail
from crossmod.machine.system import System


def replay(token: str, system: System | None = None) -> Trail:
    """Re-run the counterexample `token`: its trail, ending in the violation or deadlock
    (`Trail.outcome`). `system` is the one it was found on; leave it out for a catalogue
    protocol, which the token names with its parameters. Raises ScheduleError for a token
    that does not fit (check/schedule.py), ReplayError for one that no longer replays."""
    if system is not None:
        return api.replay(token, system)
    from crossmod.catalogue import ENTRIES, CatalogueError, build

    sched = decode_for(None, token)
    if sched.protocol not in ENTRIES:
        raise ScheduleError(f"the token was recorded on {sched.protocol!r}, which is not a "
                            "catalogue protocol: pass its System, replay(token, system)")
    try:
        system = build(sched.protocol, sched.variant, **sched.params)
    except CatalogueError as e:
        raise ScheduleError(f"schedule token: {e}") from None
    sched.check_fits(system)
    return api.replay_fitting(sched, system)
