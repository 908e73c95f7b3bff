"""Concurrent modification and execution of instructions: Arm's CMODX flag.

Owns: `cmodx_race(machine, outcomes, restricted)` -- herd7's `violates-CMODX-requirements`
(aarch64.cat, "Additional synchronisation requirements for CMODX"):

    CMODX-conflicts = same-loc & (F & Restricted) * W  |  F * (W & Restricted)  (and back)
    CMODX-ordering  = [F]; ob; [W]  |  [W]; ob; [F]
    flag ~empty CMODX-conflicts \\ (CMODX-ordering | CMODX-ordering^-1)

a fetch and a write of the same instruction that no order relates, in some allowed
execution, where the instruction fetched or the one written is not among those the Arm
ARM lets a CPU execute while another modifies them (B2.2.5; `restricted`): the CPU may then
behave as any instruction sequence, CONSTRAINED UNPREDICTABLE. Imports: machine.aarch64,
check.outcomes' graph (duck-typed: `edges`, `can_finish()`).

Operationally: two events an allowed execution leaves unordered are, in some order that
extends it, performed one right after the other (an incomparable pair of a partial order
is adjacent in some linear extension). So the flag is raised when, in some reachable state,
the fetch and the write can each be performed next, performing them in either order leads
to the same state, and some final state can be reached from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossmod.machine.aarch64.events import Event
from crossmod.machine.aarch64.machine import A64Machine


def cmodx_race(m: A64Machine, outcomes: Any, restricted: Callable[[Any], bool]
               ) -> tuple[tuple, tuple[int, int], tuple[int, int]] | None:
    """A state and the (fetch, write) moves that race there, or None."""
    finish = outcomes.can_finish()
    for s, edges in outcomes.edges.items():
        after = dict(edges)
        fetches = [mv for mv in after if _event(m, s, mv).kind == "F"]
        if not fetches:
            continue
        writes = [mv for mv in after if _event(m, s, mv).kind == "W"]
        for f in fetches:
            ef = _event(m, s, f)
            for w in writes:
                ew = _event(m, s, w)
                if ew.loc != ef.loc or not (restricted(ef.value) or restricted(ew.value)):
                    continue
                fw = dict(outcomes.edges.get(after[f], ())).get(w)
                wf = dict(outcomes.edges.get(after[w], ())).get(f)
                if fw is not None and fw == wf and fw in finish:
                    return s, f, w
    return None


def _event(m: A64Machine, s: tuple, mv: tuple[int, int]) -> Event:
    return m.path(s, mv[0]).events[mv[1]]
