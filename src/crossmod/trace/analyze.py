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

May import: the standard library and `crossmod.trace.events/causes/whatif`.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable

from crossmod.trace.causes import signature
from crossmod.trace.events import Event, symbol_name
from crossmod.trace.whatif import Classifier

OUTSIDE = "(no phase)"
GENERIC_CSD = "generic_smp_call_function_single_interrupt"
IPI_VECTORS = ("call_function_entry", "call_function_single_entry", "reschedule_entry",
               "irq_work_entry")
_VECTOR_EXITS = {n.replace("_entry", "_exit"): n for n in (*IPI_VECTORS, "local_timer_entry")}
_CPU_NAMES = {i: str(i) for i in range(256)}  # str(cpu) for the IPI keys, without a call
_MAX_QUEUED = 256  # per (sender, callsite): csds queued without a send are piggybacks


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
        self.phases: list[dict[str, object]] = []
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
        # a handler per event name; a str is the mode context tracking puts the CPU in
        self._on: dict[str, Callable[[Event], None] | str] = {
            "ipi_send_cpu": self._ipi_send, "ipi_send_cpumask": self._ipi_send,
            "csd_queue_cpu": self._csd_queue, "csd_function_entry": self._csd_entry,
            "csd_function_exit": self._csd_exit, "user_enter": "user",
            "user_exit": "kernel", "print": self._print,
        }
        for name in (*IPI_VECTORS, "local_timer_entry"):
            self._on[name] = self._vector_entry
        for name in _VECTOR_EXITS:
            self._on[name] = self._vector_exit

    def run(self, events: Iterable[Event]) -> Analysis:
        """`feed` every event; the loop is `feed` inlined, the hot path of the command.

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

    def _run(self, events: Iterable[Event]) -> Analysis:
        batches = getattr(events, "batches", None)
        source: Iterable[Iterable[Event]]
        if batches is not None:
            source = batches()
        else:
            it = iter(events)
            first = next(it, None)
            if first is None:
                return self
            source = ((first,), it)
            if self.first_ts is None:
                self.first_ts = first.ts
        on = self._on
        mode = self.mode
        counts = self._counts
        get = counts.get
        count = self._count
        ev = None
        user_seen = False
        for batch in source:
            if self.first_ts is None and batch:
                self.first_ts = batch[0].ts  # type: ignore[index]
            for ev in batch:
                name = ev.name
                try:
                    get(name)[ev.cpu] += 1  # type: ignore[index]
                except (TypeError, IndexError):  # a new name, or a CPU past the list
                    count(name, ev.cpu)
                h = on.get(name)
                if h is None:
                    continue
                if h.__class__ is str:  # user_enter / user_exit: the CPU's new mode
                    mode[ev.cpu] = h  # type: ignore[assignment]
                    if not user_seen:
                        user_seen = self.context_tracking = True
                    continue
                h(ev)  # type: ignore[operator]
                if name == "print":  # a phase marker switches the counters
                    counts = self._counts
                    get = counts.get
        if ev is not None:
            self.last_ts = ev.ts
        return self

    @property
    def events(self) -> Counter[tuple[str, int, str]]:
        """Events seen, by (name, cpu, phase)."""
        return Counter({(name, cpu, p): n for p, d in self._by_phase.items()
                        for name, per_cpu in d.items() for cpu, n in enumerate(per_cpu) if n})

    def _count(self, name: str, cpu: int) -> None:
        per_cpu = self._counts.setdefault(name, [])
        if cpu < 0:
            raise ValueError(f"{name}: CPU {cpu} is not a CPU number")
        if cpu >= len(per_cpu):
            per_cpu.extend([0] * (cpu + 1 - len(per_cpu)))
        per_cpu[cpu] += 1

    def feed(self, ev: Event) -> None:
        if self.first_ts is None:
            self.first_ts = ev.ts
        self.last_ts = ev.ts
        self._count(ev.name, ev.cpu)
        h = self._on.get(ev.name)
        if h.__class__ is str:
            self.context_tracking = True
            self.mode[ev.cpu] = h  # type: ignore[assignment]
        elif h is not None:
            h(ev)  # type: ignore[operator]

    # -- phases and modes ---------------------------------------------------------------
    def _print(self, ev: Event) -> None:
        words = str(ev.fields.get("buf", "")).split()
        if len(words) != 3 or words[0] != "PHASE" or words[2] not in ("start", "end"):
            return
        if words[2] == "start":
            self._set_phase(words[1])
            self.phases.append({"name": words[1], "start_ns": ev.ts, "end_ns": None})
        elif self.phase == words[1]:
            self._set_phase(OUTSIDE)
            self.phases[-1]["end_ns"] = ev.ts

    def _set_phase(self, name: str) -> None:
        self.phase = name
        self._counts = self._by_phase.setdefault(name, {})

    # -- sender side --------------------------------------------------------------------
    def _csd_queue(self, ev: Event) -> None:
        f = ev.fields
        target = f["cpu"]
        if target not in self.iso:
            return
        func = str(f["func"])
        self._c[(target, "queued", func, self.phase)] += 1
        key = (ev.cpu, str(f["callsite"]))
        batch = self.queued.get(key)
        if batch is None:
            batch = self.queued[key] = {}
        items = batch.get(target)  # type: ignore[call-overload]
        if items is None:
            items = batch[target] = []  # type: ignore[index]
        if len(items) < _MAX_QUEUED:
            stack = ev.stack
            items.append((func, self.mode.get(target, "unknown"),
                          signature(stack) if stack else "(no stack)"))

    def _ipi_send(self, ev: Event) -> None:
        f = ev.fields
        targets = (f["cpu"],) if "cpu" in f else f["cpumask"]
        callsite = str(f["callsite"])
        batch = self.queued.pop((ev.cpu, callsite), None)
        iso = self.iso
        for t in targets:  # type: ignore[union-attr]
            if t in iso:
                self._count_ipi(ev, t, batch.get(t) if batch else None, callsite)

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

    def _count_ipi(self, ev: Event, target: int, items: list[tuple[str, str, str]] | None,
                   callsite: str) -> None:
        if items:
            if len(items) == 1:
                cause, mode, sig = items[0]
            else:
                cause = "+".join(sorted({i[0] for i in items}))
                mode, sig = items[0][1], items[0][2]
        else:
            cause = self._cause(str(ev.fields["callback"]))
            mode, sig = self.mode.get(target, "unknown"), "(no stack)"
        stack = ev.stack
        if stack:
            sig = signature(stack)
        ts = ev.ts
        key = (target, cause, callsite, ev.comm, _CPU_NAMES.get(ev.cpu) or str(ev.cpu), sig,
               mode, self.phase)
        ipis = self.ipis
        ipis[key] = ipis.get(key, 0) + 1
        hist = self.hist.get((target, cause))
        if hist is None:
            hist = self.hist[(target, cause)] = Histogram(self.first_ts or ts)
        i = (ts - hist.origin) // hist.width
        bins = hist.bins
        if 0 <= i < len(bins):
            bins[i] += 1
        else:
            hist.add(ts)
        if self.sink:
            self.sink("send", ev, {"target": target, "cause": cause})

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

    # -- receiver side ------------------------------------------------------------------
    def _vector_entry(self, ev: Event) -> None:
        if ev.cpu not in self.iso:
            return
        self._c[(ev.cpu, "handled", ev.name, self.phase)] += 1
        self.open_vec[ev.cpu] = (ev.name, ev.ts)
        if self.sink:
            self.sink("recv", ev, {})

    def _vector_exit(self, ev: Event) -> None:
        entry = self.open_vec.pop(ev.cpu, None)
        if entry and entry[0] == _VECTOR_EXITS[ev.name]:
            self._time(ev.cpu, entry[0].removesuffix("_entry") + " (vector)", ev.ts - entry[1])
            if self.sink:
                self.sink("recv_exit", ev, {"name": entry[0], "start": entry[1]})

    def _csd_entry(self, ev: Event) -> None:
        if ev.cpu not in self.iso:
            return
        func = str(ev.fields["func"])
        self._c[(ev.cpu, "ran", func, self.phase)] += 1
        stack = self.open_csd.get(ev.cpu)
        if stack is None:
            stack = self.open_csd[ev.cpu] = []
        if len(stack) < 16:
            stack.append((func, ev.ts))

    def _csd_exit(self, ev: Event) -> None:
        stack = self.open_csd.get(ev.cpu)
        if stack and stack[-1][0] == ev.fields["func"]:
            func, start = stack.pop()
            self._time(ev.cpu, func, ev.ts - start)
            if self.sink:
                self.sink("slice", ev, {"name": func, "start": start})

    def _time(self, cpu: int, what: str, ns: int) -> None:
        h = self.handler.get((cpu, what))
        if h is None:
            h = self.handler[(cpu, what)] = [0, 0, 0]
        h[0] += 1
        h[1] += ns
        if ns > h[2]:
            h[2] = ns
