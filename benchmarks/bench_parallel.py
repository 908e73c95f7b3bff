"""The parallel search (check/parallel.py) against the sequential one, run to the end.

Run: python benchmarks/bench_parallel.py [ROW,...] [--jobs 0,1,2]
Each run is a fresh forked child; prints verdict, states, wall seconds and CPU seconds (the
coordinator's plus its workers', from getrusage) and the load average before and after.
On a shared machine the CPU seconds, and their ratio to the sequential search's, are what
the load disturbs least; jobs 0 is the sequential search.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any

from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.check.parallel import explore_parallel
from crossmod.check.verdict import Bounds

ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "int3-3n": ("x86-int3-batch", "default", {"cpus": 3, "nmis": 1, "execs": 1}),
    "int3-5": ("x86-int3-batch", "default", {"cpus": 5, "execs": 1}),
    "cr3": ("defer-cr3", "default", {"cpus": 3, "vmalloc": False}),
    "ct": ("defer-ct", "default", {"cpus": 3}),
}


def _one(q: Any, row: str, jobs: int) -> None:
    proto, variant, knobs = ROWS[row]
    system = build(proto, variant, **knobs)
    t0, c0 = time.perf_counter(), time.process_time()
    if jobs == 0:
        v, workers = explore(system, Bounds()), 0.0
    else:
        v = explore_parallel(system, Bounds(), jobs=jobs)
        workers = v.stats["worker_cpu_seconds"]
    q.put((str(v.verdict), v.states, time.perf_counter() - t0,
           time.process_time() - c0 + workers))


def run(row: str, jobs: int) -> tuple[str, int, float, float]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_one, args=(q, row, jobs))
    p.start()
    out = q.get()
    p.join()
    return out  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("rows", nargs="?", default=",".join(ROWS))
    ap.add_argument("--jobs", default="0,1,2")
    args = ap.parse_args()
    print("| row | engine | verdict | states | wall s | CPU s | CPU / sequential | load |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for row in args.rows.split(","):
        base = None
        for jobs in (int(j) for j in args.jobs.split(",")):
            before = os.getloadavg()[0]
            verdict, states, wall, cpu = run(row, jobs)
            base = base or cpu
            proto, _, knobs = ROWS[row]
            config = " ".join(f"{k}={v}" for k, v in knobs.items())
            name = "sequential" if jobs == 0 else f"--jobs {jobs}"
            print(f"| {proto} {config} | {name} | {verdict} | {states:,} | {wall:.2f} | "
                  f"{cpu:.2f} | {cpu / base:.2f}x | {before:.1f}-{os.getloadavg()[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
