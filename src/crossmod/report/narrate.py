"""Counterexample trails told in kernel terms, one column per CPU (SPIN's `-t -p`).

Owns: turning replayed `Step`s into text. Imports: check.verdict.
"""

from __future__ import annotations

import textwrap

from crossmod.check.verdict import Step


def columns(steps: list[Step], ncpus: int, width: int = 100) -> str:
    """The trail as a table: step number, then one column per CPU holding that CPU's step."""
    col = max(16, (width - 5 - ncpus) // ncpus)
    head = "   # " + " ".join(f"cpu{c}".ljust(col) for c in range(ncpus))
    lines = [head.rstrip(), "-" * min(width, len(head))]
    for n, s in enumerate(steps, 1):
        text = _strip_cpu(s.text, s.cpu)
        if s.cpu < 0 or text.startswith(("VIOLATION", "DEADLOCK")):
            lines.append(f"{'':>5}" + "\n     ".join(textwrap.wrap(text, width - 5)))
            continue
        wrapped = textwrap.wrap(text, col) or [""]
        for i, part in enumerate(wrapped):
            cells = [""] * ncpus
            cells[s.cpu] = part
            num = f"{n:>4} " if i == 0 else "     "
            lines.append((num + " ".join(c.ljust(col) for c in cells)).rstrip())
    lines.append(f"trail ends after {len(steps)} steps")
    return "\n".join(lines)


def _strip_cpu(text: str, cpu: int) -> str:
    prefix = f"cpu{cpu} "
    return text[len(prefix):] if text.startswith(prefix) else text
