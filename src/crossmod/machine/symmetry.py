"""CPU symmetry: renumber interchangeable CPUs into a canonical order.

Owns: `Canonicalizer(cfg)(state)` -> (state', perm) where perm[old] = new, and `permute`.
Two states that differ only by a renumbering of CPUs inside one symmetry class map to one
representative (the "scalarset" reduction of Murphi and SPIN's symmetry work). Imports:
machine.state.

The soundness argument, and what enforces each assumption:

1. The transition system is invariant under renumbering the CPUs of a class: the members
   run the same task with the same per-CPU initial values and the same NMI and reader
   status (checked by `MachineConfig`), and no routine holds a member's number (ops
   address per-CPU data as `this_cpu`; `CsdDequeueAll` hands out queue indices, never
   senders; a member that asks `SmpProcessorId` is a ModelError, machine/cpu.py). Every
   CPU number the machine itself keeps is renamed by `permute`: store-buffer addresses
   (`("p", cpu, i)`, `("c", sender)`), CSD senders and locks, the senders being run, and
   the variables listed in `cpu_valued`. So `permute(s)` is a state
   of the same machine and its successors are the renamed successors of `s`.
2. Storing any member of an orbit instead of the state itself is then sound: the search
   from it reaches the renamed images of everything reachable from the state, and every
   property is invariant under renaming. Canonicity only decides how much is merged.
3. The representative: each member's *sort key* is its CPU state with its own number
   written as "self" and the numbers of CPUs of any class written as that class (numbers
   of CPUs outside every class are fixed by every renumbering and kept), plus, for each
   `cpu_valued` global, whether it names the member. A renumbering moves a member's key
   with the member, so sorting the members by key and renaming them into that order gives
   every state of an orbit one representative, except where equal keys hide a difference
   in how members mention one another (the CPU tuples of two tied members differ only
   through a peer); then two representatives of one orbit may both be stored: fewer
   states merged, never a wrong verdict (point 2).
4. `explore` maps a representative path back onto real CPU numbers by composing the
   renumberings it chose, move by move (check/explore.py `_concretize`), never by
   canonicalizing a concrete state afresh (point 3: that need not give the stored
   representative).
"""

from __future__ import annotations

from collections.abc import Callable
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
    """Chooses orbit representatives (point 3 above). Abstract keys are ranked in the order
    they are first seen (an interning table): a total order that does not depend on Python's
    per-process string hashing, so runs are reproducible.

    The hot path looks a CPU tuple up by its identity (`id`), not by value: hashing a nested
    tuple walks all of it (Python tuples do not cache their hash), and the machine hands
    the same tuple object to many states (it hash-conses them: `Machine.cpu_tuples`). The
    identity tables keep every tuple they know alive (`_alive`), so no other object can
    take its id while they know it: an id they hold names one object, and one value."""

    def __init__(self, cfg: MachineConfig,
                 rank: Callable[[tuple], Any] | None = None) -> None:
        self.cfg = cfg
        # how an abstract key (`_abstract`) is ranked: by first sight unless told otherwise
        # (the parallel search ranks by content, which every process computes alike)
        self._rank_fn = rank
        self.classes = cfg.symmetric
        self._class_of = {k: i for i, cls in enumerate(cfg.symmetric) for k in cls}
        self._rank: dict[tuple[int, tuple], Any] = {}  # (cpu number, cpu state) -> rank
        self._abstract_rank: dict[tuple, int] = {}
        self._cpu_pidx = [cfg.pidx[n] for n in cfg.cpu_valued if n in cfg.pidx]
        self._cpu_gidx = [cfg.gidx[n] for n in cfg.cpu_valued if n in cfg.gidx]
        self._members = tuple(c for cls in cfg.symmetric for c in cls)
        self._member_set = frozenset(self._members)
        self._named: dict[tuple, dict[int, tuple]] = {}  # CPU-valued globals -> named
        self._moved: dict[tuple[int, ...], frozenset[int]] = {}
        # Identity tables: by CPU number, id(cpu tuple) -> its rank as that CPU; id(cpu
        # tuple) -> whether it names a class member. `_alive` holds every tuple they know,
        # so that no other object can take its id while they know it; all are cleared at
        # once.
        self._rank_id: list[dict[int, Any]] = [{} for _ in range(cfg.ncpus)]
        self._mentions_id: dict[int, bool] = {}
        self._alive: dict[int, tuple] = {}
        # where the renumbered CPU tuples are hash-consed (the machine's `cpu_tuples`), if
        # anywhere: equal tuples are then one object for every identity table
        self.intern: dict[tuple, tuple] | None = None

    def __call__(self, state: tuple, parent: tuple | None = None
                 ) -> tuple[tuple, tuple[int, ...] | None]:
        """`parent`, when given, is a representative `state` was reached from: if the move
        left every interchangeable CPU's tuple and every CPU-valued global untouched, the
        keys are the parent's, already in order, and `state` is a representative too."""
        if parent is not None and self._untouched(state, parent):
            return state, None
        p = self._choose(state[CPUS], state[MEM])
        if p is None:
            return state, None
        return self._permute(state, p), p

    def _adopt(self, cpu: tuple) -> None:
        """Let the identity tables know `cpu` (see `_alive`)."""
        if len(self._alive) >= PERM_ENTRIES:
            self._alive.clear()  # bounds memory; a miss recomputes the same answer
            self._mentions_id.clear()
            for table in self._rank_id:
                table.clear()
        self._alive[id(cpu)] = cpu

    def _permute(self, state: tuple, p: tuple[int, ...]) -> tuple:
        """`permute`, with what it needs of the configuration computed once."""
        cpus = state[CPUS]
        out: list[Any] = [None] * len(cpus)
        mentions = self._mentions_id
        for old, cpu in enumerate(cpus):
            named = mentions.get(id(cpu))
            if named is None:
                if id(cpu) not in self._alive:
                    self._adopt(cpu)
                named = mentions[id(cpu)] = _names(cpu, self._member_set, self._cpu_pidx)
            out[p[old]] = self._permute_named(cpu, p) if named else cpu
        mem = state[MEM]
        if self._cpu_gidx:
            ml = list(mem)
            for i in self._cpu_gidx:
                ml[i] = _map_value(ml[i], p.__getitem__)
            mem = tuple(ml)
        return (mem, state[1], tuple(out), state[3], state[4])

    def _permute_named(self, cpu: tuple, p: tuple[int, ...]) -> tuple:
        moved = self._moved.get(p)
        if moved is None:
            moved = self._moved[p] = frozenset(i for i, x in enumerate(p) if x != i)
        cpu_pidx = self._cpu_pidx
        if not (cpu_pidx or cpu[SB] or cpu[CSDQ] or cpu[LOCKED] or cpu[RUNNING]) or \
                not _names(cpu, moved, cpu_pidx):
            return cpu
        t = _permute_cpu(cpu, p, cpu_pidx)
        return t if self.intern is None else self.intern.setdefault(t, t)

    def _choose(self, cpus: tuple, mem: tuple) -> tuple[int, ...] | None:
        named: dict[int, tuple] = _NO_NAMES
        if self._cpu_gidx:
            gvals = tuple([mem[i] for i in self._cpu_gidx])
            got = self._named.get(gvals)
            if got is None:
                if len(self._named) >= PERM_ENTRIES:
                    self._named.clear()
                got = self._named[gvals] = self._named_members(mem)
            named = got
        perm: list[int] | None = None
        rank_id = self._rank_id
        for cls in self.classes:
            keys: list[Any] = [rank_id[c].get(id(cpus[c])) for c in cls]
            if None in keys:
                keys = [self._rank_of(c, cpus[c]) for c in cls]
            if named:
                keys = [(r, named.get(c, ())) for r, c in zip(keys, cls, strict=True)]
            if keys == sorted(keys):
                continue
            order = sorted(range(len(cls)), key=keys.__getitem__)
            if perm is None:
                perm = list(range(len(cpus)))
            for new, i in zip(cls, order, strict=True):
                perm[cls[i]] = new
        return None if perm is None else tuple(perm)

    def _untouched(self, state: tuple, parent: tuple) -> bool:
        cpus, pc = state[CPUS], parent[CPUS]
        for c in self._members:
            if cpus[c] is not pc[c]:
                return False
        mem, pm = state[MEM], parent[MEM]
        return mem is pm or all(mem[i] == pm[i] for i in self._cpu_gidx)

    def _rank_of(self, c: int, cpu: tuple) -> Any:
        """CPU c's rank (`_rank_key`), through the identity table."""
        r = self._rank_id[c].get(id(cpu))
        if r is None:
            if id(cpu) not in self._alive:
                self._adopt(cpu)
            r = self._rank_id[c][id(cpu)] = self._rank_key(c, cpu)
        return r

    def _rank_key(self, c: int, cpu: tuple) -> Any:
        """A member's sort key, the part told by its own tuple: the rank of its abstract
        form (point 3), by value."""
        k = (c, cpu)
        r = self._rank.get(k)
        if r is None:
            a = self._abstract(c, cpu)
            if self._rank_fn is not None:
                r = self._rank_fn(a)
            else:
                r = self._abstract_rank.get(a)
                if r is None:
                    r = self._abstract_rank[a] = len(self._abstract_rank)
            self._rank[k] = r
        return r

    def _named_members(self, mem: tuple) -> dict[int, tuple]:
        """For each class member a `cpu_valued` global names: which globals name it."""
        if not self._cpu_gidx:
            return {}
        out: dict[int, tuple] = {}
        for c in self._class_of:
            hits = tuple(j for j, i in enumerate(self._cpu_gidx) if _names_cpu(mem[i], c))
            if hits:
                out[c] = hits
        return out

    def _abstract(self, c: int, cpu: tuple) -> tuple:
        """CPU c's state with CPU numbers written relative to c (point 3 above)."""
        class_of = self._class_of

        def num(k: int) -> Any:
            if k == c:
                return "self"
            return ("class", class_of[k]) if k in class_of else k

        cl = list(cpu)
        cl[SB] = tuple((_map_addr(a, num), v) for a, v in cpu[SB])
        cl[CSDQ] = tuple((num(s), f, a, y) for s, f, a, y in cpu[CSDQ])
        cl[LOCKED] = tuple(sorted((num(s) for s in cpu[LOCKED]), key=repr))
        cl[RUNNING] = tuple(num(s) for s in cpu[RUNNING])
        if self._cpu_pidx:
            pc = list(cpu[PERCPU])
            for i in self._cpu_pidx:
                pc[i] = _map_value(pc[i], num)
            cl[PERCPU] = tuple(pc)
        return tuple(cl)


PERM_ENTRIES = 1 << 20
_NO_NAMES: dict[int, tuple] = {}


def _names_cpu(v: Any, c: int) -> bool:
    if isinstance(v, bool) or v is None:
        return False
    if isinstance(v, int):
        return v == c
    return isinstance(v, frozenset) and c in v


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
            mem[i] = _map_value(mem[i], p.__getitem__)
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
    f = p.__getitem__
    if cl[SB]:
        cl[SB] = tuple((_map_addr(a, f), v) for a, v in cl[SB])
    if cl[CSDQ]:
        cl[CSDQ] = tuple((p[s], fn, a, y) for s, fn, a, y in cl[CSDQ])
    if cl[LOCKED]:
        cl[LOCKED] = frozenset(p[s] for s in cl[LOCKED])
    if cl[RUNNING]:
        cl[RUNNING] = tuple(p[s] for s in cl[RUNNING])
    if cpu_pidx:
        pc = list(cl[PERCPU])
        for i in cpu_pidx:
            pc[i] = _map_value(pc[i], f)
        cl[PERCPU] = tuple(pc)
    return tuple(cl)


def _map_addr(a: tuple, f: Any) -> tuple:
    """A store-buffer address with its CPU number (a per-CPU instance's owner, a CSD's
    sender) mapped through f."""
    if a[0] == "p":
        return ("p", f(a[1]), a[2])
    if a[0] == "c":
        return ("c", f(a[1]))
    return a


def _map_value(v: Any, f: Any) -> Any:
    """A `cpu_valued` variable's value (a CPU number or a cpumask) mapped through f."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return f(v)
    if isinstance(v, frozenset):
        return frozenset(f(x) for x in v)
    return v
