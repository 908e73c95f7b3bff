"""Scale tables (CPUs x configuration) for x86-int3-batch, defer-cr3 and defer-ct, and the
speed-up of the parallel search (check/parallel.py) with 1 and 2 worker processes.

Run: python benchmarks/bench_scale.py [--seconds 30] [--only scale|parallel]
Prints markdown tables: verdict, states, seconds, states/s, peak memory of the process
(ru_maxrss, MB; for the parallel search the largest worker's). Each configuration runs in
a fresh child process so that peak memory is its own. On a shared 2-core machine wall
times depend on the load: the load average is printed with each table, and the parallel
table also gives CPU seconds (the coordinator's plus its workers').
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from typing import Any

from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.check.parallel import explore_parallel
from crossmod.check.verdict import Bounds

SCALE: list[tuple[str, str, dict[str, Any]]] = [
    *(("x86-int3-batch", "default", {"cpus": n, "execs": 1}) for n in range(2, 8)),
    *(("defer-cr3", "default", {"cpus": n}) for n in (2, 3, 4)),
    *(("defer-cr3", "default", {"cpus": n, "patch": False}) for n in (2, 3, 4)),
    *(("defer-cr3", "default", {"cpus": n, "vmalloc": False}) for n in (2, 3)),
    *(("defer-cr3", "default", {"cpus": n, "syscalls": 0}) for n in (2, 3, 4)),
    *(("defer-cr3", "default", {"cpus": n, "senders": 2, "syscalls": s})
      for n in (3, 4) for s in (0, 1)),
    ("defer-cr3", "no-sender-mb", {"cpus": 3}),
    ("defer-cr3", "nmi-exit-window", {"cpus": 3}),
    ("defer-cr3", "no-sender-mb", {"cpus": 4, "patch": False}),
    ("defer-cr3", "signal-after-flush", {"cpus": 4, "patch": False}),
    *(("defer-ct", "default", {"cpus": n}) for n in (2, 3, 4)),
    *(("defer-ct", "default", {"cpus": n, "syscalls": 0}) for n in (2, 3, 4)),
    ("defer-ct", "default", {"cpus": 3, "nmis": 1}),
]

PARALLEL: list[tuple[str, str, dict[str, Any]]] = [
    ("x86-int3-batch", "default", {"cpus": 3, "nmis": 1, "execs": 1}),
    ("x86-int3-batch", "default", {"cpus": 5, "execs": 1}),
    ("x86-int3-batch", "default", {"cpus": 6, "execs": 1}),
    ("defer-cr3", "default", {"cpus": 3, "vmalloc": False}),
    ("defer-cr3", "default", {"cpus": 3}),
    ("defer-ct", "default", {"cpus": 3}),
]


def _one(q: Any, proto: str, variant: str, knobs: dict[str, Any], seconds: float,
         jobs: int) -> None:
    system = build(proto, variant, **knobs)
    bounds = Bounds(max_seconds=seconds)
    t0, c0 = time.perf_counter(), time.process_time()
    if jobs == 0:
        v = explore(system, bounds)
        cpu = time.process_time() - c0
    else:
        v = explore_parallel(system, bounds, jobs=jobs)
        cpu = time.process_time() - c0 + v.stats["worker_cpu_seconds"]
    wall = time.perf_counter() - t0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    q.put((str(v.verdict), v.states, wall, cpu, rss))


def run(proto: str, variant: str, knobs: dict[str, Any], seconds: float, jobs: int = 0
        ) -> tuple[str, int, float, float, float]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_one, args=(q, proto, variant, knobs, seconds, jobs))
    p.start()
    out = q.get()
    p.join()
    return out  # type: ignore[no-any-return]


def _config(knobs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in knobs.items())


def scale(seconds: float) -> list[str]:
    out = [f"Load average at start: {os.getloadavg()[0]:.1f}", "",
           "| protocol | variant | config | verdict | states | seconds | states/s | peak MB |",
           "|---|---|---|---|---:|---:|---:|---:|"]
    for proto, variant, knobs in SCALE:
        verdict, states, wall, _, rss = run(proto, variant, knobs, seconds)
        out.append(f"| {proto} | {variant} | {_config(knobs)} | {verdict} | {states:,} | "
                   f"{wall:.1f} | {states / wall:,.0f} | {rss:.0f} |")
        print(out[-1], flush=True)
    return out


def parallel(seconds: float) -> list[str]:
    out = [f"Load average at start: {os.getloadavg()[0]:.1f}", "",
           "| protocol | config | engine | verdict | states | wall s | CPU s | states/s "
           "| speed-up (wall) vs sequential |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for proto, variant, knobs in PARALLEL:
        base = None
        for jobs in (0, 1, 2):
            verdict, states, wall, cpu, _ = run(proto, variant, knobs, seconds, jobs)
            rate = states / wall
            base = base or rate
            name = "sequential" if jobs == 0 else f"--jobs {jobs}"
            out.append(f"| {proto} | {_config(knobs)} | {name} | {verdict} | {states:,} | "
                       f"{wall:.1f} | {cpu:.1f} | {rate:,.0f} | {rate / base:.2f}x |")
            print(out[-1], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--only", choices=("scale", "parallel"))
    args = ap.parse_args()
    if args.only != "parallel":
        print("\n".join(scale(args.seconds)))
    if args.only != "scale":
        print("\n".join(parallel(args.seconds)))


if __name__ == "__main__":
    main()
