"""Benchmark the static-key, static-call and arm64 entries: states, transitions and seconds
per configuration, then the IPIs and rendezvous of one key flip side by side.

Run: python benchmarks/bench_static_keys.py [--quick]
"""

from __future__ import annotations

import sys
import time

from crossmod.catalogue import build
from crossmod.catalogue.arm64 import key_flip_systems
from crossmod.check.explore import explore
from crossmod.check.stats import cost_rows

CONFIGS = [
    ("x86-static-key", "default", {}),
    ("x86-static-key", "default", {"sites": 2}),
    ("x86-static-key", "default", {"sites": 4}),
    ("x86-static-key", "default", {"cpus": 3}),
    ("x86-static-key", "default", {"cpus": 3, "sites": 2}),
    ("x86-static-key", "default", {"sites": 2, "nmis": 1}),
    ("x86-static-call", "default", {}),
    ("x86-static-call", "default", {"sites": 2}),
    ("x86-static-call", "default", {"cpus": 3}),
    ("static-key-race", "default", {}),
    ("static-key-race", "enable-disable", {}),
    ("static-key-race", "dec-inc-dec", {}),
    ("static-key-race", "default", {"cpus": 3}),
    ("static-key-race", "dec-inc-dec", {"sites": 2}),
    ("static-key-race", "dec-inc-dec-83ab38ef0a0b", {}),
    ("static-key-race", "enable-enable", {}),
    ("static-key-race", "disable-disable", {}),
    ("static-key-race", "disable-disable-lock-first", {}),
    ("static-key-race", "enable-enable-one-read", {}),
    ("arm64-jump-label", "nosync", {}),
    ("arm64-jump-label", "default", {}),
    ("arm64-jump-label", "default", {"cpus": 3, "sites": 2}),
    ("arm64-jump-label", "default", {"cpus": 4, "sites": 4}),
    ("arm64-stop-machine", "first-master", {}),
    ("arm64-stop-machine", "default", {}),
    ("arm64-stop-machine", "default", {"cpus": 3}),
    ("arm64-stop-machine", "default", {"cpus": 4}),
    ("arm64-stop-machine", "first-master", {"patch": "jump-label", "sites": 2}),
    ("arm64-stop-machine", "default", {"cpus": 3, "patch": "jump-label", "sites": 2}),
]


def main(quick: bool = False) -> None:
    print(f"{'protocol':20} {'variant':26} {'knobs':38} {'verdict':10} {'states':>9} "
          f"{'transitions':>12} {'seconds':>8}")
    for name, variant, knobs in CONFIGS:
        if quick and (knobs.get("cpus", 2) > 3 or knobs.get("nmis")):
            continue
        t0 = time.perf_counter()
        v = explore(build(name, variant, **knobs))
        dt = time.perf_counter() - t0
        print(f"{name:20} {variant:26} {knobs!s:38} {v.verdict:10} {v.states:>9,} "
              f"{v.transitions:>12,} {dt:>8.2f}")
    print()
    print(f"{'one static_key_enable() (3 CPUs)':42} {'IPIs':>5} {'rendezvous':>11}  by function")
    for r in cost_rows(key_flip_systems(cpus=3)):
        print(f"{r['label']:42} {r['ipis']:>5} {r['rendezvous']:>11}  {r['ipis_by_function']}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
