"""Phase markers as people write them: ``print`` events that split a recording into phases.

Owns: `Phases`, which reads each ``PHASE <name> start|end [anything]`` marker (written to
``trace_marker``; anything after the keyword is a comment: a duration, a note) and keeps the
phases found, the open ones (innermost last: the events go to it) and what it had to decide:

* an ``end`` with no ``start`` (tracing began inside the phase): the phase runs from the
  start of the trace, and the caller moves the events it counted outside any phase to it;
* a ``start`` with no ``end``: the phase runs to the end of the trace;
* a phase started inside another (nested), or ended while a later one is still open
  (interleaved), a phase started again while open, an ``end`` again, and any other print
  that begins with ``PHASE``: each said in `warnings`, with how its events were attributed.

Nothing is dropped or re-attributed without a note in the phase or a warning.

May import: the standard library only.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Phase(TypedDict):
    """One phase as the report gives it (JSON `phases`)."""

    name: str
    start_ns: int | None  # the trace's first event, for a phase with no start marker
    end_ns: int | None  # None while open
    note: NotRequired[str]  # how a missing marker was read


class Phases:
    """The phases of one trace, fed its print events in order with `marker`."""

    def __init__(self, outside: str) -> None:
        self.outside = outside
        self.phases: list[Phase] = []
        self.open: list[str] = []
        self.warnings: list[str] = []

    @property
    def current(self) -> str:
        """The phase the next events belong to."""
        return self.open[-1] if self.open else self.outside

    def marker(self, buf: str, ts: int, first_ts: int | None) -> str | None:
        """Read one print's text at `ts`. Returns the name of a phase that ended with no
        start (its events so far outside any phase are the caller's to move), else None."""
        words = buf.split()
        if not words or words[0].upper() != "PHASE":
            return None
        at = f"at {ts / 1e9:.6f} s"
        if len(words) < 3 or words[2].lower() not in ("start", "end"):
            self.warnings.append(f"print {at} {buf.strip()[:60]!r} is not a phase marker "
                                 "('PHASE <name> start' or 'end'): ignored")
            return None
        name = words[1]
        if words[2].lower() == "start":
            self._start(name, ts, at)
            return None
        return self._end(name, ts, at, first_ts)

    def _start(self, name: str, ts: int, at: str) -> None:
        if name in self.open:
            self.warnings.append(f"phase {name} starts again {at} while it is open: the open "
                                 "one ends there")
            self._close(name, ts)
        if self.open:
            self.warnings.append(f"phase {name} starts {at} inside phase {self.open[-1]}: "
                                 f"until one of them ends, events are counted under {name} "
                                 "only")
        self.open.append(name)
        self.phases.append({"name": name, "start_ns": ts, "end_ns": None})

    def _end(self, name: str, ts: int, at: str, first_ts: int | None) -> str | None:
        if name in self.open:
            if self.open[-1] != name:
                self.warnings.append(
                    f"phase {name} ends {at} inside phase {self.open[-1]} (interleaved): "
                    f"events since {self.open[-1]} started were counted under "
                    f"{self.open[-1]}, not {name}")
            self._close(name, ts)
            return None
        if any(p["name"] == name for p in self.phases):
            self.warnings.append(f"phase {name} ends {at} again, with no start since it last "
                                 "ended: ignored")
            return None
        others = sorted({str(p["name"]) for p in self.phases})
        note = "no start marker: runs from the start of the trace"
        if others:
            note += f" (its events inside phase(s) {', '.join(others)} stay there)"
        self.phases.insert(0, {"name": name, "start_ns": first_ts, "end_ns": ts,
                               "note": note})
        return name

    def _close(self, name: str, ts: int) -> None:
        self.open.remove(name)
        for p in reversed(self.phases):
            if p["name"] == name and p["end_ns"] is None:
                p["end_ns"] = ts
                break

    def finish(self) -> None:
        """At the end of the trace: each phase still open runs to the end (said so)."""
        for p in self.phases:
            if p["end_ns"] is None and "note" not in p:
                p["note"] = "no end marker: runs to the end of the trace"
