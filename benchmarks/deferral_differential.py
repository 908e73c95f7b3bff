"""The reader declaration of the deferral protocols against the plain walk, on a grid.

Run: python benchmarks/deferral_differential.py [--cpus 2,3] [--limit 100000]

Every variant of defer-none, defer-cr3 and defer-ct, under every combination of NMI budget
(0, 1), system calls (0, 1), text patch and vmalloc purge (at least one), at 2 and 3 CPUs:
`tests.model.randomproto.compare_system` checks that each property the plain walk of the
machine can break is found alone by the reduced search (the isolated CPUs are readers,
check/reduction.py), in as few moves, and that ignoring them all the reduced search is safe.
Configurations whose plain walk passes `--limit` states are listed and skipped.
tests/model/test_deferral.py runs a part of this grid.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.model.randomproto import TooLarge, compare_system

from crossmod.catalogue import build
from crossmod.catalogue.deferral import POLICIES, VARIANT_PARAMS
from crossmod.catalogue.params import CatalogueError


def grid(cpus: tuple[int, ...]) -> list[tuple[str, str, dict]]:
    out = []
    for proto, variants in POLICIES.items():
        for variant in variants:
            for n, nmis, syscalls, patch, vmalloc in itertools.product(
                    cpus, (0, 1), (0, 1), (True, False), (True, False)):
                if patch or vmalloc:
                    knobs = {**VARIANT_PARAMS.get(proto, {}).get(variant, {}), "cpus": n,
                             "nmis": nmis, "syscalls": syscalls, "patch": patch,
                             "vmalloc": vmalloc}
                    out.append((proto, variant, knobs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpus", default="2,3")
    ap.add_argument("--limit", type=int, default=100_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    agreed = skipped = states = 0
    seen: set[str] = set()
    for proto, variant, knobs in grid(tuple(int(c) for c in args.cpus.split(","))):
        try:
            system = build(proto, variant, **knobs)
        except CatalogueError:
            continue
        if (key := f"{proto} {variant} {system.describe_config()}") in seen:
            continue  # a knob the variant pins (VARIANT_PARAMS) gave one configuration twice
        seen.add(key)
        try:
            c = compare_system(lambda p=proto, v=variant, k=knobs: build(p, v, **k), args.limit)
        except TooLarge:
            skipped += 1
            print(f"  too large: {key}")
            continue
        agreed += 1
        states += c.states
        found = sorted(map(str, c.properties)) or "safe"
        print(f"ok {key}: {found}, plain walk {c.reference_states} states", flush=True)
    print(f"{agreed} configurations agree ({states:,} states explored), {skipped} too large, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
