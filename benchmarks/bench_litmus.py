"""`crossmod litmus` on herdtools7's ifetch catalogue: how many tests it reads, on how many
its verdict is kinds.txt's (by tier), where the earlier readings differ, and how long.

Run: python benchmarks/bench_litmus.py [TESTS_DIR] [--repeat 3]
TESTS_DIR is herdtools7's catalogue/aarch64-ifetch/tests (a checkout, or copied out of a
snapshot: tests/litmus/conftest.py shows how); without it, the snapshot the `fetch` tool
leaves at /work/.mirror/herd+herdtools7/repo is read. Prints markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from crossmod.litmus.catalogue import TIERS, expand, read_kinds, tier
from crossmod.litmus.parse import parse_file
from crossmod.litmus.run import check

SNAPSHOT = Path("/work/.mirror/herd+herdtools7/repo")


def _from_snapshot(dest: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.litmus.conftest import _extract

    _extract(SNAPSHOT, dest)
    return dest / "catalogue" / "aarch64-ifetch" / "tests"


def run_all(root: Path, **kw) -> tuple[list, float]:
    t0 = time.perf_counter()
    out = []
    for p in expand([str(root)]):
        t = parse_file(p)
        out.append((t, check(t, **kw)))
    return out, time.perf_counter() - t0


def agreement(results: list, kinds: dict[str, str]) -> list[str]:
    rows = ["| tier | tests read | with a kind | verdict = kind | states | seconds |",
            "|---|---:|---:|---:|---:|---:|"]
    tot = Counter()
    for name in TIERS:
        mine = [(t, r) for t, r in results if tier(t) == name]
        known = [(t, r) for t, r in mine if t.name in kinds]
        same = sum(kinds[t.name] == r.verdict for t, r in known)
        states = sum(r.states for _, r in mine)
        secs = sum(r.seconds for _, r in mine)
        tot.update(read=len(mine), known=len(known), same=same, states=states)
        tot["secs"] += secs
        rows.append(f"| {name} | {len(mine)} | {len(known)} | {same} | {states:,} | "
                    f"{secs:.2f} |")
    rows.append(f"| all | {tot['read']} | {tot['known']} | {tot['same']} | "
                f"{tot['states']:,} | {tot['secs']:.2f} |")
    return rows


def differences(results: list, kinds: dict[str, str]) -> Counter:
    return Counter((kinds[t.name], r.verdict) for t, r in results
                   if t.name in kinds and kinds[t.name] != r.verdict)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tests", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.tests) if a.tests else _from_snapshot(Path(tmp))
        kinds = read_kinds(root / "kinds.txt")
        walls = []
        for _ in range(a.repeat):
            results, wall = run_all(root)
            walls.append(wall)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        print(f"Python {platform.python_version()}, commit {commit}: the whole catalogue "
              f"({len(results)} tests) in {min(walls):.2f} s wall (best of {a.repeat}: "
              + ", ".join(f"{w:.2f}" for w in walls) + ")\n")
        print("\n".join(agreement(results, kinds)))
        slow = sorted(results, key=lambda x: -x[1].seconds)[:5]
        print("\nslowest: " + ", ".join(f"{r.test} {r.seconds:.3f} s ({r.states:,} states)"
                                        for _, r in slow))
        for label, kw in (("--memory sc", {"memory": "sc"}),
                          ("--fetch cse (crossmod's earlier reading)", {"fetch": "cse"})):
            res, wall = run_all(root, **kw)
            diff = differences(res, kinds)
            names = [t.name for t, r in res if t.name in kinds and kinds[t.name] != r.verdict]
            n = sum(diff.values())
            print(f"\n{label}: {n} verdict{'s differ' if n != 1 else ' differs'} from kinds.txt "
                  f"({', '.join(f'{k} -> {v}: {n}' for (k, v), n in sorted(diff.items()))}) "
                  f"in {wall:.2f} s" + (f": {', '.join(names)}" if len(names) <= 3 else ""))


if __name__ == "__main__":
    main()
