"""`crossmod trace`: which IPIs hit the isolated CPUs in a real trace, and what deferral removes.

Owns: the options (output paths and the isolated CPUs checked before the work, the CPUs
against the trace's own count), turning `TraceFormatError` into one ``error:`` line and exit
2, printing problems the readers recovered from as ``warning:`` lines on stderr, and taking
^C only between two batches of events (`_Interrupts`).
Exit codes: 0 report written; 2 unreadable input, bad option, or (after the report of what
was readable) a cut or damaged trace.dat or compressed text, a file with no trace event, an
unwritable --plot, or any problem with ``--strict``; 130 after the report of what was read
when interrupted (^C ends a live ``trace_pipe`` on stdin).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from itertools import chain
from types import FrameType
from typing import Any

import click

from crossmod.cli.output import image_format, unwritable
from crossmod.trace import render, report
from crossmod.trace.analyze import Analysis
from crossmod.trace.events import (
    NR_CPUS_MAX,
    Event,
    TraceFormatError,
    format_cpulist,
    parse_cpulist,
)
from crossmod.trace.perfetto import PerfettoWriter
from crossmod.trace.source import Events, Reader, merged, open_trace
from crossmod.trace.speedups import backend
from crossmod.trace.whatif import Classifier

_MAX_WARNINGS = 10


def cpulist_callback(_ctx: click.Context, _param: click.Parameter,
                     value: str | None) -> tuple[int, ...] | None:
    """A CPU list option (`2-3,5`) read into CPU numbers; one line naming the fault if not
    (`crossmod trace`, `crossmod lab` and `crossmod record` share it)."""
    if value is None:
        return None
    try:
        cpus = parse_cpulist(value, NR_CPUS_MAX)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not cpus:
        raise click.BadParameter("empty CPU list")
    return cpus


def _fail(err: TraceFormatError | OSError | str) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(2)


def _warn(readers: list[Reader]) -> None:
    for r in readers:
        for p in r.problems[:_MAX_WARNINGS]:
            click.echo(f"warning: {p}", err=True)
        if r.problem_count > _MAX_WARNINGS:
            click.echo(f"warning: {r.path}: {r.problem_count - _MAX_WARNINGS} more malformed "
                       "records/lines skipped", err=True)


def _classifier(paths: tuple[str, ...]) -> Classifier:
    cls = Classifier()
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                cls.load(f.read(), path)
        except OSError as exc:
            _fail(f"{path}: cannot read classification: {exc.strerror or exc}")
        except TraceFormatError as err:
            _fail(err)
    return cls


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--isolated", "isolated", required=True, callback=cpulist_callback, metavar="CPULIST",
              help="the isolated (nohz_full) CPUs, e.g. 2-3 or 1,4-7 (CPUs the trace has)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--perfetto", metavar="OUT", help="write Chrome trace-event JSON for Perfetto")
@click.option("--plot", metavar="OUT.png",
              help="draw IPIs per isolated CPU over time (.png; .svg and .pdf too)")
@click.option("--classify", multiple=True, metavar="FILE",
              help="extra 'callback deferrable|not [reason]' lines over the built-in table")
@click.option("--strict", is_flag=True, help="any malformed line or record is fatal")
@click.option("--by-phase", is_flag=True,
              help="break counts down by 'PHASE <name> start|end' print markers")
@click.option("--top", default=8, show_default=True, type=click.IntRange(1, 1000),
              help="rows in the by-stack/callsite/task tables")
@click.option("--profile", metavar="OUT.toml",
              help="write a `crossmod simulate` scenario derived from the trace")
def trace(files: tuple[str, ...], isolated: tuple[int, ...], as_json: bool,
          perfetto: str | None, plot: str | None, classify: tuple[str, ...], strict: bool,
          by_phase: bool, top: int, profile: str | None) -> None:
    """Which IPIs hit the isolated CPUs in FILE..., from where, and what deferral removes.

    FILE is a trace-cmd trace.dat (v6 or v7, compressed or not), `trace-cmd report`
    output, or tracefs trace/trace_pipe text (plain or .xz/.gz/.zst); several files are
    merged by time; - is standard input (^C ends a live trace_pipe and prints the report
    of what was read). Example:

    \b
      crossmod trace trace.dat --isolated 2-3 --by-phase --plot ipis.png

    \b
    Exit status:
      0    report written (warnings about skipped lines may be on stderr)
      2    bad option or unreadable input; or, after the report of what was readable,
           damaged or cut input (each loss on an error: line), a file with no trace
           event, an unwritable --plot, or any malformed line with --strict
      130  interrupted (^C): the report covers the events read before it
    """
    cls = _classifier(classify)
    fmt = _check_outputs(plot, perfetto)
    if profile and (why := unwritable(profile, "--profile")):
        _fail(why)
    readers: list[Reader] = []
    sources: list[dict[str, object]] = []
    try:
        for path in files:
            reader, kind = open_trace(path, strict=strict)
            readers.append(reader)
            sources.append({"path": path, "format": kind})
        _check_isolated(isolated, readers, None)
        analysis, interrupted = _analyse(readers, isolated, cls, perfetto)
    except TraceFormatError as err:
        _warn(readers)
        _fail(err)
    _warn(readers)
    errors: list[TraceFormatError | str] = [e for r in readers for e in r.errors]
    empty = [TraceFormatError(r.path, f"no trace events in it: {r.describe()}")
             for r in readers if not r.events_read]
    if len(empty) == len(readers) and not interrupted:
        for e in [*errors, *empty]:
            click.echo(f"error: {e}", err=True)
        sys.exit(2)
    errors += empty
    _check_isolated(isolated, readers, analysis)
    rep = report.build(analysis, sources=sources, top=top, by_phase=by_phase)
    rep["scanner"] = backend()
    rep["problems"] = [str(p) for r in readers for p in r.problems]
    rep["problem_count"] = sum(r.problem_count for r in readers)
    rep["lost_events"] = sum(r.lost_events for r in readers)
    if plot and fmt:
        errors += _plot(analysis, cls, plot, fmt, isolated)
    if profile:
        from crossmod.simulate.profile import derive
        with open(profile, "w") as f:
            names = ", ".join(p.rsplit("/", 1)[-1] for p in files)
            f.write(derive(analysis, f"profile of {names}"))
    rep["errors"] = [str(e) for e in errors]
    if as_json:
        click.echo(json.dumps(rep, indent=1))
    else:
        click.echo(render.render(rep, cls, by_phase=by_phase), nl=False)
    for w in analysis.phase_warnings:
        click.echo(f"warning: phase markers: {w}", err=True)
    for e in errors:
        click.echo(f"error: {e}", err=True)
    if interrupted:
        click.echo("interrupted: the report covers the events analysed before ^C", err=True)
        sys.exit(130)
    if errors:
        sys.exit(2)


def _check_outputs(plot: str | None, perfetto: str | None) -> str | None:
    """Refuse an output that cannot be written before any work is done; the --plot
    format (from its suffix)."""
    fmt = None
    if plot:
        fmt, why = image_format(plot)
        why = why or unwritable(plot, "--plot")
        if why:
            _fail(why)
    if perfetto:
        why = unwritable(perfetto, "--perfetto")
        if why:
            _fail(why)
    return fmt


def _check_isolated(isolated: tuple[int, ...], readers: list[Reader],
                    analysis: Analysis | None) -> None:
    """The isolated CPUs must be CPUs of the trace: the count its header gives (checked
    before the work) or, when no header gives one, the CPUs its events name."""
    known = [(r.ncpus, r.path) for r in readers if r.ncpus]
    if known:
        n, path = max(known)
        where = f"{path} has CPUs 0-{n - 1}"
    elif analysis is not None:
        n = analysis.max_cpu + 1
        where = (f"no CPU count in the trace's header{'s' if len(readers) > 1 else ''}, and "
                 f"its events name CPUs up to {n - 1} only")
    else:
        return
    out = [c for c in isolated if c >= n]
    if out:
        _fail(f"--isolated {format_cpulist(isolated)}: CPU{'s' if len(out) > 1 else ''} "
              f"{format_cpulist(out)} not in the trace ({where})")


def _analyse(readers: list[Reader], isolated: tuple[int, ...], cls: Classifier,
             perfetto: str | None) -> tuple[Analysis, bool]:
    """Run the analysis over the merged readers; (analysis, whether ^C ended it). ^C is
    taken only between two batches of events (`_Interrupts`), so the counters, the span
    and the --perfetto file always cover the same whole events."""
    sink = _perfetto(perfetto)
    guard = _Interrupts()
    analysis = Analysis(isolated, cls, sink=sink)
    interrupted = False
    try:
        with guard:
            events = _Progress(merged(readers), sys.stderr.isatty(), guard)
            try:
                analysis.run(events)
            except KeyboardInterrupt:
                # `crossmod trace -` on a live trace_pipe ends with ^C: report what was read
                interrupted = True
            guard.hold()  # a second ^C must not cut the report or the JSON short
            events.done()
    finally:
        if sink:
            sink.close()  # a valid JSON document even when the input broke off
    return analysis, interrupted


class _Interrupts:
    """SIGINT while a batch of events is being analysed is held until the batch is done
    (then `_Progress` raises it); while the readers read, it is raised at once (a live
    pipe may block in a read)."""

    def __init__(self) -> None:
        self.critical = False
        self.pending = False
        # what signal.signal() gave back: the handler to restore
        self._old: Callable[[int, FrameType | None], Any] | int | None = None

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handler(self, _signum: int, _frame: object) -> None:
        if self.critical:
            self.pending = True
            return
        raise KeyboardInterrupt

    def hold(self) -> None:
        self.critical = True


class _Progress:
    """The events, in lists, with a progress line on stderr about once a second when
    stderr is a terminal (a 1 GB trace takes some seconds)."""

    def __init__(self, events: Events, show: bool, guard: _Interrupts) -> None:
        self.events, self.show, self.guard = events, show, guard
        self.shown = False

    def batches(self) -> Iterator[list[Event]]:
        source = self.events.batches()
        guard = self.guard
        n, t0 = 0, time.monotonic()
        due = t0 + 1.0
        for batch in source:
            guard.critical = True
            yield batch  # analysed while critical: ^C waits for the batch to be done
            guard.critical = False
            if guard.pending:
                raise KeyboardInterrupt
            if not self.show:
                continue
            n += len(batch)
            now = time.monotonic()
            if now >= due and batch:
                due = now + 1.0
                click.echo(f"\rread {n:,} events, up to {batch[-1].ts / 1e9:,.1f} s of trace "
                           f"time, in {now - t0:.0f} s", err=True, nl=False)
                self.shown = True

    def __iter__(self) -> Iterator[Event]:
        return chain.from_iterable(self.batches())

    def done(self) -> None:
        if self.shown:
            click.echo("", err=True)


def _perfetto(path: str | None) -> PerfettoWriter | None:
    if not path:
        return None
    try:
        return PerfettoWriter(open(path, "w", encoding="utf-8"))
    except OSError as exc:
        _fail(f"{path}: cannot write: {exc.strerror or exc}")
        return None


def _plot(analysis: Analysis, cls: Classifier, path: str, fmt: str,
          isolated: tuple[int, ...]) -> list[str]:
    """Draw the figure; what went wrong, as error lines (the report is printed anyway)."""
    from crossmod.trace.plot import plot

    try:
        plot(analysis, cls, path, f"IPIs aimed at isolated CPUs {format_cpulist(isolated)}, "
             "by callback", fmt)
    except (OSError, ValueError) as exc:
        return [f"--plot {path}: cannot write: {getattr(exc, 'strerror', None) or exc}"]
    return []
