"""`crossmod simulate --replay TRACE --isolated L`: a recording's housekeeping activity
(each IPI aimed at an isolated CPU: when, from which CPU, carrying which callbacks) against
simulated isolated CPUs whose kernel periods are the recording's own (context tracking's
user_exit/user_enter), placed step by step by the cost model (`entrypath.Period`).

Owns: `replay(path, isolated, policy)` -> `engine.Result`. Imports: trace.source,
trace.analyze (the same attribution of csds to IPIs `crossmod trace` makes, through its
sink), simulate.engine/entrypath/costs.

Where it differs from `crossmod trace`'s what-if: both read the target when its first csd
was queued (where on_each_cpu_cond evaluates its cond); the what-if reads the mode, the
replay `kernel_cr3_loaded`, with the
signal up from NOTE_SWITCH_TO_KERNEL_CR3 (before user_exit) to NOTE_SWITCH_TO_USER_CR3
(after user_enter): a send in those few tens of ns is kept by the replay and removed by
the what-if. MODEL: the recorded kernel periods include those the removed IPIs caused.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator

from crossmod.simulate import entrypath
from crossmod.simulate.costs import CostModel
from crossmod.simulate.engine import NS, Result, deferred_callbacks
from crossmod.simulate.entrypath import Period
from crossmod.trace.analyze import Analysis
from crossmod.trace.events import Event
from crossmod.trace.source import open_trace


class _Periods:
    """One isolated CPU's recorded kernel periods, as `Period`s."""

    def __init__(self, c: CostModel) -> None:
        self.c = c
        self.starts: list[float] = []
        self.periods: list[Period] = []
        self.first: float | None = None
        self._open: float | None = None

    def user_exit(self, ts: float) -> None:
        if self.first is None:
            self.first = ts
        self._open = ts

    def user_enter(self, ts: float) -> None:
        c = self.c
        if self.first is None:
            self.first = ts
            self._open = ts  # in the kernel since before the trace
        if self._open is not None:
            start = self._open - (c.entry_stub_ns + c.signal_store_ns + c.cr3_write_ns +
                                  c.ct_enter_ns)
            self.starts.append(start)
            self.periods.append(Period(start, ts + c.exit_ns, "recorded"))
        self._open = None

    def at(self, t: float) -> Period | None:
        """The period holding t; before the CPU's first transition, or after its last
        user_exit, in the kernel (the what-if keeps an IPI whose target mode it does not
        know)."""
        if self.first is None or t < self.first or (self._open is not None and t >= self._open):
            return Period(t - 1e9, t + 1e9, "unknown")
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.periods[i].end:
            return self.periods[i]
        return None


def replay(path: str, isolated: tuple[int, ...], policy: str,
           costs: CostModel | None = None) -> Result:
    c = costs or CostModel()
    iso = frozenset(isolated)
    periods = {n: _Periods(c) for n in isolated}
    sends: list[tuple[int, int, int, int, str]] = []
    # (sender, callsite, target) -> queue times of its csds not yet carried by an IPI. The
    # tap reads a batch ahead of the analysis, so a send takes the entries up to its own
    # time: as in Analysis, csds queued without a send ride on the next one from the site.
    queued: dict[tuple[int, str, int], deque[int]] = {}

    current: Event | None = None  # the send being attributed
    firsts: dict[int, int] = {}  # its targets' first csds

    def sink(kind: str, ev: Event, extra: dict) -> None:
        nonlocal current
        if kind != "send":
            return
        if current is not ev:
            # a new send: as Analysis drops the batch of its (sender, callsite) at a send,
            # every target's csds up to now go with it
            firsts.clear()
            for n in isolated:
                q = queued.get((ev.cpu, ev.fields["callsite"], n))
                if q and q[0] <= ev.ts:
                    firsts[n] = q.popleft()
                    while q and q[0] <= ev.ts:
                        q.popleft()
            current = ev
        t = extra["target"]
        sends.append((firsts.get(t, ev.ts), ev.ts, ev.cpu, t, extra["cause"]))

    def tap(events: Iterable[Event]) -> Iterator[Event]:
        for ev in events:
            if ev.name == "csd_queue_cpu":
                target = ev.fields["cpu"]
                if target in iso:
                    key = (ev.cpu, ev.fields["callsite"], target)
                    q = queued.get(key)
                    if q is None:
                        q = queued[key] = deque()
                    q.append(ev.ts)
            elif ev.cpu in iso:
                if ev.name == "user_exit":
                    periods[ev.cpu].user_exit(ev.ts)
                elif ev.name == "user_enter":
                    periods[ev.cpu].user_enter(ev.ts)
            yield ev

    reader, _ = open_trace(path)
    a = Analysis(isolated, sink=sink)
    a.run(tap(reader))
    first, last = a.first_ts or 0, a.last_ts
    deferred = deferred_callbacks(policy)
    res = Result(f"replay of {path}", policy, 0, (last - first) / NS, tuple(isolated),
                 deferred)
    seen: set[tuple[int, int]] = set()
    for tq, ts, sender, target, cause in sends:
        funcs = cause.split("+")
        # on_each_cpu_cond evaluates its cond before queueing: the target's step then
        p = periods[target].at(tq)
        step, drained = p.at(tq, c) if p is not None else ("user", True)
        deferrable = all(f in deferred for f in funcs)
        if deferrable and not entrypath.passes(policy, step, drained):
            res.skipped[(target, cause)] += 1
            continue
        if (ts, sender) not in seen:
            seen.add((ts, sender))
            res.send_events[cause] += 1
        res.csds[(target, cause)] += len(funcs)
        res.received[(target, cause)] += 1
        res.times.setdefault((target, cause), []).append(ts - first)
        if deferrable and policy != "none":
            w = entrypath.window(policy, step, p.kind if p else "user")
            res.windows[(w, cause)] += 1
    return res
