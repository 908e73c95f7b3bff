"""Chrome trace-event JSON (opens in ui.perfetto.dev): one track per CPU, IPI flows.

Owns: `PerfettoWriter`, an `Analysis` sink that streams JSON as events arrive (memory
bounded by the IPIs in flight, never by the trace): a 1 µs slice on the sender's track for
each IPI aimed at an isolated CPU, a slice on the target's track for each IPI vector taken
and for each CSD callback run (its real duration from entry/exit), and a flow arrow from
each send to the vector that handled it (several sends can share one interrupt).

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

import json
from typing import TextIO

from crossmod.trace.events import Event

_PID = 1
_MAX_IN_FLIGHT = 1024


class PerfettoWriter:
    """Call it as the analysis sink; `close` finishes the JSON document."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.first = True
        self.tracks: set[int] = set()
        self.in_flight: dict[int, list[int]] = {}
        self.next_id = 1
        self.out.write('{"displayTimeUnit":"ns","traceEvents":[\n')
        self._emit({"ph": "M", "name": "process_name", "pid": _PID, "tid": 0,
                    "args": {"name": "CPUs"}})

    def _emit(self, obj: dict) -> None:
        if not self.first:
            self.out.write(",\n")
        self.first = False
        self.out.write(json.dumps(obj, separators=(",", ":")))

    def _track(self, cpu: int) -> int:
        if cpu not in self.tracks:
            self.tracks.add(cpu)
            self._emit({"ph": "M", "name": "thread_name", "pid": _PID, "tid": cpu,
                        "args": {"name": f"CPU {cpu}"}})
            self._emit({"ph": "M", "name": "thread_sort_index", "pid": _PID, "tid": cpu,
                        "args": {"sort_index": cpu}})
        return cpu

    def __call__(self, kind: str, ev: Event, info: dict) -> None:
        us = ev.ts / 1000
        if kind == "send":
            tid = self._track(ev.cpu)
            fid = self.next_id
            self.next_id += 1
            self._emit({"ph": "X", "name": f"IPI → CPU {info['target']}: {info['cause']}",
                        "cat": "ipi_send", "pid": _PID, "tid": tid, "ts": us, "dur": 1,
                        "args": {"comm": ev.comm, "pid": ev.pid,
                                 "callsite": ev.fields.get("callsite")}})
            self._emit({"ph": "s", "id": fid, "name": "ipi", "cat": "ipi", "pid": _PID,
                        "tid": tid, "ts": us})
            pending = self.in_flight.setdefault(info["target"], [])
            if len(pending) < _MAX_IN_FLIGHT:
                pending.append(fid)
        elif kind == "recv":
            tid = self._track(ev.cpu)
            self._emit({"ph": "X", "name": ev.name.removesuffix("_entry"), "cat": "ipi_recv",
                        "pid": _PID, "tid": tid, "ts": us, "dur": 1})
            for fid in self.in_flight.pop(ev.cpu, []):
                self._emit({"ph": "f", "bp": "e", "id": fid, "name": "ipi", "cat": "ipi",
                            "pid": _PID, "tid": tid, "ts": us})
        elif kind in ("slice", "recv_exit"):
            start = int(info["start"])
            name = str(info["name"]).removesuffix("_entry")
            self._emit({"ph": "X", "name": name if kind == "slice" else f"{name} handler",
                        "cat": "handler", "pid": _PID, "tid": self._track(ev.cpu),
                        "ts": start / 1000, "dur": max(ev.ts - start, 1) / 1000})

    def close(self) -> None:
        self.out.write("\n]}\n")
        self.out.close()
