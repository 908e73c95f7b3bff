"""CPU seconds and states/s of exploring every catalogue row (liveness rows left out).

Run: python benchmarks/catalogue_cpu.py LABEL
CPU time of the process (not wall time) around each `explore`, so that two source trees can
be compared in one session on a shared machine: run it alternately from each tree's venv.
"""

from __future__ import annotations

import sys
import time

from crossmod.catalogue import ROWS, build
from crossmod.check.explore import explore


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    states, cpu = 0, 0.0
    for r in ROWS:
        if getattr(r, "liveness", False):
            continue
        system = build(r.protocol, r.variant, **r.knobs)
        c0 = time.process_time()
        v = explore(system)
        cpu += time.process_time() - c0
        states += v.states
    print(f"{label}: {states} states, {cpu:.2f} s CPU, {states / cpu:,.0f} states/s")


if __name__ == "__main__":
    main()
