"""`crossmod trace`: which IPIs hit the isolated CPUs in a real trace, and what deferral removes.

Owns: the options, turning `TraceFormatError` into one ``error:`` line and exit 2, and
printing problems the readers recovered from as ``warning:`` lines on stderr.
Exit codes: 0 report written; 2 unreadable input, bad option, or (after the report) a
truncated trace.dat or damaged compressed text, or any problem with ``--strict``; 130 after
the report of what was read when interrupted (^C ends a live ``trace_pipe`` on stdin).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import click

from crossmod.trace import render, report
from crossmod.trace.analyze import Analysis
from crossmod.trace.events import Event, TraceFormatError, format_cpulist, parse_cpulist
from crossmod.trace.perfetto import PerfettoWriter
from crossmod.trace.source import Events, Reader, merged, open_trace
from crossmod.trace.speedups import backend
from crossmod.trace.whatif import Classifier

_MAX_WARNINGS = 10


def _cpus(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        cpus = parse_cpulist(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a CPU list like 2-3 or 1,4-7") from None
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
@click.option("--isolated", "isolated", required=True, callback=_cpus, metavar="CPULIST",
              help="the isolated (nohz_full) CPUs, e.g. 2-3 or 1,4-7")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--perfetto", metavar="OUT", help="write Chrome trace-event JSON for Perfetto")
@click.option("--plot", metavar="OUT.png", help="draw IPIs per isolated CPU over time (PNG)")
@click.option("--classify", multiple=True, metavar="FILE",
              help="extra 'callback deferrable|not [reason]' lines over the built-in table")
@click.option("--strict", is_flag=True, help="any malformed line or record is fatal")
@click.option("--by-phase", is_flag=True, help="break counts down by PHASE markers")
@click.option("--top", default=8, show_default=True, type=click.IntRange(1, 1000),
              help="rows in the by-stack/callsite/task tables")
def trace(files: tuple[str, ...], isolated: tuple[int, ...], as_json: bool,
          perfetto: str | None, plot: str | None, classify: tuple[str, ...], strict: bool,
          by_phase: bool, top: int) -> None:
    """Which IPIs hit the isolated CPUs in FILE..., from where, and what deferral removes.

    FILE is a trace-cmd trace.dat (v6 or v7, compressed or not), `trace-cmd report`
    output, or tracefs trace/trace_pipe text (plain or .xz/.gz/.zst); several files are
    merged by time; - is standard input. Example:

    \b
      crossmod trace trace.dat --isolated 2-3 --by-phase --plot ipis.png
    """
    cls = _classifier(classify)
    interrupted = False
    readers: list[Reader] = []
    sources = []
    try:
        for path in files:
            reader, kind = open_trace(path, strict=strict)
            readers.append(reader)
            sources.append({"path": path, "format": kind})
        sink = _perfetto(perfetto)
        try:
            events = _Progress(merged(readers), sys.stderr.isatty())
            analysis = Analysis(isolated, cls, sink=sink)
            try:
                analysis.run(events)
            except KeyboardInterrupt:
                # `crossmod trace -` on a live trace_pipe ends with ^C: report what was read
                interrupted = True
            events.done()
        finally:
            if sink:
                sink.close()  # a valid JSON document even when the input broke off
    except TraceFormatError as err:
        _warn(readers)
        _fail(err)
    _warn(readers)
    rep = report.build(analysis, sources=sources, top=top, by_phase=by_phase)
    rep["scanner"] = backend()
    rep["problems"] = [str(p) for r in readers for p in r.problems]
    rep["problem_count"] = sum(r.problem_count for r in readers)
    rep["lost_events"] = sum(r.lost_events for r in readers)
    errors = [e for r in readers for e in r.errors]
    rep["errors"] = [str(e) for e in errors]
    if plot:
        _plot(analysis, cls, plot, isolated)
    if as_json:
        click.echo(json.dumps(rep, indent=1))
    else:
        click.echo(render.render(rep, cls, by_phase=by_phase), nl=False)
    for e in errors:
        click.echo(f"error: {e}", err=True)
    if interrupted:
        click.echo("interrupted: the report covers the events analysed before ^C", err=True)
        sys.exit(130)
    if errors:
        sys.exit(2)


class _Progress:
    """The events, in lists, with a progress line on stderr about once a second when
    stderr is a terminal (a 1 GB trace takes some seconds)."""

    def __init__(self, events: Events, show: bool) -> None:
        self.events, self.show = events, show
        self.shown = False

    def batches(self) -> Iterator[list[Event]]:
        source = self.events.batches()
        if not self.show:
            yield from source
            return
        n, t0 = 0, time.monotonic()
        due = t0 + 1.0
        for batch in source:
            yield batch
            n += len(batch)
            now = time.monotonic()
            if now >= due and batch:
                due = now + 1.0
                click.echo(f"\rread {n:,} events, up to {batch[-1].ts / 1e9:,.1f} s of trace "
                           f"time, in {now - t0:.0f} s", err=True, nl=False)
                self.shown = True

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


def _plot(analysis: Analysis, cls: Classifier, path: str, isolated: tuple[int, ...]) -> None:
    from crossmod.trace.plot import plot

    try:
        plot(analysis, cls, path, f"IPIs aimed at isolated CPUs {format_cpulist(isolated)}, "
             "by callback")
    except OSError as exc:
        _fail(f"{path}: cannot write: {exc.strerror or exc}")
