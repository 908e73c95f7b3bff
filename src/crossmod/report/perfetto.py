"""Counterexamples as Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing).

Owns: the export format. One track (thread) per CPU, every step a 1 us slice named after
what the CPU did, the violation (or the deadlock at the trail's end) as an instant event.
Imports: check.verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from crossmod.check.verdict import Step, Trail

STEP_US = 1


def trace_events(steps: Sequence[Step], ncpus: int, title: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": title}}]
    for c in range(ncpus):
        events.append({"ph": "M", "pid": 1, "tid": c, "name": "thread_name",
                       "args": {"name": f"cpu{c}"}})
    for i, s in enumerate(steps):
        bad = s.violation
        if bad is not None:
            events.append(_instant(i, s.cpu, f"VIOLATION {bad.prop}", s.text))
            continue
        text = s.text.split(" ", 1)[1] if s.text.startswith("cpu") else s.text
        events.append({"ph": "X", "pid": 1, "tid": s.cpu, "ts": i * STEP_US, "dur": STEP_US,
                       "name": text[:80], "cat": s.kind,
                       "args": {"step": i + 1, "choice": s.index, "detail": text}})
    deadlock = steps.deadlock if isinstance(steps, Trail) else None
    if deadlock is not None:
        events.append(_instant(len(steps), 0, "DEADLOCK", f"DEADLOCK: {deadlock.message}"))
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def _instant(i: int, cpu: int, name: str, detail: str) -> dict[str, Any]:
    return {"ph": "i", "pid": 1, "tid": cpu, "s": "g", "ts": i * STEP_US, "name": name,
            "args": {"detail": detail}}


def write(path: str, steps: Sequence[Step], ncpus: int, title: str) -> None:
    with open(path, "w") as f:
        json.dump(trace_events(steps, ncpus, title), f, indent=1)
