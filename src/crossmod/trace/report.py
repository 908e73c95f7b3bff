"""The report: `Analysis` counters turned into one JSON-able dict, and that dict as text.

Owns: the report schema (``build``), the cover-letter summary line, duration wording, and
the text tables (``render``), which fit in 100 columns.

May import: the standard library and `crossmod.trace.analyze/events/whatif`.
"""

from __future__ import annotations

from collections import Counter

from crossmod.trace.analyze import IPI_VECTORS, OUTSIDE, Analysis
from crossmod.trace.events import format_cpulist


def duration(ns: float) -> str:
    """Human wording the cover letter uses: ``1 min 30 s``, ``2.4 s``, ``15.2 ms``."""
    s = ns / 1e9
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s >= 1:
        return f"{s:.1f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def _table(a: Analysis, cpu: int, table: str, phase: str | None = None) -> Counter[str]:
    out: Counter[str] = Counter()
    for (c, t, key, p), n in a.c.items():
        if c == cpu and t == table and (phase is None or p == phase):
            out[key] += n
    return out


def _top(c: Counter[str], n: int | None = None) -> list[list[object]]:
    return [[k, v] for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _whatif(a: Analysis, cpu: int, phase: str | None) -> dict[str, object]:
    today = sum(_table(a, cpu, "ipi", phase).values())
    removable = _table(a, cpu, "removable", phase)
    remaining = _table(a, cpu, "remaining", phase)
    unknown = _table(a, cpu, "mode_unknown", phase)
    if a.context_tracking:
        remaining.update(unknown)
    else:
        removable.update(unknown)
    return {
        "today": today,
        "with_deferral": today - sum(removable.values()),
        "removable": sum(removable.values()),
        "removable_by_callback": _top(removable),
        "deferrable_but_target_in_kernel": sum(_table(a, cpu, "in_kernel", phase).values()),
        "deferrable_but_target_mode_unknown": sum(unknown.values()) if a.context_tracking
        else 0,
        "remaining_causes": _top(remaining),
    }


def _cpu(a: Analysis, cpu: int, span: int, top: int, by_phase: bool) -> dict[str, object]:
    aimed = sum(_table(a, cpu, "ipi").values())
    handled = _table(a, cpu, "handled")
    ran = _table(a, cpu, "ran")
    out: dict[str, object] = {
        "aimed": aimed,
        "handled": sum(handled[v] for v in IPI_VECTORS),
        "rate_per_s": aimed / (span / 1e9) if span > 0 else None,
        "mean_interval_ns": span / aimed if aimed and span > 0 else None,
        "units": _units(a, cpu, None),
        "handled_by_vector": dict(sorted(handled.items())),
        "by_callback": _top(_table(a, cpu, "cause")),
        "callbacks_queued": _top(_table(a, cpu, "queued")),
        "callbacks_run": _top(ran),
        "by_callsite": _top(_table(a, cpu, "callsite"), top),
        "by_task": _top(_table(a, cpu, "task"), top),
        "by_sender_cpu": _top(_table(a, cpu, "sender_cpu")),
        "by_stack": _top(_table(a, cpu, "stack"), top),
        "target_mode_at_send": dict(_table(a, cpu, "mode")),
        "handler_time": [
            {"handler": what, "n": h[0], "total_ns": h[1], "mean_ns": h[1] // h[0],
             "max_ns": h[2]}
            for (c, what), h in sorted(a.handler.items()) if c == cpu and h[0]],
        "whatif": _whatif(a, cpu, None),
    }
    if by_phase:
        out["by_phase"] = {p: {"aimed": sum(_table(a, cpu, "ipi", p).values()),
                               "handled": sum(_table(a, cpu, "handled", p)[v]
                                              for v in IPI_VECTORS),
                               "by_callback": _top(_table(a, cpu, "cause", p)),
                               "units": _units(a, cpu, p),
                               "whatif": _whatif(a, cpu, p)}
                           for p in _phase_names(a)}
    return out


#: The three units the deferral series' cover letters counted interference in (they differ
#: by up to 20x on one recording), and the per-target count the tables above use.
UNITS = {
    "ipi_send_events": "ipi_send_cpu/ipi_send_cpumask events naming an isolated CPU "
                       "(one event may target many CPUs)",
    "ipis_aimed": "IPIs aimed at an isolated CPU, one per target (sender side)",
    "csds_queued": "CSDs queued for an isolated CPU (csd_queue_cpu: one per target and "
                   "callback)",
    "ipis_received": "IPIs received on the isolated CPUs (IPI vectors taken there)",
}


def _units(a: Analysis, cpu: int | None, phase: str | None) -> dict[str, int]:
    """The counts in `UNITS`, for one isolated CPU or (cpu None) all of them. A send event
    is per CPU the events naming that CPU, in total each event once."""
    cpus = sorted(a.iso) if cpu is None else [cpu]
    out = {"ipi_send_events": 0, "ipis_aimed": 0, "csds_queued": 0, "ipis_received": 0}
    for c in cpus:
        out["ipis_aimed"] += sum(_table(a, c, "ipi", phase).values())
        out["csds_queued"] += sum(_table(a, c, "queued", phase).values())
        handled = _table(a, c, "handled", phase)
        out["ipis_received"] += sum(handled[v] for v in IPI_VECTORS)
    if cpu is None:
        out["ipi_send_events"] = (sum(a.send_events.values()) if phase is None
                                  else a.send_events.get(phase, 0))
    else:
        out["ipi_send_events"] = out["ipis_aimed"]
    return out


def _phase_names(a: Analysis) -> list[str]:
    names = [str(p["name"]) for p in a.phases]
    seen = {k[3] for k in a.c} | {k[2] for k in a.events}
    ordered = list(dict.fromkeys(names))
    return ([OUTSIDE] if OUTSIDE in seen else []) + [n for n in ordered if n in seen] + \
        sorted(p for p in seen - set(ordered) - {OUTSIDE})


def build(a: Analysis, *, sources: list[dict[str, object]], top: int = 8,
          by_phase: bool = False) -> dict[str, object]:
    a.finish_phases()
    span = max(0, a.last_ts - (a.first_ts or 0))
    iso = sorted(a.iso)
    cpus = {str(c): _cpu(a, c, span, top, by_phase) for c in iso}
    total = 0
    for v in cpus.values():
        aimed = v["aimed"]
        assert isinstance(aimed, int)  # `_cpu` counts it
        total += aimed
    events: dict[str, dict[str, int]] = {}
    for (name, cpu, _p), n in sorted(a.events.items()):
        events.setdefault(name, {})
        events[name][str(cpu)] = events[name].get(str(cpu), 0) + n
    report: dict[str, object] = {
        "sources": sources,
        "isolated": iso,
        "first_ts_ns": a.first_ts,
        "last_ts_ns": a.last_ts,
        "span_ns": span,
        "context_tracking": a.context_tracking,
        "phases": a.phases,
        "phase_warnings": a.phase_warnings,
        "events": events,
        "cpus": cpus,
        "total_aimed": total,
        "units": _units(a, None, None),
        "summary": summary(total, len(iso), span),
    }
    if by_phase:
        by: dict[str, Counter[str]] = {p: Counter() for p in _phase_names(a)}
        for (name, _c, p), n in a.events.items():
            by.setdefault(p, Counter())[name] += n
        report["events_by_phase"] = {p: dict(sorted(c.items())) for p, c in by.items()}
        report["units_by_phase"] = {p: _units(a, None, p) for p in by}
    return report


def summary(total: int, ncpus: int, span: int) -> str:
    """The cover letter's line: ``N IPIs received, about M per isolated CPU, one every T``."""
    if not total or not ncpus:
        return f"0 IPIs received on {ncpus} isolated CPU(s) in {duration(span)}"
    per = total / ncpus
    every = f"one every {duration(span / per)}" if span > 0 else "all at one instant"
    return f"{total} IPIs received, about {per:.0f} per isolated CPU, {every}"


def cpulist(cpus: list[int]) -> str:
    return format_cpulist(cpus)
