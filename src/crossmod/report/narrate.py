"""Counterexample trails told in kernel terms, one column per CPU (SPIN's `-t -p`).

Owns: laying out replayed `Step`s as text; each step's line is rendered from its events
(machine/events.py `narrate`). Imports: check.verdict.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from crossmod.check.verdict import Step, Trail

CYCLE = "--- cycle (repeats forever) ---"


def columns(steps: Sequence[Step], ncpus: int, width: int = 100,
            names: list[str] | None = None, cycle_start: int | None = None) -> str:
    """The trail as a table: step number, then one column per CPU holding that CPU's step
    (`names`: the columns' headings, `cpu0`... by default; a step's text may start with
    its CPU's). A violation, and a deadlock at the trail's end, span the whole width. A
    lasso (`cycle_start`: the index of the cycle's first step) is told as its prefix, a
    `CYCLE` line, then the cycle."""
    names = names or [f"cpu{c}" for c in range(ncpus)]
    col = max(16, (width - 5 - ncpus) // ncpus)
    head = "   # " + " ".join(name.ljust(col) for name in names)
    lines = [head.rstrip(), "-" * min(width, len(head))]
    for n, s in enumerate(steps, 1):
        if n - 1 == cycle_start:
            lines.append(f"{'':>5}{CYCLE}")
        text = _strip_cpu(s.text, names[s.cpu] if 0 <= s.cpu < ncpus else "")
        if s.violation is not None:
            lines.append(_full_width(text, width))
            continue
        wrapped = textwrap.wrap(text, col) or [""]
        for i, part in enumerate(wrapped):
            cells = [""] * ncpus
            cells[s.cpu] = part
            num = f"{n:>4} " if i == 0 else "     "
            lines.append((num + " ".join(c.ljust(col) for c in cells)).rstrip())
    deadlock = steps.deadlock if isinstance(steps, Trail) else None
    if deadlock is not None:
        lines.append(_full_width(f"DEADLOCK: {deadlock.message}", width))
    if cycle_start is not None:
        span = f"step {len(steps)} repeats" if cycle_start + 1 == len(steps) else \
            f"steps {cycle_start + 1}-{len(steps)} repeat"
        lines.append(f"{'':>5}--- back to step {cycle_start + 1}: {span} forever ---")
    lines.append(f"trail ends after {len(steps)} steps")
    return "\n".join(lines)


def _full_width(text: str, width: int) -> str:
    return f"{'':>5}" + "\n     ".join(textwrap.wrap(text, width - 5))


def _strip_cpu(text: str, name: str) -> str:
    prefix = f"{name} "
    return text[len(prefix):] if name and text.startswith(prefix) else text
