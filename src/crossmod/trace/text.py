"""Text trace reader: ``trace-cmd report`` output and raw tracefs ``trace``/``trace_pipe``.

Owns: splitting lines into the common header (comm-pid, optional tgid, [cpu], optional
latency flags, seconds.fraction) and the event, parsing the fields of `events.SCHEMA`
events from their printed form, and attaching stacks (``kernel_stack: <stack trace >``
or ``<stack trace>``, then ``=> frame`` lines) to the event before them on the same CPU.
Events are yielded in file order: an event waits in a small queue only while it is the
latest on its CPU (a stack may still follow it), so memory stays bounded.

Bad input: a line that is neither an event, a stack frame nor a known header line, or an
event of `SCHEMA` whose fields do not parse, is recorded in `problems` with its line
number (raised at once when ``strict``) and the rest is still read. The reader never
raises anything but `TraceFormatError`.

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator

from crossmod.trace.events import SCHEMA, Event, TraceFormatError, frame_name, parse_cpulist

MAX_PROBLEMS = 100
_HOLD = 4096  # events held back at most while waiting for a possible stack

_LINE = re.compile(
    r"\s*(?P<comm>.*)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:[\w.]{4,6}\s+)?(?P<sec>\d+)\.(?P<frac>\d+):\s+"
    r"(?:(?P<stack><stack trace ?>)|(?P<ev>[^\s:]+):)\s?(?P<rest>.*)"
)
_HEADER = re.compile(
    r"\s*(#|cpus=\d+|version = \d+|CPU \d+ is empty|CPU:\s*\d+ \[LOST|\[LOST|$)"
)
_KV = re.compile(r"(\w+)[=:]\s*(\([^)]*\)|\S*)")


def _sym(v: str) -> str:
    """Drop what only raw tracefs prints after ``%pS``: the ``/0xsize`` and ``[module]``."""
    slash = v.find("/0x")
    return v[:slash] if slash > 0 else v


def _parse_fields(name: str, rest: str) -> dict[str, object]:
    """Fields of a `SCHEMA` event from its printed form; ValueError if they do not parse."""
    schema = SCHEMA[name]
    if name == "print":
        # trace-cmd prints "tracing_mark_write: text"; tracefs names the event after the ip
        rest = rest.strip()
        head, sep, tail = rest.partition(": ")
        return {"buf": (tail if sep and " " not in head else rest).rstrip()}
    if not schema:
        return {}
    raw = dict(_KV.findall(rest))
    out: dict[str, object] = {}
    for key, typ in schema.items():
        v = raw.get(key)
        if v is not None:
            v = v.rstrip(",")
        if v is None:
            raise ValueError(f"{name}: no field {key!r} in {rest.strip()[:60]!r}")
        if typ is int:
            if v.startswith("("):
                v = rest[rest.rfind("(") + 1 : rest.rfind(")")]
            try:
                out[key] = int(v, 16) if v.startswith("0x") else int(v)
            except ValueError:
                raise ValueError(f"{name}: field {key}={v!r} is not a number") from None
        elif typ is tuple:
            out[key] = parse_cpulist(v)
        else:
            out[key] = _sym(v)
    if name == "tlb_flush":  # "pages:%ld reason:%s (%d)": the number is in the parentheses
        lp, rp = rest.rfind("("), rest.rfind(")")
        out["reason"] = int(rest[lp + 1 : rp]) if 0 <= lp < rp else out["reason"]
    return out


def _ns(sec: str, frac: str) -> int:
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


class TextReader:
    """Iterate `Event`s of a text trace given as lines (a file object or any iterable)."""

    def __init__(self, lines: Iterable[str], path: str = "trace.txt", *,
                 strict: bool = False) -> None:
        self.lines, self.path, self.strict = lines, path, strict
        self.problems: list[TraceFormatError] = []
        self.problem_count = 0
        self.errors: list[TraceFormatError] = []
        self.lost_events = 0
        self.line_count = 0

    def problem(self, lineno: int, what: str) -> None:
        err = TraceFormatError(f"{self.path}:{lineno}", what)
        if self.strict:
            raise err
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(err)

    def __iter__(self) -> Iterator[Event]:
        queue: deque[Event] = deque()
        latest: dict[int, Event] = {}
        frames: list[str] | None = None
        target: Event | None = None
        match = _LINE.match
        for lineno, line in enumerate(self.lines, 1):
            self.line_count = lineno
            s = line.lstrip()
            if s.startswith("=>"):
                if frames is None:
                    self.problem(lineno, "stack frame without a <stack trace> line")
                else:
                    frames.append(frame_name(s))
                continue
            if frames is not None:
                if target is not None:
                    target.stack = tuple(frames)
                frames = target = None
            m = match(line)
            if m is None:
                self._other(lineno, line)
                continue
            ev = self._event(m, lineno)
            if ev is None:
                continue
            if ev.name == "kernel_stack" or m["stack"]:
                frames, target = [], latest.get(ev.cpu)
                continue
            queue.append(ev)
            latest[ev.cpu] = ev
            while queue and (queue[0] is not latest.get(queue[0].cpu) or len(queue) > _HOLD):
                yield queue.popleft()
        if frames is not None and target is not None:
            target.stack = tuple(frames)
        yield from queue

    def _event(self, m: re.Match[str], lineno: int) -> Event | None:
        name = m["ev"] or "kernel_stack"
        rest = m["rest"]
        if name == "tracing_mark_write":  # raw tracefs names print events after their ip
            name, rest = "print", "tracing_mark_write: " + rest
        fields: dict[str, object] = {}
        if name in SCHEMA:
            try:
                fields = _parse_fields(name, rest)
            except ValueError as exc:
                self.problem(lineno, str(exc))
                return None
        return Event(_ns(m["sec"], m["frac"]), int(m["cpu"]), int(m["pid"]),
                     m["comm"].strip(), name, fields)

    def _other(self, lineno: int, line: str) -> None:
        if _HEADER.match(line):
            if "LOST" in line:
                n = re.search(r"LOST (\d+)", line)
                self.lost_events += int(n[1]) if n else 1
            return
        self.problem(lineno, f"unparseable line {line.strip()[:60]!r}")


