"""The shared recording (Debian 6.12 under QEMU, nohz_full=2-3): trace.dat, its
``trace-cmd report`` text and a deliberately naive count agree; the receiving side agrees
with /proc/interrupts; the mode-aware what-if per phase is pinned."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from crossmod.trace import render, report
from crossmod.trace.analyze import IPI_VECTORS, Analysis
from crossmod.trace.causes import signature
from crossmod.trace.dat import DatReader
from crossmod.trace.events import Event
from crossmod.trace.whatif import Classifier

# per (cpu, event) in the recording, as `trace-cmd report | awk` counts them
EXPECTED_EVENTS = {
    (0, "csd_queue_cpu"): 10593, (0, "ipi_send_cpu"): 510, (0, "ipi_send_cpumask"): 5068,
    (0, "print"): 8, (1, "csd_queue_cpu"): 16526, (1, "ipi_send_cpu"): 392,
    (1, "ipi_send_cpumask"): 8086, (1, "print"): 6,
    (2, "call_function_entry"): 13109, (2, "call_function_single_entry"): 221,
    (2, "csd_function_entry"): 13330, (2, "csd_function_exit"): 13330, (2, "ipi_send_cpu"): 2,
    (2, "irq_work_entry"): 2, (2, "local_timer_entry"): 231, (2, "reschedule_entry"): 231,
    (2, "user_enter"): 34294, (2, "user_exit"): 34294,
    (3, "call_function_entry"): 13108, (3, "call_function_single_entry"): 220,
    (3, "csd_function_entry"): 13329, (3, "csd_function_exit"): 13329, (3, "ipi_send_cpu"): 1,
    (3, "irq_work_entry"): 1, (3, "local_timer_entry"): 222, (3, "reschedule_entry"): 230,
    (3, "user_enter"): 34312, (3, "user_exit"): 34312,
}


def _naive(lines: list[str]) -> tuple[Counter[tuple[int, str]], Counter[tuple[object, ...]]]:
    """Plain token matching, no regex and no reader code: the independent count."""
    events: Counter[tuple[int, str]] = Counter()
    callbacks: Counter[tuple[object, ...]] = Counter()
    for line in lines:
        tok = line.split()
        cpus = [t for t in tok[:4] if t.startswith("[") and t.endswith("]")]
        if not cpus:
            continue
        i = tok.index(cpus[0])
        cpu, name = int(cpus[0][1:-1]), tok[i + 2].rstrip(":")
        if name == "kernel_stack":
            continue
        events[(cpu, name)] += 1
        kv = dict(t.rstrip(",").split("=", 1) for t in tok[i + 3 :] if "=" in t)
        if name == "csd_queue_cpu":
            callbacks[("queued", int(kv["cpu"]), kv["func"])] += 1
        elif name == "csd_function_entry":
            callbacks[("ran", cpu, kv["func"])] += 1
        elif name.startswith("ipi_send"):
            callbacks[(name, cpu, kv["callsite"], kv["callback"])] += 1
    return events, callbacks


def _reader_counts(events: list[Event]) -> tuple[Counter[tuple[int, str]],
                                                  Counter[tuple[object, ...]]]:
    counts: Counter[tuple[int, str]] = Counter()
    callbacks: Counter[tuple[object, ...]] = Counter()
    for e in events:
        counts[(e.cpu, e.name)] += 1
        f = e.fields
        if e.name == "csd_queue_cpu":
            callbacks[("queued", f["cpu"], f["func"])] += 1
        elif e.name == "csd_function_entry":
            callbacks[("ran", e.cpu, f["func"])] += 1
        elif e.name.startswith("ipi_send"):
            callbacks[(e.name, e.cpu, f["callsite"], f["callback"])] += 1
    return counts, callbacks


def test_trace_dat_header(shared: Path) -> None:
    r = DatReader.from_path(str(shared / "trace.dat"))
    assert (r.version, r.compression, r.page_size, r.long_size) == (7, "zstd", 4096, 8)
    assert [c for c, _, _ in r.cpu_data] == [0, 1, 2, 3]
    assert len(r.formats) == 31
    assert r.formats[482].name == "csd_queue_cpu"
    assert r.formats[482].field("func").offset == 24  # read from the file, not assumed


def test_counts_agree_dat_text_naive(dat_events: list[Event], text_events: list[Event],
                                     report_text: list[str]) -> None:
    dat = _reader_counts(dat_events)
    text = _reader_counts(text_events)
    naive = _naive(report_text)
    assert dat[0] == text[0] == naive[0] == Counter(EXPECTED_EVENTS)
    assert dat[1] == text[1] == naive[1]
    assert naive[1][("queued", 2, "do_sync_core")] == 7167
    assert naive[1][("ran", 3, "do_flush_tlb_all")] == 4379
    assert naive[1][("ipi_send_cpu", 1, "dl_task_timer+0x1d3", "0x0")] == 199


def test_records_identical_across_formats(dat_events: list[Event],
                                          text_events: list[Event]) -> None:
    """Same order, fields and stacks; text timestamps are the dat's rounded to 1 µs."""
    assert len(dat_events) == len(text_events) == 259297
    for d, t in zip(dat_events, text_events, strict=True):
        assert (t.ts, t.cpu, t.pid, t.comm, t.name, t.fields, t.stack) == (
            (d.ts + 500) // 1000 * 1000, d.cpu, d.pid, d.comm, d.name, d.fields, d.stack)
    stacks = Counter(signature(e.stack) for e in dat_events if e.stack)
    assert sum(stacks.values()) == 41178
    assert stacks["sk_attach_filter → bpf_prog_select_runtime"] == 9457


def test_sender_side_equals_receiver_side(dat_analysis: Analysis) -> None:
    rep = report.build(dat_analysis, sources=[])
    for cpu, n in (("2", 13563), ("3", 13559)):
        assert rep["cpus"][cpu]["aimed"] == rep["cpus"][cpu]["handled"] == n
    assert rep["summary"] == "27122 IPIs received, about 13561 per isolated CPU, one every 17.4 ms"


def _proc_interrupts(path: Path) -> dict[str, list[int]]:
    rows = {}
    for line in path.read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        nums = rest.split()[:4]
        if all(n.isdigit() for n in nums) and len(nums) == 4:
            rows[name.strip()] = [int(n) for n in nums]
    return rows


def test_receiving_side_agrees_with_proc_interrupts(shared: Path, dat_events: list[Event],
                                                    dat_analysis: Analysis) -> None:
    """The snapshots bracket the load, not the trace: trace-cmd armed the events ~3 s
    before the first snapshot (capture/guest/init) and stopped after the last, so the
    /proc/interrupts delta lies between the events inside the marked phases and all the
    traced events. CAL counts both call-function vectors."""
    start = _proc_interrupts(shared / "interrupts-traced-start.txt")
    end = _proc_interrupts(shared / "interrupts-traced-end.txt")
    lo, hi = dat_analysis.phases[0]["start_ns"], dat_analysis.phases[-1]["end_ns"]
    vectors = {"CAL": ("call_function_entry", "call_function_single_entry"),
               "RES": ("reschedule_entry",), "IWI": ("irq_work_entry",),
               "LOC": ("local_timer_entry",)}
    fuzz = {}
    for row, names in vectors.items():
        for cpu in (2, 3):
            delta = end[row][cpu] - start[row][cpu]
            evs = [e for e in dat_events if e.cpu == cpu and e.name in names]
            inside = sum(1 for e in evs if lo <= e.ts <= hi)  # type: ignore[operator]
            assert inside <= delta <= len(evs), (row, cpu)
            fuzz[(row, cpu)] = (inside, delta, len(evs))
    assert fuzz[("CAL", 2)] == (13324, 13326, 13330)
    assert fuzz[("RES", 3)] == (224, 227, 230)
    assert fuzz[("LOC", 2)] == (225, 227, 231)
    assert fuzz[("IWI", 3)] == (0, 0, 1)


# phase -> CPU 2 (aimed, removable, deferrable but target in kernel, with deferral)
WHATIF_CPU2 = {
    "(no phase)": (99, 62, 0, 37), "bpf_jit": (62, 4, 0, 58), "bpf_nojit": (4630, 4475, 102, 155),
    "tracepoint": (4223, 4111, 56, 112), "kprobe": (1615, 1467, 12, 148),
    "module": (2139, 2056, 25, 83), "hackbench": (64, 0, 0, 64), "mixed": (731, 664, 3, 67),
}


def test_mode_aware_whatif_per_phase(dat_analysis: Analysis, text_analysis: Analysis) -> None:
    for a in (dat_analysis, text_analysis):
        rep = report.build(a, sources=[], by_phase=True)
        assert rep["context_tracking"] is True
        phases = rep["cpus"]["2"]["by_phase"]
        got = {p: (d["aimed"], d["whatif"]["removable"],
                   d["whatif"]["deferrable_but_target_in_kernel"], d["whatif"]["with_deferral"])
               for p, d in phases.items()}
        assert got == WHATIF_CPU2
        whole = rep["cpus"]["3"]["whatif"]
        assert (whole["today"], whole["removable"], whole["with_deferral"],
                whole["deferrable_but_target_in_kernel"]) == (13559, 12898, 661, 136)
        assert dict(whole["remaining_causes"])["reschedule"] == 230


def test_whatif_without_context_tracking(dat_events: list[Event]) -> None:
    """With user_enter/exit filtered out, every deferrable IPI counts as removable and
    the report says it assumed userspace."""
    a = Analysis((2, 3)).run(e for e in dat_events if not e.name.startswith("user_"))
    rep = report.build(a, sources=[{"path": "x", "format": "y"}])
    wi = rep["cpus"]["2"]["whatif"]
    assert (wi["today"], wi["removable"], wi["deferrable_but_target_in_kernel"]) == (
        13563, 12839 + 198, 0)
    assert "assumes the isolated CPUs stay in userspace" in render.render(rep, Classifier())


def test_every_ipi_is_attributed(dat_analysis: Analysis) -> None:
    rep = report.build(dat_analysis, sources=[])
    causes = dict(rep["cpus"]["2"]["by_callback"])
    assert "(csd not traced)" not in causes
    assert causes["do_sync_core"] == 7152 and causes["reschedule"] == 231
    assert sum(causes.values()) == 13563
    handled = rep["cpus"]["2"]["handled_by_vector"]
    assert sum(handled[v] for v in IPI_VECTORS) == 13563


@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd not installed")
def test_v6_written_by_trace_cmd(shared: Path, tmp_path: Path,
                                 dat_events: list[Event]) -> None:
    """trace-cmd itself converts the recording to file version 6 (uncompressed)."""
    out = tmp_path / "v6.dat"
    subprocess.run(["trace-cmd", "convert", "-i", str(shared / "trace.dat"), "-o", str(out),
                    "--file-version", "6", "--compression", "none"], check=True,
                   capture_output=True)
    r = DatReader.from_path(str(out))
    assert r.version == 6
    events = list(r)
    assert [(e.ts, e.cpu, e.name, e.fields, e.stack) for e in events] == [
        (e.ts, e.cpu, e.name, e.fields, e.stack) for e in dat_events]


def test_several_files_merge_into_the_one_file_report(report_text: list[str],
                                                      tmp_path: Path) -> None:
    """The shared report text split in two by CPU (housekeeping 0-1, isolated 2-3; each
    stack with its event) and given as two files: the streaming merge (a block at a time)
    gives the report of a naive one (every event of both files in memory, sorted by time
    stamp, ties in file order), and the per-CPU counts of the whole file. (The report text
    has microsecond stamps, so events of two CPUs often tie: which comes first decides a
    few targets' modes at send time, hence the naive merge as the reference for those.)"""
    import re

    from crossmod.trace.source import merged, open_trace

    cpu_of = re.compile(r"\[(\d+)\]")
    parts: tuple[list[str], list[str]] = ([], [])
    last = 0
    for line in report_text:
        if line.lstrip().startswith("=>"):
            parts[last].append(line)  # a frame goes with the event before it
            continue
        m = cpu_of.search(line)
        if m is None:
            parts[0].append(line)
            if line.startswith("cpus="):
                parts[1].append(line)  # both need the header: it says how masks print
            continue
        last = int(int(m[1]) >= 2)
        parts[last].append(line)
    paths = []
    for i, lines in enumerate(parts):
        paths.append(tmp_path / f"part{i}.txt")
        paths[-1].write_text("".join(lines))
    whole = tmp_path / "whole.txt"
    whole.write_text("".join(report_text))

    def rep(events: object) -> dict:
        a = Analysis((2, 3)).run(events)  # type: ignore[arg-type]
        return report.build(a, sources=[], by_phase=True) | {"events": a.events}

    readers = [open_trace(str(f))[0] for f in paths]
    streamed = rep(merged(readers))
    assert all(r.problem_count == 0 for r in readers)
    naive = [(e.ts, i, k, e) for i, f in enumerate(paths)
             for k, e in enumerate(open_trace(str(f))[0])]
    naive.sort(key=lambda t: t[:3])
    assert streamed == rep([t[3] for t in naive])
    one = rep(open_trace(str(whole))[0])
    assert streamed["events"] == one["events"]
    for cpu in ("2", "3"):
        for key in ("aimed", "handled", "handled_by_vector", "by_callback", "by_callsite"):
            assert streamed["cpus"][cpu][key] == one["cpus"][cpu][key]
    assert streamed["total_aimed"] > 27_000
