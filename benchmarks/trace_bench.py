"""Benchmark of `crossmod trace`: events/s and peak memory on a synthetic trace of >= 1 GB.

Generates (under --out, default /tmp/crossmod-trace-bench; never in git) a trace.dat
(file version 7, uncompressed, or --compression zstd) and the matching ``trace-cmd
report`` text, both shaped like the shared QEMU recording: isolated CPUs 2-3 making a
syscall every 10 ms, housekeeping CPUs 0-1 sending do_sync_core / do_flush_tlb_all /
do_kernel_range_flush / nohz kick / reschedule IPIs with stacks, PHASE markers, and 10 %
of irrelevant events (sched_waking) the reader must skip. Then it runs the whole
pipeline (read + analyse, as `crossmod trace` does) in a fresh subprocess per file and
reports events/s and the subprocess' peak RSS, for a small and the large file, so that
"peak memory independent of file size" is measured, not assumed. Each file is read once
beforehand, so it is measured from the page cache.

    python benchmarks/trace_bench.py --gb 1            # generate if missing, measure
    python benchmarks/trace_bench.py --gb 1 --measure-only
    python benchmarks/trace_bench.py --gb 1 --pure     # also without the compiled scanner
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from operator import attrgetter
from pathlib import Path

from crossmod.trace.speedups import PURE_ENV
from crossmod.trace.synth import DatOptions, Rec, report_line, write_dat

TICK = 1_000_000  # 1 ms of trace time per step of the synthetic schedule
ISOLATED = (2, 3)
COMMS = {0: "<idle>", 219: "sh", 224: "bpfload", 84: "kworker/1:2", 183: "spin", 184: "spin"}
STACKS = {
    "do_sync_core": ("trace_event_raw_event_csd_queue_cpu", "smp_call_function_many_cond",
                     "on_each_cpu_cond_mask", "text_poke_bp_batch", "text_poke_bp",
                     "__static_call_transform", "arch_static_call_transform",
                     "__static_call_update", "tracepoint_add_func",
                     "tracepoint_probe_register", "__ftrace_event_enable_disable",
                     "event_enable_write", "vfs_write", "ksys_write", "do_syscall_64",
                     "entry_SYSCALL_64_after_hwframe"),
    "do_flush_tlb_all": ("trace_event_raw_event_csd_queue_cpu", "smp_call_function_many_cond",
                         "on_each_cpu_cond_mask", "change_page_attr_set_clr", "set_memory_ro",
                         "bpf_prog_select_runtime", "bpf_prepare_filter", "sk_attach_filter",
                         "sk_setsockopt", "do_sock_setsockopt", "__sys_setsockopt",
                         "do_syscall_64", "entry_SYSCALL_64_after_hwframe"),
    "do_kernel_range_flush": ("trace_event_raw_event_csd_queue_cpu",
                              "smp_call_function_many_cond", "on_each_cpu_cond_mask",
                              "flush_tlb_kernel_range", "__purge_vmap_area_lazy",
                              "_vm_unmap_aliases", "vfree.part.0", "process_one_work",
                              "worker_thread", "kthread", "ret_from_fork"),
}
FUNCS = ("do_sync_core", "do_flush_tlb_all", "do_kernel_range_flush")
SYMBOLS = sorted({f for s in STACKS.values() for f in s} | set(FUNCS) | {
    "generic_smp_call_function_single_interrupt", "tracing_mark_write", "dl_task_timer",
    "irq_work_queue_on", "nohz_full_kick_func"})
PHASE_TICKS = 20_000  # a PHASE marker pair every 20 s of trace time


def sender(cpu: int, ticks: int) -> Iterator[Rec]:
    """Housekeeping CPU `cpu` (0 or 1): IPIs on ticks where k % 4 == 2 * cpu."""
    for k in range(ticks):
        t = k * TICK
        if cpu == 0 and k % PHASE_TICKS == 0:
            yield Rec(t, 0, "print", 219, {"buf": f"PHASE p{k // PHASE_TICKS} start"})
        if cpu == 0 and k % PHASE_TICKS == PHASE_TICKS - 1:
            yield Rec(t, 0, "print", 219, {"buf": f"PHASE p{k // PHASE_TICKS} end"})
        if k % 4 != 2 * cpu:
            if k % 2:
                yield Rec(t + 500, cpu, "sched_waking", 84, {"pid": 183, "prio": 120,
                                                              "target_cpu": 2})
            continue
        pid = 224 if cpu else 84
        if k % 40 == 2 * cpu:  # a nohz kick and a reschedule IPI now and then
            yield Rec(t + 10_000, cpu, "csd_queue_cpu", 0, {
                "cpu": 2, "callsite": "irq_work_queue_on+0x5b", "func": "nohz_full_kick_func",
                "csd": 0xFF00})
            yield Rec(t + 10_100, cpu, "ipi_send_cpu", 0, {
                "cpu": 2, "callsite": "irq_work_queue_on+0x5b",
                "callback": "generic_smp_call_function_single_interrupt+0x0"})
            yield Rec(t + 10_200, cpu, "ipi_send_cpu", 0, {
                "cpu": 3, "callsite": "dl_task_timer+0x1d3", "callback": "0x0"})
            continue
        func = FUNCS[(k // 4) % 3]
        for i, target in enumerate(ISOLATED):
            yield Rec(t + 10_000 + i * 100, cpu, "csd_queue_cpu", pid, {
                "cpu": target, "callsite": "on_each_cpu_cond_mask+0x24", "func": func,
                "csd": 0xFF1D40F1FD93D0A0 + target * 0x80000},
                STACKS[func] if i == 0 else None)
        yield Rec(t + 10_300, cpu, "ipi_send_cpumask", pid, {
            "cpumask": (0, 2, 3) if cpu else (1, 2, 3), "callsite": "on_each_cpu_cond_mask+0x24",
            "callback": "generic_smp_call_function_single_interrupt+0x0"})


def isolated(cpu: int, ticks: int) -> Iterator[Rec]:
    """A spinner on `cpu` with a syscall every 10 ms and the IPIs the senders aim at it."""
    pid = 181 + cpu
    for k in range(ticks):
        t = k * TICK
        if k % 10 == cpu:
            yield Rec(t + 1_000, cpu, "user_exit", pid, {})
            yield Rec(t + 2_000, cpu, "user_enter", pid, {})
        if k % 2:
            continue
        yield Rec(t + 20_000, cpu, "user_exit", pid, {})
        if k % 40 in (0, 2):
            name = "call_function_single_entry" if cpu == 2 else "reschedule_entry"
            yield Rec(t + 20_100, cpu, name, pid, {"vector": 251 if cpu == 2 else 253})
        else:
            func = FUNCS[(k // 4) % 3]
            csd = {"func": func, "csd": 0xFF1D40F1FD93D0A0 + cpu * 0x80000}
            yield Rec(t + 20_100, cpu, "call_function_entry", pid, {"vector": 252})
            yield Rec(t + 20_200, cpu, "csd_function_entry", pid, csd)
            yield Rec(t + 25_000, cpu, "csd_function_exit", pid, dict(csd))
        yield Rec(t + 25_100, cpu, "user_enter", pid, {})


def streams(ticks: int) -> dict[int, object]:
    return {0: lambda: sender(0, ticks), 1: lambda: sender(1, ticks),
            2: lambda: isolated(2, ticks), 3: lambda: isolated(3, ticks)}


def generate(out: Path, ticks: int, compression: str, kind: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    dat, txt = out / f"bench-{ticks}-{compression}.dat", out / f"bench-{ticks}.txt"
    comms = {**COMMS, 181 + 2: "spin", 181 + 3: "spin"}
    if kind == "dat" and not dat.exists():
        t0 = time.time()
        with open(str(dat) + ".part", "wb") as f:
            write_dat(f, streams(ticks), DatOptions(  # type: ignore[arg-type]
                version=7, compression=compression, symbols=SYMBOLS, comms=comms,
                chunk_pages=64))
        os.replace(str(dat) + ".part", dat)
        print(f"wrote {dat} ({dat.stat().st_size / 1e9:.2f} GB) in {time.time() - t0:.0f} s")
    if kind == "text" and not txt.exists():
        t0 = time.time()
        merged = heapq.merge(*(s() for s in streams(ticks).values()),  # type: ignore[operator]
                             key=attrgetter("ts"))
        with open(str(txt) + ".part", "w", buffering=1 << 20) as f:
            f.write("cpus=4\n")
            f.writelines(report_line(r, comms.get(r.pid, "<...>")) for r in merged)
        os.replace(str(txt) + ".part", txt)
        print(f"wrote {txt} ({txt.stat().st_size / 1e9:.2f} GB) in {time.time() - t0:.0f} s")
    return dat if kind == "dat" else txt


def measure(path: Path) -> dict[str, object]:
    """Read and analyse `path` in this process (run in a fresh subprocess by main)."""
    from crossmod.trace.analyze import Analysis
    from crossmod.trace.events import RELEVANT
    from crossmod.trace.source import merged, open_trace
    from crossmod.trace.speedups import backend

    t0 = time.perf_counter()
    c0 = time.process_time()
    reader, kind = open_trace(str(path))
    a = Analysis(ISOLATED).run(merged([reader]))
    secs = time.perf_counter() - t0
    # the machine is shared: CPU time is the figure that does not depend on the neighbours
    cpu = time.process_time() - c0
    total = sum(a.events.values())
    relevant = sum(n for (name, _c, _p), n in a.events.items() if name in RELEVANT)
    return {"file": str(path), "format": kind, "scanner": backend(),
            "bytes": path.stat().st_size, "events": total,
            "relevant_events": relevant, "seconds": round(secs, 2),
            "relevant_events_per_s": round(relevant / secs), "cpu_seconds": round(cpu, 2),
            "relevant_events_per_cpu_s": round(relevant / cpu),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "problems": reader.problem_count}


def _warm(path: Path) -> None:
    """Read the file once so that it is in the page cache: the figure is the reader's and
    the analysis', not the disk's (this machine's memory manager evicts idle files)."""
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 23):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gb", type=float, default=1.0, help="size of the large trace.dat")
    ap.add_argument("--out", type=Path, default=Path("/tmp/crossmod-trace-bench"))
    ap.add_argument("--compression", default="none", choices=("none", "zstd", "zlib"))
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--measure-only", action="store_true")
    ap.add_argument("--pure", action="store_true",
                    help="also measure the pure-Python readers (CROSSMOD_TRACE_PURE=1)")
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    # bytes per 1 ms tick of the schedule: ~274 in an uncompressed trace.dat, ~1067 as
    # report text; size each file from the requested size, plus one 20x smaller
    per_tick = {"dat": 274 if args.compression == "none" else 40, "text": 1067}
    results = []
    for scale in (20, 1):
        for kind in ("dat", "text"):
            ticks = int(args.gb * 1e9 / per_tick[kind] / scale)
            path = generate(args.out, ticks, args.compression, kind)
            for pure in (False, True) if args.pure else (False,):
                _warm(path)
                env = {**os.environ, PURE_ENV: "1" if pure else "0"}
                proc = subprocess.run([sys.executable, __file__, "--measure", str(path)],
                                      check=True, capture_output=True, text=True, env=env)
                results.append(json.loads(proc.stdout))
                print(json.dumps(results[-1]), flush=True)
    print("| file | scanner | size | relevant events | wall s | CPU s "
          "| relevant events per CPU s | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {Path(str(r['file'])).name} ({r['format']}) | {r['scanner']} "
              f"| {int(r['bytes']) / 1e9:.2f} GB | {r['relevant_events']:,} | {r['seconds']} "
              f"| {r['cpu_seconds']} | {r['relevant_events_per_cpu_s']:,} "
              f"| {r['peak_rss_mb']} MB |")


if __name__ == "__main__":
    main()
