"""`crossmod record`'s work: what the kernel can trace, the trace-cmd line for it, the run.

Owns: `Capabilities` (the events and filter syntax a kernel has: detected from tracefs's
``events/`` and the kernel release, or assumed from a release alone for a guest not yet
booted), `losses` (what a missing capability costs the report, one sentence each),
`trace_cmd_argv` (the series' recording, seed 002's line plus the receiving side and
context tracking, as an argument list: a pure function of the capabilities), the isolated
CPUs a running system declares, `preflight` (one-line errors before anything runs), and
`run` (trace-cmd around a command, its ``PHASE`` lines copied into ``trace_marker``).

The events and their kernels: ``ipi:ipi_send_cpu`` / ``ipi_send_cpumask`` came with 6.4
(kernel/irq_work.c, kernel/smp.c: trace_ipi_send_cpu()), ``csd:csd_queue_cpu`` /
``csd_function_entry`` / ``csd_function_exit`` and the ``CPUS{}`` cpumask filter with 6.6
(include/trace/events/csd.h; kernel/trace/trace_events_filter.c: FILTER_PRED_FN_CPUMASK).

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crossmod.trace.events import format_cpulist, parse_cpulist

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

#: (system, event) for each capability, in the order trace-cmd gets them
SENDER_CPU = ("ipi", "ipi_send_cpu")
SENDER_MASK = ("ipi", "ipi_send_cpumask")
CSD_QUEUE = ("csd", "csd_queue_cpu")
CSD_FUNC = (("csd", "csd_function_entry"), ("csd", "csd_function_exit"))
RECEIVING = tuple(("irq_vectors", e) for e in (
    "call_function_entry", "call_function_single_entry", "reschedule_entry",
    "irq_work_entry", "local_timer_entry"))
TLB = ("tlb", "tlb_flush")
USER = (("context_tracking", "user_enter"), ("context_tracking", "user_exit"))


@dataclass(frozen=True)
class Capabilities:
    """What a kernel's tracing offers the recording."""

    ipi_send: bool  # ipi:ipi_send_cpu and ipi:ipi_send_cpumask (6.4)
    csd: bool  # csd:csd_queue_cpu, csd_function_entry/exit (6.6)
    cpus_filter: bool  # `field & CPUS{list}` in filters and triggers (6.6)
    irq_vectors: bool  # the x86 vector entry events (receiving side)
    context_tracking: bool  # user_enter / user_exit (CONFIG_CONTEXT_TRACKING_USER)
    tlb: bool = True  # tlb:tlb_flush

    @classmethod
    def for_release(cls, release: tuple[int, int]) -> Capabilities:
        """What a stock x86 distribution kernel of `release` has (Debian's configs enable
        the tracepoints and NO_HZ_FULL); used for a guest before it boots."""
        return cls(ipi_send=release >= (6, 4), csd=release >= (6, 6),
                   cpus_filter=release >= (6, 6), irq_vectors=True, context_tracking=True)

    @classmethod
    def detect(cls, events_dir: str | Path, release: tuple[int, int]) -> Capabilities:
        """From a tracefs ``events/`` directory; the filter syntax, which tracefs does not
        show, from the release."""
        d = Path(events_dir)
        return cls.from_events(lambda s, e: (d / s / e).is_dir(), release)

    @classmethod
    def from_names(cls, names: Iterable[str], release: tuple[int, int]) -> Capabilities:
        """From ``system:event`` names (the guest's events.txt)."""
        have = set(names)
        return cls.from_events(lambda s, e: f"{s}:{e}" in have, release)

    @classmethod
    def from_events(cls, exists: Callable[[str, str], bool],
                    release: tuple[int, int]) -> Capabilities:
        def has(*evs: tuple[str, str]) -> bool:
            return all(exists(s, e) for s, e in evs)

        return cls(ipi_send=has(SENDER_CPU, SENDER_MASK), csd=has(CSD_QUEUE, *CSD_FUNC),
                   cpus_filter=release >= (6, 6), irq_vectors=has(*RECEIVING),
                   context_tracking=has(*USER), tlb=has(TLB))


def parse_release(text: str) -> tuple[int, int]:
    """``"6.12.118+deb12-amd64"`` -> ``(6, 12)``. Raises ValueError."""
    m = re.match(r"\s*(\d+)\.(\d+)", text)
    if not m:
        raise ValueError(f"not a kernel release: {text!r}")
    return int(m.group(1)), int(m.group(2))


def losses(caps: Capabilities) -> list[str]:
    """What the report cannot say without each missing capability (one line each)."""
    out = []
    if not caps.ipi_send:
        out.append("no ipi:ipi_send_cpu/ipi_send_cpumask (kernel < 6.4): no sender side; "
                   "the report counts IPIs received on the isolated CPUs by vector, but not "
                   "who sent them, from which stack, nor what deferral would remove")
    if not caps.csd:
        out.append("no csd:csd_queue_cpu/csd_function_entry/exit (kernel < 6.6): no "
                   "callback names; IPIs are attributed by their sender's stack only")
    if not caps.cpus_filter and caps.ipi_send:
        out.append("no CPUS{} filter (kernel < 6.6): targets are filtered as 'cpu == N || "
                   "...'; ipi_send_cpumask cannot be filtered, so every one is recorded with "
                   "a stack (a bigger trace, more overhead on the housekeeping CPUs)")
    elif not caps.cpus_filter:
        out.append("no CPUS{} filter (kernel < 6.6): the isolated CPUs are filtered as "
                   "'CPU == N || ...' (the same events, a longer filter)")
    if not caps.irq_vectors:
        out.append("no irq_vectors:* events: no receiving side; the IPIs taken on the "
                   "isolated CPUs and the handlers' time are not counted")
    if not caps.context_tracking:
        out.append("no context_tracking:user_enter/user_exit: the isolated CPUs' mode "
                   "(user or kernel) when an IPI was sent is unknown; what deferral would "
                   "remove is counted as if they were in user space")
    if not caps.tlb:
        out.append("no tlb:tlb_flush: TLB flushes on the isolated CPUs are not shown")
    return out


def _in(field: str, isolated: Sequence[int], cpus_filter: bool) -> str:
    """`field` names one of the isolated CPUs, in the kernel's filter syntax."""
    if cpus_filter:
        return f"{field} & CPUS{{{format_cpulist(tuple(isolated))}}}"
    return " || ".join(f"{field} == {c}" for c in isolated)


def trace_cmd_argv(caps: Capabilities, isolated: Sequence[int], output: str,
                   buffer_kb: int = 16384) -> list[str]:
    """The ``trace-cmd record`` arguments (without the program name) for `caps`: the
    sending side with a stack for each event naming an isolated CPU (seed 002's line), the
    receiving side and user entry/exit on the isolated CPUs. ``CPU`` in a filter is the CPU
    the event fired on, ``cpu``/``cpumask`` the event's target."""
    if not isolated:
        raise ValueError("no isolated CPU to record")
    f = caps.cpus_filter
    on = _in("CPU", isolated, f)  # events firing on an isolated CPU
    argv = ["record", "-q", "-o", output, "-b", str(buffer_kb)]

    def ev(system_event: tuple[str, str], filt: str | None, stack: str | None) -> None:
        argv.extend(["-e", ":".join(system_event)])
        if filt is not None:
            argv.extend(["-f", filt])
        if stack is not None:
            argv.extend(["-R", f"stacktrace if {stack}" if stack else "stacktrace"])

    if caps.csd:
        target = _in("cpu", isolated, f)
        ev(CSD_QUEUE, target, target)
    if caps.ipi_send:
        mask = _in("cpumask", isolated, f) if f else None
        ev(SENDER_MASK, mask, mask or "")
        target = _in("cpu", isolated, f)
        ev(SENDER_CPU, target, target)
    if caps.csd:
        for e in CSD_FUNC:
            ev(e, on, None)
    if caps.irq_vectors:
        for e in RECEIVING:
            ev(e, on, None)
    if caps.tlb:
        ev(TLB, on, None)
    if caps.context_tracking:
        for e in USER:
            ev(e, on, None)
    return argv


def shell_line(argv: Sequence[str]) -> str:
    """`argv` as one POSIX shell line (for the guest's script and for --dry-run)."""
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


def declared_isolated(sysfs_cpu: str | Path = "/sys/devices/system/cpu") -> tuple[int, ...]:
    """The CPUs the running kernel isolates: ``isolated`` (isolcpus=) and ``nohz_full``
    together (drivers/base/cpu.c: print_cpus_isolated(), print_cpus_nohz_full())."""
    out: set[int] = set()
    for name in ("isolated", "nohz_full"):
        try:
            text = (Path(sysfs_cpu) / name).read_text().strip()
        except OSError:
            continue
        if text and text != "(null)":
            out.update(parse_cpulist(text))
    return tuple(sorted(out))


def find_tracefs() -> str | None:
    for d in TRACEFS:
        if os.path.isdir(os.path.join(d, "events")):
            return d
    return None


def preflight(*, euid: int, tracefs: str | None, trace_cmd: str | None) -> str | None:
    """The first reason `crossmod record` cannot run here, as one line; None if it can."""
    if euid != 0:
        return "crossmod record needs root (tracefs and trace-cmd record): run it with sudo"
    if tracefs is None:
        return ("no tracefs: neither /sys/kernel/tracing nor /sys/kernel/debug/tracing has "
                "events/ (mount -t tracefs nodev /sys/kernel/tracing; kernel needs "
                "CONFIG_FTRACE)")
    if trace_cmd is None:
        return "trace-cmd not found (records the trace): apt-get install trace-cmd"
    return None


def phase_marker(line: str, current: str | None) -> tuple[list[str], str | None]:
    """The ``trace_marker`` writes a command's output line asks for, and the open phase
    after it. ``PHASE <name> start|end ...`` is copied as is; ``PHASE <name>`` alone ends the
    open phase and starts `name`; ``PHASE end`` / ``PHASE`` ends the open one."""
    words = line.split()
    if not words or words[0] != "PHASE":
        return [], current
    if len(words) >= 3 and words[2] in ("start", "end"):
        text = " ".join(words)
        return [text], (words[1] if words[2] == "start" else
                        (None if words[1] == current else current))
    out = [f"PHASE {current} end"] if current else []
    if len(words) == 1 or words[1] == "end":
        return out, None
    return [*out, f"PHASE {words[1]} start"], words[1]


def armed_filter(argv: Sequence[str]) -> str:
    """The tracefs filter file that shows trace-cmd is recording: the first event given a
    ``-f`` filter. trace-cmd adds ``common_pid != <its pid>`` to the filters it sets just
    before its recorders start (trace-cmd record.c: update_task_filter()); tracing_on is no
    sign (it is 1 from boot) and its "Hit Ctrl^C" line is buffered until it exits."""
    for k, a in enumerate(argv[:-1]):
        if a == "-f" and k >= 2 and argv[k - 2] == "-e":
            system, event = argv[k - 1].split(":", 1)
            return f"events/{system}/{event}/filter"
    raise ValueError("no filtered event in the trace-cmd line")


def wait_armed(tracefs: str, filter_file: str, proc: subprocess.Popen[bytes],
               timeout: float = 60.0) -> bool:
    """Until trace-cmd has added its pid to `filter_file` (then one more second)."""
    end = time.monotonic() + timeout
    path = Path(tracefs) / filter_file
    while time.monotonic() < end and proc.poll() is None:
        try:
            if "common_pid" in path.read_text():
                time.sleep(1.0)
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def run(argv: Sequence[str], command: Sequence[str], tracefs: str,
        echo: Callable[[str], None]) -> tuple[int, int]:
    """trace-cmd `argv` around `command` (or, with no command, until ^C). Each output line
    of the command is echoed; its ``PHASE`` lines also go to ``trace_marker``. Returns
    (trace-cmd's exit status, the command's)."""
    tc = subprocess.Popen(list(argv))
    if not wait_armed(tracefs, armed_filter(argv), tc):
        tc.send_signal(signal.SIGINT)
        return tc.wait(), 0
    rc = 0
    marker = Path(tracefs) / "trace_marker"
    try:
        if command:
            p = subprocess.Popen(list(command), stdout=subprocess.PIPE, text=True,
                                 errors="replace")
            current: str | None = None
            assert p.stdout is not None
            for line in p.stdout:
                echo(line.rstrip("\n"))
                writes, current = phase_marker(line, current)
                for w in writes:
                    marker.write_text(w + "\n")
            rc = p.wait()
            if current:
                marker.write_text(f"PHASE {current} end\n")
        else:
            signal.pause()
    except KeyboardInterrupt:
        rc = 130
    finally:
        tc.send_signal(signal.SIGINT)
        trc = tc.wait()
    sys.stdout.flush()
    return trc, rc
