"""CPU symmetry: renumber interchangeable CPUs into a canonical order.

Owns: `canonical(cfg, state)` -> (state', perm) where perm[old] = new. Two states that
differ only by a renumbering of CPUs inside one symmetry class map to one representative
(the "scalarset" reduction of Murphi and SPIN's symmetry work). Imports: machine.state.

Soundness rests on the transition system being invariant under the renumbering: the CPUs
of a class run the same task, and no routine holds a class member's number (ops address
per-CPU data as `this_cpu`, and the machine itself renumbers every CPU number it keeps:
store-buffer addresses, CSD senders and locks, and variables listed in `cpu_valued`).
The permutation is chosen by sorting the class members' own state; when a member's state
mentions another member the order may not be the canonical minimum, which costs reduction,
never soundness, since the state is renumbered consistently everywhere.
"""

from __future__ import annotations

from typing import Any

from crossmod.machine.state import (
    CPUS,
    CSDQ,
    LOCKED,
    MEM,
    PERCPU,
    RUNNING,
    SB,
    MachineConfig,
)


class Canonicalizer:
    """Chooses orbit representatives. CPU states are ordered by the order in which they were
    first seen (an interning table): a total order on states that does not depend on Python's
    per-process string hashing, so runs are reproducible."""

    def __init__(self, cfg: MachineConfig) -> None:
        self.cfg = cfg
        self._rank: dict[tuple, int] = {}
        self._cpu_pidx = [cfg.pidx[n] for n in cfg.cpu_valued if n in cfg.pidx]

    def _key(self, cpu: tuple) -> int:
        r = self._rank.get(cpu)
        if r is None:
            r = self._rank[cpu] = len(self._rank)
        return r

    def __call__(self, state: tuple, parent: tuple | None = None
                 ) -> tuple[tuple, tuple[int, ...] | None]:
        """`parent`, when given, is a representative `state` was reached from: if the move
        left every interchangeable CPU's tuple untouched, `state` is one already."""
        cpus = state[CPUS]
        if parent is not None:
            pc = parent[CPUS]
            if all(cpus[c] is pc[c] for cls in self.cfg.symmetric for c in cls):
                return state, None
        rank = self._rank
        perm = None
        for cls in self.cfg.symmetric:
            keys = []
            for c in cls:
                r = rank.get(cpus[c])
                if r is None:
                    r = rank[cpus[c]] = len(rank)
                keys.append(r)
            if all(keys[i] <= keys[i + 1] for i in range(len(keys) - 1)):
                continue
            order = sorted(range(len(cls)), key=keys.__getitem__)
            if perm is None:
                perm = list(range(len(cpus)))
            for new, i in zip(cls, order, strict=True):
                perm[cls[i]] = new
        if perm is None:
            return state, None
        p = tuple(perm)
        return permute(self.cfg, state, p), p


def canonical(cfg: MachineConfig, state: tuple, key: Any) -> tuple[tuple, tuple[int, ...] | None]:
    """The representative of `state`'s symmetry orbit and the renumbering that gives it
    (None when the state already is its representative)."""
    cpus = state[CPUS]
    perm = list(range(len(cpus)))
    moved = False
    for cls in cfg.symmetric:
        order = sorted(cls, key=lambda c: key(cpus[c]))
        for new, old in zip(cls, order, strict=True):
            if new != old:
                perm[old] = new
                moved = True
    if not moved:
        return state, None
    p = tuple(perm)
    return permute(cfg, state, p), p


def permute(cfg: MachineConfig, state: tuple, p: tuple[int, ...]) -> tuple:
    """`state` with CPU k renamed p[k] everywhere."""
    cpus = state[CPUS]
    out: list[Any] = [None] * len(cpus)
    cpu_pidx = [cfg.pidx[n] for n in cfg.cpu_valued if n in cfg.pidx]
    moved = frozenset(i for i, x in enumerate(p) if x != i)
    for old, cpu in enumerate(cpus):
        out[p[old]] = _permute_cpu(cpu, p, cpu_pidx) if _names(cpu, moved, cpu_pidx) else cpu
    mem = state[MEM]
    gi = [cfg.gidx[n] for n in cfg.cpu_valued if n in cfg.gidx]
    if gi:
        mem = list(mem)
        for i in gi:
            mem[i] = _renumber(mem[i], p)
        mem = tuple(mem)
    return (mem, state[1], tuple(out), state[3], state[4])


def _names(cpu: tuple, moved: frozenset[int], cpu_pidx: list[int]) -> bool:
    """Whether a CPU's state mentions a renumbered CPU (else it is kept as it is)."""
    if cpu_pidx or not moved.isdisjoint(cpu[LOCKED]) or not moved.isdisjoint(cpu[RUNNING]):
        return True
    if any(e[0] in moved for e in cpu[CSDQ]):
        return True
    return any(a[0] in ("p", "c") and a[1] in moved for a, _ in cpu[SB])


def _permute_cpu(cpu: tuple, p: tuple[int, ...], cpu_pidx: list[int]) -> tuple:
    cl = list(cpu)
    if cl[SB]:
        cl[SB] = tuple((_renumber_addr(a, p), v) for a, v in cl[SB])
    if cl[CSDQ]:
        cl[CSDQ] = tuple((p[s], f, a, y) for s, f, a, y in cl[CSDQ])
    if cl[LOCKED]:
        cl[LOCKED] = frozenset(p[s] for s in cl[LOCKED])
    if cl[RUNNING]:
        cl[RUNNING] = tuple(p[s] for s in cl[RUNNING])
    if cpu_pidx:
        pc = list(cl[PERCPU])
        for i in cpu_pidx:
            pc[i] = _renumber(pc[i], p)
        cl[PERCPU] = tuple(pc)
    return tuple(cl)


def _renumber_addr(a: tuple, p: tuple[int, ...]) -> tuple:
    if a[0] == "p":
        return ("p", p[a[1]], a[2])
    if a[0] == "c":
        return ("c", p[a[1]])
    return a


def _renumber(v: Any, p: tuple[int, ...]) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return p[v]
    if isinstance(v, frozenset):
        return frozenset(p[x] for x in v)
    return v
