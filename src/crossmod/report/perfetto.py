"""Counterexamples as Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing).

Owns: the export format. One track (thread) per CPU, every step a 1 us slice named after
what the CPU did, the violation as an instant event. Imports: check.verdict.
"""

from __future__ import annotations

import json
from typing import Any

from crossmod.check.verdict import Step

STEP_US = 1


def trace_events(steps: list[Step], ncpus: int, title: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": title}}]
    for c in range(ncpus):
        events.append({"ph": "M", "pid": 1, "tid": c, "name": "thread_name",
                       "args": {"name": f"cpu{c}"}})
    for i, s in enumerate(steps):
        if s.cpu < 0 or s.text.startswith("VIOLATION"):
            events.append({"ph": "i", "pid": 1, "tid": max(s.cpu, 0), "s": "g",
                           "ts": i * STEP_US, "name": s.text.split(":")[0],
                           "args": {"detail": s.text}})
            continue
        text = s.text.split(" ", 1)[1] if s.text.startswith("cpu") else s.text
        events.append({"ph": "X", "pid": 1, "tid": s.cpu, "ts": i * STEP_US, "dur": STEP_US,
                       "name": text[:80], "cat": s.kind,
                       "args": {"step": i + 1, "choice": s.index, "detail": text}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def write(path: str, steps: list[Step], ncpus: int, title: str) -> None:
    with open(path, "w") as f:
        json.dump(trace_events(steps, ncpus, title), f, indent=1)
