"""`crossmod trace FILE --isolated L --profile OUT.toml`: a scenario derived from a
recording -- one operation per (stack signature, callback) that reached the isolated CPUs,
at the rate it did; the idle baseline (residual tick, the CPUs' own syscalls); the handler
costs the recording measured.

Owns: `derive(analysis, name)` -> TOML text that `scenario.load` reads. Imports:
trace.analyze (its counters), simulate.costs.

MODEL: every derived operation targets all isolated CPUs at the mean per-CPU rate (the
recording's counters do not say which sends named several isolated CPUs at once); each
is one round (a three-round int3 batch becomes three times the arrivals).
"""

from __future__ import annotations

import json
import re
from collections import Counter

from crossmod.simulate.costs import CostModel
from crossmod.trace.analyze import Analysis


def _ident(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "op"


def derive(a: Analysis, name: str) -> str:
    iso = sorted(a.iso)
    span_s = max((a.last_ts - (a.first_ts or 0)) / 1e9, 1e-9)
    ncpus = max(a.max_cpu + 1, max(iso) + 1, 2)
    per_op: Counter[tuple[str, str]] = Counter()
    from_user = 0
    for (_t, cause, _site, _comm, _sender, sig, mode, _p), n in a.ipis.items():
        per_op[(sig, cause)] += n
        if mode == "user":
            from_user += n
    events: Counter[str] = Counter()
    for (ev, cpu, _p), n in a.events.items():
        if cpu in a.iso:
            events[ev] += n
    k = len(iso)
    tick_hz = events["local_timer_entry"] / k / span_s
    syscall_hz = max((events["user_exit"] - from_user - events["local_timer_entry"]) / k
                     / span_s, 0.0)
    handled = ",".join(str(c) for c in iso)
    lines = [
        f"# Derived by crossmod trace --profile from a recording of {span_s:.1f} s,",
        f"# isolated CPUs {handled}: one operation per (stack signature, callback), at the",
        "# mean per-CPU rate; see crossmod/simulate/profile.py for what this leaves out.",
        "[scenario]", f"name = {json.dumps(name)}",
        f"description = {json.dumps('derived from a recording')}",
        f"hours = {span_s / 3600:.6g}", "",
        "[machine]", f"cpus = {ncpus}", f'isolated = "{handled}"', "pti = true", "",
        "[workload]", f"syscall_hz = {syscall_hz:.6g}", f"tick_hz = {tick_hz:.6g}", "",
    ]
    names: dict[str, int] = {}
    rates = []
    for (sig, cause), n in sorted(per_op.items(), key=lambda kv: (-kv[1], kv[0])):
        base = _ident(f"{sig} {cause}")
        names[base] = names.get(base, 0) + 1
        op = base if names[base] == 1 else f"{base}_{names[base]}"
        lines += ["[[operation]]", f"name = {json.dumps(op)}",
                  f"what = {json.dumps(f'{sig}: {cause}')}",
                  f"ipis = [{{ callback = {json.dumps(cause)} }}]", ""]
        rates.append(f"{op} = {n / k / span_s * 3600:.6g}")
    lines += ["[operations]", *rates, ""]
    costs = []
    known = CostModel.names()
    per_cb: dict[str, list[int]] = {}
    for (_cpu, func), (n, total, _mx) in a.handler.items():
        acc = per_cb.setdefault(func, [0, 0])
        acc[0] += n
        acc[1] += total
    for func, (n, total) in sorted(per_cb.items()):
        key = f"handler_{func}_ns"
        if key in known and n:
            costs.append(f"{key} = {total / n:.6g}")
    if costs:
        lines += ["[costs]", *costs, ""]
    return "\n".join(lines)
