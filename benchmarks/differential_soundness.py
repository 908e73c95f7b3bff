"""The long profile of the differential soundness test (tests/model/test_differential.py).

Run: python benchmarks/differential_soundness.py [--examples N] [--seed S] [--limit STATES]
Generates N random protocols (tests/model/randomproto.py), explores each under every
combination of CPU symmetry, partial-order reduction and routine identity, compares every
verdict with a plain walk of the machine, replays every counterexample, and prints what it
compared: protocols, states, which reductions applied, verdicts and properties. The seed is
printed and accepted back; a disagreement stops the run with hypothesis's shrunk reproducer.
Exit status 0 when everything agreed, 1 on a disagreement.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, assume, given, seed, settings

BATCH = 100

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.model.randomproto import Protocol, TooLarge, compare, protocols  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (printed)")
    ap.add_argument("--limit", type=int, default=20_000, help="reference states per protocol")
    ap.add_argument("--max-cpus", type=int, default=3)
    ap.add_argument("--max-len", type=int, default=4, help="instructions per program")
    args = ap.parse_args()
    s = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {s}  examples {args.examples}  limit {args.limit} states", flush=True)
    tally: Counter[str] = Counter()
    distinct: set[Protocol] = set()
    t0 = time.perf_counter()

    def check(p: Protocol) -> None:
        try:
            c = compare(p, limit=args.limit)
        except TooLarge:
            tally["too large (skipped)"] += 1
            assume(False)
            return
        tally["protocols"] += 1
        distinct.add(p)
        tally["states"] += c.states
        tally["runs"] += len(c.runs)
        tally[f"arch {p.arch} / {p.memory} / {p.fetch}"] += 1
        tally["with readers"] += bool(p.readers)
        tally["with a symmetry class"] += bool(p.symmetric)
        tally["with NMIs"] += bool(p.nmis)
        tally["with NMIs and readers"] += bool(p.nmis and p.readers)
        tally["with 2 NMIs"] += p.nmis == 2
        tally[f"{len(p.programs)} CPUs"] += 1
        for prop in sorted(c.properties) or ["(safe)"]:
            tally[f"property {prop}"] += 1
        n = tally["protocols"]
        if n % 200 == 0:
            print(f"  {n} protocols, {tally['states']:,} states, "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)

    # Batches of BATCH examples, each under its own seed drawn from the printed one: one
    # long hypothesis run drifts towards small variations of what it has seen (its states
    # per protocol fall by half after a few hundred), fresh runs keep the sample diverse.
    rng = random.Random(s)
    try:
        for done in range(0, args.examples, BATCH):
            run = given(protocols(max_cpus=args.max_cpus, max_len=args.max_len))(check)
            run = settings(max_examples=min(BATCH, args.examples - done), deadline=None,
                           database=None, phases=(Phase.generate, Phase.shrink),
                           suppress_health_check=list(HealthCheck))(run)
            seed(rng.randrange(2**32))(run)()
    except AssertionError as e:
        print(f"DISAGREEMENT (seed {s}): {e}")
        for note in getattr(e, "__notes__", []):  # hypothesis's shrunk reproducer
            print(note)
        return 1
    dt = time.perf_counter() - t0
    print(f"\n{tally['protocols']} protocols ({len(distinct)} distinct) compared in {dt:.0f}s, "
          f"{tally['runs']} explorations, {tally['states']:,} states in all; everything agreed")
    for k, v in sorted(tally.items()):
        if k not in ("protocols", "states", "runs"):
            print(f"  {k:40s} {v:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
