"""The compiled engine (mypyc, crossmod/_engine.py) against its reference, the same
sources interpreted: on every catalogue row the same verdict, property, states,
transitions, depth and counterexample, choice by choice; and on random protocols of the
differential generator the same verdicts and counts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import missing
from crossmod import _engine

ROOT = Path(__file__).resolve().parents[2]


def _run(engine: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CROSSMOD_ENGINE": engine}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


def _compiled_or_skip() -> None:
    if _engine.ENGINE != "compiled":
        missing("the compiled engine is not installed (pip install -e . builds it)")


def _rows(engine: str) -> list[dict]:
    out = _run(engine, "-m", "crossmod", "check", "--all", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    rows: list[dict] = json.loads(out.stdout)
    return rows


def _facts(row: dict) -> tuple:
    trail = row.get("counterexample")
    return (row["protocol"], row["variant"], row["config"], row["verdict"], row["property"],
            row["states"], row["transitions"], row["depth"],
            None if trail is None else tuple(s["index"] for s in trail))


@pytest.mark.slow
def test_the_compiled_engine_gives_the_reference_answer_on_every_catalogue_row() -> None:
    _compiled_or_skip()
    compiled, reference = _rows("compiled"), _rows("python")
    assert len(compiled) == len(reference) >= 90
    for c, r in zip(compiled, reference, strict=True):
        assert _facts(c) == _facts(r)


@pytest.mark.slow
def test_the_compiled_engine_agrees_on_random_protocols() -> None:
    _compiled_or_skip()
    args = ("benchmarks/differential_soundness.py", "--examples", "150", "--seed", "4242")
    c, r = _run("compiled", *args), _run("python", *args)
    # each run checks its reductions against its own plain search, and both print the same
    # tallies (protocols, explorations, states in all) when the engines agree
    assert c.returncode == 0 and r.returncode == 0, (c.stdout[-2000:], r.stdout[-2000:])
    assert "everything agreed" in c.stdout
    assert _untimed(c.stdout) == _untimed(r.stdout)


def _untimed(out: str) -> str:
    return re.sub(r"compared in \d+s", "compared", out)


def test_the_engine_in_use_is_said_and_can_be_forced() -> None:
    out = _run("python", "-m", "crossmod", "check", "x86-memcpy", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["stats"]["engine"] == "python"
    out = _run("bogus", "-c", "import crossmod")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "CROSSMOD_ENGINE='bogus'" in out.stderr
    if _engine.ENGINE == "compiled":
        out = _run("compiled", "-c", "import crossmod.machine.machine as m; print(m.__file__)")
        assert out.stdout.strip().endswith(".so")


@pytest.mark.parametrize("store", ["hash-compact", "bitstate"])
def test_the_compiled_compact_stores_give_the_reference_answer(store: str) -> None:
    # check/store.py is compiled too; a small array, so that the omissions show: the same
    # states omitted (and the same bits set, by the C port in both, or by the reference
    # bits_add_py without it: tests/model/test_store.py compares those)
    _compiled_or_skip()
    args = ("-m", "crossmod", "check", "defer-cr3", "--store", store, "--bitstate-bits",
            "16384", "--json")
    rows = [json.loads(_run(engine, *args).stdout) for engine in ("compiled", "python")]
    assert [r["stats"]["engine"] for r in rows] == ["compiled", "python"]
    for r in rows:
        r["stats"].pop("engine")
        r.pop("seconds")
    assert _facts(rows[0]) == _facts(rows[1])
    assert rows[0]["stats"] == rows[1]["stats"] and rows[0]["stop_limit"] == rows[1]["stop_limit"]


def test_a_stale_build_runs_the_sources_and_says_so(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Compiled modules built from other sources than those beside them (an edited file in
    an editable install) never run: `auto` falls back with a one-line note, `compiled`
    refuses."""
    _compiled_or_skip()
    monkeypatch.setattr(_engine, "_stamp", lambda: {m: "0" * 64 for m in _engine.MODULES})
    finders, engine = list(sys.meta_path), _engine.ENGINE
    try:
        monkeypatch.setenv("CROSSMOD_ENGINE", "compiled")
        with pytest.raises(_engine.EngineError, match="is stale"):
            _engine.select()
        monkeypatch.setenv("CROSSMOD_ENGINE", "auto")
        assert _engine.select() == "python"
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "older than its sources" in err
    finally:
        sys.meta_path[:] = finders
        _engine.ENGINE = engine
