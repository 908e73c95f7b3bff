"""Benchmark `crossmod simulate` (not a test; results go to BENCHMARKS.md).

Usage:
    python benchmarks/bench_simulate.py [--seed S] [--baseline-seconds N]

1. cover-letter-v8: 6 simulated hours x 28 CPUs x 3 policies, wall time and events/s
   (events popped from the scheduler's queue; target decisions made).
2. The same with a 1 kHz timerlat-style wake-up on each of the 26 isolated CPUs.
3. A straightforward heapq implementation of the same scenario written for this benchmark
   (`plain_heapq`): every syscall/tick entry and exit, and every signal change, is an event
   on the queue; IPI decisions read per-CPU state variables the events set. It must reach
   the same IPIs received (it is the cross-check of the arithmetic `Cpu.period_at`); the
   ratio is its wall time over ours (for the 1 kHz case measured on --baseline-seconds and
   scaled).
4. The syscall-rate sweep: at which syscall rate on the isolated CPUs does deferral's
   per-entry cost (the v6 thread's getpid figures) exceed the interference of the IPIs it
   removes.
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from dataclasses import replace

from crossmod.simulate.costs import GETPID_ENTRY_COST, GETPID_NS
from crossmod.simulate.engine import NS, deferred_callbacks, simulate
from crossmod.simulate.scenario import Scenario, load


def plain_heapq(sc: Scenario, policy: str, seed: int, seconds: float,
                syscall_hz: float) -> tuple[int, int]:
    """(IPIs received, events processed): every entry/exit step is a queue event."""
    c = sc.costs
    end = seconds * NS
    phase = random.Random(f"{seed}:phase")
    rng = random.Random(f"{seed}:{sc.name}")
    deferred = deferred_callbacks(policy, sc.pti)
    signal = dict.fromkeys(sc.isolated, 0)   # kernel_cr3_loaded as memory holds it
    rcu = dict.fromkeys(sc.isolated, 0)      # CT_RCU_WATCHING
    depth = dict.fromkeys(sc.isolated, 0)    # kernel periods open (user mode at 0)
    arrival = dict.fromkeys(sc.isolated, -1.0)
    q: list[tuple[float, int, str, object]] = []
    seq = 0

    def push(t: float, kind: str, what: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(q, (t, seq, kind, what))

    def period(n: int, s: float, length: float) -> None:
        e2a = s + c.entry_stub_ns
        e2b = e2a + c.signal_store_ns
        e3 = e2b + c.cr3_write_ns + c.ct_enter_ns
        x1 = max(s + length - c.exit_ns, e3)
        x2a = x1 + c.ct_exit_ns
        x2b = x2a + c.exit_cr3_ns
        push(s, "enter", n)
        push(min(e2a + c.store_drain_ns, e2b), "sig", (n, 1))
        push(e3, "rcu", (n, 1))
        push(x1, "rcu", (n, 0))
        push(min(x2a + c.store_drain_ns, x2b), "sig", (n, 0))
        push(s + length, "exit", n)

    for name, per_hour in sc.rates:
        if per_hour > 0:
            push(rng.expovariate(per_hour / 3600) * NS, "op", name)
    overhead = c.entry_overhead_ns if policy != "none" else 0.0
    for n in sc.isolated:
        sp = NS / syscall_hz if syscall_hz > 0 else 0.0
        tp = NS / sc.tick_hz if sc.tick_hz > 0 else 0.0
        ps, pt = phase.random() * sp, phase.random() * tp
        if sp:
            push(ps, "own", (n, sp, c.entry_ns + c.syscall_body_ns + overhead + c.exit_ns))
        if tp:
            push(pt, "own", (n, tp, c.entry_ns + c.tick_ns + overhead + c.exit_ns))
    rates = dict(sc.rates)
    received = events = 0
    while q:
        t, _, kind, what = heapq.heappop(q)
        if t >= end:
            continue
        events += 1
        if kind == "own":
            n, per, length = what  # type: ignore[misc]
            period(n, t, length)
            push(t + per, "own", what)
        elif kind == "enter":
            depth[what] += 1  # type: ignore[index]
        elif kind == "exit":
            depth[what] -= 1  # type: ignore[index]
        elif kind == "sig":
            n, v = what  # type: ignore[misc]
            signal[n] = v if depth[n] <= 1 or v else signal[n]
        elif kind == "rcu":
            n, v = what  # type: ignore[misc]
            rcu[n] = v if depth[n] <= 1 or v else rcu[n]
        elif kind == "op":
            push(t + rng.expovariate(rates[what] / 3600) * NS, "op", what)  # type: ignore[index]
            op = sc.profile[what]  # type: ignore[index]
            rng.choice(sc.housekeeping)
            offset = 0.0
            for ipi in op.ipis:
                targets = (rng.choice(sc.isolated),) if ipi.targets == "one" else sc.isolated
                for _ in range(ipi.rounds):
                    push(t + offset, "send", (ipi, targets))
                    offset += c.ipi_delivery_ns + c.handler(ipi.callback) + c.round_gap_ns
        else:
            ipi, targets = what  # type: ignore[misc]
            defer = ipi.callback in deferred and ipi.deferrable is not False
            for n in targets:
                if defer and not (signal[n] if policy == "cr3" else rcu[n]):
                    continue
                if arrival[n] > t:
                    continue
                received += 1
                ta = t + c.ipi_delivery_ns
                arrival[n] = ta
                if depth[n] == 0:
                    period(n, ta, c.entry_ns + c.ipi_entry_exit_ns + c.handler(ipi.callback)
                           + overhead + c.exit_ns)
    return received, events


def _sweep(sc: Scenario, seed: int) -> None:
    print("\nsyscall-rate sweep (cover-letter-v8, 6 h, per isolated CPU; cr3 vs none):")
    none = simulate(sc, "none", seed)
    cr3 = simulate(sc, "cr3", seed)
    removed = none.received_total - cr3.received_total
    saved = (sum(none.noise_by_cpu.values()) - sum(cr3.noise_by_cpu.values())) / \
        len(sc.isolated)
    print(f"  IPIs removed per CPU: {removed / len(sc.isolated):.0f}; noise saved per CPU "
          f"{saved / 1000:.1f} us (handlers, entry/exit; deferred work charged)")
    ticks = sc.tick_hz * sc.hours * 3600
    for cpu, frac in GETPID_ENTRY_COST.items():
        overhead = GETPID_NS * frac
        # every entry pays: the tick's and r * T syscalls'; break-even where
        # (ticks + r * T) * overhead = saved
        rate = (saved - ticks * overhead) / (overhead * sc.hours * 3600)
        verdict = (f"break-even at {rate:.3g} syscalls/s per isolated CPU" if rate > 0 else
                   f"never: the 1 Hz tick's entries alone cost {ticks * overhead / 1000:.0f} us")
        print(f"  {cpu:9}: getpid +{frac:.0%} = {overhead:.0f} ns per entry -> {verdict}")
    for hz in (0.0, 0.01, 0.1, 1.0, 10.0, 100.0):
        row = []
        for cpu, frac in GETPID_ENTRY_COST.items():
            s2 = replace(sc, costs=replace(sc.costs, entry_overhead_ns=GETPID_NS * frac))
            a = simulate(s2, "none", seed, syscall_hz=hz)
            b = simulate(s2, "cr3", seed, syscall_hz=hz)
            ia = sum(a.noise_by_cpu.values()) + a.entry_overhead_ns
            ib = sum(b.noise_by_cpu.values()) + b.entry_overhead_ns
            row.append(f"{cpu} {'defer wins' if ib < ia else 'IPIs cheaper'} "
                       f"({(ib - ia) / len(sc.isolated) / 1000:+.1f} us/CPU)")
        print(f"  {hz:>6} Hz: " + "; ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-seconds", type=float, default=60.0)
    args = ap.parse_args()
    sc = load("cover-letter-v8")
    seconds = sc.hours * 3600
    for label, hz in (("pure userspace loop + 1 Hz tick", 0.0),
                      ("1 kHz timerlat-style wake-up", 1000.0)):
        t0 = time.perf_counter()
        ours = {p: simulate(sc, p, args.seed, syscall_hz=hz) for p in ("none", "ct", "cr3")}
        ours_s = time.perf_counter() - t0
        ev = sum(r.sim_events for r in ours.values())
        decisions = sum(sum(r.csds.values()) + sum(r.skipped.values()) for r in ours.values())
        print(f"{label}: 6 h x 28 CPUs x 3 policies in {ours_s:.3f} s; {ev} queue events "
              f"({ev / ours_s:,.0f}/s), {decisions} target decisions")
        base_secs = seconds if hz < 100 else args.baseline_seconds
        t0 = time.perf_counter()
        base = {p: plain_heapq(sc, p, args.seed, base_secs, hz) for p in ("none", "ct", "cr3")}
        base_s = (time.perf_counter() - t0) * seconds / base_secs
        bev = sum(e for _, e in base.values()) * seconds / base_secs
        scaled = f" (scaled from {base_secs:.0f} s)" if base_secs < seconds else ""
        print(f"  plain heapq: {base_s:.1f} s{scaled}, {bev:,.0f} events "
              f"({bev / base_s:,.0f}/s); ratio {base_s / ours_s:,.0f}x")
        if base_secs == seconds:
            for p in ("none", "ct", "cr3"):
                print(f"    {p}: received ours {ours[p].received_total}, "
                      f"plain heapq {base[p][0]}")
    _sweep(sc, args.seed)


if __name__ == "__main__":
    main()
