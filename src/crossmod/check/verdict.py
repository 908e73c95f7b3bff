"""Outcomes of a search: `Verdict`, `Step`, `Bounds`.

Owns: the records the explorer returns and the CLI renders. Imports: stdlib only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Bounds:
    """The limits of one exhaustive search.

    max_states   stop (verdict "bound") after this many distinct states
    max_depth    the step bound: a path longer than this is reported (verdict "bound")
    max_seconds  wall-clock limit (None: none)
    symmetry     identify states that differ only by renumbering interchangeable CPUs
    por          partial-order reduction over the machine's declared reader CPUs
    identity     routine-state identity: "locals" (fast) or "history" (always sound)
    ignore       properties not to stop at ("deadlock" included): a move that breaks one
                 ends its path silently, so the search goes on to the others
    liveness     after a safe search, check property 5 on the whole state graph: under
                 fairness every started routine completes (check/liveness.py)
    """

    max_states: int = 3_000_000
    max_depth: int = 5_000
    max_seconds: float | None = None
    symmetry: bool = True
    por: bool = True
    identity: str = "locals"
    ignore: frozenset[str] = frozenset()
    liveness: bool = False


@dataclass(frozen=True)
class Step:
    """One move of a counterexample, concrete (CPU numbers as in the machine)."""

    index: int  # the choice index among the moves enabled in that state
    cpu: int
    kind: str
    alt: int
    text: str


@dataclass
class Verdict:
    """What a search found. `verdict` is safe, violation, deadlock or bound. A liveness
    violation's counterexample is a lasso: its steps from `cycle_start` on form a cycle
    that repeats forever (None for every other counterexample)."""

    protocol: str
    variant: str
    config: str
    verdict: str
    property: str | None
    message: str
    states: int
    transitions: int
    depth: int
    seconds: float
    stop_reason: str
    counterexample: list[Step] | None = None
    token: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    cycle_start: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.counterexample is not None:
            d["counterexample"] = [asdict(s) for s in self.counterexample]
        d["seconds"] = round(self.seconds, 3)
        return d
