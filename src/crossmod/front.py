"""`crossmod.replay(token[, system])`: the front door's one part that knows the catalogue.

Owns: rebuilding the system a catalogue token names, so that a token printed by `crossmod
check` or returned by `crossmod.check()` replays with nothing else. Imports: catalogue and
check.api (it sits above both, as the CLI does: the explorer never imports the catalogue).
"""

from __future__ import annotations

from crossmod.check import api
from crossmod.check.explore import ReplayError
from crossmod.check.schedule import Schedule
from crossmod.check.verdict import Step
from crossmod.machine.system import System


def replay(token: str, system: System | None = None) -> list[Step]:
    """Re-run the counterexample `token` and narrate it (the last step tells the violation
    or deadlock). `system` is the one it was found on; leave it out for a catalogue
    protocol, which the token names with its parameters."""
    if system is None:
        from crossmod.catalogue import ENTRIES, build

        sched = Schedule.decode(token)
        if sched.protocol not in ENTRIES:
            raise ReplayError(f"the token was recorded on {sched.protocol!r}, which is not a "
                              "catalogue protocol: pass its System, replay(token, system)")
        system = build(sched.protocol, sched.variant, **sched.knobs)
    return api.replay(token, system)
