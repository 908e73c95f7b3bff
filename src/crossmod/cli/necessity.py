"""`crossmod necessity PROTOCOL`: which sync, barrier and ordering steps are required, under
which instruction-fetch and memory model (DESIGN.md "Engines": necessity).

Owns: the command -- its options, the catalogue entry's steps (`Entry.steps`: step -> the
variant that drops it) handed to check/necessity.py, and the table. Imports: catalogue,
check, report.
"""

from __future__ import annotations

import json
import time

import click

from crossmod.catalogue import ENTRIES, CatalogueError, build
from crossmod.check.necessity import StepResult, necessity
from crossmod.check.verdict import Bounds
from crossmod.cli.model import PositiveSeconds, knobs_of
from crossmod.machine.state import MEMORY_MODELS
from crossmod.machine.system import System
from crossmod.machine.text import FETCH_MODELS
from crossmod.report.tables import table

SHORT = {"torn-instruction": "torn", "unexpected-int3": "int3", "use-after-free": "UAF",
         "use-after-return": "UAR", "patch-visibility": "stale", "deadlock": "deadlock",
         "isolation": "isolation", "liveness": "live"}


def _model(m: str) -> str:
    return m.replace("per-byte", "byte").replace("snapshot", "snap")


def render(base: StepResult, rows: list[StepResult]) -> str:
    """The table at 100 columns: short verdicts (legend below), variants in --json."""
    models = list(base.results)
    headers = ["step dropped", *(_model(m) for m in models), "required under"]
    lines = [["(none)", *(SHORT.get(base.results[m], base.results[m]) for m in models), ""]]
    seen = set()
    for r in rows:
        req = r.required_under(base.results)
        ok = [m for m in models if base.results[m] == "safe"]
        where = "every model" if req and req == ok else (
            ", ".join(_model(m) for m in req) or "none")
        res = [r.results[m] for m in models]
        seen.update(res)
        lines.append([r.step, *(SHORT.get(x, x) for x in res), where])
    legend = ", ".join(f"{SHORT[p]} = {p}" for p in sorted(seen) if p in SHORT)
    return table(headers, lines, width=100, shrink=0) + (f"\n({legend})" if legend else "")


@click.command("necessity")
@click.argument("protocol")
@click.option("--fetch", "fetches", multiple=True, type=click.Choice(FETCH_MODELS),
              help="Fetch model; repeat for several (--fetch per-byte --fetch snapshot); "
                   "default: every model the entry allows.")
@click.option("--memory", "memories", multiple=True, type=click.Choice(MEMORY_MODELS),
              help="Memory model; repeat for several (--memory tso --memory pso); default: "
                   "tso and pso where the entry allows them.")
@click.option("--cpus", type=int, help="Number of CPUs.")
@click.option("--nmis", type=int, help="NMI budget per run.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Any other parameter of PROTOCOL (`crossmod list PROTOCOL`), the same in "
                   "every check. Repeat for several.")
@click.option("--max-seconds", type=PositiveSeconds(), help="Wall-clock limit per check.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def necessity_cmd(protocol: str, fetches: tuple[str, ...], memories: tuple[str, ...],
                  cpus: int | None, nmis: int | None, sets: tuple[str, ...],
                  max_seconds: float | None, as_json: bool) -> int:
    """Drop each sync / barrier / ordering step of PROTOCOL in turn and report under which
    fetch and memory models it is required. Exit 0, or 2 on bad input."""
    entry = ENTRIES.get(protocol)
    if entry is None or not entry.steps:
        known = ", ".join(n for n, e in ENTRIES.items() if e.steps)
        raise click.UsageError(f"no step list for {protocol!r}; protocols with one: {known}")
    fetches = fetches or entry.fetch
    memories = memories or tuple(m for m in ("tso", "pso") if m in entry.memory)
    try:  # every combination is built before any is checked: a bad knob costs no work
        knobs = knobs_of(protocol, {"cpus": cpus, "nmis": nmis}, sets)
        for axis in ("fetch", "memory"):
            if axis in knobs:
                raise CatalogueError(f"--set {axis}: the {axis} models are what necessity "
                                     f"varies; give them as --{axis} (repeat for several)")
        for variant in ("default", *entry.steps.values()):
            for f in fetches:
                for mem in memories:
                    build(protocol, variant, fetch=f, memory=mem, **knobs)
    except CatalogueError as e:
        raise click.UsageError(str(e).splitlines()[0]) from None
    t0 = time.perf_counter()

    def build_one(variant: str, fetch: str, memory: str) -> System:
        return build(protocol, variant, fetch=fetch, memory=memory, **knobs)

    base, rows = necessity(build_one, entry.steps, tuple(fetches), tuple(memories),
                           Bounds(max_seconds=max_seconds))
    if as_json:
        click.echo(json.dumps({"protocol": protocol, "as_is": base.results,
                               "steps": [dict(step=r.step, variant=r.variant,
                                              results=r.results,
                                              required_under=r.required_under(base.results))
                                         for r in rows]}, indent=2))
        return 0
    click.echo(f"{protocol}: which steps are required ({entry.summary})")
    click.echo(render(base, rows))
    states = base.states + sum(r.states for r in rows)
    click.echo(f"{len(rows) + 1} variants x {len(base.results)} models, {states:,} states, "
               f"{time.perf_counter() - t0:.1f}s")
    return 0
