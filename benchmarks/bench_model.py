"""Model-checker benchmark: every catalogue row, the reductions, and CPU scaling.

Run: python benchmarks/bench_model.py [--scale-seconds 60] [--out FILE]
Prints markdown tables (states/s and wall time per row; symmetry on/off; the largest
x86-int3-batch CPU count exhausted within the time limit). Figures on a shared 2-core
machine are noisy: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import platform
import time

from crossmod.catalogue import ROWS, build
from crossmod.check.explore import explore
from crossmod.check.verdict import Bounds


def catalogue() -> list[str]:
    out = ["| protocol | variant | config | verdict | states | transitions | seconds | "
           "states/s |", "|---|---|---|---|---:|---:|---:|---:|"]
    total = 0.0
    for r in ROWS:
        system = build(r.protocol, r.variant, **r.knobs)
        v = explore(system)
        total += v.seconds
        rate = v.states / v.seconds if v.seconds else 0
        out.append(f"| {r.protocol} | {r.variant} | {v.config} | {v.verdict} | {v.states:,} "
                   f"| {v.transitions:,} | {v.seconds:.2f} | {rate:,.0f} |")
    out.append(f"\nsum of exploration times: {total:.1f} s")
    return out


REDUCTIONS = (("none", Bounds(symmetry=False, por=False, max_seconds=300)),
              ("symmetry", Bounds(symmetry=True, por=False, max_seconds=300)),
              ("partial order", Bounds(symmetry=False, por=True, max_seconds=300)),
              ("both", Bounds(symmetry=True, por=True, max_seconds=300)))


def reductions() -> list[str]:
    head = " | ".join(f"{name} states | s" for name, _ in REDUCTIONS)
    out = [f"| configuration | {head} | none/both |",
           "|---|" + "---:|" * (2 * len(REDUCTIONS) + 1)]
    for kw in (dict(cpus=3, execs=1), dict(cpus=3), dict(cpus=4, execs=1),
               dict(cpus=3, nmis=1, execs=1)):
        cells, counts = [], []
        for _, b in REDUCTIONS:
            v = explore(build("x86-int3-batch", **kw), b)
            mark = "" if v.verdict == "safe" else " (bound)"
            cells.append(f"{v.states:,}{mark} | {v.seconds:.1f}")
            counts.append(v.states)
        config = build("x86-int3-batch", **kw).describe_config()
        out.append(f"| {config} | {' | '.join(cells)} | {counts[0] / counts[-1]:.1f}x |")
    return out


def scale(limit: float) -> list[str]:
    out = ["| CPUs | execs | verdict | states | seconds |", "|---:|---:|---|---:|---:|"]
    for execs in (1, 2):
        for cpus in range(2, 8):
            v = explore(build("x86-int3-batch", cpus=cpus, execs=execs),
                        Bounds(max_seconds=limit))
            out.append(f"| {cpus} | {execs} | {v.verdict} | {v.states:,} | {v.seconds:.1f} |")
            if v.verdict != "safe":
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale-seconds", type=float, default=60.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"python {platform.python_version()}, {platform.machine()}\n")
    print("### Catalogue\n")
    print("\n".join(catalogue()))
    print("\n### Reductions (x86-int3-batch)\n")
    print("\n".join(reductions()))
    print(f"\n### Scale (x86-int3-batch, per-byte, TSO, limit {args.scale_seconds:.0f} s)\n")
    print("\n".join(scale(args.scale_seconds)))
    print(f"\nbenchmark wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
