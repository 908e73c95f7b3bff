"""CPU seconds and states/s of every catalogue row, and a before/after table of two runs.

Run: python benchmarks/catalogue_rows_cpu.py measure OUT.json [LABEL]  (from each tree's
     venv, or with PYTHONPATH=<tree>/src); prints the total line too
     python benchmarks/catalogue_rows_cpu.py compare BEFORE.json AFTER.json
CPU time of the process around each `explore` (liveness rows left out), so that two trees
measured alternately on a shared machine compare. Verdicts must be equal; states may differ
where a reduction changed (the table gives both), so the speed-up is the time to the answer.
"""

from __future__ import annotations

import json
import sys
import time


def measure(out: str, label: str = "this tree") -> None:
    from crossmod.catalogue import ROWS, build
    from crossmod.check.explore import explore

    rows = []
    for r in ROWS:
        if getattr(r, "liveness", False):
            continue
        system = build(r.protocol, r.variant, **r.knobs)
        c0 = time.process_time()
        v = explore(system)
        rows.append({"row": f"{r.protocol} {r.variant} {v.config}", "verdict": v.verdict,
                     "states": v.states, "cpu": time.process_time() - c0})
    with open(out, "w") as f:
        json.dump(rows, f)
    states = sum(r["states"] for r in rows)
    cpu = sum(r["cpu"] for r in rows)
    print(f"{label}: {states} states, {cpu:.2f} s CPU, {states / cpu:,.0f} states/s")


def compare(before: str, after: str) -> None:
    with open(before) as f:
        a = {r["row"]: r for r in json.load(f)}
    with open(after) as f:
        b = json.load(f)
    print("| row | verdict | states | CPU s before | CPU s after | states/s before | "
          "states/s after | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ta = tb = 0.0
    new = []
    for r in b:
        old = a.get(r["row"])
        if old is None:  # a row the tree before did not have
            new.append(r)
            continue
        # a reduction may change the states a row stores, never its verdict
        assert old["verdict"] == r["verdict"], r["row"]
        ta += old["cpu"]
        tb += r["cpu"]
        states = f"{r['states']:,}" if old["states"] == r["states"] else \
            f"{old['states']:,} → {r['states']:,}"
        print(f"| {r['row']} | {r['verdict']} | {states} | {old['cpu']:.2f} | "
              f"{r['cpu']:.2f} | {old['states'] / old['cpu']:,.0f} | "
              f"{r['states'] / r['cpu']:,.0f} | {old['cpu'] / r['cpu']:.2f}x |")
    print(f"\ntotal CPU of the common rows: {ta:.1f} s before, {tb:.1f} s after "
          f"({ta / tb:.2f}x)")
    for r in new:
        print(f"new row: {r['row']} {r['verdict']} {r['states']:,} states, {r['cpu']:.2f} s "
              f"CPU, {r['states'] / r['cpu']:,.0f} states/s")


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "measure":
        measure(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: catalogue_rows_cpu.py measure OUT.json [LABEL] | compare BEFORE.json "
                 "AFTER.json")
