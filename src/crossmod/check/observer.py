"""The hook other engines watch the explorer through (check/explore.py).

Owns: `Observer`. It lives apart from the explorer because the explorer may be compiled
(crossmod/_engine.py) and a compiled class cannot be subclassed by interpreted code; an
observer is a protocol author's or an engine's own class. Imports: machine.
"""

from __future__ import annotations

from crossmod.machine.events import Event
from crossmod.machine.machine import Move


class Observer:
    """Watches a search as it goes: every state when it is expanded, with its enabled
    moves (none: a final or a stuck state), and every transition kept, with the step's
    events when `events` is set (the steps then narrate, which costs time). States are
    the search's: symmetry representatives when `Bounds.symmetry` applies, and under the
    partial-order reduction a state's transitions are only those of its ample set; an
    engine that needs every concrete state searches with neither."""

    events: bool = False

    def expand(self, state: tuple, moves: list[Move]) -> None:
        """`state` is being expanded; `moves` are all its enabled moves."""

    def transition(self, state: tuple, move: Move, succ: tuple,
                   events: tuple[Event, ...]) -> None:
        """`move` from `state` leads to `succ` (no violation)."""
