"""`crossmod litmus`: herd7's AArch64 litmus tests on crossmod's arm64 machine.

Owns: the command's options, the table / JSON / witness rendering, progress on stderr and
the exit status (0: every test ran -- and, with --kinds, agreed; 1: a verdict differs from
--kinds; 2: a file could not be read or run). Imports: litmus, report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from crossmod.check.outcomes import StateLimit
from crossmod.litmus.catalogue import TIERS, expand, read_kinds, tier
from crossmod.litmus.interp import UNROLL
from crossmod.litmus.parse import parse_file
from crossmod.litmus.run import MEMORY_MODELS, Result, check
from crossmod.litmus.syntax import LitmusError
from crossmod.machine.aarch64.machine import FETCH_MODELS
from crossmod.report import narrate
from crossmod.report.tables import table


@click.command(name="litmus")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a list of result objects.")
@click.option("--explain", is_flag=True,
              help="Tell the execution behind each verdict, step by step.")
@click.option("--kinds", "kinds_file", type=click.Path(dir_okay=False),
              help="A herd7 kinds file (NAME Allowed|Forbidden|Required): compare, exit 1 "
                   "on any difference.")
@click.option("--memory", type=click.Choice(MEMORY_MODELS), default="arm", show_default=True,
              help="Data memory: Arm's model, or sequentially consistent.")
@click.option("--fetch", type=click.Choice(FETCH_MODELS), default="arm", show_default=True,
              help="Instruction fetch: Arm's model (caches, CTR_EL0), or crossmod's earlier "
                   "reading (any value since the last context synchronization).")
@click.option("--unroll", type=click.IntRange(0), default=UNROLL, show_default=True,
              help="Times a backward branch is taken (herd7's -unroll).")
@click.option("--max-states", type=click.IntRange(1), default=5_000_000, show_default=True)
def litmus(files: tuple[str, ...], as_json: bool, explain: bool, kinds_file: str | None,
           memory: str, fetch: str, unroll: int, max_states: int) -> int:
    """Run AArch64 litmus tests (herd7's syntax) through every execution crossmod's arm64
    machine allows, and give each its verdict: Allowed, Forbidden or Required.

    FILES are .litmus files, directories (every .litmus file under them) or herd7 index
    files (@all). The machine is Arm's model of instruction fetch (Simner et al., ESOP
    2020; herd7 -variant ifetch): a fetch may see a stale instruction until the write is
    cleaned (DC CVAU) and invalidated (IC IVAU, DSB) and the fetch ordered after that
    (ISB, exception entry/return) -- less with CacheType=IDC or DIC -- over Arm's data
    memory model (barriers, dependencies, other-multi-copy atomicity)."""
    try:
        paths = expand(list(files))
        kinds = read_kinds(kinds_file) if kinds_file else None
    except LitmusError as e:
        click.echo(f"crossmod: error: {e}", err=True)
        return 2
    t0 = time.perf_counter()
    results, tiers, errors = _run_all(paths, memory, fetch, unroll, max_states, explain)
    wall = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps([_json(r, kinds, tiers) for r in results], indent=2))
    else:
        _print(results, kinds, tiers, explain, wall)
    if errors:
        return 2
    if kinds is not None and any(r.test in kinds and kinds[r.test] != r.verdict
                                 for r in results):
        return 1
    return 0


def _run_all(paths: list[Path], memory: str, fetch: str, unroll: int, max_states: int,
             explain: bool) -> tuple[list[Result], dict[str, str], int]:
    results, tiers, errors = [], {}, 0
    show = sys.stderr.isatty() and len(paths) > 1
    for i, path in enumerate(paths, 1):
        if show:
            click.echo(f"\r[{i}/{len(paths)}] {path.name[:70]:<70}", err=True, nl=False)
        try:
            test = parse_file(path)
            r = check(test, memory=memory, fetch=fetch, explain=explain,
                      max_states=max_states, unroll=unroll)
        except LitmusError as e:
            click.echo(("\n" if show else "") + f"crossmod: error: {e}", err=True)
            errors += 1
            continue
        except StateLimit as e:
            click.echo(("\n" if show else "") + f"crossmod: error: {path}: {e} (raise "
                       "--max-states)", err=True)
            errors += 1
            continue
        results.append(r)
        tiers[r.file] = tier(test)
    if show:
        click.echo("\r" + " " * 80 + "\r", err=True, nl=False)
    return results, tiers, errors


def _json(r: Result, kinds: dict[str, str] | None, tiers: dict[str, str]) -> dict:
    d = r.to_json()
    d["tier"] = tiers.get(r.file)
    if kinds is not None:
        d["expected"] = kinds.get(r.test)
        d["as_expected"] = None if r.test not in kinds else kinds[r.test] == r.verdict
    return d


def _print(results: list[Result], kinds: dict[str, str] | None, tiers: dict[str, str],
           explain: bool, wall: float) -> None:
    rows = []
    for r in results:
        row = [r.test, r.cache_type, r.verdict]
        if kinds is not None:
            want = kinds.get(r.test)
            row.append("-" if want is None else want if want == r.verdict else f"{want} !")
        rows.append([*row, r.states, len(r.final_states), f"{r.seconds:.3f}",
                     "CMODX" if r.flags else ""])
    heads = ["test", "cache", "verdict", *(["kinds.txt"] if kinds is not None else []),
             "states", "finals", "seconds", "flag"]
    if explain and results:
        click.echo("\n\n".join(_explain(r) for r in results))
    if results and (len(results) != 1 or not explain):
        click.echo(("\n" if explain else "") + table(heads, rows, width=100, shrink=0))
    if kinds is not None:
        click.echo("\n" + _agreement(results, kinds, tiers))
    if len(results) > 1:
        click.echo(f"\n{len(results)} tests, {sum(r.states for r in results):,} states, "
                   f"{wall:.1f}s")


def _agreement(results: list[Result], kinds: dict[str, str], tiers: dict[str, str]) -> str:
    rows: list[tuple[str, int, int, int]] = []
    lines: list[str] = []
    for t in TIERS:
        mine = [r for r in results if tiers.get(r.file) == t]
        known = [r for r in mine if r.test in kinds]
        same = [r for r in known if kinds[r.test] == r.verdict]
        rows.append((t, len(mine), len(known), len(same)))
    rows.append(("all", sum(r[1] for r in rows), sum(r[2] for r in rows),
                 sum(r[3] for r in rows)))
    lines.append(table(("tier", "tests read", "with a kind", "verdict = kind"), rows))
    for r in results:
        if r.test in kinds and kinds[r.test] != r.verdict:
            lines.append(f"DIFFERS {r.test}: kinds.txt {kinds[r.test]}, crossmod {r.verdict}"
                         f" ({r.file})")
    missing = [r.test for r in results if r.test not in kinds]
    if missing:
        lines.append(f"no kind for {len(missing)}: {', '.join(missing)}")
    return "\n".join(lines)


def _explain(r: Result) -> str:
    head = [f"{r.test} ({r.file})",
            f"{r.cache_type}, memory {r.memory}, fetch {r.fetch}: "
            f"{r.quantifier} {_condition(r)}",
            f"verdict: {r.verdict}  ({r.positive} of {r.positive + r.negative} final states "
            f"satisfy it; {r.states:,} states, {r.seconds:.3f}s)"]
    if r.race:
        head.append(f"flag violates-CMODX-requirements: {r.race}")
    if r.witness is None:
        if r.verdict == "Forbidden":
            head.append("no execution reaches the condition; final states: "
                        + " | ".join(r.final_states))
        else:
            head.append("every execution satisfies it; final states: "
                        + " | ".join(r.final_states))
        return "\n".join(head)
    what = ("an execution that satisfies it" if r.quantifier != "forall" or
            r.verdict == "Required" else "an execution that does not satisfy it")
    head.append(f"{what}, ending in {r.witness_state}")
    for t, ran in enumerate(r.witness_paths or []):
        head.append(f"  P{t} runs: " + "; ".join(ran))
    if r.witness_first:
        head.append("  before any move (nothing orders them after anything): "
                    + ", ".join(r.witness_first))
    ncpus = len(r.witness_paths or [])
    table_text = narrate.columns(r.witness, ncpus, names=[f"P{t}" for t in range(ncpus)])
    return "\n".join(head) + "\n\n" + table_text


def _condition(r: Result) -> str:
    text = r.condition
    for q in ("~ exists", "exists", "forall", "final"):
        if text.startswith(q):
            return text[len(q):].strip()
    return text or "true"
