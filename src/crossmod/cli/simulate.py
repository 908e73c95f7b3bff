"""`crossmod simulate`: a whole machine for hours under each deferral policy.

Owns: the options, turning `ScenarioError` / `TraceFormatError` into one error line and
exit 2. Exit codes: 0 report written; 1 a hazard window was hit (an NMI in v8's exit
window); 2 bad input.
"""

from __future__ import annotations

import json
import sys

import click

from crossmod.cli.output import unwritable
from crossmod.simulate import output
from crossmod.simulate.engine import POLICY_NAMES, Result, simulate
from crossmod.simulate.scenario import ScenarioError, builtin_names, load
from crossmod.trace.events import NR_CPUS_MAX, TraceFormatError, parse_cpulist


def _fail(msg: str) -> None:
    click.echo(f"crossmod: error: {msg}", err=True)
    sys.exit(2)


@click.command("simulate")
@click.argument("scenario", required=False)
@click.option("--policy", default="none,ct,cr3", show_default=True,
              help="comma-separated deferral policies: none, ct (v6), cr3 (v8)")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="simulated hours (default: the scenario's)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--syscall-hz", type=click.FloatRange(min=0), default=None,
              help="override the isolated CPUs' syscall rate")
@click.option("--replay", "replay_path", default=None, metavar="TRACE",
              help="replay a recording's housekeeping IPIs against simulated isolated CPUs")
@click.option("--isolated", default=None, help="with --replay: the isolated CPUs")
@click.option("--json", "as_json", is_flag=True, help="everything as JSON")
@click.option("--plot", "plot_path", default=None, metavar="OUT.png",
              help="IPIs received by callback over time, one panel per policy")
@click.option("--perfetto", "perfetto_path", default=None, metavar="OUT.json",
              help="the first simulated second(s) of the last policy's run")
def simulate_cmd(scenario: str | None, policy: str, hours: float | None, seed: int,
                 syscall_hz: float | None, replay_path: str | None, isolated: str | None,
                 as_json: bool, plot_path: str | None, perfetto_path: str | None) -> int:
    """Simulate SCENARIO (a built-in name or a TOML file) under each policy: IPIs per
    isolated CPU by cause (send events, CSDs queued, received), deferred work at entry,
    interference and latency, and the window each residual IPI fell in.

    \b
      crossmod simulate cover-letter-v8 --seed 3 --json
      crossmod simulate --replay trace.dat --isolated 2-3 --policy none,cr3

    \b
    Exit status:
      0    report written
      1    a hazard window was hit (an NMI in v8's exit window: kernel code with
           kernel_cr3_loaded = 0)
      2    bad option, scenario or trace
    """
    policies = [p.strip() for p in policy.split(",") if p.strip()]
    for p in policies:
        if p not in POLICY_NAMES:
            _fail(f"--policy: unknown policy {p!r} (known: {', '.join(POLICY_NAMES)})")
    for path, opt in ((plot_path, "--plot"), (perfetto_path, "--perfetto")):
        if path is not None:
            why = unwritable(path, opt)
            if why:
                _fail(why)
    results: list[Result] = []
    if replay_path is not None:
        if isolated is None:
            _fail("--replay needs --isolated")
        try:
            iso = parse_cpulist(isolated or "", NR_CPUS_MAX)
        except ValueError as e:
            _fail(f"--isolated: {e}")
            return 2
        from crossmod.simulate.replay import replay
        try:
            results = [replay(replay_path, iso, p) for p in policies]
        except (TraceFormatError, OSError) as e:
            _fail(str(e))
    else:
        if scenario is None:
            _fail(f"give a SCENARIO (built-in: {', '.join(builtin_names())}) or --replay")
            return 2
        try:
            sc = load(scenario)
        except ScenarioError as e:
            _fail(str(e))
            return 2
        results = [simulate(sc, p, seed, hours, syscall_hz) for p in policies]
    if as_json:
        click.echo(json.dumps({"policies": [output.to_json(r) for r in results]}, indent=1))
    else:
        click.echo(output.render(results))
    if plot_path:
        output.plot(results, plot_path)
    if perfetto_path and results:
        output.perfetto(results[-1], perfetto_path, 1.0 if replay_path is None else 10.0)
    return 1 if any(r.hazards for r in results) else 0
