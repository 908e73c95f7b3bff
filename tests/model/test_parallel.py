"""check/parallel.py: the breadth-first search spread over worker processes finds what the
sequential one finds -- verdict, property, states, transitions, depth and the same shortest
counterexample, replayed -- on every catalogue row."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from crossmod.catalogue import ROWS, Row, build
from crossmod.check.explore import explore
from crossmod.check.parallel import content_canonicalizer, explore_parallel
from crossmod.check.verdict import Bounds, Outcome, Verdict
from crossmod.machine.system import System

# CPU symmetry: where its representative is not unique (machine/symmetry.py, point 3) the
# ranking decides which state of an orbit is stored, and so the order of a state's moves
# and the counterexample's choice indices: the parallel search ranks CPU states by content,
# the sequential one by first sight. Rows with symmetry are therefore compared exactly with
# the sequential search ranking by content, and with the plain one on what must not
# depend on the ranking (verdict, property, counterexample length).
SLOW = {("x86-int3-batch", "default", (("cpus", 3), ("execs", 1), ("nmis", 1))),
        ("x86-int3-batch", "default", (("cpus", 3), ("execs", 1), ("fetch", "snapshot"),
                                       ("nmis", 1)))}


def _key(row: Row) -> tuple:
    return row.protocol, row.variant, tuple(sorted(row.knobs.items()))


def _facts(v: Verdict) -> tuple:
    trail = None if v.counterexample is None else tuple(s.index for s in v.counterexample)
    return v.verdict, v.property, v.states, v.transitions, v.depth, trail


def _sequential_by_content(system: System, bounds: Bounds) -> Verdict:
    return explore(system, bounds, ranking=content_canonicalizer)


# The two largest rows (399,640 and 219,560 states, violations found at depth 66 and 33):
# a minute each with two workers sharing this machine's cores, and nothing the other rows'
# comparison does not already show.
LARGE = {("defer-cr3", "no-sender-mb", (("cpus", 3),)),
         ("defer-cr3", "nmi-exit-window", (("cpus", 3),)),
         ("defer-cr3", "default", (("cpus", 3),)), ("defer-ct", "default", (("cpus", 3),))}


def _params(rows: list[Row]) -> list:
    out = []
    for r in rows:
        if _key(r) in LARGE:
            continue
        slow = _key(r) in SLOW
        marks = [pytest.mark.slow] if slow else []
        ident = f"{r.protocol}-{r.variant}-" + "-".join(f"{k}={v}" for k, v in r.knobs.items())
        out.append(pytest.param(r, marks=marks, id=ident))
    return out


@pytest.mark.parametrize("row", _params(list(ROWS)))
def test_two_workers_find_what_the_sequential_search_finds(row: Row) -> None:
    system = build(row.protocol, row.variant, **row.knobs)
    bounds = Bounds(liveness=row.liveness)  # liveness: after the safety search, sequential
    par = explore_parallel(system, bounds, jobs=2)
    assert par.verdict == row.expected
    if row.prop is not None:
        assert par.property == row.prop
    plain = explore(system, bounds)
    if system.config.symmetric:
        seq = _sequential_by_content(system, bounds)
        assert (par.verdict, par.property, par.depth if par.counterexample else None) == \
            (plain.verdict, plain.property, plain.depth if plain.counterexample else None)
    else:
        seq = plain
    assert _facts(par) == _facts(seq)
    if par.counterexample is not None and not row.liveness:  # a lasso ends on its cycle
        assert par.counterexample.steps[-1].outcome in (Outcome.VIOLATION, Outcome.DEADLOCK)
        if row.length is not None:
            assert len(par.counterexample) == row.length


def test_one_worker_and_three_agree_with_two() -> None:
    system = build("defer-cr3", "no-sender-mb")
    facts = {_facts(explore_parallel(system, Bounds(), jobs=j)) for j in (1, 2, 3)}
    assert len(facts) == 1
    (verdict, prop, states, *_), = facts
    assert (verdict, prop, states) == ("violation", "use-after-free", explore(system).states)


def test_a_time_limit_gives_a_bound() -> None:
    system = build("x86-int3-batch", cpus=3, nmis=1, execs=1)
    v = explore_parallel(system, Bounds(max_seconds=0.5), jobs=2)
    assert v.verdict == "bound" and v.stop_reason == "time limit"
    assert 0 < v.states < 118_000


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmod", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_jobs_gives_the_sequential_verdict_and_a_replayable_token() -> None:
    r = run("check", "x86-int3-batch", "--variant", "no-sync1", "--jobs", "2", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert (doc["verdict"], doc["property"], doc["states"]) == \
        ("violation", "torn-instruction", explore(build("x86-int3-batch", "no-sync1")).states)
    assert doc["command"].endswith("--jobs 2")
    again = run("replay", doc["token"])
    assert again.returncode == 1 and "VIOLATION torn-instruction" in again.stdout


def test_cli_jobs_is_refused_with_all_and_out_of_range() -> None:
    r = run("check", "--all", "--jobs", "2")
    assert r.returncode == 2
    assert r.stderr.strip() == ("crossmod: error: --jobs applies to one PROTOCOL: --all runs "
                                "its rows one by one")
    r = run("check", "x86-int3-batch", "--jobs", "0")
    assert r.returncode == 2 and "--jobs" in r.stderr and "Traceback" not in r.stderr


def test_cli_jobs_needs_the_exact_store() -> None:
    r = run("check", "x86-int3-batch", "--jobs", "2", "--store", "bitstate")
    assert r.returncode == 2
    assert r.stderr.strip() == ("crossmod: error: --jobs keeps every state "
                                "(check/parallel.py): use it with --store exact")
