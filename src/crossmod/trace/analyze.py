"""IPIs aimed at and handled on isolated CPUs: one pass over a stream of `Event`s.

Owns: the per-event state machine (phase markers, each CPU's user/kernel mode from
context tracking, callbacks queued per sender, handler entry/exit pairing) and the
counters the report is built from. Memory is bounded by the number of distinct keys
(callbacks, callsites, stacks, phases), never by the trace length.

Attribution follows the kernel (KERNEL.md F.3/F.4, J.2): ``csd_queue_cpu`` names the
function queued for a target; the ``ipi_send_cpu``/``ipi_send_cpumask`` that follows on
the same sender CPU *with the same callsite* is the hardware IPI carrying it (a target
whose queue was already non-empty gets no IPI of its own, so the batch is dropped at the
send). An IPI with a NULL callback is a reschedule IPI; one whose callback is not the
generic CSD handler names its function itself (irq_work self-IPIs).

Phases: ``print`` markers, read by `phases.Phases`; the events go to the innermost open
phase, and an end with no start moves the events counted outside any phase until then to it.

Past 400 lines on purpose: `_run` is the command's hot loop, one function (a call per event
cost more than most handlers' work), and the counters it fills live beside it.

May import: the standard library and `crossmod.trace.events/causes/phases/whatif/speedups`.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from crossmod.trace.causes import signature
from crossmod.trace.events import Event, symbol_name
from crossmod.trace.phases import Phase, Phases
from crossmod.trace.speedups import scan as _scan
from crossmod.trace.whatif import Classifier

OUTSIDE = "(no phase)"
GENERIC_CSD = "generic_smp_call_function_single_interrupt"
IPI_VECTORS = ("call_function_entry", "call_function_single_entry", "reschedule_entry",
               "irq_work_entry")
_VECTOR_EXITS = {n.replace("_entry", "_exit"): n for n in (*IPI_VECTORS, "local_timer_entry")}
_CPU_NAMES = {i: str(i) for i in range(256)}  # str(cpu) for the IPI keys, without a call
_MAX_QUEUED = 256  # per (sender, callsite): csds queued without a send are piggybacks
_VECTOR_LABEL = {n: n.removesuffix("_entry") + " (vector)" for n in _VECTOR_EXITS.values()}

# What `Analysis._run` does with an event, by name (the order of the tests in the loop
# follows how common the events are); events not listed are only counted.
_USER, _KERNEL, _OTHER, _CSD_ENTRY, _CSD_EXIT, _VECTOR_ENTRY, _CSD_QUEUE, _VECTOR_EXIT, \
    _IPI_SEND, _PRINT = range(10)
_KIND = {
    "user_enter": _USER, "user_exit": _KERNEL,
    "csd_function_entry": _CSD_ENTRY, "csd_function_exit": _CSD_EXIT,
    **{n: _VECTOR_ENTRY for n in (*IPI_VECTORS, "local_timer_entry")},
    **{n: _VECTOR_EXIT for n in _VECTOR_EXITS},
    "csd_queue_cpu": _CSD_QUEUE, "ipi_send_cpu": _IPI_SEND, "ipi_send_cpumask": _IPI_SEND,
    "print": _PRINT,
}


def _count_upto_py(batch: list[Event], start: int, counts: dict[str, list[int]],
                   kind: dict[str, int], other: int) -> int:
    """Count batch[start:end] into `counts` (name -> counts by CPU), `end` being one past
    the first ``print`` (a phase marker) or the end; new names go into `kind` as `other`
    (the reference `_scan.count_upto` is ported from)."""
    for i in range(start, len(batch)):
        ev = batch[i]
        name, cpu = ev.name, ev.cpu
        if cpu < 0:
            raise ValueError(f"{name}: CPU {cpu} is not a CPU number")
        per_cpu = counts.get(name)
        if per_cpu is None:
            per_cpu = counts[name] = []
            kind.setdefault(name, other)
        if cpu >= len(per_cpu):
            per_cpu.extend([0] * (cpu + 1 - len(per_cpu)))
        per_cpu[cpu] += 1
        if name == "print":
            return i + 1
    return len(batch)


def _add_time(handler: dict[tuple[int, str], list[int]], key: tuple[int, str], ns: int) -> None:
    """One handler run of `ns` into handler[key] = [runs, total ns, longest ns]."""
    h = handler.get(key)
    if h is None:
        h = handler[key] = [0, 0, 0]
    h[0] += 1
    h[1] += ns
    if ns > h[2]:
        h[2] = ns


# the stack `_signature_of` saw last and its signature (a list: rebound without `global`)
_last_stack: list[Any] = [None, ""]


def _signature_of(stack: tuple[str, ...] | None) -> str:
    """`causes.signature`, answered at once for the same stack object as last time (the
    readers share one tuple per distinct stack; a tuple's hash is not cached)."""
    if not stack:
        return "(no stack)"
    if stack is _last_stack[0]:
        return _last_stack[1]
    sig = signature(stack)
    _last_stack[0], _last_stack[1] = stack, sig
    return sig


class Histogram:
    """Counts over time in at most `max_bins` bins; bins double in width when full."""

    def __init__(self, origin: int, width: int = 100_000_000, max_bins: int = 600) -> None:
        self.origin, self.width, self.max_bins = origin, width, max_bins
        self.bins: list[int] = []

    def add(self, ts: int) -> None:
        i = max(0, (ts - self.origin) // self.width)
        while i >= self.max_bins:
            self.bins = [sum(self.bins[j : j + 2]) for j in range(0, len(self.bins), 2)]
            self.width *= 2
            i //= 2
        if i >= len(self.bins):
            self.bins.extend([0] * (i + 1 - len(self.bins)))
        self.bins[i] += 1


class Analysis:
    """Feed events in timestamp order with `feed`; read the counters afterwards."""

    def __init__(self, isolated: Iterable[int], classifier: Classifier | None = None,
                 sink: Callable[[str, Event, dict], None] | None = None) -> None:
        self.iso = frozenset(isolated)
        self.cls = classifier or Classifier()
        self.sink = sink
        self.phase = OUTSIDE
        self.marks = Phases(OUTSIDE)
        # ipi_send_cpu/ipi_send_cpumask events naming at least one isolated CPU, by phase
        # (one event may target many CPUs: the cover letters' first counting unit)
        self.send_events: Counter[str] = Counter()
        self._max_target = -1  # the highest CPU an IPI or a csd was aimed at
        # events seen per phase: name -> a list indexed by CPU (a CPU number is >= 0);
        # cheaper in the hot loop than a dict keyed by (name, cpu)
        self._by_phase: dict[str, dict[str, list[int]]] = {OUTSIDE: {}}
        self._counts = self._by_phase[OUTSIDE]  # name -> [n per CPU] in the current phase
        self._c: Counter[tuple[int, str, str, str]] = Counter()
        # one counter per IPI aimed at an isolated CPU, keyed by everything the report
        # breaks it down by; the per-dimension tables are derived once, in `c`
        self.ipis: Counter[tuple[int, str, str, str, str, str, str, str]] = Counter()
        self._derived: tuple[int, Counter[tuple[int, str, str, str]]] | None = None
        self.mode: dict[int, str] = {}
        self.context_tracking = False
        self.queued: dict[tuple[int, str], dict[int, list[tuple[str, str, str]]]] = {}
        self.open_csd: dict[int, list[tuple[str, int]]] = {}
        self.open_vec: dict[int, tuple[str, int]] = {}
        self.handler: dict[tuple[int, str], list[int]] = {}  # -> [n, total ns, max ns]
        self.hist: dict[tuple[int, str], Histogram] = {}
        self.first_ts: int | None = None
        self.last_ts = 0
        self._causes: dict[str, str] = {}
        self._kind = dict(_KIND)  # grows: every name seen, the new ones as _OTHER

    def run(self, events: Iterable[Event]) -> Analysis:
        """`feed` every event in order (timestamp order, as the readers give them).

        `events` may offer ``batches()``, the same events as lists (the readers do):
        looping over lists is cheaper than resuming a generator per event. While it runs,
        the cyclic GC's first generation is collected every 100,000 allocations instead of
        700: the readers allocate an object or two per event, none in a cycle, and the
        default threshold spent ~15 % of the time walking the live ones (memory is still
        freed by reference counting as the events are dropped)."""
        threshold = gc.get_threshold()
        gc.set_threshold(max(threshold[0], 100_000), *threshold[1:])
        try:
            return self._run(events)
        finally:
            gc.set_threshold(*threshold)

    def feed(self, ev: Event) -> None:
        """One event (`run` on a one-event list)."""
        self._run((ev,))

    def _run(self, events: Iterable[Event]) -> Analysis:
        """The per-event state machine: one long loop on purpose (the command's hot path;
        in CPython a method call per event cost more than most handlers' work). Rare
        events (phase markers, IPIs aimed at an isolated CPU) call out."""
        batches = getattr(events, "batches", None)
        source: Iterable[Sequence[Event]]
        if batches is not None:
            source = batches()
        elif isinstance(events, (list, tuple)):
            source = (events,)
        else:
            it = iter(events)
            source = iter(lambda: list(islice(it, 4096)), [])
        kind = self._kind
        mode = self.mode
        iso = self.iso
        counts = self._counts
        c = self._c
        cget = c.get
        phase = self.phase
        queued = self.queued
        open_csd = self.open_csd
        open_vec = self.open_vec
        handler = self.handler
        ipis = self.ipis
        ipis_get = ipis.get
        hists = self.hist
        sink = self.sink
        cause_of = self._cause
        signature_of = _signature_of
        cpu_names = _CPU_NAMES
        tracked = self.context_tracking
        ev = None
        count_upto = _scan.count_upto if _scan is not None else _count_upto_py
        send_events = self.send_events
        top = self._max_target
        try:
            for batch in source:
                if not batch:
                    continue
                if self.first_ts is None:
                    self.first_ts = batch[0].ts
                if batch.__class__ is not list:
                    batch = list(batch)
                # every event is counted (by name and CPU, in the current phase) a run at a
                # time, in C when it is built: a run ends after a phase marker
                n = len(batch)
                done = 0
                while done < n:
                    upto = count_upto(batch, done, counts, kind, _OTHER)
                    run = batch if done == 0 and upto == n else batch[done:upto]
                    done = upto
                    for ev in run:
                        name = ev.name
                        cpu = ev.cpu
                        k = kind[name]
                        if k <= _KERNEL:  # user_enter / user_exit: the CPU's new mode
                            mode[cpu] = "user" if k == _USER else "kernel"
                            if not tracked:
                                tracked = self.context_tracking = True
                        elif k == _OTHER:
                            continue
                        elif k == _CSD_ENTRY:
                            if cpu in iso:
                                func = ev.fields["func"]
                                key = (cpu, "ran", func, phase)
                                c[key] = cget(key, 0) + 1
                                stack = open_csd.get(cpu)
                                if stack is None:
                                    stack = open_csd[cpu] = []
                                if len(stack) < 16:
                                    stack.append((func, ev.ts))
                        elif k == _CSD_EXIT:
                            stack = open_csd.get(cpu)
                            if stack and stack[-1][0] == ev.fields["func"]:
                                func, start = stack.pop()
                                _add_time(handler, (cpu, func), ev.ts - start)
                                if sink:
                                    sink("slice", ev, {"name": func, "start": start})
                        elif k == _VECTOR_ENTRY:
                            if cpu in iso:
                                key = (cpu, "handled", name, phase)
                                c[key] = cget(key, 0) + 1
                                open_vec[cpu] = (name, ev.ts)
                                if sink:
                                    sink("recv", ev, {})
                        elif k == _CSD_QUEUE:
                            f = ev.fields
                            target = f["cpu"]
                            if target > top:
                                top = target
                            if target in iso:
                                func = f["func"]
                                key = (target, "queued", func, phase)
                                c[key] = cget(key, 0) + 1
                                qkey = (cpu, f["callsite"])
                                batch_q = queued.get(qkey)
                                if batch_q is None:
                                    batch_q = queued[qkey] = {}
                                items = batch_q.get(target)
                                if items is None:
                                    items = batch_q[target] = []
                                if len(items) < _MAX_QUEUED:
                                    items.append((func, mode.get(target, "unknown"),
                                                  signature_of(ev.stack)))
                        elif k == _VECTOR_EXIT:
                            entry = open_vec.pop(cpu, None)
                            if entry and entry[0] == _VECTOR_EXITS[name]:
                                _add_time(handler, (cpu, _VECTOR_LABEL[entry[0]]),
                                          ev.ts - entry[1])
                                if sink:
                                    sink("recv_exit", ev, {"name": entry[0], "start": entry[1]})
                        elif k == _IPI_SEND:
                            # an IPI: which of the csds queued by this sender at this callsite it
                            # carries to each isolated target, counted under everything the
                            # report breaks it down by
                            f = ev.fields
                            callsite = f["callsite"]
                            batch_q = queued.pop((cpu, callsite), None)
                            ts = ev.ts
                            sent = False
                            for t in (f["cpu"],) if "cpu" in f else f["cpumask"]:
                                if t > top:
                                    top = t
                                if t not in iso:
                                    continue
                                if not sent:  # the event, once, however many targets
                                    sent = True
                                    send_events[phase] += 1
                                items = batch_q.get(t) if batch_q else None
                                if items:
                                    if len(items) == 1:
                                        cause, tmode, sig = items[0]
                                    else:
                                        cause = "+".join(sorted({i[0] for i in items}))
                                        tmode, sig = items[0][1], items[0][2]
                                else:
                                    cause = cause_of(f["callback"])
                                    tmode, sig = mode.get(t, "unknown"), "(no stack)"
                                if ev.stack:
                                    sig = signature_of(ev.stack)
                                ikey = (t, cause, callsite, ev.comm,
                                        cpu_names.get(cpu) or str(cpu), sig, tmode, phase)
                                ipis[ikey] = ipis_get(ikey, 0) + 1
                                hist = hists.get((t, cause))
                                if hist is None:
                                    hist = hists[(t, cause)] = Histogram(self.first_ts or ts)
                                i = (ts - hist.origin) // hist.width
                                bins = hist.bins
                                if 0 <= i < len(bins):
                                    bins[i] += 1
                                else:
                                    hist.add(ts)
                                if sink:
                                    sink("send", ev, {"target": t, "cause": cause})
                        else:  # a print: a phase marker switches the counters
                            self._print(ev)
                            counts = self._counts
                            phase = self.phase
        finally:
            # also when the source raised (^C between two batches): the counters then
            # cover exactly the events up to `ev`
            if ev is not None:
                self.last_ts = ev.ts
            self._max_target = top
        return self

    @property
    def max_cpu(self) -> int:
        """The highest CPU number an event ran on or named as a target (-1: none)."""
        ran = max((len(per_cpu) - 1 for d in self._by_phase.values() for per_cpu in d.values()),
                  default=-1)
        return max(ran, self._max_target)

    @property
    def events(self) -> Counter[tuple[str, int, str]]:
        """Events seen, by (name, cpu, phase)."""
        return Counter({(name, cpu, p): n for p, d in self._by_phase.items()
                        for name, per_cpu in d.items() for cpu, n in enumerate(per_cpu) if n})

    # -- phases and modes ---------------------------------------------------------------
    def _print(self, ev: Event) -> None:
        """A ``print`` event: a phase marker switches the counters (`phases.Phases`)."""
        moved = self.marks.marker(str(ev.fields.get("buf", "")), ev.ts, self.first_ts)
        if moved is not None:
            self._from_trace_start(moved)
        self._set_phase(self.marks.current)

    def _from_trace_start(self, name: str) -> None:
        """Phase `name` ended with no start: the events counted outside any phase until
        here move to it (events inside other phases stay there)."""
        outside = self._by_phase.pop(OUTSIDE, {})
        into = self._by_phase.setdefault(name, {})
        for ev_name, per_cpu in outside.items():
            mine = into.setdefault(ev_name, [])
            if len(mine) < len(per_cpu):
                mine.extend([0] * (len(per_cpu) - len(mine)))
            for cpu, n in enumerate(per_cpu):
                mine[cpu] += n
        self._by_phase[OUTSIDE] = {}
        counters: tuple[Counter[Any], ...] = (self._c, self.ipis)  # keys end in the phase
        for counter in counters:
            moved = [(k, n) for k, n in counter.items() if k[-1] == OUTSIDE]
            for k, n in moved:
                del counter[k]
                counter[(*k[:-1], name)] += n
        self.send_events[name] += self.send_events.pop(OUTSIDE, 0)
        self._derived = None

    @property
    def phases(self) -> list[Phase]:
        return self.marks.phases

    @property
    def phase_warnings(self) -> list[str]:
        return self.marks.warnings

    def finish_phases(self) -> None:
        self.marks.finish()

    def _set_phase(self, name: str) -> None:
        self.phase = name
        self._counts = self._by_phase.setdefault(name, {})

    # -- sender side --------------------------------------------------------------------
    def _cause(self, callback: str) -> str:
        """The cause of an IPI no traced csd explains, from its callback (memoised)."""
        cause = self._causes.get(callback)
        if cause is None:
            cb = symbol_name(callback)
            cause = "reschedule" if cb == "0x0" else (
                "(csd not traced)" if cb == GENERIC_CSD else cb)
            if len(self._causes) < 4096:
                self._causes[callback] = cause
        return cause

    @property
    def c(self) -> Counter[tuple[int, str, str, str]]:
        """All counters as (cpu, table, key, phase) -> n, the IPI tables derived from
        `ipis` (cached until the counts change)."""
        version = sum(self.ipis.values()) + sum(self._c.values())
        if self._derived is None or self._derived[0] != version:
            c = Counter(self._c)
            for (t, cause, callsite, comm, sender, sig, mode, p), n in self.ipis.items():
                for table, key in (("ipi", ""), ("cause", cause), ("callsite", callsite),
                                   ("task", comm), ("sender_cpu", sender), ("stack", sig),
                                   ("mode", mode)):
                    c[(t, table, key, p)] += n
                self._whatif(c, t, tuple(cause.split("+")), cause, mode, p, n)
            self._derived = (version, c)
        return self._derived[1]

    def _whatif(self, c: Counter[tuple[int, str, str, str]], target: int,
                funcs: tuple[str, ...], cause: str, mode: str, p: str, n: int) -> None:
        if not self.cls.deferrable(funcs):
            c[(target, "remaining", cause, p)] += n
        elif mode == "user":
            c[(target, "removable", cause, p)] += n
        elif mode == "kernel":
            # deferrable callback, but the target was in the kernel: the IPI is still needed
            c[(target, "in_kernel", cause, p)] += n
            c[(target, "remaining", cause, p)] += n
        else:
            # decided by the report: removable if the trace has no context tracking at
            # all (the what-if then assumes userspace), kept if it has but not yet here
            c[(target, "mode_unknown", cause, p)] += n
