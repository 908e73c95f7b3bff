"""What a guest (or a live recording) leaves, read back as data, and its report.

Owns: `parse_interrupts` (/proc/interrupts as vector -> per-CPU counts,
arch/x86/kernel/irq.c: arch_show_interrupts()), `GuestResult` (a lab directory's files:
the guest's isolated CPUs, events, skipped phases, interrupt deltas), `analyse` (the
trace through `crossmod trace`'s readers and report, by phase), and `cross_check` (the
receiving side's counts against the /proc/interrupts deltas).

The trace's vector events and /proc/interrupts count the same handlers
(arch/x86/kernel/smp.c, irq_work.c, apic/apic.c: each trace_*_entry sits next to the
inc_irq_stat() of its line): CAL = call_function_entry + call_function_single_entry,
RES = reschedule_entry, IWI = irq_work_entry, LOC = local_timer_entry. They differ only
by what happened between the snapshots and the tracing's start and stop (the capture
fuzz, `FUZZ`).

May import: the standard library and `crossmod.trace`.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from crossmod.trace import render, report
from crossmod.trace.analyze import Analysis
from crossmod.trace.events import parse_cpulist
from crossmod.trace.source import merged, open_trace
from crossmod.trace.whatif import Classifier

#: /proc/interrupts line -> the trace's vector entry events counted in it
VECTORS = {
    "CAL": ("call_function_entry", "call_function_single_entry"),
    "RES": ("reschedule_entry",),
    "IWI": ("irq_work_entry",),
    "LOC": ("local_timer_entry",),
}
#: per vector and CPU, how far the trace's count may be from the snapshots' delta: the
#: snapshots are taken by `cat` a few ms before the events are armed and after the load
#: ends, while the tick and the housekeeping's IPIs go on (measured on the shared capture:
#: at most a handful per vector)
FUZZ = 10


def parse_interrupts(text: str) -> dict[str, list[int]]:
    """``/proc/interrupts`` -> {line name: counts per CPU} (only lines with a count per CPU;
    ERR and MIS, which have one, are kept with that one)."""
    lines = text.splitlines()
    if not lines:
        return {}
    ncpus = len(lines[0].split())
    out: dict[str, list[int]] = {}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        counts: list[int] = []
        for w in rest.split()[:ncpus]:
            if not w.isdigit():
                break
            counts.append(int(w))
        if counts:
            out[name.strip()] = counts
    return out


def deltas(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, list[int]]:
    return {k: [a - b for a, b in zip(after[k], before[k], strict=False)]
            for k in after if k in before}


@dataclass(frozen=True)
class GuestResult:
    """A lab run's directory, read."""

    directory: Path
    release: str
    isolated: tuple[int, ...]  # the guest's own /sys/devices/system/cpu/isolated
    nohz_full: tuple[int, ...]
    events: tuple[str, ...]  # system:event the guest kernel has (of the ones recorded)
    skipped: dict[str, str] = field(default_factory=dict)  # phase -> why
    interrupts: dict[str, list[int]] = field(default_factory=dict)  # traced-end - start
    trace_cmd_status: str = ""
    #: phase -> unit -> how much the phase got done in its time (module_cycles, bpf_rounds,
    #: ...): the seed fixes the work's kind, the emulation's speed its amount
    work: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def trace(self) -> Path:
        return self.directory / "trace.dat"

    @classmethod
    def read(cls, directory: Path) -> GuestResult:
        def text(name: str) -> str:
            try:
                return (directory / name).read_text(errors="replace").strip()
            except OSError:
                return ""

        def cpus(name: str) -> tuple[int, ...]:
            t = text(name)
            return parse_cpulist(t) if t and t != "(null)" else ()

        skipped = {}
        for line in text("skipped.txt").splitlines():
            phase, _, why = line.partition(" ")
            skipped[phase] = why
        work: dict[str, dict[str, int]] = {}
        for line in text("work.txt").splitlines():
            w = line.split()
            if len(w) == 3 and w[2].isdigit():
                work.setdefault(w[0], {})[w[1]] = int(w[2])
        start = parse_interrupts(text("interrupts-traced-start.txt"))
        end = parse_interrupts(text("interrupts-traced-end.txt"))
        return cls(directory=directory, release=text("release.txt"),
                   isolated=cpus("isolated.txt"), nohz_full=cpus("nohz_full.txt"),
                   events=tuple(text("events.txt").split()), skipped=skipped,
                   interrupts=deltas(start, end), trace_cmd_status=text("trace-cmd-status.txt"),
                   work=work)


def unpack(tar_path: Path, directory: Path) -> None:
    """The guest's tar stream (a directory ``out/``) into `directory`, flat."""
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            name = Path(m.name).name
            src = tf.extractfile(m)
            if src is not None:
                (directory / name).write_bytes(src.read())


def analyse(trace: Path, isolated: tuple[int, ...]) -> tuple[dict[str, object], str]:
    """`crossmod trace TRACE --isolated ... --by-phase`: the report dict and its text.
    Raises `crossmod.trace.events.TraceFormatError` on an unreadable trace."""
    cls = Classifier()
    reader, kind = open_trace(str(trace))
    analysis = Analysis(isolated, cls)
    analysis.run(merged([reader]))
    rep = report.build(analysis, sources=[{"path": str(trace), "format": kind}],
                       by_phase=True)
    rep["problems"] = list(map(str, reader.problems))
    rep["lost_events"] = reader.lost_events
    return rep, render.render(rep, cls, by_phase=True)


def received(rep: dict[str, object], cpu: int) -> dict[str, int]:
    """The trace's receiving-side counts on `cpu`, per /proc/interrupts line."""
    cpus = rep["cpus"]
    assert isinstance(cpus, dict)
    by_vector = cpus[str(cpu)]["handled_by_vector"]
    return {line: sum(by_vector.get(e, 0) for e in evs) for line, evs in VECTORS.items()}


@dataclass(frozen=True)
class Agreement:
    line: str  # CAL, RES, IWI, LOC
    cpu: int
    trace: int
    interrupts: int

    @property
    def ok(self) -> bool:
        return abs(self.trace - self.interrupts) <= FUZZ


def cross_check(rep: dict[str, object], result: GuestResult) -> list[Agreement]:
    """Per isolated CPU and vector line, the trace's count and the /proc/interrupts delta."""
    out = []
    for cpu in result.isolated:
        got = received(rep, cpu)
        for line in VECTORS:
            counts = result.interrupts.get(line)
            if counts is None or cpu >= len(counts):
                continue
            out.append(Agreement(line, cpu, got[line], counts[cpu]))
    return out
