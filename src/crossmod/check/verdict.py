"""Outcomes of a search: `Verdict`, `Trail`, `Step`, `Bounds` and the enums they use.

Owns: the records the explorer returns and the CLI renders. Imports: machine.events (and
machine.machine for a deadlock's description).

A step carries its events (machine/events.py) and its text is rendered from them; a run
that ends with no CPU able to move is a `Trail` with a `Deadlock`, not a step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, overload

from crossmod.machine import events as E
from crossmod.machine.events import Property

if TYPE_CHECKING:
    from crossmod.machine.machine import Machine

__all__ = ["Bounds", "Deadlock", "Outcome", "Property", "Step", "StopReason", "Trail",
           "Verdict", "VerdictKind"]


@dataclass(frozen=True)
class Bounds:
    """The limits of one exhaustive search.

    max_states   stop (verdict "bound") after this many distinct states
    max_depth    the step bound: a path longer than this is reported (verdict "bound")
    max_seconds  wall-clock limit (None: none)
    symmetry     identify states that differ only by renumbering interchangeable CPUs
    por          partial-order reduction (check/reduction.py: declared reader CPUs, private ops)
    identity     routine-state identity: "locals" (fast) or "history" (always sound)
    ignore       properties not to stop at ("deadlock" included): a move that breaks one
                 ends its path silently, so the search goes on to the others
    liveness     after a safe search, check property 5 on the whole state graph: under
                 fairness every started routine completes (check/liveness.py)
    store        "exact" (the states themselves), or, for a search too large for memory,
                 "hash-compact" (64-bit hashes) or "bitstate" (`bitstate_bits` bits, three
                 per state): these may omit states, so they never conclude "safe"
                 (check/store.py)
    hash_seed    the seed of the compact stores' state digest (machine/digest.py): which
                 states collide, hence which are omitted, is a function of it alone, so a
                 run is repeated by giving it again and varied by giving another
    """

    max_states: int = 3_000_000
    max_depth: int = 5_000
    max_seconds: float | None = None
    symmetry: bool = True
    por: bool = True
    identity: str = "locals"
    ignore: frozenset[str] = frozenset()
    liveness: bool = False
    store: str = "exact"
    bitstate_bits: int = 1 << 27
    hash_seed: int = 0

    def __post_init__(self) -> None:
        if self.store not in ("exact", "hash-compact", "bitstate"):
            raise ValueError(f"store must be exact, hash-compact or bitstate, not "
                             f"{self.store!r}")
        if self.bitstate_bits < 8:
            raise ValueError(f"bitstate_bits must be 8 or more, not {self.bitstate_bits}")
        if not 0 <= self.hash_seed < 1 << 64:
            raise ValueError(f"hash_seed must be in [0, 2**64), not {self.hash_seed}")

    def exceeded(self, states: int, t0: float) -> tuple[StopReason, Any] | None:
        """The limit a search that stored `states` and started at `t0` (perf_counter) has
        passed, state limit first, or None: the one test every search loop makes. (The
        limit is typed Any, not float: a compiled caller would turn the int 10 into 10.0.)"""
        if states > self.max_states:
            return StopReason.STATE_LIMIT, self.max_states
        if self.max_seconds and time.perf_counter() - t0 > self.max_seconds:
            return StopReason.TIME_LIMIT, self.max_seconds
        return None


class VerdictKind(StrEnum):
    """What a search concluded."""

    SAFE = "safe"
    VIOLATION = "violation"
    DEADLOCK = "deadlock"
    BOUND = "bound"


class StopReason(StrEnum):
    """Why a search stopped; `describe(limit)` says it in a sentence."""

    EXHAUSTED = "exhausted"
    FIRST_VIOLATION = "first violation"
    STEP_BOUND = "step bound"
    STATE_LIMIT = "state limit"
    TIME_LIMIT = "time limit"
    HASH_COMPACT = "hash-compact"  # explored on 64-bit hashes: not a proof
    BITSTATE = "bitstate"  # explored on a bit array: not a proof

    def describe(self, limit: float | None = None) -> str:
        if self is StopReason.HASH_COMPACT or self is StopReason.BITSTATE:
            est = f"{limit:.3g}" if limit is not None else "?"
            return (f"{self.value}: every state reached was explored unless a hash "
                    f"collision hid it; an estimated {est} states may have been omitted")
        if self is StopReason.STEP_BOUND or self is StopReason.STATE_LIMIT:
            return f"{self.value} {limit} reached"
        if self is StopReason.TIME_LIMIT:
            return f"{self.value} {limit}s reached"
        return self.value


class Outcome(StrEnum):
    """How a step ended: the run goes on (or finished), it broke a property, or after it
    no CPU can move while some has work left."""

    OK = "ok"
    VIOLATION = "violation"
    DEADLOCK = "deadlock"


@dataclass(frozen=True)
class Step:
    """One move of a trail, concrete (CPU numbers as in the machine), with what it did."""

    index: int  # the choice index among the moves enabled in that state
    cpu: int
    kind: str
    alt: int
    events: tuple[E.Event, ...] = ()
    outcome: Outcome = Outcome.OK

    @property
    def text(self) -> str:
        """The trail's line for this step, rendered from its events."""
        return E.narrate(self.cpu, self.events)

    @property
    def violation(self) -> E.Violated | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, E.Violated) else None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "cpu": self.cpu, "kind": self.kind, "alt": self.alt,
                "text": self.text, "outcome": self.outcome.value,
                "events": [E.to_json(e) for e in self.events]}


@dataclass(frozen=True)
class Deadlock:
    """No CPU can move and some has not finished: what each of those waits in."""

    blocked: tuple[E.Blocked, ...]

    @classmethod
    def of(cls, m: Machine, state: tuple) -> Deadlock:
        """What each unfinished CPU of `state`, where no CPU can move, waits in."""
        return cls(tuple(b for c in range(m.cfg.ncpus)
                         if (b := m.blocked_on(state, c)) is not None))

    @property
    def message(self) -> str:
        return "no CPU can move; " + "; ".join(f"cpu{b.cpu}: {b.words()}"
                                                for b in self.blocked)

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message,
                "blocked": [{"cpu": b.cpu, "routine": b.routine, "op": b.op,
                             "label": b.label, "contexts": [str(c) for c in b.contexts],
                             "irqs": b.irqs} for b in self.blocked]}


@dataclass(frozen=True)
class Trail(Sequence[Step]):
    """A replayed run: its steps and, when no CPU can move at its end, the deadlock."""

    steps: tuple[Step, ...] = ()
    deadlock: Deadlock | None = None

    @property
    def outcome(self) -> Outcome:
        if self.deadlock is not None:
            return Outcome.DEADLOCK
        return self.steps[-1].outcome if self.steps else Outcome.OK

    @property
    def choices(self) -> tuple[int, ...]:
        """The choice indices that replay it (`check.schedule.Schedule`)."""
        return tuple(s.index for s in self.steps)

    @overload
    def __getitem__(self, i: int) -> Step: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Step]: ...

    def __getitem__(self, i: int | slice) -> Step | Sequence[Step]:
        return self.steps[i]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


@dataclass
class Verdict:
    """What a search found. `verdict` is safe, violation, deadlock or bound; `stop_limit`
    the bound a stopped search reached. A liveness violation's counterexample is a lasso:
    its steps from `cycle_start` on form a cycle that repeats forever (None for every other
    counterexample)."""

    protocol: str
    variant: str
    config: str
    verdict: VerdictKind
    property: Property | str | None
    message: str
    states: int
    transitions: int
    depth: int
    seconds: float
    stop_reason: StopReason
    counterexample: Trail | None = None
    token: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    cycle_start: int | None = None
    stop_limit: float | None = None

    def describe_stop(self) -> str:
        """Why the search stopped, in a sentence ("state limit 3000000 reached")."""
        return self.stop_reason.describe(self.stop_limit)

    def to_json(self) -> dict[str, Any]:
        """The verdict as JSON data: every field (the stop reason as its sentence, `stop`
        its kind), the trail's steps with their events, and its deadlock."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        trail = self.counterexample
        d["counterexample"] = None if trail is None else trail.to_json()
        d["stats"] = dict(self.stats)
        d["seconds"] = round(self.seconds, 3)
        d["stop_reason"] = self.describe_stop()
        d["stop"] = self.stop_reason.value
        d["deadlock"] = None if trail is None or trail.deadlock is None else \
            trail.deadlock.to_json()
        return d
