"""The compiled engine (mypyc) against the interpreted one, the same sources.

Run: python benchmarks/bench_engine.py [--rounds 2] [--states 200000]
Each configuration is explored in a fresh process per engine (`CROSSMOD_ENGINE=python` /
`compiled`), the two alternating, `--rounds` times; the figure is the process CPU time
(time.process_time around `explore`), the least of the rounds, since the machine is shared
and wall time measures the load. Both engines must report the same states and transitions
(the benchmark stops otherwise). Prints a markdown table with the ratio per row and the
geometric mean.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from typing import Any

CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("x86-int3-batch", "default", {"cpus": 3, "nmis": 1, "execs": 1}),
    ("x86-int3-batch", "default", {"cpus": 5, "execs": 1}),
    ("x86-int3-batch", "default", {"cpus": 6, "execs": 1}),
    ("defer-cr3", "default", {"cpus": 3}),
    ("defer-ct", "default", {"cpus": 3}),
    ("defer-cr3", "nmi-exit-window", {"cpus": 2, "nmis": 1}),
    ("x86-static-key", "default", {"cpus": 2, "nmis": 1, "sites": 2}),
]

CHILD = """
import json, sys, time
from crossmod import _engine
from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.check.verdict import Bounds
proto, variant, knobs, states = json.loads(sys.argv[1])
system = build(proto, variant, **knobs)
c0 = time.process_time()
v = explore(system, Bounds(max_states=states))
cpu = time.process_time() - c0
print(json.dumps([_engine.ENGINE, str(v.verdict), v.states, v.transitions, cpu]))
"""


def one(engine: str, proto: str, variant: str, knobs: dict[str, Any], states: int
        ) -> tuple[str, str, int, int, float]:
    env = {**os.environ, "CROSSMOD_ENGINE": engine}
    out = subprocess.run([sys.executable, "-c", CHILD,
                          json.dumps([proto, variant, knobs, states])],
                         capture_output=True, text=True, env=env, check=True)
    ran, verdict, n, t, cpu = json.loads(out.stdout)
    return ran, verdict, n, t, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--states", type=int, default=200_000,
                    help="state bound per configuration (the same for both engines)")
    args = ap.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.1f}; state bound {args.states:,}")
    print("| protocol | variant | config | verdict | states | transitions | python CPU s "
          "| compiled CPU s | python states/s | compiled states/s | speed-up |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for proto, variant, knobs in CONFIGS:
        best: dict[str, float] = {}
        facts = set()
        for _ in range(args.rounds):
            for engine in ("python", "compiled"):
                ran, verdict, n, t, cpu = one(engine, proto, variant, knobs, args.states)
                if ran != engine:
                    sys.exit(f"asked for the {engine} engine, ran the {ran} one")
                facts.add((verdict, n, t))
                best[engine] = min(best.get(engine, math.inf), cpu)
        if len(facts) != 1:
            sys.exit(f"{proto} {variant} {knobs}: the engines disagree: {sorted(facts)}")
        verdict, n, t = facts.pop()
        py, co = best["python"], best["compiled"]
        ratios.append(py / co)
        cfg = " ".join(f"{k}={v}" for k, v in knobs.items())
        print(f"| {proto} | {variant} | {cfg} | {verdict} | {n:,} | {t:,} | {py:.2f} | "
              f"{co:.2f} | {n / py:,.0f} | {n / co:,.0f} | {py / co:.2f}x |", flush=True)
    gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"\ngeometric mean speed-up {gm:.2f}x; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
