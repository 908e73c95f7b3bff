"""CPU seconds of the exact search on the rows of BENCHMARKS.md "Issue 12: the symmetric
search's hot path": x86-int3-batch execs=1 at 5 and 6 CPUs (exhausted) and the first
200,000 states of defer-cr3 at 3 CPUs.

Run: PYTHONPATH=<tree>/src python benchmarks/bench_symmetric_search.py [i5 i6 d3 i7]
     (one JSON line per row; run two trees alternately on a shared machine). `i7` is
     x86-int3-batch at 7 CPUs with a 6,000,000-state bound.
CPU time of the process (`time.process_time()`) around `explore`.
"""

from __future__ import annotations

import json
import sys
import time

ROWS = {
    "i5": ("x86-int3-batch", {"cpus": 5, "execs": 1}, {}),
    "i6": ("x86-int3-batch", {"cpus": 6, "execs": 1}, {}),
    "i7": ("x86-int3-batch", {"cpus": 7, "execs": 1}, {"max_states": 6_000_000}),
    "d3": ("defer-cr3", {"cpus": 3}, {"max_states": 200_000}),
}


def main(names: list[str]) -> None:
    from crossmod.catalogue import build
    from crossmod.check.explore import explore
    from crossmod.check.verdict import Bounds

    for name in names or ["i5", "i6", "d3"]:
        protocol, knobs, bounds = ROWS[name]
        system = build(protocol, "default", **knobs)
        c0 = time.process_time()
        v = explore(system, Bounds(**bounds))
        print(json.dumps({"row": name, "verdict": str(v.verdict), "states": v.states,
                          "transitions": v.transitions,
                          "cpu": round(time.process_time() - c0, 2)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
