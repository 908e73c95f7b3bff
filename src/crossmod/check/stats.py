"""What a patch costs the other CPUs: IPIs and stop_machine rendezvous in one run.

Owns: `flip_costs(system) -> FlipCost` and `cost_rows(labelled_systems)` (the rows of a
`crossmod compare` table). Imports: machine only (never kernel or catalogue).

One deterministic run: always the first enabled move (`Machine.moves(state)[0]`) until
none is left. The patching CPU is CPU 0, so it runs until it blocks; every IPI it sends is
then taken before it sends the next, and no IPI is coalesced with an earlier one. The
counts are read from the steps' events (machine/events.py `IpiSend`):
  IPIs         the targets an IPI was sent to (`raised`: their queue was empty)
  rendezvous   stop_machine() calls: IPI sends whose function is multi_cpu_stop (every
               online CPU then spins with interrupts off until all have arrived)
A run is per key flip when the system's patching task flips one key once (the catalogue's
x86-static-key, arm64-jump-label and arm64-stop-machine systems do).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from crossmod.machine.cpu import Violation
from crossmod.machine.events import IpiSend
from crossmod.machine.machine import Machine
from crossmod.machine.system import System

RENDEZVOUS_FUNC = "multi_cpu_stop"


@dataclass(frozen=True)
class FlipCost:
    """IPIs sent (by target function) and rendezvous in one deterministic run."""

    ipis: int
    rendezvous: int
    by_function: dict[str, int] = field(default_factory=dict)
    steps: int = 0


def flip_costs(system: System, max_steps: int = 100_000) -> FlipCost:
    """Run `system` taking move 0 each time and count its IPIs and rendezvous."""
    m = Machine(system.config)
    s = m.initial_state()
    by_func: Counter[str] = Counter()
    steps = rendezvous = 0
    while steps < max_steps:
        moves = m.moves(s)
        if not moves:
            break
        try:
            s, events = m.step(s, moves[0])
        except Violation as v:
            raise ValueError(f"{system.name}: the first-move run breaks {v.prop}: "
                             f"{v.message}") from None
        steps += 1
        for e in events:
            if isinstance(e, IpiSend) and e.raised:
                by_func[e.func] += len(e.raised)
                rendezvous += e.func == RENDEZVOUS_FUNC
    else:
        raise ValueError(f"{system.name}: no end after {max_steps} steps of the first-move run")
    return FlipCost(sum(by_func.values()), rendezvous, dict(by_func), steps)


def cost_rows(labelled: list[tuple[str, System]]) -> list[dict[str, Any]]:
    """One row per system: protocol, variant, CPUs, sites per key, IPIs and rendezvous."""
    rows = []
    for label, system in labelled:
        c = flip_costs(system)
        rows.append({"label": label, "protocol": system.name, "variant": system.variant,
                     "cpus": system.config.ncpus, "sites": system.params.get("sites", 1),
                     "ipis": c.ipis, "rendezvous": c.rendezvous,
                     "ipis_by_function": c.by_function})
    return rows
