"""A run's results as JSON-ready data, as text, as a plot and as a Perfetto trace.

Owns: `to_json(result)` (per policy: policy, received_total, received per isolated CPU
per callback, ipi_send_events, csds_queued, summary, seed, seconds, and the rest),
`render(results)`, `plot(results, path)`, `perfetto(result, path, seconds)`.
Imports: simulate.engine, trace.report (the cover letter's summary line).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from crossmod.simulate.engine import NS, Result
from crossmod.trace.report import duration, summary

_BINS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 1_000_000)


def _percentile(noise: Counter[int], q: float) -> int:
    total = sum(noise.values())
    if not total:
        return 0
    need, seen = q * total, 0
    for ns in sorted(noise):
        seen += noise[ns]
        if seen >= need:
            return ns
    return max(noise)


def histogram(noise: Counter[int]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for ns, n in noise.items():
        label = next((f"<{b // 1000}us" for b in _BINS if ns < b), f">={_BINS[-1] // 1000}us")
        out[label] += n
    order = [f"<{b // 1000}us" for b in _BINS] + [f">={_BINS[-1] // 1000}us"]
    return {k: out[k] for k in order if out[k]}


def to_json(r: Result) -> dict[str, Any]:
    received: dict[str, dict[str, int]] = {str(c): {} for c in r.isolated}
    for (c, cb), n in sorted(r.received.items()):
        received[str(c)][cb] = n
    csds: dict[str, dict[str, int]] = {str(c): {} for c in r.isolated}
    for (c, cb), n in sorted(r.csds.items()):
        csds[str(c)][cb] = n
    by_cb: Counter[str] = Counter()
    for (_, cb), n in r.received.items():
        by_cb[cb] += n
    skipped: Counter[str] = Counter()
    for (_, cb), n in r.skipped.items():
        skipped[cb] += n
    span = int(r.seconds * NS)
    return {
        "scenario": r.scenario, "policy": r.policy, "seed": r.seed, "seconds": r.seconds,
        "isolated": list(r.isolated), "deferred_callbacks": sorted(r.deferred),
        "received_total": r.received_total,
        "received_per_cpu": {c: sum(v.values()) for c, v in received.items()},
        "received": received, "received_by_callback": dict(by_cb.most_common()),
        "ipi_send_events": r.ipi_send_events, "ipi_send_events_by_callback":
            dict(r.send_events.most_common()),
        "csds_queued": sum(r.csds.values()), "csds": csds,
        "deferred_sends": dict(skipped.most_common()),
        "summary": summary(r.received_total, len(r.isolated), span),
        "residual_windows": [{"window": w, "callback": cb, "n": n}
                             for (w, cb), n in r.windows.most_common()],
        "residual_examples": r.examples,
        "deferred_work": {
            "entries_running_it": sum(r.flush_entries.values()),
            "by_entry_kind": dict(r.flush_entries.most_common()),
            "callbacks_coalesced_per_entry": {str(k): v for k, v in sorted(r.coalesced.items())},
            "cost_ns": r.deferred_work_ns, "pending_at_end": r.pending_at_end},
        "entries": r.entries, "entry_overhead_ns": r.entry_overhead_ns,
        "interference_ns": sum(r.noise_by_cpu.values()) + r.entry_overhead_ns,
        "interference_ns_per_cpu": {str(c): r.noise_by_cpu.get(c, 0) for c in r.isolated},
        "latency": {"max_ns": max(r.noise, default=0), "p99_ns": _percentile(r.noise, 0.99),
                    "samples": sum(r.noise.values()), "histogram": histogram(r.noise)},
        "hazards": dict(r.hazards), "sim_events": r.sim_events,
    }


def render(results: list[Result]) -> str:
    lines = []
    for r in results:
        j = to_json(r)
        lines.append(f"== {r.scenario}, policy {r.policy} (seed {r.seed}, "
                     f"{duration(r.seconds * NS)} simulated)")
        lines.append(f"  {j['summary']}")
        lines.append(f"  units: {j['ipi_send_events']} IPI send events, {j['csds_queued']} "
                     f"CSDs queued, {j['received_total']} IPIs received")
        for cb, n in j["received_by_callback"].items():
            lines.append(f"    {cb:28} {n:7}")
        if j["deferred_sends"]:
            lines.append("  deferred to the next entry: " + ", ".join(
                f"{cb} {n}" for cb, n in j["deferred_sends"].items()))
            dw = j["deferred_work"]
            lines.append(f"  deferred work ran at {dw['entries_running_it']} entries "
                         f"({', '.join(f'{k} {v}' for k, v in dw['by_entry_kind'].items())}); "
                         f"callbacks per entry {dw['callbacks_coalesced_per_entry']}; "
                         f"{dw['cost_ns'] / 1000:.1f} us in all")
        for w in j["residual_windows"]:
            lines.append(f"  residual {w['callback']} x{w['n']}: {w['window']}")
        lat = j["latency"]
        lines.append(f"  interference {j['interference_ns'] / 1e6:.2f} ms in all; "
                     f"latency max {lat['max_ns'] / 1000:.1f} us, p99 "
                     f"{lat['p99_ns'] / 1000:.1f} us over {lat['samples']} interruptions "
                     f"{lat['histogram']}")
        for h, n in j["hazards"].items():
            lines.append(f"  hazard x{n}: {h}")
    return "\n".join(lines)


def plot(results: list[Result], path: str) -> None:
    """Cumulative IPIs received by callback over time, one panel per policy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(9, 2.6 * len(results)),
                             sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        by_cb: dict[str, list[float]] = {}
        for (_, cb), ts in r.times.items():
            by_cb.setdefault(cb, []).extend(ts)
        for cb, ts in sorted(by_cb.items()):
            ts.sort()
            ax.step([t / NS / 3600 for t in ts], range(1, len(ts) + 1), where="post",
                    label=cb)
        ax.set_title(f"{r.scenario}: {r.policy} ({r.received_total} received)", fontsize=9)
        ax.set_ylabel("IPIs received")
        if by_cb:
            ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("hours")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def perfetto(r: Result, path: str, seconds: float) -> None:
    """The first `seconds` of the run's interruptions, one track per isolated CPU (Chrome
    trace-event JSON, which ui.perfetto.dev opens)."""
    events = [{"name": what, "ph": "X", "pid": 1, "tid": cpu, "ts": t / 1000,
               "dur": max(ns / 1000, 0.001)}
              for cpu, t, ns, what in r.slices if t < seconds * NS]
    events += [{"name": "thread_name", "ph": "M", "pid": 1, "tid": c,
                "args": {"name": f"cpu{c} ({r.policy})"}} for c in r.isolated]
    with open(path, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ns"}, f)
