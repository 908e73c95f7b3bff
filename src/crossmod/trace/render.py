"""The report dict (`report.build`) as text tables that fit in 100 columns.

Owns: layout only; every number comes from the report dict, so ``--json`` and the text
always agree.

May import: the standard library and `crossmod.trace.report/whatif/events`.
"""

from __future__ import annotations

import textwrap

from crossmod.trace.events import format_cpulist
from crossmod.trace.report import UNITS, duration
from crossmod.trace.whatif import DEFERRABLE, Classifier

W = 100


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, W, subsequent_indent=indent, break_on_hyphens=False) or [""]


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:5.1f}%" if total else "    -"


def _header(r: dict) -> list[str]:
    srcs = ", ".join(f"{s['path']} ({s['format']})" for s in r["sources"])
    out = [_cut(f"crossmod trace: {srcs}", W),
           f"{sum(sum(v.values()) for v in r['events'].values())} events over "
           f"{duration(r['span_ns'])}; isolated CPUs {format_cpulist(r['isolated'])}; "
           f"{len(r['phases'])} marked phase(s)"]
    if r["context_tracking"]:
        out.append("what-if is mode-aware: each target's mode at queue time comes from "
                   "context_tracking user_enter/exit")
    else:
        out.append("no context_tracking events: the what-if assumes the isolated CPUs stay in "
                   "userspace")
    for p in r["phases"]:
        if p.get("note"):
            out += _wrap(f"phase {p['name']}: {p['note']}", "    ")
    for w in r.get("phase_warnings", []):
        out += _wrap(f"phase markers: {w}", "    ")
    return [*out, "", r["summary"], *_units(r), ""]


def _units(r: dict) -> list[str]:
    """The same interference in each unit the series' cover letters used."""
    per_cpu = {num: cpu["units"] for num, cpu in r["cpus"].items()}
    out = ["", "in the units of the deferral series' tables (they differ by up to 20x):"]
    for key, what in UNITS.items():
        n = r["units"][key]
        split = ", ".join(f"CPU {c} {u[key]}" for c, u in per_cpu.items())
        line = f"  {n:>9}  {what}" + (f"; {split}" if len(per_cpu) > 1 else "")
        out += _wrap(line, " " * 13)
    return out


def _callbacks(cpu: dict, cls: Classifier) -> list[str]:
    total = cpu["aimed"]
    wi = cpu["whatif"]
    removable = dict(wi["removable_by_callback"])
    times = {h["handler"]: h for h in cpu["handler_time"]}
    out = [f"  {'callback (cause)':<34}{'IPIs':>7} {'share':>6}  {'class':<11}"
           f"{'removable':>9}  {'runs':>6} {'mean µs':>8} {'max µs':>8}"]
    for name, n in cpu["by_callback"]:
        first = name.split("+")[0]
        kind = "deferrable" if cls.kind(first) == DEFERRABLE else "not"
        t = times.get(name)
        tcols = (f"{t['n']:>6} {t['mean_ns'] / 1e3:>8.1f} {t['max_ns'] / 1e3:>8.1f}"
                 if t else f"{'-':>6} {'-':>8} {'-':>8}")
        out.append(f"  {_cut(name, 33):<34}{n:>7} {_pct(n, total)}  {kind:<11}"
                   f"{removable.get(name, 0):>9}  {tcols}")
    return out


def _pairs(title: str, rows: list, width: int = 86) -> list[str]:
    out = [f"  {title:<{width}}{'IPIs':>7}"]
    out += [f"  {_cut(str(k), width - 1):<{width}}{v:>7}" for k, v in rows]
    return out


def _cpu_block(num: str, cpu: dict, cls: Classifier, by_phase: bool) -> list[str]:
    hv = cpu["handled_by_vector"]
    vec = ", ".join(f"{k.removesuffix('_entry')} {v}" for k, v in hv.items()
                    if k != "local_timer_entry")
    mi = cpu["mean_interval_ns"]
    out = [f"== CPU {num} " + "=" * (W - 8 - len(num)),
           f"aimed at it (sender side): {cpu['aimed']} IPIs, "
           + (f"{cpu['rate_per_s']:.2f}/s, " if cpu["rate_per_s"] is not None else "")
           + f"one every {duration(mi) if mi else '-'}",
           *_wrap(f"handled on it (receiver side): {cpu['handled']} IPIs "
                  f"({vec or 'none traced'})"
                  + (f"; local_timer {hv['local_timer_entry']} (not an IPI)"
                     if "local_timer_entry" in hv else ""), "    "), ""]
    out += [*_callbacks(cpu, cls), ""]
    out += [*_pairs("by stack signature", cpu["by_stack"]), ""]
    out += [*_pairs("by callsite", cpu["by_callsite"]), ""]
    senders = [[f"{t}", n] for t, n in cpu["by_task"]]
    out += [*_pairs("by sending task", senders), ""]
    out += [*_pairs("by sending CPU", [[f"CPU {c}", n] for c, n in cpu["by_sender_cpu"]]), ""]
    vt = [h for h in cpu["handler_time"] if h["handler"].endswith("(vector)")]
    for h in vt:
        out.append(f"  handler {h['handler']}: {h['n']} runs, mean "
                   f"{h['mean_ns'] / 1e3:.1f} µs, max {h['max_ns'] / 1e3:.1f} µs")
    wi = cpu["whatif"]
    out += _whatif_lines(wi)
    if by_phase and "by_phase" in cpu:
        out += ["", *_phase_table(cpu["by_phase"])]
    return [*out, ""]


def _whatif_lines(wi: dict) -> list[str]:
    today, after = wi["today"], wi["with_deferral"]
    out = [f"  what-if deferral: {today} IPIs today -> {after} with deferral "
           f"({wi['removable']} removable"
           + (f", -{100 * wi['removable'] / today:.1f}%" if today else "") + ")",
           f"    deferrable callbacks queued while the target was in the kernel: "
           f"{wi['deferrable_but_target_in_kernel']}"
           + (f" (mode unknown: {wi['deferrable_but_target_mode_unknown']})"
              if wi["deferrable_but_target_mode_unknown"] else "")]
    rem = ", ".join(f"{k} {v}" for k, v in wi["remaining_causes"])
    return out + _wrap(f"    causes that remain: {rem or 'none'}", "      ")


def _phase_table(phases: dict) -> list[str]:
    out = [f"  {'phase':<14}{'aimed':>7}{'csds':>7}{'handled':>8}{'removable':>10}"
           f"{'in kernel':>10}{'w/ deferral':>12}  top cause"]
    for p, d in phases.items():
        wi = d["whatif"]
        top = d["by_callback"][0] if d["by_callback"] else None
        topc = f"{top[0]} {top[1]}" if top else "-"
        out.append(f"  {_cut(p, 13):<14}{d['aimed']:>7}{d['units']['csds_queued']:>7}"
                   f"{d['handled']:>8}{wi['removable']:>10}"
                   f"{wi['deferrable_but_target_in_kernel']:>10}{wi['with_deferral']:>12}  "
                   f"{_cut(topc, 29)}")
    return out


def render(r: dict, cls: Classifier, *, by_phase: bool = False) -> str:
    lines = _header(r)
    for num, cpu in r["cpus"].items():
        lines += _cpu_block(num, cpu, cls, by_phase)
    if by_phase and "events_by_phase" in r:
        lines.append("ipi_send events / csds queued / IPIs received, by phase (all isolated "
                     "CPUs):")
        for p, u in r.get("units_by_phase", {}).items():
            lines.append(f"  {_cut(p, 13):<14}{u['ipi_send_events']:>7} sends {u['csds_queued']:>7}"
                         f" csds {u['ipis_received']:>7} received")
        lines.append("")
        lines.append("events by phase (all CPUs):")
        for p, names in r["events_by_phase"].items():
            lines += _wrap(f"  {p:<14}" + ", ".join(f"{k} {v}" for k, v in names.items()),
                           " " * 16)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
