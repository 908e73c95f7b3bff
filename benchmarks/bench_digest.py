"""The state digest's speed (machine/digest.py: compiled and pure Python, beside `hash()`) on
real states, and the compact stores' search speed with each.

Run: python benchmarks/bench_digest.py [--states 50000] [--seconds 30] [--protocol defer-cr3]
     [--cpus 3]
Prints two markdown tables. Digest: CPU microseconds per state (`time.process_time`, best
of three passes over the first N canonical states of a breadth-first walk; the pure-Python
reference over a tenth of them). Search: `explore` with `Bounds(store=..., max_seconds=T)`,
its digest function swapped for `hash()` (what check/store.py used before), the compiled
digest and the reference, states stored and states per CPU second.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable

import crossmod.check.store as store
from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.check.verdict import Bounds
from crossmod.machine import digest as D
from crossmod.machine.machine import Machine
from crossmod.machine.symmetry import Canonicalizer

MASK = (1 << 64) - 1


def old_hash(t: object, seed: int) -> int:
    """check/store.py before the digest: Python's hash, salted per process."""
    return hash(t) & MASK


def states_of(protocol: str, cpus: int, limit: int) -> list[tuple]:
    system = build(protocol, "default", cpus=cpus)
    m, canon = Machine(system.config), Canonicalizer(system.config)
    init, _ = canon(m.initial_state())
    seen, queue = {init: None}, collections.deque([init])
    while queue and len(seen) < limit:
        s = queue.popleft()
        for mv in m.moves(s):
            try:
                t, _ = m.step(s, mv)
            except Exception:  # a violating move
                continue
            t, _ = canon(t, s)
            if t not in seen:
                seen[t] = None
                queue.append(t)
    return list(seen)


def per_state_us(fn: Callable[[object, int], int], states: list[tuple]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for s in states:
            fn(s, 0)
        best = min(best, time.process_time() - t0)
    return best / len(states) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="defer-cr3")
    ap.add_argument("--cpus", type=int, default=3)
    ap.add_argument("--states", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    compiled = D.compiled()
    states = states_of(a.protocol, a.cpus, a.states)
    nodes = sum(1 for s in states for _ in _nodes(s)) / len(states)
    print(f"{a.protocol} --cpus {a.cpus}: {len(states):,} states, {nodes:.0f} nodes a state "
          f"(tuples, frozensets and leaves)\n")
    print("| digest | CPU us/state | vs hash() |\n|---|---:|---:|")
    base = per_state_us(old_hash, states)
    rows: list[tuple[str, Callable[[object, int], int], list[tuple]]] = [
        ("hash() (before)", old_hash, states)]
    if compiled is not None:
        rows.append(("digest, compiled", compiled.digest, states))
    rows.append(("digest, pure Python", D.digest_py, states[::10]))
    for name, fn, sample in rows:
        us = base if fn is old_hash else per_state_us(fn, sample)
        print(f"| {name} | {us:.2f} | {us / base:.2f}x |")
    print("\n| store | digest | verdict | states | CPU s | states/CPU s |\n"
          "|---|---|---|---:|---:|---:|")
    system = build(a.protocol, "default", cpus=a.cpus)
    fns = [("hash() (before)", old_hash)]
    if compiled is not None:
        fns.append(("compiled", compiled.digest))
    fns.append(("pure Python", D.digest_py))
    for kind in ("bitstate", "hash-compact"):
        for name, fn in fns:
            store.digest = fn  # type: ignore[assignment]
            t0 = time.process_time()
            v = explore(system, Bounds(store=kind, max_seconds=a.seconds))
            cpu = time.process_time() - t0
            print(f"| {kind} | {name} | {v.verdict} ({v.stop_reason}) | {v.states:,} | "
                  f"{cpu:.1f} | {v.states / cpu:,.0f} |")


def _nodes(x: object) -> list[object]:
    if isinstance(x, tuple | frozenset):
        return [x, *(y for e in x for y in _nodes(e))]
    return [x]


if __name__ == "__main__":
    main()
