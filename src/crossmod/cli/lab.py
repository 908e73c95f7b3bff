"""`crossmod record` and `crossmod lab`: the cover letter's measurement, live or in a guest.

Owns: the options, one-line errors (exit 2) for what is missing (root, tracefs, trace-cmd,
a host tool: with the apt-get command; events: what is lost without them), the progress
line (the guest's phase), and printing `crossmod trace`'s report (by phase) at the end.
Exit codes: 0 report written; 2 usage, a missing tool or capability, a failed run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import click

from crossmod.cli.trace import cpulist_callback
from crossmod.lab import guest, record, results, tools
from crossmod.lab.tools import LabError
from crossmod.trace.events import TraceFormatError, format_cpulist

_NO_ISOLATED = ("no isolated CPU: /sys/devices/system/cpu/isolated and nohz_full are empty; "
                "give --isolated CPULIST")


def _fail(msg: str) -> None:
    click.echo(f"crossmod: error: {msg}", err=True)
    sys.exit(2)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--isolated", callback=cpulist_callback, metavar="CPULIST",
              help="CPUs to watch (default: /sys/devices/system/cpu/isolated and nohz_full)")
@click.option("-o", "--output", default="trace.dat", show_default=True, metavar="FILE",
              help="the trace-cmd recording")
@click.option("--dry-run", is_flag=True,
              help="print the trace-cmd command line for this kernel and exit")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def record_cmd(isolated: tuple[int, ...] | None, output: str, dry_run: bool, as_json: bool,
               command: tuple[str, ...]) -> None:
    """Record the IPIs aimed at the isolated CPUs around COMMAND (or until ^C), as root.

    Checks the kernel's events (ipi:ipi_send_cpu/cpumask since 6.4, csd:* and CPUS{}
    filters since 6.6) and says what is lost without them; runs trace-cmd record with the
    series' filters, the receiving side and context tracking; writes a trace_marker
    'PHASE <name> start|end' for each such line COMMAND prints ('PHASE <name>' alone
    ends the open phase and starts the next); prints crossmod trace's report by phase.

    \b
      crossmod record --isolated 2-3 -o trace.dat -- ./load.sh
    """
    if command and command[0] == "--":
        command = command[1:]
    tracefs = record.find_tracefs()
    try:
        release = record.parse_release(platform.release())
    except ValueError as exc:
        _fail(f"cannot tell this kernel's version: {exc}")
        return
    if dry_run:
        caps = (record.Capabilities.detect(Path(tracefs) / "events", release) if tracefs
                else record.Capabilities.for_release(release))
        cpus = isolated or record.declared_isolated()
        if not cpus:
            _fail(_NO_ISOLATED)
        click.echo(record.shell_line(["trace-cmd",
                                      *record.trace_cmd_argv(caps, cpus, output)]))
        for line in record.losses(caps):
            click.echo(f"warning: {line}", err=True)
        return
    why = record.preflight(euid=os.geteuid(), tracefs=tracefs,
                           trace_cmd=tools.TRACE_CMD.found())
    if why:
        _fail(why)
    assert tracefs is not None
    cpus = isolated or record.declared_isolated()
    if not cpus:
        _fail(_NO_ISOLATED)
    caps = record.Capabilities.detect(Path(tracefs) / "events", release)
    lost = record.losses(caps)
    if not caps.ipi_send and not caps.irq_vectors:
        _fail(f"kernel {platform.release()} has neither ipi:* nor irq_vectors:* events: "
              "nothing to record")
    for line in lost:
        click.echo(f"warning: {line}", err=True)
    argv = ["trace-cmd", *record.trace_cmd_argv(caps, cpus, output)]
    trc, rc = record.run(argv, command, tracefs, click.echo)
    if trc != 0 or not Path(output).exists():
        _fail(f"trace-cmd record exited with status {trc}: no {output}")
    _report(Path(output), cpus, as_json)
    if rc:
        click.echo(f"crossmod: command exited with status {rc}", err=True)


def _report(trace: Path, cpus: tuple[int, ...], as_json: bool) -> None:
    from crossmod.lab.results import analyse

    try:
        rep, text = analyse(trace, cpus)
    except TraceFormatError as err:
        _fail(str(err))
        return
    click.echo(json.dumps(rep, indent=1) if as_json else text, nl=not text.endswith("\n"))


class _Progress:
    """One line on stderr, rewritten in place on a terminal: elapsed time and the guest's
    last step (its phase while the load runs)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, what: str) -> None:
        line = f"[{time.monotonic() - self.t0:5.0f} s] {what}"
        if self.tty:
            click.echo(f"\r\033[K{line}", err=True, nl=False)
        else:
            click.echo(line, err=True)

    def done(self) -> None:
        if self.tty:
            click.echo("", err=True)


def _phases(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return guest.parse_phases(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--kernel", default=None, metavar="PACKAGE|VMLINUZ",
              help="a Debian kernel package (fetched with apt-get download) or a bzImage "
                   "[default: linux-image-6.12.118+deb12-amd64-unsigned]")
@click.option("--isolated", default="2-3", show_default=True, callback=cpulist_callback,
              metavar="CPULIST", help="the guest's isolated (nohz_full) CPUs")
@click.option("--cpus", default=4, show_default=True, type=click.IntRange(2, 64),
              help="guest vCPUs")
@click.option("--phases", default="bpf_jit,bpf_nojit,tracepoint,kprobe,module,hackbench,mixed",
              show_default=True, callback=_phases, help="the load phases, in order")
@click.option("--seconds", default=30, show_default=True, type=click.IntRange(1, 3600),
              help="length of each phase (guest time)")
@click.option("--syscall-period-us", default=10000, show_default=True,
              type=click.IntRange(0, 10**7),
              help="the isolated spinners make a getppid() every N us (0: never)")
@click.option("--seed", default=1, show_default=True, type=int,
              help="the workload's choices (same seed and phases: same workload)")
@click.option("-o", "--output", "out", default="lab-run", show_default=True, metavar="DIR",
              help="where the trace, report, /proc/interrupts snapshots and dmesg go")
@click.option("--timeout", default=1800, show_default=True, type=click.IntRange(60, 86400),
              help="seconds before the guest is given up")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def lab(kernel: str | None, isolated: tuple[int, ...], cpus: int, phases: tuple[str, ...],
        seconds: int, syscall_period_us: int, seed: int, out: str, timeout: int,
        as_json: bool) -> None:
    """Boot a Debian kernel under QEMU with isolated CPUs, run the load in phases, record.

    Builds an initramfs from crossmod's guest sources (spinners and load programs
    compiled with gcc -static, busybox-static, trace-cmd), boots it under QEMU TCG with
    nohz_full/isolcpus/rcu_nocbs for --isolated, runs the phases on the housekeeping CPUs
    with the isolated ones spinning in user space, and brings back trace.dat, the
    report, /proc/interrupts snapshots, dmesg and the guest's isolated CPUs into DIR.
    A phase the kernel cannot run is skipped and said. Phases (crossmod.lab.guest.PHASES):

    \b
      bpf_jit     classic BPF filters attached to UDP sockets and closed, JIT on
      bpf_nojit   the same, JIT off (interpreter; each filter made read-only)
      tracepoint  6 trace events enabled/disabled in a tracefs instance
      kprobe      a kprobe and a kretprobe created, enabled, disabled, deleted
      module      insmod/rmmod dummy, minix, crc7
      hackbench   hackbench in a loop
      mixed       bpf_jit, tracepoint, module and hackbench at once
    """
    from crossmod.lab.run import DEFAULT_KERNEL, LabOptions, run_lab

    assert isolated is not None
    o = LabOptions(kernel=kernel or DEFAULT_KERNEL, isolated=isolated, cpus=cpus,
                   phases=phases, seconds=seconds, spin_us=syscall_period_us, seed=seed,
                   out=Path(out), timeout=float(timeout))
    progress = _Progress()
    try:
        run = run_lab(o, progress)
    except LabError as err:
        progress.done()
        _fail(str(err))
        return
    except TraceFormatError as err:
        progress.done()
        _fail(str(err))
        return
    progress.done()
    if as_json:
        click.echo(json.dumps(run.report, indent=1))
        return
    r = run.result
    click.echo(f"kernel {r.release}; guest isolated CPUs {format_cpulist(r.isolated) or '-'}"
               f" (nohz_full {format_cpulist(r.nohz_full) or '-'}); seed {o.seed}; "
               f"{run.seconds['guest']:.0f} s in the guest, {run.seconds['total']:.0f} s "
               "in all")
    for line in run.losses():
        click.echo(f"lost: {line}")
    if not run.capabilities.ipi_send:
        got = {c: results.received(run.report, c) for c in r.isolated}
        click.echo("receiving side only (the counts below that are 0 need the sender "
                   "side): " + "; ".join(
                       f"CPU {c}: " + ", ".join(f"{k} {v}" for k, v in g.items())
                       for c, g in got.items()))
    for phase, why in r.skipped.items():
        click.echo(f"skipped: phase {phase}: {why}")
    click.echo(run.report_text, nl=not run.report_text.endswith("\n"))
    if r.work:
        click.echo("work done: " + "; ".join(
            f"{p} " + ", ".join(f"{n} {u.replace('_', ' ')}" for u, n in w.items())
            for p, w in r.work.items()))
    deltas = run.repeat_deltas()
    if deltas:
        click.echo("repeat of the previous run in this directory (same kernel, seed, phases), "
                   "IPIs received:")
        for d in deltas:
            per = d.per_unit()
            click.echo(f"  {d.phase:<12} {d.before:>6} -> {d.now:<6} ({_change(d.before, d.now)})"
                       + (f"; per {per[0].replace('_', ' ').rstrip('s')}: {per[1]:.1f} -> "
                          f"{per[2]:.1f} ({_change_f(per[1], per[2])})" if per else ""))
    bad = [a for a in run.agreement if not a.ok]
    click.echo(f"/proc/interrupts deltas vs the trace's receiving side: "
               f"{len(run.agreement) - len(bad)}/{len(run.agreement)} within ±"
               f"{results.FUZZ}" + "".join(f"; {a.line} CPU{a.cpu}: trace {a.trace}, "
                                      f"/proc/interrupts {a.interrupts}" for a in bad))
    click.echo(f"in {o.out}/: trace.dat report.txt lab.json interrupts-traced-*.txt "
               f"dmesg.txt; again: crossmod trace {o.out}/trace.dat --isolated "
               f"{format_cpulist(o.isolated)} --by-phase")


def _change_f(a: float, b: float) -> str:
    return f"{(b - a) / a * 100:+.0f}%"


def _change(a: int, b: int) -> str:
    return f"{(b - a) / a * 100:+.0f}%" if a else ("same" if a == b else "new")

