"""Stores of visited states that trade completeness for memory: SPIN's hash-compact and
bitstate (supertrace) modes, and the breadth-first search that runs on them.

Owns: `explore_compact(system, bounds, progress, observer)` (called by `explore` when
`Bounds.store` is not "exact"), the two stores, the bit positions and their reference
`bits_add_py`, and `omission_estimate`. Imports: machine, check.verdict, check.explore (its
successor function, concretization and replay).

  hash-compact  a set of 64-bit hashes of the (canonical) states instead of the states. Two
                states with one hash are taken for one: the second is omitted, with its
                successors. Expected omissions among n states: about n^2 / 2^65. The set
                is the C port's `U64Set` (8-byte slots) when built, else `U64SetPy`.
  bitstate      a bit array of `bitstate_bits` bits; a state sets k = 3 bits chosen by
                double hashing of its 64-bit hash (Kirsch and Mitzenmacher: `bit_positions`)
                and counts as seen when all k are set already. SPIN's supertrace: a state is
                omitted with probability (1 - e^(-k a / m))^k when a states came before it
                into m bits (`omission_estimate`). The bits are set by the C port
                (`_digest.bits_add`) when it is built, else by `bits_add_py`, the
                reference; both set the same bits.

States are hashed with `machine.digest.digest` under `Bounds.hash_seed`, not with `hash()`
(salted per process for str and bytes, by address for functions): the states a search
omits, and so its counts and even its verdict on a bound, are a function of the seed and
the model alone, in any process; another seed hashes differently (a swarm of bitstate
searches with different seeds omits different states).

Neither proves anything: a search that finds no violation ends with verdict "bound" and a
stop reason saying how many states may have been omitted (`StopReason.HASH_COMPACT`,
`StopReason.BITSTATE`). A violation is real: every state has a parent link (its parent's
discovery number and the move), kept in two flat arrays, so the path to it is a path the
search took, which is concretized and replayed through `Machine.step` like the exact
store's (check/explore.py); a trail is never invented.
"""

from __future__ import annotations

import math
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

from crossmod.check.verdict import Bounds, Property, StopReason, Verdict, VerdictKind
from crossmod.machine.digest import GOLDEN, digest, mix, port
from crossmod.machine.machine import Machine, Move
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.symmetry import Canonicalizer
from crossmod.machine.system import System

STORES = ("exact", "hash-compact", "bitstate")
HASH_BITS = 64
BITSTATE_K = 3
_port = port()  # the C port in use (None unbuilt or under CROSSMOD_DIGEST_PURE=1)


class U64SetPy:
    """A set of 64-bit digests, in a Python set: the reference of the C port's `U64Set`
    (an open-addressing table of 8-byte words), which the hash-compact store uses when it
    is built."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def add(self, h: int) -> bool:
        """Record hash `h`; False when it was there already (the state counts as seen)."""
        n = len(self._seen)
        self._seen.add(h)
        return len(self._seen) != n

    def __contains__(self, h: object) -> bool:
        return h in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def nbytes(self) -> int:
        # the set's table as allocated (16-byte slots, a hash and a pointer, 36-60% full as
        # it grows), plus an int object a hash: a 64-bit value is three 30-bit digits, 36
        # bytes, 40 as pymalloc allocates them
        return sys.getsizeof(self._seen) + 40 * len(self._seen)


class HashCompact:
    """Visited states as 64-bit hashes."""

    def __init__(self) -> None:
        self._seen: Any = U64SetPy() if _port is None else _port.U64Set()

    def add(self, h: int) -> bool:
        """Record hash `h`; False when it was there already (the state counts as seen)."""
        return bool(self._seen.add(h))

    def __contains__(self, h: int) -> bool:
        return h in self._seen

    def nbytes(self) -> int:
        return int(self._seen.nbytes())


def bit_positions(h: int, m: int, k: int = BITSTATE_K) -> list[int]:
    """The k bits of an m-bit array that the state of digest `h` sets: (h + i * h2) mod m
    for i < k, with h2 = mix(h ^ GOLDEN) | 1 -- double hashing on the whole 64-bit digest
    (the first position uniform over any m < 2^64, where 32 bits of it would leave an array
    of more than 2^32 bits partly unused), h2 odd so that for m a power of two the k bits
    are distinct. The omission estimate's uniform positions are these."""
    h2 = mix(h ^ GOLDEN) | 1
    return [(h + i * h2) % m for i in range(k)]


def bits_add_py(bits: bytearray, m: int, k: int, h: int) -> bool:
    """Set the bits of digest `h` in `bits` (m bits); False when all were set (the state
    counts as seen). The reference of the C port's `bits_add`."""
    fresh = False
    for p in bit_positions(h, m, k):
        byte, bit = p >> 3, 1 << (p & 7)
        if not bits[byte] & bit:
            bits[byte] |= bit
            fresh = True
    return fresh


def bits_has_py(bits: bytearray, m: int, k: int, h: int) -> bool:
    """Whether all the bits of digest `h` are set (the C port's `bits_has`)."""
    return all(bits[p >> 3] & (1 << (p & 7)) for p in bit_positions(h, m, k))


bits_add: Callable[[bytearray, int, int, int], bool] = \
    bits_add_py if _port is None else _port.bits_add
bits_has: Callable[[bytearray, int, int, int], bool] = \
    bits_has_py if _port is None else _port.bits_has


class Bitstate:
    """Visited states as k bits each in an array of m bits (SPIN's -DBITSTATE)."""

    def __init__(self, bits: int, k: int = BITSTATE_K) -> None:
        self.m = bits
        self.k = k
        self._bits = bytearray((bits + 7) // 8)

    def add(self, h: int) -> bool:
        return bits_add(self._bits, self.m, self.k, h)

    def __contains__(self, h: int) -> bool:
        return bits_has(self._bits, self.m, self.k, h)

    def nbytes(self) -> int:
        return len(self._bits)


def omission_estimate(store: str, n: int, bits: int = 0, k: int = BITSTATE_K) -> float:
    """The expected number of states taken for seen ones without being, when `n` states
    were stored: hash-compact n(n-1)/2^65 (pairs of 64-bit hashes that collide).

    Bitstate: a state that comes after a states came (stored or omitted) finds its k bits
    set with SPIN's probability p(a) = (1 - e^(-k a / m))^k, and while the store holds i
    states, a = i + the omissions so far: an omitted state came too, and the stored ones
    are those that found a bit clear, so the array fills faster per stored state than
    k bits each. So the omissions grow by p / (1 - p) a stored state (the states that
    come until one is stored); integrated over the n stored in closed steps (midpoint, at
    most 1000). Where omission is rare this is SPIN's sum over i < n of p(i); in the
    2^14-bit array of tests/model/test_store.py, half full, it is 2.4x that sum and within
    a few per cent of what the bits omit. A full array (p = 1) is capped at p = 1 - 1e-12,
    a finite but huge estimate."""
    if store == "hash-compact":
        return n * (n - 1) / 2 ** (HASH_BITS + 1)
    if store != "bitstate" or n == 0:
        return 0.0
    steps = min(n, 1000)
    width = n / steps
    omitted = 0.0
    for j in range(steps):
        stored = j * width
        half = omitted + _odds(stored + omitted, bits, k) * width / 2
        omitted += _odds(stored + width / 2 + half, bits, k) * width
    return omitted


def _odds(came: float, bits: int, k: int) -> float:
    """p / (1 - p) for p = (1 - e^(-k came / bits))^k: the states omitted a state stored."""
    p = min((-math.expm1(-k * came / bits)) ** k, 1 - 1e-12)
    return p / (1 - p)


Progress = Callable[[int, int, int], None]


def explore_compact(system: System, bounds: Bounds, progress: Progress | None = None,
                    observer: Any = None) -> Verdict:
    """Breadth-first search as `explore` does it, on a hash-compact or bitstate store (the
    partial-order reduction's C3 proviso included: "known before this level" is asked of
    the store, so a collision can only make it expand more)."""
    from crossmod.check import explore as X

    t0 = time.perf_counter()
    m = Machine(system.config, identity=bounds.identity)
    m.narrate = observer is not None and observer.events
    canon = Canonicalizer(system.config) if (bounds.symmetry and system.config.symmetric) else None
    por = bounds.por  # as check/explore.py: the reduction decides where it applies
    ignore = bounds.ignore
    store: HashCompact | Bitstate = HashCompact() if bounds.store == "hash-compact" else \
        Bitstate(bounds.bitstate_bits)
    seed = bounds.hash_seed
    init = m.initial_state()
    if canon:
        init, _ = canon(init)
    store.add(digest(init, seed))
    # parent links: discovery number -> parent's number and the move (an index into `moves`)
    up, via = array("q", [-1]), array("q", [-1])
    moves: list[Move] = []
    move_ids: dict[Move, int] = {}
    frontier: list[tuple[tuple, int]] = [(init, 0)]
    depth, transitions = 0, 0
    # (property, the discovery number of the state it broke in, the move or None, message)
    found: tuple[Property | str, int, Move | None, str] | None = None
    stop = StopReason.EXHAUSTED
    limit: Any = None  # states, moves or seconds (a float, compiled, would make 10 10.0)
    while frontier and found is None:
        level, frontier = frontier, []
        fresh: set[int] = set()
        depth += 1
        if depth > bounds.max_depth:
            stop, limit = StopReason.STEP_BOUND, bounds.max_depth
            break
        for s, idx in level:
            mv = m.moves(s)
            if observer is not None:
                observer.expand(s, mv)
            if not mv:
                if any(cpu[STACK] for cpu in s[CPUS]) and "deadlock" not in ignore:
                    found = (Property.DEADLOCK, idx, None, "")
                    break
                continue
            amp = X._ample(m, s, mv, por)
            succ = _successors(m, canon, s, amp, store, fresh, ignore, seed)
            if len(amp) < len(mv) and (succ[2] or succ[3]):
                succ = _successors(m, canon, s, mv, store, fresh, ignore, seed)
            if succ[1] is not None:
                found = (succ[1][0], idx, succ[1][1], succ[1][2])
            transitions += len(succ[0])
            for t, h, move, events in succ[0]:
                if observer is not None:
                    observer.transition(s, move, t, events)
                if store.add(h):
                    mid = move_ids.get(move)
                    if mid is None:
                        mid = move_ids[move] = len(moves)
                        moves.append(move)
                    frontier.append((t, len(up)))
                    up.append(idx)
                    via.append(mid)
                    fresh.add(h)
            if found:
                break
            if (passed := bounds.exceeded(len(up), t0)) is not None:
                stop, limit = passed
                frontier.clear()
                break
        if progress:
            progress(len(up), transitions, depth)
    n = len(up)
    omitted = omission_estimate(bounds.store, n, bounds.bitstate_bits)
    base: dict[str, Any] = dict(protocol=system.name, variant=system.variant,
                                config=system.describe_config(), states=n,
                                transitions=transitions)
    stats = X.search_stats(m, canon, por, ignore)
    stats.update(store=bounds.store, hash_seed=seed, store_bytes=store.nbytes() + 16 * n,
                 omitted_estimate=omitted)
    if bounds.store == "bitstate":
        stats["bitstate_bits"] = bounds.bitstate_bits
        stats["hash_factor"] = bounds.bitstate_bits / max(n, 1)
    if found is None:
        if stop is StopReason.EXHAUSTED:
            stop = StopReason.HASH_COMPACT if bounds.store == "hash-compact" else \
                StopReason.BITSTATE
            limit = omitted
        msg = f"no violation found; not a proof ({bounds.store} store: states may have been " \
              "omitted)"
        if ignore:
            msg += " (ignoring " + ", ".join(sorted(ignore)) + ")"
        return Verdict(**base, verdict=VerdictKind.BOUND, property=None, message=msg,
                       depth=depth, seconds=time.perf_counter() - t0, stop_reason=stop,
                       stats=stats, stop_limit=limit)
    _, idx, last, _ = found
    path: list[Move] = [] if last is None else [last]
    while idx > 0:
        path.append(moves[via[idx]])
        idx = up[idx]
    path.reverse()
    choices, prop, message = X._concretize(m, canon, path)
    trail = X.replay_steps(m, choices)
    kind = VerdictKind.DEADLOCK if prop == Property.DEADLOCK else VerdictKind.VIOLATION
    return Verdict(**base, verdict=kind, property=prop, message=message, depth=len(trail),
                   seconds=time.perf_counter() - t0, stop_reason=StopReason.FIRST_VIOLATION,
                   counterexample=trail, stats=stats)


def _successors(m: Machine, canon: Canonicalizer | None, s: tuple, moves: list[Move],
                store: HashCompact | Bitstate, fresh: set[int], ignore: frozenset[str],
                seed: int) -> tuple[list[tuple[tuple, int, Move, tuple]],
                                    tuple[Property | str, Move, str] | None, bool, bool]:
    """check/explore.py's `_successors`, each successor with its digest under `seed`."""
    from crossmod.machine.cpu import Violation

    out: list[tuple[tuple, int, Move, tuple]] = []
    seen = cut = False
    for move in moves:
        try:
            t, events = m.step(s, move)
        except Violation as v:
            if v.prop in ignore:
                cut = True
                continue
            return out, (v.prop, move, v.message), seen, cut
        if canon:
            t, _ = canon(t, s)
        h = digest(t, seed)
        seen = seen or (h in store and h not in fresh)
        out.append((t, h, move, events))
    return out, None, seen, cut
