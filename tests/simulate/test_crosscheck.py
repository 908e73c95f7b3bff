"""The scheduler's arithmetic positions (`Cpu.period_at`: no event per syscall) against
benchmarks/bench_simulate.py's plain heapq simulator, where every entry, exit and signal
change is a queue event: the same IPIs received under each policy, with the isolated CPUs
in a 20 kHz syscall loop (so sends do meet the entry and exit windows)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from crossmod.simulate.engine import simulate
from crossmod.simulate.scenario import parse

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_simulate.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_simulate", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SCENARIO = parse('[machine]\ncpus = 4\nisolated = "2-3"\n[workload]\nsyscall_hz = 20000.0\n'
                 '[operations]\ntracepoint_flip = 360000.0\nvmap_purge = 360000.0\n', "x.toml")


@pytest.mark.parametrize(("policy", "received"), [("none", 1696), ("ct", 420), ("cr3", 6)])
def test_fast_path_equals_plain_heapq(policy: str, received: int) -> None:
    ours = simulate(SCENARIO, policy, seed=0, hours=2 / 3600)
    plain, events = _bench().plain_heapq(SCENARIO, policy, 0, 2.0, 20000.0)
    assert ours.received_total == plain == received
    assert events > 400_000  # it did simulate every syscall
