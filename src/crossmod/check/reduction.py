"""Partial-order reduction: persistent sets made of one reader CPU's moves.

Owns: `ample(machine, state, moves)`, the moves that alone may be explored from `state`
(all of them when no smaller persistent set is known). Imports: machine. CPU symmetry lives in
machine/symmetry.py; the explorer combines the two.

The argument (persistent sets, Godefroid 1996; ample sets, Peled 1993), for a machine whose
`readers` are declared and enforced (machine/cpu.py `_check_reader`):

1. Two readers never conflict. A reader writes only its own per-CPU variables, its own CSD
   lock and its own private state (stack, flag, fetch view, queue it dequeues); another
   reader reads none of those, and shared memory it reads (text, globals) only non-readers
   write. So any two reader moves commute and neither enables nor disables the other --
   except NMIs, which share one budget: no reduction while the budget is unspent.
2. A reader c is *ample* when every non-reader is frozen by c: it has no enabled move, and
   what it waits for can only be changed by c -- c still holds its CSD (`csd_lock_wait`),
   or c's own instance of the per-CPU variable it waits on fails the predicate (F6), or it
   waits on memory no reader can write. Then no move outside c's can ever be dependent on
   c's moves before one of c's is taken (the C1 condition): other readers are independent of
   c, and the frozen CPUs cannot move until c does.
3. Every move of c is included, so disabling within c is no issue; properties are checked
   inside the moves themselves (an assertion fires in whichever order equivalent moves
   run), and deadlocks are preserved by persistent sets.
4. A non-reader's single next op t is a persistent set too when it commutes with everything
   that can happen before it: t touches only its CPU's private state, its store buffer
   (a push: invisible until drained, and loads forward from it), or memory no reader writes
   (globals, text: a load, a serialization, a mutex), when it is the only non-reader and
   neither an IPI nor an NMI can reach it first (readers send no IPIs). Readers' moves read
   nothing t writes and write nothing t reads; the CPU's own drains commute with t.
5. Cycle proviso: the explorer expands a state fully when an ample successor is no deeper
   than the state itself; every cycle has such an edge, so every cycle of the reduced graph
   has a fully expanded state (C3, in its breadth-first form).
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
    NMIS,
    STACK,
    read,
    resolve,
)


def ample(m: Machine, state: tuple, moves: list[Move]) -> list[Move]:
    """A persistent subset of `moves`: one local op of a non-reader, else one reader's
    moves, else everything."""
    cfg = m.cfg
    if not cfg.readers or (state[NMIS] and cfg.nmi_handler is not None):
        return moves
    others = [d for d in range(cfg.ncpus) if d not in cfg.readers]
    if len(others) == 1:
        runs = [mv for mv in moves if mv[1] == "run" and mv[0] == others[0]]
        if len(runs) == 1 and _local_op(m, state, others[0]):
            return runs
    c = _ample_reader(m, state, moves, others)
    return moves if c is None else [mv for mv in moves if mv[0] == c]


_LOCAL = (O.IrqSave, O.IrqRestore, O.IrqsEnabled, O.Note, O.Warn, O.AssertHeld, O.Serialize,
          O.Store, O.StorePerCpu, O.TextStore, O.Load, O.WaitUntil, O.MutexLock, O.MutexUnlock,
          O.Fence)


def _local_op(m: Machine, state: tuple, d: int) -> bool:
    """The next op of non-reader d commutes with every reader move (point 4 above)."""
    cpu = state[CPUS][d]
    if cpu[IPI] and cpu[IRQ]:
        return False
    op = m.routines.nodes[cpu[STACK][-1][1]].op
    if op is None or not isinstance(op, _LOCAL):
        return False
    if isinstance(op, O.Load | O.WaitUntil):
        raddr = resolve(m.cfg, d, op.addr)
        return raddr[0] == "g" or raddr[1] not in m.cfg.readers
    if isinstance(op, O.TextStore):
        # A text write ends the site's "patch returned" contract, which readers' executions
        # check (property 2): it is independent of them only while no contract is live.
        return state[COMMITTED][m.cfg.sidx[op.site]] is None
    return True


def _ample_reader(m: Machine, state: tuple, moves: list[Move], others: list[int]) -> int | None:
    """The reader whose moves form a persistent set in `state`, if any (point 2 above)."""
    movers = {mv[0] for mv in moves}
    if any(d in movers for d in others):
        return None
    for c in sorted(m.cfg.readers):
        if c in movers and all(_frozen_by(m, state, d, c) for d in others):
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
        raddr = resolve(m.cfg, d, op.addr)
        return raddr[0] == "g" or raddr[1] == c or raddr[1] not in m.cfg.readers
    return tp is O.MutexLock
