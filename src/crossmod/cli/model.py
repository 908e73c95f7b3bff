"""`crossmod check`, `crossmod list`, `crossmod replay`: the model checker's commands.

Owns: mapping flags onto catalogue parameters (`--cpus`... and `--set NAME=VALUE`, read by
the entry's schema) and `Bounds`, progress on stderr, rendering of verdicts (table, trail,
JSON, Perfetto), the command that reproduces each verdict, and the exit status (0 safe,
1 violation/deadlock/not proved, 2 usage). Imports: catalogue, check, report.
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import click
from click.core import ParameterSource

from crossmod.catalogue import (
    ENTRIES,
    ROWS,
    CatalogueError,
    Entry,
    Row,
    assignments,
    build,
    command_args,
    resolve_params,
)
from crossmod.catalogue.params import show
from crossmod.check.explore import Progress, ReplayError, explore, replay_schedule
from crossmod.check.liveness import replay_lasso
from crossmod.check.schedule import ScheduleError, decode_for, record_token
from crossmod.check.verdict import Bounds, Outcome, Verdict
from crossmod.cli.output import unwritable
from crossmod.machine.state import MEMORY_MODELS
from crossmod.machine.system import System
from crossmod.machine.text import FETCH_MODELS
from crossmod.report import narrate, perfetto
from crossmod.report.tables import table


def _fail(msg: str) -> int:
    click.echo(f"crossmod: error: {msg}", err=True)
    return 2


class PositiveSeconds(click.ParamType):
    """A wall-clock limit: a positive number of seconds (0, negatives and nan are not)."""

    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            f = float(value)
        except ValueError:  # click hands a str (or the float default)
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not f > 0:  # also false for nan
            self.fail(f"{value!r} is not a positive number of seconds (leave the option "
                      "out for no limit)", param, ctx)
        return f


def _write_perfetto(path: str | None, steps: Any, ncpus: int, title: str) -> int:
    """Write the trail (0), or say on stderr why it could not be written (2)."""
    if not path:
        return 0
    try:
        perfetto.write(path, steps, ncpus, title)
    except OSError as e:
        click.echo(f"crossmod: error: --perfetto {path}: cannot write: {e.strerror or e}",
                   err=True)
        return 2
    return 0


def _progress(enabled: bool) -> Progress | None:
    if not enabled:
        return None
    t0 = time.perf_counter()

    def show(states: int, transitions: int, depth: int) -> None:
        dt = time.perf_counter() - t0
        click.echo(f"\r  depth {depth:5d}  states {states:>10,}  transitions "
                   f"{transitions:>11,}  {dt:6.1f}s", err=True, nl=False)
    return show


def knobs_of(protocol: str, options: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """The catalogue parameters the user set: the options of their own (None: not given)
    and `--set NAME=VALUE` (read by the entry's schema). `--arch` is checked against the
    entry instead."""
    knobs = {k: v for k, v in options.items() if v is not None}
    for k, v in assignments(protocol, sets).items():
        if k in knobs:
            raise CatalogueError(f"{k} given twice (--{k} and --set {k}=...)")
        knobs[k] = v
    return knobs


def _verdict_for(system: System, bounds: Bounds, progress: Progress | None = None,
                 jobs: int = 1) -> Verdict:
    if jobs > 1:
        from crossmod.check.parallel import explore_parallel

        v = explore_parallel(system, bounds, jobs, progress)
    else:
        v = explore(system, bounds, progress)
    if v.counterexample is not None:
        v.token = record_token(system, list(v.counterexample.choices), v.cycle_start)
    return v


def _reproduction(protocol: str, variant: str, knobs: dict[str, Any], bounds: Bounds
                  ) -> dict[str, Any]:
    """What a `--json` verdict adds: every parameter it was checked with (defaults filled
    in) and the command that reproduces it."""
    params = resolve_params(protocol, variant, **knobs)
    return {"params": params, "command": _command(protocol, variant, params, bounds)}


def _command(protocol: str, variant: str, params: dict[str, Any], bounds: Bounds) -> str:
    """The `crossmod check` command that reproduces a verdict exactly: the protocol, the
    parameters that are not the variant's defaults, the bounds that are not Bounds'."""
    args = ["crossmod", "check", *command_args(protocol, variant, params)]
    default = Bounds()
    if bounds.max_states != default.max_states:
        args += ["--max-states", str(bounds.max_states)]
    if bounds.max_depth != default.max_depth:
        args += ["--max-depth", str(bounds.max_depth)]
    if bounds.max_seconds is not None:
        args += ["--max-seconds", f"{bounds.max_seconds:g}"]
    args += ["--no-symmetry"] * (not bounds.symmetry) + ["--no-por"] * (not bounds.por)
    args += ["--liveness"] * bounds.liveness
    if bounds.store != default.store:
        args += ["--store", bounds.store]
    if bounds.store == "bitstate" and bounds.bitstate_bits != default.bitstate_bits:
        args += ["--bitstate-bits", str(bounds.bitstate_bits)]
    if bounds.store != "exact" and bounds.hash_seed != default.hash_seed:
        args += ["--hash-seed", str(bounds.hash_seed)]
    for prop in sorted(bounds.ignore):
        args += ["--ignore", prop]
    return shlex.join(args)


# Options that set one protocol's parameters: `check --all` runs each row with its own.
PER_ROW = ("variant", "cpus", "nmis", "fetch", "memory", "arch", "sites", "users", "sets")


@click.command()
@click.argument("protocol", required=False)
@click.option("--all", "run_all", is_flag=True, help="Check every catalogue row.")
@click.option("--variant", default="default", show_default=True, help="Protocol variant.")
@click.option("--cpus", type=int, help="Number of CPUs (CPU 0 patches).")
@click.option("--nmis", type=int, help="NMI budget per run.")
@click.option("--fetch", type=click.Choice(FETCH_MODELS), help="Instruction-fetch model.")
@click.option("--memory", type=click.Choice(MEMORY_MODELS), help="Data-memory model.")
@click.option("--arch", type=click.Choice(["x86", "arm64"]), help="Architecture.")
@click.option("--sites", type=int, help="Patch sites per key, where it applies.")
@click.option("--users", type=int, help="CPUs (the last ones) that run user code forever "
                                        "instead of passing through the site, where it "
                                        "applies (see --liveness).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Any other parameter of PROTOCOL (`crossmod list PROTOCOL` shows them), "
                   "e.g. --set execs=1 --set nmi_on=all. Repeat for several.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--perfetto", "perfetto_out", type=click.Path(dir_okay=False),
              help="Write the counterexample as Chrome trace-event JSON.")
@click.option("--max-states", type=click.IntRange(1), default=Bounds.max_states,
              show_default=True)
@click.option("--max-depth", type=click.IntRange(1), default=Bounds.max_depth,
              show_default=True, help="Step bound: explore paths of at most this many moves.")
@click.option("--max-seconds", type=PositiveSeconds(),
              help="Wall-clock limit per check (default: none).")
@click.option("--no-symmetry", is_flag=True, help="Do not identify symmetric CPUs.")
@click.option("--no-por", is_flag=True, help="Do not use the partial-order reduction.")
@click.option("--ignore", "ignored", multiple=True, metavar="PROPERTY",
              help="Do not stop at this property (e.g. torn-instruction, deadlock): look "
                   "past a known bug for the next. Repeat for several.")
@click.option("--liveness", is_flag=True,
              help="When safe, also check that under fairness every started patch, flush "
                   "and key flip completes (property 5; the whole state graph, no "
                   "reduction).")
@click.option("--commands", is_flag=True,
              help="With --all: under each row, the command that reproduces it.")
@click.option("--store", type=click.Choice(["exact", "hash-compact", "bitstate"]),
              default="exact", show_default=True,
              help="Visited-state store: the states, or for a search too large for memory "
                   "64-bit hashes of them or a bit array (SPIN's hash-compact and "
                   "bitstate): these may omit states, so the verdict is never \"safe\".")
@click.option("--bitstate-bits", type=click.IntRange(8), default=Bounds.bitstate_bits,
              show_default=True, help="Size of the bitstate store's bit array.")
@click.option("--hash-seed", type=click.IntRange(0, (1 << 64) - 1), default=Bounds.hash_seed,
              show_default=True,
              help="Seed of the hash-compact and bitstate stores' state digest: the same "
                   "seed omits the same states in any process, another seed others.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes for the breadth-first search (check/parallel.py): "
                   "same verdict and counterexample; CPU symmetry then ranks states by "
                   "content, which may store a few other states where its "
                   "representative is not unique.")
@click.pass_context
def check(ctx: click.Context, protocol: str | None, run_all: bool, variant: str,
          cpus: int | None, nmis: int | None, fetch: str | None, memory: str | None,
          arch: str | None, sites: int | None, users: int | None, sets: tuple[str, ...],
          as_json: bool, perfetto_out: str | None, max_states: int, max_depth: int,
          max_seconds: float | None, no_symmetry: bool, no_por: bool,
          ignored: tuple[str, ...], liveness: bool, commands: bool, store: str,
          bitstate_bits: int, hash_seed: int, jobs: int) -> int:
    """Explore every interleaving of PROTOCOL (see `crossmod list`) or of every catalogue
    row (--all). Exit 0 when safe, 1 on a violation or deadlock (or, with --all, when a
    verdict differs from the one expected), 2 on bad input."""
    bounds = Bounds(max_states=max_states, max_depth=max_depth, max_seconds=max_seconds,
                    symmetry=not no_symmetry, por=not no_por, ignore=frozenset(ignored),
                    liveness=liveness, store=store, bitstate_bits=bitstate_bits,
                    hash_seed=hash_seed)
    if liveness and store != "exact":
        return _fail("--liveness needs the whole state graph: use it with --store exact")
    if jobs > 1 and store != "exact":
        return _fail("--jobs keeps every state (check/parallel.py): use it with --store exact")
    if run_all:
        if protocol:
            return _fail("give either PROTOCOL or --all, not both")
        if liveness:
            return _fail("--liveness applies to one PROTOCOL: --all checks it on the rows "
                         "that ask for it")
        given = [n for n in PER_ROW if ctx.get_parameter_source(n) != ParameterSource.DEFAULT]
        if given:
            flag = "--set" if given[0] == "sets" else f"--{given[0]}"
            return _fail(f"{flag} sets one protocol's parameters: --all runs every row with "
                         "its own (each row's command is under it with --commands)")
        if ignored:
            return _fail("--ignore applies to one PROTOCOL: --all checks the catalogue's "
                         "expected verdicts")
        if perfetto_out:
            return _fail("--perfetto writes one counterexample: give a PROTOCOL, not --all")
        if jobs > 1:
            return _fail("--jobs applies to one PROTOCOL: --all runs its rows one by one")
        return _check_all(bounds, as_json, commands)
    if not protocol:
        return _fail("missing PROTOCOL (or --all); valid: " + ", ".join(ENTRIES))
    if commands:
        return _fail("--commands applies to --all (one PROTOCOL's command is the one given)")
    try:
        knobs = knobs_of(protocol, {"cpus": cpus, "nmis": nmis, "fetch": fetch,
                                    "memory": memory, "sites": sites, "users": users}, sets)
        if arch and ENTRIES[protocol].arch != arch:
            raise CatalogueError(f"{protocol} is an {ENTRIES[protocol].arch} protocol; "
                                 f"--arch {arch} does not apply")
        system = build(protocol, variant, **knobs)
    except CatalogueError as e:
        return _fail(str(e))
    if perfetto_out and (why := unwritable(perfetto_out, "--perfetto")):
        return _fail(why)
    v = _verdict_for(system, bounds, _progress(sys.stderr.isatty() and not as_json), jobs)
    if sys.stderr.isatty() and not as_json:
        click.echo("", err=True)
    if as_json:
        again = _reproduction(protocol, variant, knobs, bounds)
        if jobs > 1:
            again["command"] += f" --jobs {jobs}"
        click.echo(json.dumps({**v.to_json(), **again}, indent=2))
    else:
        click.echo(_describe(v, system))
    status = 0 if v.verdict == "safe" else 1
    if perfetto_out and not v.counterexample:
        click.echo(f"crossmod: no counterexample ({v.verdict}): --perfetto {perfetto_out} "
                   "not written", err=True)
    elif perfetto_out:
        status = max(status, _write_perfetto(perfetto_out, v.counterexample,
                                             system.config.ncpus,
                                             f"{system.name} {system.variant}"))
    return status


def _describe(v: Verdict, system: System) -> str:
    lines = [f"{v.protocol} --variant {v.variant} ({v.config})",
             f"verdict: {v.verdict}" + (f" ({v.property})" if v.property else ""),
             f"{v.message}",
             f"states {v.states:,}  transitions {v.transitions:,}  depth {v.depth}  "
             f"{v.seconds:.2f}s  ({v.describe_stop()})"]
    if v.stats.get("store", "exact") != "exact":
        size = f", {v.stats['bitstate_bits']:,} bits" if "bitstate_bits" in v.stats else ""
        lines.append(f"store: {v.stats['store']}{size}, hash seed {v.stats['hash_seed']} "
                     "(--hash-seed repeats it)")
    cut = v.stats.get("shorten")
    if cut and cut["reduced_depth"] != v.depth:
        lines.append(f"shortest trail: {v.depth} moves (the reduced search's had "
                     f"{cut['reduced_depth']}; unreduced: {cut['states']:,} states, "
                     f"{cut['seconds']:.2f}s)")
    elif cut and v.stats.get("shortest") is False:
        lines.append(f"trail: {v.depth} moves, from the reduced search; the unreduced one "
                     f"stopped at its budget ({cut['states']:,} states): a shorter trail is "
                     "not ruled out")
    live = v.stats.get("liveness")
    if live:
        lines.append(f"liveness pass: states {live['states']:,}  transitions "
                     f"{live['transitions']:,}  {live['seconds']:.2f}s  (no reduction)")
    if v.counterexample:
        lines += ["", narrate.columns(v.counterexample, system.config.ncpus,
                                      cycle_start=v.cycle_start), "",
                  f"replay: crossmod replay {v.token}"]
    return "\n".join(lines)


def _check_all(bounds: Bounds, as_json: bool, commands: bool = False) -> int:
    results: list[dict[str, Any]] = []
    rows: list[tuple[Any, ...]] = []
    bad = 0
    t0 = time.perf_counter()
    show = sys.stderr.isatty()
    heading = None
    for i, row in enumerate(ROWS, 1):
        if show:  # one line rewritten in place; nothing when stderr is a file or a pipe
            knobs = " ".join(f"{k}={v}" for k, v in row.knobs.items())
            click.echo(f"\r\033[K[{i}/{len(ROWS)}] {row.protocol} {row.variant} {knobs}"[:99],
                       err=True, nl=False)
        system = build(row.protocol, row.variant, **row.knobs)
        row_bounds = replace(bounds, liveness=row.liveness)
        v = _verdict_for(system, row_bounds)
        ok = _matches(row, v)
        bad += not ok
        again = _reproduction(row.protocol, row.variant, row.knobs, row_bounds)
        results.append({**v.to_json(), "expected": row.expected, "as_expected": ok,
                        "why": row.why, "liveness": row.liveness, **again})
        if row.protocol != heading:  # one heading per protocol, its rows under it
            heading = row.protocol
            rows.append((row.protocol,))
        rows.append(("", row.variant, _short_config(system, row), row.expected,
                     v.verdict if ok else f"{v.verdict}!", v.property, v.states,
                     round(v.seconds, 2)))
        if commands:
            rows.append(("$", again["command"]))
    if show:
        click.echo("\r\033[K", err=True, nl=False)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        click.echo(_grouped_table(rows))
        hint = "" if commands else " (each row's command: --commands; in --json: command)"
        click.echo(f"\n{len(ROWS) - bad}/{len(ROWS)} as expected, "
                   f"{time.perf_counter() - t0:.1f}s{hint}")
    return 1 if bad else 0


def _short_config(system: System, row: Row) -> str:
    """"live" when the row checks liveness, cpus, NMIs, fetch model, memory model unless
    the architecture's own, then only the knobs the row sets."""
    p = system.params
    fetch = {"per-byte": "byte", "snapshot": "snap"}.get(p.get("fetch", ""), p.get("fetch", ""))
    parts = [f"{p.get('cpus', system.config.ncpus)}cpu"]
    if p.get("nmis"):
        parts.append(f"{p['nmis']}nmi")
    parts.append(fetch)
    memory = p.get("memory", system.config.memory)
    if memory != ("sc" if system.config.arch == "arm64" else "tso"):
        parts.append(memory)
    parts += [f"{k}={v}" for k, v in row.knobs.items()
              if k not in ("cpus", "nmis", "fetch", "memory")]
    if row.liveness:  # first, so that a narrow column never cuts it
        parts.insert(0, "live")
    return " ".join(x for x in parts if x)


def _grouped_table(rows: list[tuple]) -> str:
    """One heading line per protocol, its rows under it (fits 100 columns); a row's
    command (`("$", command)`, --commands) on the line under it, indented."""
    body = [r[1:] for r in rows if len(r) > 2]
    text = table(("variant", "config", "expected", "verdict", "property", "states",
                  "seconds"), body, width=100, shrink=1, sep=" ").splitlines()
    out, i = text[:2], 2
    for r in rows:
        if len(r) == 1:
            out.append(f"[{r[0]}]")
        elif r[0] == "$":  # a long one goes on as a shell continuation line
            parts = textwrap.wrap(r[1], 94, break_long_words=False, break_on_hyphens=False)
            out.append(" \\\n      ".join([f"  $ {parts[0]}", *parts[1:]]))
        else:
            out.append(text[i])
            i += 1
    return "\n".join(out)


def _matches(row: Row, v: Verdict) -> bool:
    return v.verdict == row.expected and (row.prop is None or v.property == row.prop)


@click.command(name="list")
@click.argument("protocol", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def list_cmd(protocol: str | None, as_json: bool) -> int:
    """The protocol catalogue: names, architectures, variants, and each protocol's
    parameters with their defaults and valid values (PROTOCOL: that one, with what each
    parameter means)."""
    entries = list(ENTRIES.values())
    if protocol is not None:
        if protocol not in ENTRIES:
            return _fail(f"unknown protocol {protocol!r}; valid: {', '.join(ENTRIES)}")
        entries = [ENTRIES[protocol]]
    if as_json:
        doc = [{"protocol": e.name, "arch": e.arch, "summary": e.summary,
                "variants": e.variants, "cpus": e.cpus, "nmis": e.nmis,
                "parameters": [s.to_json() for s in e.specs],
                "variant_defaults": {v: dict(d) for v, d in e.variant_defaults.items() if d}}
               for e in entries]
        click.echo(json.dumps(doc[0] if protocol else doc, indent=2))
        return 0
    rows = []
    for e in entries:
        for j, (var, what) in enumerate(e.variants.items()):
            rows.append((e.name if j == 0 else "", e.arch if j == 0 else "", var, what))
    click.echo(table(("protocol", "arch", "variant", "what it is"), rows))
    click.echo("")
    if protocol is not None:
        click.echo(_param_table(entries[0]))
    else:
        click.echo("parameters: default (valid values); --cpus, --nmis, --fetch, --memory, "
                   "--sites or --set NAME=VALUE")
        for e in entries:
            click.echo(_param_lines(e))
    return 0


def _param_lines(e: Entry) -> str:
    """One entry's parameters, wrapped at 100 columns under its name, never inside one."""
    nbsp = "\xa0"  # textwrap breaks at ASCII whitespace only
    items = [f"{s.name} {show(s.default)} ({s.valid()})".replace(" ", nbsp) for s in e.specs]
    by_variant = _variant_defaults(e)
    if by_variant:
        items.append(f"by variant: {by_variant}")
    return textwrap.fill(", ".join(items), width=100, initial_indent=f"{e.name:<20}",
                         subsequent_indent=" " * 20,
                         break_on_hyphens=False).replace(nbsp, " ")


def _variant_defaults(e: Entry) -> str:
    """The variants whose defaults differ from the schema's, grouped by what they set."""
    groups: dict[str, list[str]] = {}
    for var, d in e.variant_defaults.items():
        if d:
            groups.setdefault(" ".join(f"{k}={show(v)}" for k, v in d.items()), []).append(var)
    return "; ".join(f"{', '.join(vs)}: {what}" for what, vs in groups.items())


def _param_table(e: Entry) -> str:
    """Every parameter of one entry: its option, default, valid values and meaning, the
    meaning wrapped so that the table fits 100 columns."""
    cells = [(s.name, s.flag(), show(s.default), s.valid(), s.help) for s in e.specs]
    head = ("parameter", "option", "default", "valid", "meaning")
    left = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:4])]
    room = max(20, 100 - sum(left) - 2 * 4)
    rows: list[tuple[str, ...]] = []
    for c in cells:
        lines = textwrap.wrap(c[4], room) or [""]
        rows.append((*c[:4], lines[0]))
        rows += [("", "", "", "", more) for more in lines[1:]]
    out = table(head, rows)
    by_variant = _variant_defaults(e)
    if by_variant:
        out += "\n" + textwrap.fill(f"defaults by variant: {by_variant}", width=100,
                                    break_on_hyphens=False)
    return out


@click.command(name="replay")
@click.argument("token")
@click.option("--json", "as_json", is_flag=True, help="Print the trail as JSON.")
@click.option("--perfetto", "perfetto_out", type=click.Path(dir_okay=False),
              help="Write the trail as Chrome trace-event JSON.")
def replay_cmd(token: str, as_json: bool, perfetto_out: str | None) -> int:
    """Re-run a counterexample from the token `crossmod check` printed; exit 1 if it still
    ends in a violation or deadlock, or its cycle still closes (liveness); 2 if the token is
    damaged or was recorded on another model (other parameters, configuration, routine code
    or machine)."""
    cycle = None  # where the lasso's cycle starts, while it still is one
    try:
        sched = decode_for(None, token)
    except ScheduleError as e:
        return _fail(str(e))
    try:
        system = build(sched.protocol, sched.variant, **sched.params)
    except CatalogueError as e:
        return _fail(f"schedule token: {e}")
    try:
        sched.check_fits(system)
        if sched.cycle_start is None:
            steps = replay_schedule(system, list(sched.choices))
            failed = steps.outcome is not Outcome.OK
        else:
            steps, outcome = replay_lasso(system, list(sched.choices), sched.cycle_start)
            failed = outcome != "open"
            cycle = sched.cycle_start if outcome != "violation" else None
    except (ScheduleError, ReplayError) as e:
        return _fail(str(e))
    if perfetto_out and (why := unwritable(perfetto_out, "--perfetto")):
        return _fail(why)
    if as_json:
        click.echo(json.dumps({"protocol": system.name, "variant": system.variant,
                               "knobs": sched.params, "violation": failed,
                               "cycle_start": sched.cycle_start,
                               "steps": steps.to_json(), "outcome": steps.outcome.value,
                               "deadlock": steps.deadlock and steps.deadlock.to_json()},
                              indent=2))
    else:
        click.echo(f"{system.name} --variant {system.variant} {system.describe_config()}")
        click.echo(narrate.columns(steps, system.config.ncpus, cycle_start=cycle))
        if cycle is not None:
            click.echo("the cycle closes: it repeats forever (liveness)" if failed else
                       "the cycle no longer closes on this model")
    return max(1 if failed else 0,
               _write_perfetto(perfetto_out, steps, system.config.ncpus, f"{system.name} replay"))


@click.command()
@click.option("--cpus", type=click.IntRange(2, 6), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def compare(cpus: int, as_json: bool) -> int:
    """IPIs and stop_machine rendezvous per patch and per key flip, side by side (one
    deterministic run each): the int3 batch against stop_machine on x86, and one
    static_key_enable() with K = 1, 2, 4 sites on x86 and arm64."""
    from crossmod.catalogue.arm64 import key_flip_systems
    from crossmod.check.stats import cost_rows

    labelled = [("x86-int3-batch (1 site)", build("x86-int3-batch", cpus=cpus)),
                ("x86-stop-machine (1 site)", build("x86-stop-machine", cpus=cpus))]
    labelled += key_flip_systems(cpus=cpus)
    rows = cost_rows(labelled)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    click.echo(table(("patch / key flip", "cpus", "IPIs", "rendezvous", "IPIs by function"),
                     [(r["label"], r["cpus"], r["ipis"], r["rendezvous"],
                       ", ".join(f"{f} {n}" for f, n in sorted(r["ipis_by_function"].items())))
                      for r in rows]))
    return 0
