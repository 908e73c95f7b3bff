"""Partial-order reduction: persistent sets made of one reader CPU's moves, or of one CPU's
private op.

Owns: `ample(machine, state, moves)`, the moves that alone may be explored from `state`
(all of them when no smaller persistent set is known). Imports: machine. CPU symmetry lives in
machine/symmetry.py; the explorer combines the two.

The argument (persistent sets, Godefroid 1996; ample sets, Peled 1993). It assumes what
`MachineConfig.readers` promises, and each assumption is enforced where named:

A. A reader writes only its own private state (stack, interrupt flag, fetch views, the queue
   it dequeues), its own instances of per-CPU variables, and its own CSD unlocks; it reads
   no other reader's per-CPU variables, sends no IPI, patches no text, takes no mutex and
   frees nothing (machine/cpu.py `_check_reader`, a ModelError on the first op that breaks
   it; `Ghost` ops write only their own CPU's per-CPU variables, for every CPU). What a
   reader reads of shared memory (text, globals, non-readers' per-CPU variables) only
   non-readers write.

Then:

1. Two readers never conflict: any two reader moves (runs, drains, IPIs taken, TLB fills)
   commute and neither enables nor disables the other -- except NMIs, which share one
   budget: taking one may disable every other CPU's (`Machine.moves`).
1b. So while an NMI is left, a set holding c's NMI move is persistent only if no other CPU
   can ever take one (`nmi_cpus` is c alone); a set of c's moves without it only if c
   cannot take one now (inside its NMI, outside its `nmi_regions`, not in `nmi_cpus`),
   which no other CPU's move can change: the budget only shrinks, and the rest is c's
   stack. Other readers' NMIs and the handlers they run are reader moves (A is checked
   in every context), independent of c's. Points 2 and 4 below apply under these terms;
   a non-reader that can take an NMI has an enabled move, so it is not frozen (2), and the
   only non-reader's local op is not taken alone while its own NMI is enabled (4).
2. A reader c is *ample* when every non-reader is frozen by c: it has no enabled move, and
   what it waits for can only be changed by c -- c still holds its CSD (`csd_lock_wait`),
   or c's own instance of the per-CPU variable it waits on fails the predicate (F6), or it
   waits on memory no reader but c can write (it stays frozen until c moves; for a
   `WaitAll`, every address it reads). Then no move
   outside c's can become dependent on c's moves before one of c's is taken (C1): other
   readers are independent of c (point 1), and the frozen CPUs cannot move until c does.
3. Every move of c is included, so disabling within c is no issue; properties are checked
   inside the moves themselves (an assertion fires in whichever order equivalent moves
   run), and deadlocks are preserved by persistent sets.
4. The next op t of the only non-reader d is a persistent set by itself when it commutes
   with every move that can happen before it: readers' moves, and d's own drains and TLB
   fills (no IPI can reach d first: readers send none and d is the only other sender, and
   no NMI is left). Whether t commutes depends on the memory model, because it decides
   when a store becomes visible:
     `Store`, `StorePerCpu`, `TextStore`  under tso and pso they only append to d's store
        buffer (loads forward from it; a drain of an older entry commutes with the push,
        and d's own fetch view is widened alike in both orders); under sc they reach
        memory -- readers' loads and fetches -- at once, so they are never taken alone;
        a text write also ends a live "patch returned" contract, which readers' executions
        check (property 2): it is independent of them only while no contract is live.
     `Load`, `WaitUntil`, `WaitAll`  of globals or non-readers' per-CPU variables (every
        address a `WaitAll` reads), which no reader writes (A); never of d's own TLB, which
        d's page walker fills.
     `Serialize`, `Fence`   enabled only when they need nothing of the buffer, they touch
        d's fetch views (from text only non-readers write) or push a pso write-barrier
        marker onto d's own buffer.
     `IrqSave`, `IrqRestore`, `IrqsEnabled`, `Note`, `Warn`, `AssertHeld`  d's own flag
        and program position; the mutex an assertion reads no reader writes (A).
   Every other op (locked RMWs, mutexes -- their writes reach memory at once, and readers
   may read them -- CSD queueing and waiting, bare IPIs, `PatchReturned`, executions, TLB
   and CR3 ops, checks, `Choose`, `ReadText`) is explored with everything else.
5. Cycle proviso: the explorer expands a state fully when an ample successor is no deeper
   than the state itself; every cycle has such an edge, so every cycle of the reduced graph
   has a fully expanded state (C3, in its breadth-first form) and no move is postponed
   forever.
6. Ignored properties (`Bounds.ignore`): a move that breaks one is cut, as if disabled. The
   independence of point 4 already counts a violation as an effect (two moves commute only
   if each breaks a property in both orders or in neither), so a persistent set stays
   persistent in the graph with cut moves removed -- except that a cut move of the set
   stays cut along every path that avoids the set, and the set may then offer nothing
   where the full graph goes on. The explorer therefore expands a state fully when a move
   of its ample set is cut (C2: such moves are visible).
7. Any CPU d (reader or not, any configuration) whose next op is private, when nothing can
   interrupt d before it: its IRQs are off (or there is no IPI handler) and it cannot
   take an NMI now (1b). Private: `IrqSave`, and under tso and pso a `Store` or
   `StorePerCpu` (it only appends to d's buffer, which no other CPU reads; a drain of an
   older entry commutes with it, as in 4) or a pso `smp_wmb` marker. The move also runs
   the invisible ops after the op (`Machine._run_invisible`): they touch d's own flag,
   position and, by `Ghost`'s contract, per-CPU state nobody else reads -- except
   `lockdep_assert_held`, whose outcome another CPU's unlock can change while d holds the
   mutex; so no global may hold d's number (`_may_hold`). Then the op commutes with every
   move other CPUs can make before it, and d's other moves (drains, TLB fills) too:
   a persistent set of one move. `TextStore` is not private (it widens d's fetch view
   from text memory, which other CPUs' drains change), nor are loads (no engine knows
   what other CPUs may yet write).

The lasting guard is differential: tests/model/test_differential.py compares, on random
protocols under every memory model (with and without readers, NMI budgets of 0-2), the
set of properties the search can reach -- one at a time, ignoring the others -- with the
reduction on and off against a plain walk.
"""

from __future__ import annotations

from crossmod.machine import ops as O
from crossmod.machine.machine import Machine, Move
from crossmod.machine.state import (
    COMMITTED,
    CPUS,
    IPI,
    IRQ,
    LOCKED,
    MEM,
    NMIS,
    STACK,
    MachineConfig,
    read,
    resolve,
)


def ample(m: Machine, state: tuple, moves: list[Move]) -> list[Move]:
    """A persistent subset of `moves`: one local op of a non-reader, else one reader's
    moves, else one CPU's buffered store (point 7), else everything."""
    cfg = m.cfg
    nmi = bool(state[NMIS]) and cfg.nmi_handler is not None
    if cfg.readers:
        others, readers = _roles(cfg)
        if len(others) == 1:
            d = others[0]
            runs = [mv for mv in moves if mv[1] == "run" and mv[0] == d]
            if len(runs) == 1 and not (nmi and (d, "nmi", 0) in moves) \
                    and _local_op(m, state, d):
                return runs
        c = _ample_reader(m, state, moves, others, readers, nmi)
        if c is not None:
            return [mv for mv in moves if mv[0] == c]
    return _buffered_store(m, state, moves) or moves


_ROLES: dict[int, tuple[MachineConfig, list[int], list[int]]] = {}


def _roles(cfg: MachineConfig) -> tuple[list[int], list[int]]:
    """(the non-readers, the readers in order) of `cfg`, computed once per configuration
    (the entry holds `cfg`, so no other object can take its id while the entry lives)."""
    e = _ROLES.get(id(cfg))
    if e is None:
        if len(_ROLES) >= 64:
            _ROLES.clear()
        e = _ROLES[id(cfg)] = (cfg, [d for d in range(cfg.ncpus) if d not in cfg.readers],
                               sorted(cfg.readers))
    return e[1], e[2]


_LOCAL = (O.IrqSave, O.IrqRestore, O.IrqsEnabled, O.Note, O.Warn, O.AssertHeld, O.Serialize,
          O.Store, O.StorePerCpu, O.TextStore, O.Load, O.WaitUntil, O.WaitAll, O.Fence)
_BUFFERED = (O.Store, O.StorePerCpu, O.TextStore)


def _local_op(m: Machine, state: tuple, d: int) -> bool:
    """The next op of non-reader d commutes with every move that can precede it (point 4)."""
    cpu = state[CPUS][d]
    if cpu[IPI] and cpu[IRQ]:
        return False
    op = m.routines.nodes[cpu[STACK][-1][1]].op
    if op is None or not isinstance(op, _LOCAL):
        return False
    cfg = m.cfg
    if isinstance(op, _BUFFERED) and cfg.memory == "sc":
        return False  # visible to every CPU at once: never independent of readers
    if isinstance(op, O.Load | O.WaitUntil):
        return _no_reader_writes(m, d, resolve(cfg, d, op.addr))
    if isinstance(op, O.WaitAll):
        return all(_no_reader_writes(m, d, resolve(cfg, d, a)) for a in op.addrs)
    if isinstance(op, O.TextStore):
        return state[COMMITTED][cfg.sidx[op.site]] is None
    return True


def _no_reader_writes(m: Machine, d: int, raddr: tuple) -> bool:
    """No move before non-reader d's next one can change what d reads at `raddr`: a global
    or a non-reader's per-CPU variable (A), other than d's own TLB (its page walker's)."""
    if raddr[0] == "g":
        return True
    cfg = m.cfg
    return raddr[1] not in cfg.readers and not (cfg.tlb_vas and raddr[1] == d
                                                and raddr[2] == cfg.pidx.get("tlb"))


def _ample_reader(m: Machine, state: tuple, moves: list[Move], others: list[int],
                  readers: list[int], nmi: bool) -> int | None:
    """The reader whose moves form a persistent set in `state`, if any (points 2, 1b)."""
    movers = {mv[0] for mv in moves}
    if any(d in movers for d in others):
        return None
    for c in readers:
        if c in movers and all(_frozen_by(m, state, d, c) for d in others) \
                and not (nmi and (c, "nmi", 0) in moves and not _nmi_cpus(m.cfg) <= {c}):
            return c
    return None


def _frozen_by(m: Machine, state: tuple, d: int, c: int) -> bool:
    """Non-reader d, which has no enabled move, cannot move until reader c does."""
    stack = state[CPUS][d][STACK]
    if not stack:
        return True  # idle: only an IPI (sent by non-readers) or an NMI (none left) wakes it
    op = m.routines.nodes[stack[-1][1]].op
    if op is None:
        return True  # a return waiting for its own store buffer would have a drain move
    tp = type(op)
    if tp is O.CsdLockWait or tp is O.CsdQueue:
        return d in state[CPUS][c][LOCKED]
    if tp is O.WaitPerCpu:
        return not op.pred(read(state, d, ("p", c, m.cfg.pidx[op.name])))
    if tp is O.WaitUntil:
        return _only_c_writes(m, c, resolve(m.cfg, d, op.addr))
    if tp is O.WaitAll:
        return all(_only_c_writes(m, c, resolve(m.cfg, d, a)) for a in op.addrs)
    return tp is O.MutexLock


def _only_c_writes(m: Machine, c: int, raddr: tuple) -> bool:
    """Of the readers, only c can write `raddr` (frozen non-readers write nothing)."""
    return raddr[0] == "g" or raddr[1] == c or raddr[1] not in m.cfg.readers


def _buffered_store(m: Machine, state: tuple, moves: list[Move]) -> list[Move] | None:
    """The run of a CPU whose next op is private to it and which nothing can interrupt
    before that op (point 7), as a persistent set by itself."""
    cfg = m.cfg
    cpus = state[CPUS]
    nodes = m.routines.nodes
    for mv in moves:
        if mv[1] != "run":
            continue
        d = mv[0]
        cpu = cpus[d]
        op = nodes[cpu[STACK][-1][1]].op
        tp = type(op)
        if not (tp is O.IrqSave or (cfg.memory != "sc" and (
                tp is O.Store or tp is O.StorePerCpu
                or (tp is O.Fence and op.kind == "wmb" and cfg.memory == "pso")))):
            continue
        if (cpu[IRQ] and cfg.ipi_handler is not None) or (d, "nmi", 0) in moves \
                or _may_hold(state, d):
            continue
        return [mv]
    return None


def _may_hold(state: tuple, d: int) -> bool:
    """Some global holds the number d: a mutex d may hold, which another CPU's unlock could
    release before a `lockdep_assert_held` in the invisible ops after d's op (point 7)."""
    return any(type(v) is int and v == d for v in state[MEM])


def _nmi_cpus(cfg: MachineConfig) -> frozenset[int]:
    return frozenset(range(cfg.ncpus) if cfg.nmi_cpus is None else cfg.nmi_cpus)
