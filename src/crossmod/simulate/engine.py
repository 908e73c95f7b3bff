"""The seeded timed scheduler: housekeeping operations arrive (Poisson, per operation),
each makes its `smp_call_function_many_cond` calls; every isolated target is let through
or skipped by `entrypath.passes` at the step the target is at when the sender's cond reads
its state; IPIs taken, work deferred and run at the next entry, and the noise the
isolated CPUs' userspace loop sees are counted.

Owns: `POLICIES` (which callbacks each policy defers, from kernel/history/deferral.py's
`Deferral.deferred`), `Cpu` (one isolated CPU's kernel periods: its own periodic syscalls
and residual tick computed in O(1) at any time, plus the periods IPIs and NMIs add),
`simulate(scenario, policy, seed, hours)` -> `Result`. Imports: simulate.*,
kernel.history.deferral.

MODEL: the isolated CPUs' syscalls and ticks are periodic (random phase per CPU), so a
CPU's position at any time is arithmetic, not an event per syscall; operation arrivals and
NMIs are Poisson. Deferred work extends the period it runs in for the noise account but
not for later position queries.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, field

from crossmod.kernel.history.deferral import Deferral
from crossmod.simulate import entrypath
from crossmod.simulate.entrypath import Period
from crossmod.simulate.scenario import Ipi, Scenario

NS = 1e9
_DEFERRALS = {"none": Deferral(), "ct": Deferral(policy="ct"),
              "cr3": Deferral(policy="cr3", tlb="cr3", entry_flush=True)}
POLICY_NAMES = tuple(_DEFERRALS)
UNCONVERTED = "not deferred: a call site the series did not convert (Ipi.deferrable = false)"


def deferred_callbacks(policy: str, pti: bool = True) -> frozenset[str]:
    """What `policy` defers to the next kernel entry (F.6). cr3's kernel TLB flush covers
    `flush_tlb_kernel_range`, whose large ranges send do_flush_tlb_all (kernel/tlb.py T2);
    without kPTI there is no CR3 write to catch up with (TRACK_CR3 depends on PTI)."""
    d = _DEFERRALS[policy]
    out = set(d.deferred())
    if "do_kernel_range_flush" in out:
        out.add("do_flush_tlb_all")
    if policy == "cr3" and not pti:
        return frozenset()
    return frozenset(out)


@dataclass
class Cpu:
    """One isolated CPU: its periodic syscalls and tick, the last added period, pending
    deferred work (time, callback), and its counters."""

    n: int
    sys_period: float
    sys_phase: float
    sys_len: float
    tick_period: float
    tick_phase: float
    tick_len: float
    extra: Period | None = None
    pending: list[tuple[float, str]] = field(default_factory=list)
    ipi_arrival: float = -1.0

    def own_at(self, t: float) -> Period | None:
        for per, ph, ln, kind in ((self.sys_period, self.sys_phase, self.sys_len, "syscall"),
                                  (self.tick_period, self.tick_phase, self.tick_len, "tick")):
            if per > 0 and t >= ph:
                start = ph + math.floor((t - ph) / per) * per
                if t < start + ln:
                    return Period(start, start + ln, kind)
        return None

    def period_at(self, t: float) -> Period | None:
        x = self.extra
        if x is not None and x.start <= t < x.end:
            return x
        return self.own_at(t)

    def next_own_entry(self, t: float) -> tuple[float, str]:
        best = (math.inf, "")
        for per, ph, kind in ((self.sys_period, self.sys_phase, "syscall"),
                              (self.tick_period, self.tick_phase, "tick")):
            if per > 0:
                start = ph if t < ph else ph + (math.floor((t - ph) / per) + 1) * per
                best = min(best, (start, kind))
        return best

    def entries(self, seconds: float) -> int:
        """Own entries (syscalls and ticks) in [0, seconds)."""
        total = 0
        for per, ph in ((self.sys_period, self.sys_phase), (self.tick_period, self.tick_phase)):
            if per > 0 and seconds * NS > ph:
                total += math.floor((seconds * NS - ph - 1e-9) / per) + 1
        return total


@dataclass
class Result:
    """One policy's run, as data (`output.to_json` renders it)."""

    scenario: str
    policy: str
    seed: int
    seconds: float
    isolated: tuple[int, ...]
    deferred: frozenset[str]
    received: Counter[tuple[int, str]] = field(default_factory=Counter)
    csds: Counter[tuple[int, str]] = field(default_factory=Counter)
    send_events: Counter[str] = field(default_factory=Counter)  # by callback
    skipped: Counter[tuple[int, str]] = field(default_factory=Counter)
    windows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (window, callback)
    examples: list[dict[str, object]] = field(default_factory=list)
    coalesced: Counter[int] = field(default_factory=Counter)  # callbacks per deferred entry
    flush_entries: Counter[str] = field(default_factory=Counter)  # entry kind -> n
    pending_at_end: int = 0
    noise: Counter[int] = field(default_factory=Counter)  # interruption ns -> n
    noise_by_cpu: Counter[int] = field(default_factory=Counter)  # cpu -> ns
    entries: int = 0
    entry_overhead_ns: float = 0.0
    deferred_work_ns: float = 0.0
    hazards: Counter[str] = field(default_factory=Counter)
    times: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    slices: list[tuple[int, float, float, str]] = field(default_factory=list)
    sim_events: int = 0

    @property
    def received_total(self) -> int:
        return sum(self.received.values())

    @property
    def ipi_send_events(self) -> int:
        return sum(self.send_events.values())


_MAX_EXAMPLES = 50
_MAX_SLICES = 20000


class _Run:
    def __init__(self, sc: Scenario, policy: str, seed: int, seconds: float,
                 syscall_hz: float | None) -> None:
        self.sc, self.c, self.policy = sc, sc.costs, policy
        self.deferred = deferred_callbacks(policy, sc.pti)
        self.end = seconds * NS
        self.res = Result(sc.name, policy, seed, seconds, sc.isolated, self.deferred)
        phase = random.Random(f"{seed}:phase")
        c = self.c
        hz = sc.syscall_hz if syscall_hz is None else syscall_hz
        overhead = c.entry_overhead_ns if policy != "none" else 0.0
        self.overhead = overhead
        self.cpus: dict[int, Cpu] = {}
        for n in sc.isolated:
            sp = NS / hz if hz > 0 else 0.0
            tp = NS / sc.tick_hz if sc.tick_hz > 0 else 0.0
            self.cpus[n] = Cpu(n, sp, phase.random() * sp, c.entry_ns + c.syscall_body_ns +
                               overhead + c.exit_ns, tp, phase.random() * tp,
                               c.entry_ns + c.tick_ns + overhead + c.exit_ns)
        self.rng = random.Random(f"{seed}:{sc.name}")

    # -- deferred work at entry ----------------------------------------------------------
    def _flush(self, cpu: Cpu, kind: str) -> float:
        res = self.res
        res.coalesced[len(cpu.pending)] += 1
        res.flush_entries[kind] += 1
        cpu.pending.clear()
        res.deferred_work_ns += self.c.deferred_flush_ns
        return self.c.deferred_flush_ns

    def _settle(self, cpu: Cpu, now: float) -> None:
        """Run the pending work at the first own entry after it was deferred, if that entry
        came before `now`."""
        if cpu.pending:
            t, kind = cpu.next_own_entry(cpu.pending[0][0])
            if t < now:
                cost = self._flush(cpu, kind)
                if kind == "tick":  # that tick's interruption is longer by the work
                    tick = round(cpu.tick_len - self.overhead)
                    self.res.noise[tick] -= 1
                    self.res.noise_by_cpu[cpu.n] -= tick
                    cost += tick
                self._noise(cpu.n, cost, t, f"{kind} + deferred work")

    def _noise(self, n: int, ns: float, t: float, what: str) -> None:
        self.res.noise[round(ns)] += 1
        self.res.noise_by_cpu[n] += round(ns)
        if len(self.res.slices) < _MAX_SLICES:
            self.res.slices.append((n, t, ns, what))

    def _enter(self, cpu: Cpu, t: float, body: float, kind: str) -> Period:
        """An entry from user mode at t (IPI or NMI): settle, run pending work, add the
        period."""
        self._settle(cpu, t)
        c = self.c
        length = c.entry_ns + body + self.overhead + c.exit_ns
        if cpu.pending:
            length += self._flush(cpu, kind)
        self.res.entries += 1
        p = Period(t, t + length, kind)
        cpu.extra = p
        self._noise(cpu.n, length - self.overhead, t, kind)  # the overhead: entry_overhead_ns
        return p

    # -- a send ------------------------------------------------------------------------
    def send(self, t: float, cb: str, targets: tuple[int, ...], ipi: Ipi) -> None:
        res = self.res
        # "a+b": csds of both carried by one IPI (a derived profile): deferred if both are
        deferrable = all(f in self.deferred for f in cb.split("+")) and \
            ipi.deferrable is not False
        passed = []
        for n in targets:
            cpu = self.cpus[n]
            p = cpu.period_at(t)
            step, drained = p.at(t, self.c) if p is not None else ("user", True)
            if not deferrable or entrypath.passes(self.policy, step, drained):
                passed.append((n, step, p))
            else:
                self._settle(cpu, t)
                cpu.pending.append((t, cb))
                res.skipped[(n, cb)] += 1
        if not passed:
            return
        res.send_events[cb] += 1
        for n, step, p in passed:
            cpu = self.cpus[n]
            res.csds[(n, cb)] += 1
            if cpu.ipi_arrival > t:  # its queue was not empty: no IPI of its own
                self._extend(cpu, self.c.handler(cb))
                continue
            res.received[(n, cb)] += 1
            res.times.setdefault((n, cb), []).append(t)
            if cb in self.deferred and ipi.deferrable is False:
                res.windows[(UNCONVERTED, cb)] += 1
            elif deferrable and self.policy != "none":
                kind = p.kind if p is not None else "user"
                w = entrypath.window(self.policy, step, kind)
                res.windows[(w, cb)] += 1
                if len(res.examples) < _MAX_EXAMPLES:
                    res.examples.append({"t_s": t / NS, "cpu": n, "callback": cb,
                                         "step": step, "period": kind, "window": w})
            ta = t + self.c.ipi_delivery_ns
            cpu.ipi_arrival = ta
            cur = cpu.period_at(ta)
            if cur is None:
                self._enter(cpu, ta, self.c.ipi_entry_exit_ns + self.c.handler(cb), "ipi")
            else:
                cpu.extra = cur
                self._extend(cpu, self.c.handler(cb))

    def _extend(self, cpu: Cpu, ns: float) -> None:
        x = cpu.extra
        if x is not None:
            cpu.extra = Period(x.start, x.end + ns, x.kind)
        self._noise(cpu.n, ns, x.start if x else 0.0, "handler")

    def nmi(self, t: float, n: int) -> None:
        cpu = self.cpus[n]
        p = cpu.period_at(t)
        if p is None:
            self._enter(cpu, t, self.c.nmi_ns, "nmi")
            return
        step, _ = p.at(t, self.c)
        if self.policy == "cr3" and step == "X2a":
            # K20: CR3 is still the kernel's, so the paranoid entry does not switch and
            # does not set the signal: the NMI runs kernel code with kernel_cr3_loaded 0
            self.res.hazards["NMI in the exit window (X2a..X2b): kernel code with "
                             "kernel_cr3_loaded = 0"] += 1
        self._noise(n, self.c.nmi_ns, t, "nmi")

    # -- the scheduler -----------------------------------------------------------------
    def run(self) -> Result:
        sc, rng, end = self.sc, self.rng, self.end
        q: list[tuple[float, int, str, object]] = []
        seq = 0
        for name, per_hour in sc.rates:
            if per_hour > 0:
                seq += 1
                heapq.heappush(q, (rng.expovariate(per_hour / 3600) * NS, seq, "op", name))
        nmi_rng = random.Random(f"{self.res.seed}:nmi")
        if sc.nmi_per_hour > 0:
            for n in sc.isolated:
                seq += 1
                heapq.heappush(q, (nmi_rng.expovariate(sc.nmi_per_hour / 3600) * NS, seq,
                                   "nmi", n))
        rates = dict(sc.rates)
        iso = sc.isolated
        events = 0
        while q:
            t, _, kind, what = heapq.heappop(q)
            if t >= end:
                continue
            events += 1
            if kind == "op":
                assert isinstance(what, str)
                seq += 1
                heapq.heappush(q, (t + rng.expovariate(rates[what] / 3600) * NS, seq, "op",
                                   what))
                op = sc.profile[what]
                rng.choice(sc.housekeeping)  # the sender: no IPI to itself here
                offset = 0.0
                for ipi in op.ipis:
                    targets = (rng.choice(iso),) if ipi.targets == "one" else iso
                    for _ in range(ipi.rounds):
                        seq += 1
                        heapq.heappush(q, (t + offset, seq, "send", (ipi, targets)))
                        offset += (self.c.ipi_delivery_ns + self.c.handler(ipi.callback)
                                   + self.c.round_gap_ns)
            elif kind == "send":
                assert isinstance(what, tuple)
                ipi, targets = what
                self.send(t, ipi.callback, targets, ipi)
            else:
                assert isinstance(what, int)
                seq += 1
                heapq.heappush(q, (t + nmi_rng.expovariate(sc.nmi_per_hour / 3600) * NS,
                                   seq, "nmi", what))
                self.nmi(t, what)
        res = self.res
        for cpu in self.cpus.values():
            self._settle(cpu, end)
            if cpu.pending:
                res.pending_at_end += 1
            own = cpu.entries(res.seconds)
            res.entries += own
            for per, ph, ln in ((cpu.tick_period, cpu.tick_phase, cpu.tick_len),):
                if per > 0 and end > ph:
                    ticks = math.floor((end - ph - 1e-9) / per) + 1
                    ns = round(ln - self.overhead)  # the overhead: entry_overhead_ns
                    res.noise[ns] += ticks
                    res.noise_by_cpu[cpu.n] += ns * ticks
        res.entry_overhead_ns = res.entries * self.overhead
        res.sim_events = events
        return res


def simulate(sc: Scenario, policy: str, seed: int = 0, hours: float | None = None,
             syscall_hz: float | None = None) -> Result:
    """One run of `sc` under `policy` (none, ct, cr3); same seed, same numbers."""
    if policy not in _DEFERRALS:
        raise ValueError(f"unknown policy {policy!r} (known: {', '.join(POLICY_NAMES)})")
    seconds = (sc.hours if hours is None else hours) * 3600
    return _Run(sc, policy, seed, seconds, syscall_hz).run()
