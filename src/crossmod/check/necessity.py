"""Which sync, barrier and ordering steps a protocol needs, under which instruction-fetch
and memory model (DESIGN.md "Engines": necessity).

Owns: `necessity(build, steps, fetches, memories, bounds)` -- for each step (step -> the
variant that drops it), check that variant under every fetch x memory model with the
explorer and compare with the protocol as it is. Imports: machine, check.explore,
check.verdict; the caller builds the systems (engines know no catalogue).

A step is *required* under a model when the protocol is safe there and dropping the step
is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from crossmod.check.explore import explore
from crossmod.check.verdict import Bounds, Verdict, VerdictKind
from crossmod.machine.system import System

# (variant, fetch model, memory model) -> the system to check
Builder = Callable[[str, str, str], System]


@dataclass
class StepResult:
    """One step: the variant that drops it and, per model ("per-byte/tso"), the verdict's
    short form (`short`)."""

    step: str
    variant: str
    results: dict[str, str] = field(default_factory=dict)
    states: int = 0

    def required_under(self, base: Mapping[str, str]) -> list[str]:
        """The models under which the protocol as it is (`base`) is safe and this one is
        not."""
        return [m for m, r in self.results.items() if base.get(m) == "safe" and r != "safe"]


def short(v: Verdict) -> str:
    """A verdict in one word: safe, bound, or the property broken ("deadlock" included)."""
    if v.verdict is VerdictKind.SAFE or v.verdict is VerdictKind.BOUND:
        return v.verdict.value
    return str(v.property or v.verdict)


def necessity(build: Builder, steps: Mapping[str, str], fetches: tuple[str, ...],
              memories: tuple[str, ...], bounds: Bounds
              ) -> tuple[StepResult, list[StepResult]]:
    """(the protocol as it is -- variant "default" --, one result per dropped step), each
    checked under every fetch x memory model."""
    out = []
    for step, variant in [("(as is)", "default"), *steps.items()]:
        r = StepResult(step, variant)
        for f in fetches:
            for mem in memories:
                v = explore(build(variant, f, mem), bounds)
                r.results[f"{f}/{mem}"] = short(v)
                r.states += v.states
        out.append(r)
    return out[0], out[1:]
