"""Benchmark the IPI-deferral entries (defer-none, defer-ct, defer-cr3): states, transitions
and seconds per configuration, the CPU-symmetry reduction on configurations with two
isolated CPUs, and the IPIs the first userspace CPU takes in user mode, by callback.

Run: python benchmarks/bench_deferral.py [--quick]
"""

from __future__ import annotations

import sys
import time

from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.check.isolation import user_ipi_counts
from crossmod.check.verdict import Bounds

CONFIGS = [
    ("defer-none", "default", {"syscalls": 0}),
    ("defer-none", "default", {}),
    ("defer-none", "default", {"cpus": 3, "syscalls": 0}),
    ("defer-cr3", "default", {}),
    ("defer-cr3", "default", {"syscalls": 0}),
    ("defer-cr3", "default", {"fetch": "snapshot"}),
    ("defer-cr3", "default", {"memory": "pso"}),
    ("defer-cr3", "default", {"syscalls": 2}),
    ("defer-cr3", "default", {"nmis": 1, "syscalls": 0}),
    ("defer-cr3", "default", {"cpus": 3, "syscalls": 0, "nmis": 1}),
    ("defer-cr3", "default", {"cpus": 3, "patch": False}),
    ("defer-cr3", "default", {"cpus": 3, "vmalloc": False}),
    ("defer-cr3", "nmi-exit-window", {}),
    ("defer-cr3", "nmi-exit-window-fix", {}),
    ("defer-ct", "default", {}),
    ("defer-ct", "default", {"nmis": 1, "syscalls": 0}),
    ("defer-ct", "default", {"cpus": 3}),
    ("defer-ct", "plain-read", {}),
    ("defer-ct", "state-field", {}),
    ("defer-ct", "tlb-at-ct-flush", {}),
]
SLOW = {"cpus": 3}


def main(quick: bool = False) -> None:
    print(f"{'protocol':10} {'variant':20} {'knobs':40} {'verdict':9} {'states':>9} "
          f"{'transitions':>11} {'seconds':>8} {'no-sym states':>13} {'factor':>6}")
    for name, variant, knobs in CONFIGS:
        if quick and (knobs.get("cpus", 2) > 2 or variant.endswith("fix")):
            continue
        system = build(name, variant, **knobs)
        t0 = time.perf_counter()
        v = explore(system)
        dt = time.perf_counter() - t0
        nosym, factor = "-", "-"
        if system.config.symmetric:
            n = explore(system, Bounds(symmetry=False)).states
            nosym, factor = f"{n:,}", f"{n / v.states:.2f}"
        print(f"{name:10} {variant:20} {knobs!s:40} {v.verdict:9} {v.states:>9,} "
              f"{v.transitions:>11,} {dt:>8.2f} {nosym:>13} {factor:>6}")
    print()
    print(f"{'IPIs taken in user mode by cpu1 (min..max)':60} by callback")
    for name, variant, knobs in CONFIGS:
        skip = variant in ("state-field", "tlb-at-ct-flush", "nmi-exit-window")
        if skip or knobs.get("cpus", 2) > 2 or (quick and variant.endswith("fix")):
            continue
        c = user_ipi_counts(build(name, variant, **knobs))
        cb = {k: f"{c.low.get(1, {}).get(k, 0)}..{n}" for k, n in c.high.get(1, {}).items()}
        label = f"{name} {variant} {knobs}"
        print(f"{label:60} {cb or 'none'}  ({c.with_ipi.get(1, 0)} of {c.runs} distinct "
              "final count vectors have one)")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
