"""The SMP machine: its moves and its deterministic step function.

Owns: `Machine.moves(state)` -- every choice enabled in a state (which CPU runs, which stale
bytes a fetch sees, which store drains, when a pending IPI or an NMI is taken) -- and
`Machine.step(state, move)`, the single place where an op is applied and the next choice is
offered (loom's `branch()`); a step reports what happened as events (machine/events.py).
Imports: machine.*; knows no protocol and no engine. Unnarrated, a step and a CPU's moves
go through memo tables (`_quiet_step`, `moves`) when they read no other CPU's tuple: the
memoise idea of DESIGN.md "Engines"; tests/model/test_memo.py checks them against a fresh
computation.

A move is `(cpu, kind, alt)`:
  run    the top context of `cpu` performs its next op (`alt` picks a fetch outcome) or, when
         its routine returned, returns (a handler's return is IRET: serializing)
  drain  the oldest store of `cpu`'s buffer reaches memory (`alt` picks one under `pso`)
  irq    `cpu` takes its pending function-call IPI (IRQs on); not serializing
  nmi    `cpu` takes an NMI (any time outside an NMI, or only inside the routines of its
         `nmi_regions`; spends one of the run's budget)
  fill   `cpu`'s page walker speculatively caches the translation of `tlb_vas[alt]`
"""

from __future__ import annotations

from functools import partial
from typing import Any

from crossmod.machine import cpu as X
from crossmod.machine import events as E
from crossmod.machine import ops as O
from crossmod.machine import text as T
from crossmod.machine.ops import RETRY
from crossmod.machine.routines import ModelError, Node, RoutineTable, routine_name
from crossmod.machine.state import (
    COMMITTED,
    CPUS,
    CSDQ,
    IPI,
    IRQ,
    LOCKED,
    MEM,
    NMIS,
    SB,
    STACK,
    TEXT,
    VIEWS,
    MachineConfig,
    Work,
    check_declared,
    resolve,
)

Move = tuple[int, str, int]
PUSHED = object()


class Machine:
    """A machine built from a `MachineConfig`; stateless apart from its routine table."""

    def __init__(self, cfg: MachineConfig, identity: str = "locals") -> None:
        self.cfg = cfg
        self.routines = RoutineTable(identity, partial(check_declared, cfg))
        self.fresh_views: dict[bytes, tuple] = {}
        # Whether steps report their events; the explorer turns it off (a step then builds
        # no event and no text) and trails are told by replaying with it on (STYLE.md
        # rule 28).
        self.narrate = True
        self._nmi_cpus = frozenset(cfg.nmi_cpus if cfg.nmi_cpus is not None
                                   else range(cfg.ncpus))
        self._nmi_regions = {c: frozenset(f.__code__ for f in fns) for c, fns in cfg.nmi_regions}
        # The step memo (DESIGN.md "Engines", (c) memoise): a move that touches only its own
        # CPU and the shared part of the state is a function of (its CPU's tuple, memory,
        # text, NMI budget, committed effects), so its outcome is tabulated under that key
        # and reused in every state that differs only in the other CPUs (`_local`).
        self._memo: dict[tuple, dict[tuple, tuple]] = {}
        self._memo_size = 0
        self._last_shared: tuple[tuple, dict] | None = None
        self._local_run: dict[tuple[int, int], bool] = {}
        self._moves_memo: dict[tuple, dict[int, tuple]] = {}
        self._local_moves: dict[tuple[int, int], bool] = {}
        self.memo_hits = 0
        # Every CPU tuple a step builds is hash-consed here (`Work.freeze`): equal CPU states
        # are one object, which the canonicalizer's identity tables rely on for their hits.
        # Never cleared while the machine lives: it holds each distinct CPU state once.
        self.cpu_tuples: dict[tuple, tuple] = {}

    # ---- state -----------------------------------------------------------------------
    def initial_state(self) -> tuple:
        cfg = self.cfg
        text = b"".join(s.initial for s in cfg.sites)
        views = tuple(T.initial_view(cfg.fetch, s.initial) for s in cfg.sites)
        percpu = tuple(v for _, v in cfg.percpu)
        cpus: list[tuple] = []
        for task in cfg.tasks:
            stack = () if task is None else (("task", self.routines.start(*task), True, None),)
            cpus.append((stack, True, percpu, views, (), False, (), frozenset(), ()))
        for c, name, value in cfg.percpu_init:
            pc = list(cpus[c][2])
            pc[cfg.pidx[name]] = value
            cpus[c] = (cpus[c][0], cpus[c][1], tuple(pc), *cpus[c][3:])
        mem = tuple(v for _, v in cfg.globals)
        state = (mem, text, tuple(cpus), cfg.nmis, (None,) * len(cfg.sites))
        w = Work(cfg, state)
        for c in range(cfg.ncpus):
            self._run_invisible(w, c, initial=True)
        return w.freeze(self.cpu_tuples)

    def memory_effect(self, text: bytes, si: int) -> str:
        """What executing site si does with `text` in memory."""
        return self.effect_of_bytes(self.cfg.site_bytes(text, si), si)

    def effect_of_bytes(self, raw: bytes, si: int) -> str:
        """What executing `raw` at site si does: its effect, the intentional INT3's, or
        "int3" / "torn"."""
        site = self.cfg.sites[si]
        out = T.decode(site, raw)
        if out[0] == "effect":
            return out[1]
        if out[0] == "int3":
            return site.int3_effect or "int3"
        return "torn"

    # ---- moves -----------------------------------------------------------------------
    def moves(self, state: tuple) -> list[Move]:
        out: list[Move] = []
        memo = self._shared_memo(self._moves_memo, (state[MEM], state[NMIS]))
        local_moves = self._local_moves
        ncpus = self.cfg.ncpus
        for c, cpu in enumerate(state[CPUS]):
            stack = cpu[STACK]
            if stack:
                local = local_moves.get((stack[-1][1], c))
                if local is None:
                    local = self._local_enabled(stack[-1][1], c)
                if not local:
                    out.extend(self._cpu_moves(state, c, cpu))
                    continue
            # keyed by the tuple's identity (a value's hash walks all of it) and the CPU's
            # number, as one integer (no key tuple to build); the entry holds the tuple, so
            # no other object can take its id while the entry lives
            key = id(cpu) * ncpus + c
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = (self._cpu_moves(state, c, cpu), cpu)
                self._memo_size += 1
            out.extend(hit[0])
        return out

    def _local_enabled(self, nid: int, c: int) -> bool:
        """Whether CPU c's moves at node `nid` depend on no other CPU's tuple: then they are
        a function of (its tuple, memory, NMI budget) and `moves` tabulates them."""
        k = (nid, c)
        local = self._local_moves.get(k)
        if local is None:
            op = self.routines.nodes[nid].op
            tp = type(op)
            if tp in _ENABLED_FOREIGN:
                local = False
            elif tp in (O.WaitUntil, O.WaitAll):
                local = self._local_op(op, c)
            else:
                local = True
            self._local_moves[k] = local
        return local

    def _cpu_moves(self, state: tuple, c: int, cpu: tuple) -> tuple[Move, ...]:
        out: list[Move] = []
        cfg = self.cfg
        stack = cpu[STACK]
        if stack:
            node = self.routines.nodes[stack[-1][1]]
            if node.op is None:
                if stack[-1][0] == "task" or not cpu[SB]:
                    out.append((c, "run", 0))
            else:
                for alt in range(X.enabled(self, state, c, node.op)):
                    out.append((c, "run", alt))
        if cpu[SB]:
            for alt in self._drainable(cpu[SB]):
                out.append((c, "drain", alt))
        if cpu[IPI] and cpu[IRQ] and cfg.ipi_handler is not None:
            out.append((c, "irq", 0))
        if (state[NMIS] and cfg.nmi_handler is not None and c in self._nmi_cpus
                and not any(f[0] == "nmi" for f in stack)
                and (c not in self._nmi_regions or self._in_nmi_region(c, stack))):
            out.append((c, "nmi", 0))
        if cfg.tlb_vas:
            out.extend((c, "fill", i) for i in X.tlb_fillable(self, state, c))
        return tuple(out)

    def _in_nmi_region(self, c: int, stack: tuple) -> bool:
        """Whether one of CPU c's contexts is inside a routine of its NMI region."""
        region, nodes = self._nmi_regions[c], self.routines.nodes
        return any(not region.isdisjoint(nodes[f[1]].codes) for f in stack)

    def _drainable(self, sb: tuple) -> range | list[int]:
        if self.cfg.memory != "pso":
            return range(1)
        out, seen = [], set()
        for i, (addr, _) in enumerate(sb):
            if addr[0] == "w":
                break
            if addr not in seen:
                out.append(i)
                seen.add(addr)
        return out

    # ---- step ------------------------------------------------------------------------
    def step(self, state: tuple, move: Move) -> tuple[tuple, tuple[E.Event, ...]]:
        """Apply one move; returns the next state and, while the machine narrates, what
        happened as events (machine/events.py; `()` when it does not).

        Raises `cpu.Violation` when the move breaks a property; while narrating, its
        `events` are the step's up to the violation, the `Violated` event last.
        """
        c, kind, alt = move
        if not self.narrate:
            return self._quiet_step(state, c, kind, alt), ()
        w = Work(self.cfg, state)
        ev: list[E.Event] = []
        w.ev = ev
        try:
            self._move(w, state, c, kind, alt)
        except X.Violation as v:
            v.events = (*ev, E.Violated(c, v.prop, v.message, v.site, v.fetched))
            raise
        return w.freeze(self.cpu_tuples), tuple(ev)

    def _quiet_step(self, state: tuple, c: int, kind: str, alt: int) -> tuple:
        """`step` without narration, through the step memo when the move is local."""
        cpus = state[CPUS]
        cpu = cpus[c]
        local = self._local_run.get((cpu[STACK][-1][1], c)) if kind == "run" else None
        if local is None:
            local = self._local(cpu, c, kind, alt)
        if not local:
            w = Work(self.cfg, state)
            self._move(w, state, c, kind, alt)
            return w.freeze(self.cpu_tuples)
        last = self._last_shared
        if last is not None and last[0] is state:
            memo = last[1]  # the state's other moves: its shared part hashed once
        else:
            memo = self._shared_memo(self._memo, (state[MEM], state[TEXT], state[NMIS],
                                                  state[COMMITTED]))
            self._last_shared = (state, memo)
        # keyed by the tuple's identity, the entry holding the tuple (as in `moves`)
        key = (c, kind, alt, id(cpu))
        hit = memo.get(key)
        if hit is None:
            w = Work(self.cfg, state)
            try:
                self._move(w, state, c, kind, alt)
            except X.Violation as v:
                memo[key] = (None, v.prop, v.message, v.site, v.fetched, cpu)
                self._memo_size += 1
                raise
            t = w.freeze(self.cpu_tuples)
            memo[key] = (t[CPUS][c], t[MEM], t[TEXT], t[NMIS], t[COMMITTED], cpu)
            self._memo_size += 1
            return t
        self.memo_hits += 1
        ncpu = hit[0]
        if ncpu is None:
            raise X.Violation(hit[1], hit[2], hit[3], hit[4])
        return (hit[1], hit[2], (*cpus[:c], ncpu, *cpus[c + 1:]), hit[3], hit[4])

    def _shared_memo(self, table: dict[tuple, dict], shared: tuple) -> dict:
        """The memo of the moves made from `shared` (the part of a state every CPU sees),
        keyed by the moving CPU's tuple: one hash of the shared part per state."""
        memo = table.get(shared)
        if memo is None:
            if self._memo_size >= MEMO_ENTRIES:
                # a bound on memory, not on correctness: a miss recomputes
                self._memo.clear()
                self._moves_memo.clear()
                self._memo_size = 0
                self._last_shared = None
            memo = table[shared] = {}
        return memo

    def _local(self, cpu: tuple, c: int, kind: str, alt: int) -> bool:
        """Whether the move reads and writes no other CPU's tuple (`_quiet_step`)."""
        if kind == "run":
            nid = cpu[STACK][-1][1]
            local = self._local_run.get((nid, c))
            if local is None:
                local = self._local_run[(nid, c)] = self._local_op(self.routines.nodes[nid].op, c)
            return local
        if kind == "drain":
            a = cpu[SB][alt][0]
            k = a[0]
            return k == "g" or k == "c" or k == "w" or (k == "p" and a[1] == c)
        return True  # irq, nmi, fill: this CPU's fields, memory and text only

    def _local_op(self, op: Any, c: int) -> bool:
        if op is None:  # a return: this CPU's stack, flag and views; text, committed
            return True
        tp = type(op)
        sc = self.cfg.memory == "sc"
        if tp in _LOCAL_OPS or (tp in _LOCAL_UNLESS_SC and not sc):
            return True
        if tp in _ADDR_OPS:
            addrs = op.addrs if hasattr(op, "addrs") else (op.addr,)
            try:
                raddrs = [resolve(self.cfg, c, a) for a in addrs]
            except ModelError:
                return False
            return all(r[0] == "g" or r[1] == c for r in raddrs)
        return False

    def _move(self, w: Work, state: tuple, c: int, kind: str, alt: int) -> None:
        if kind == "run":
            self._run(w, state, c, alt)
        elif kind == "drain":
            self._drain(w, state, c, alt)
        elif kind == "fill":
            X.tlb_fill(self, w, state, c, alt)
        elif kind == "irq":
            self._take_ipi(w, c)
        else:
            self._take_nmi(w, c)
        self._run_invisible(w, c)

    def _take_ipi(self, w: Work, c: int) -> None:
        handler = self.cfg.ipi_handler
        assert handler is not None  # `moves` offers "irq" only with a handler
        cl = w.cpu(c)
        cl[IPI], cl[IRQ] = False, False
        cl[STACK] = (*cl[STACK], ("irq", self.routines.start(handler, ()), True, None))
        sync = self.cfg.arch == "arm64"
        if w.ev is not None:
            w.ev.append(E.Entry(c, E.Ctx.IRQ, sync, X.mode_of(self, w, c),
                                tuple(X.fn_name(e[1]) for e in cl[CSDQ])))
        if sync:
            X.serialize(self, w, c)

    def _take_nmi(self, w: Work, c: int) -> None:
        assert self.cfg.nmi_handler is not None  # `moves` offers "nmi" only with a handler
        fn, args = self.cfg.nmi_handler
        cl = w.cpu(c)
        cl[STACK] = (*cl[STACK], ("nmi", self.routines.start(fn, args), cl[IRQ], None))
        cl[IRQ] = False
        w.nmis -= 1
        sync = self.cfg.arch == "arm64"
        if w.ev is not None:
            w.ev.append(E.Entry(c, E.Ctx.NMI, sync, X.mode_of(self, w, c)))
        if sync:
            X.serialize(self, w, c)

    def _run_invisible(self, w: Work, c: int, initial: bool = False) -> None:
        """Perform at once the ops nobody else can observe (`cpu.invisible`).

        Why this is sound: such an op touches only this CPU's program position and its
        interrupt flag, so it commutes with every other CPU's moves and with this CPU's
        drains; an NMI or IPI handler saves and restores the flag, so a handler taken just
        before the op behaves as one taken just after it. Only `local_irq_save` is not
        invisible: it decides whether a pending IPI can still be taken. A task's final
        return is invisible too: it only empties the stack, and a handler taken before or
        after it runs and returns alike.
        """
        nodes = self.routines.nodes
        while True:
            stack = w.cpus[c][STACK]
            if not stack:
                break
            frame = stack[-1]
            node = nodes[frame[1]]
            if node.op is None and len(stack) == 1 and stack[0][0] == "task":
                w.cpu(c)[STACK] = ()
                if w.ev is not None:
                    w.ev.append(E.TaskDone(c, E.Ctx.TASK, routine_name(node.root[0]), "", True))
                break
            if node.op is None or not X.invisible(self, w, c, node.op):
                break
            if w.ev is not None:
                w.at = (c, _CTX[frame[0]], node.func or routine_name(node.root[0]),
                        node.op.label, True)
            try:
                val = X.apply_invisible(self, w, c, node.op)
            except X.Violation:
                if not initial:
                    raise
                break  # left pending: the CPU's first move reports it, with a trail
            self._advance_top(w, c, val)

    def _run(self, w: Work, state: tuple, c: int, alt: int) -> None:
        frame = state[CPUS][c][STACK][-1]
        node = self.routines.nodes[frame[1]]
        if node.op is None:
            self._return(w, state, c, frame, node)
            return
        if w.ev is not None:
            w.at = (c, _CTX[frame[0]], node.func or routine_name(node.root[0]), node.op.label,
                    False)
        val = X.apply(self, w, state, c, node.op, alt)
        if val is not PUSHED:
            self._advance_top(w, c, val)

    def _advance_top(self, w: Work, c: int, val: Any) -> None:
        cl = w.cpu(c)
        stack = cl[STACK]
        kind, nid, saved, site = stack[-1]
        cl[STACK] = (*stack[:-1], (kind, self.routines.advance(nid, val), saved, site))

    def _return(self, w: Work, state: tuple, c: int, frame: tuple, node: Node) -> None:
        kind, _, saved, site = frame
        at = (c, _CTX[kind], routine_name(node.root[0]), "", False)
        cl = w.cpu(c)
        cl[STACK] = cl[STACK][:-1]
        if kind == "task":
            if w.ev is not None:
                w.ev.append(E.TaskDone(*at))
            return
        X.serialize(self, w, c)
        cl[IRQ] = saved
        # the exception return, in the architecture's words: both are context
        # synchronizing (x86 IRET is serializing; arm64 ERET is a context synchronization
        # event), which is what the serialize above models
        ret_insn, trap = ("ERET", "BRK") if self.cfg.arch == "arm64" else ("IRET", "#BP")
        if kind != "bp":
            event = E.ExceptionReturn(*at, ret_insn)
        elif node.ret == RETRY:
            event = E.ExceptionReturn(*at, ret_insn, trap, site, retry=True)
        else:
            eff = self._int3_result(w, state, c, site, node.ret)
            self._advance_top(w, c, eff)
            event = E.ExceptionReturn(*at, ret_insn, trap, site, eff)
        if w.ev is not None:
            w.ev.append(event)

    def _int3_result(self, w: Work, state: tuple, c: int, site: str, ret: Any) -> str:
        si = self.cfg.sidx[site]
        s = self.cfg.sites[si]
        if ret is None:
            raw = self.cfg.site_bytes(state[TEXT], si)
            if s.int3_effect is None or raw[0] != T.INT3:
                raise X.Violation(
                    E.Property.UNEXPECTED_INT3,
                    f"cpu{c} int3 at {site} not claimed by smp_text_poke_int3_handler and no "
                    f"INT3 is installed there (memory: {T.hexbytes(raw)}): die(\"int3\")",
                    site, raw)
            ret = s.int3_effect
        if ret not in s.effects():
            raise X.Violation(E.Property.INT3_EMULATION,
                              f"cpu{c} #BP handler emulated '{ret}' at {site}, which is "
                              f"neither its old nor its new instruction", site)
        self._check_visible(w, c, si, ret)
        return str(ret)

    def _check_visible(self, w: Work, c: int, si: int, eff: str) -> None:
        want = w.committed[si]
        if want is not None and eff != want:
            site = self.cfg.sites[si].name
            raise X.Violation(
                E.Property.PATCH_VISIBILITY,
                f"cpu{c} executes '{eff}' at {site} after the patch returned "
                f"(every CPU must now execute '{want}')", site)

    def exec_outcome(self, w: Work, state: tuple, c: int, site: str, alt: int) -> Any:
        """CPU c executes `site`, its fetch taking outcome `alt`: returns the effect, or
        `PUSHED` when it trapped and the int3 handler is now on its stack."""
        si = self.cfg.sidx[site]
        s = self.cfg.sites[si]
        out = T.fetch_outcomes(self.cfg.fetch, s, state[CPUS][c][VIEWS][si])[alt]
        raw: bytes = out[-1]
        if out[0] == "torn":
            raise X.Violation(E.Property.TORN_INSTRUCTION,
                              f"cpu{c} exec {site}: fetched {T.hexbytes(raw)} -> not an "
                              f"instruction the site may hold (torn)", site, raw)
        if out[0] == "int3":
            handler = self.cfg.int3_handler
            if handler is None:
                raise ModelError(f"cpu{c} executes an INT3 at {site}, but the machine has no "
                                 "int3_handler")
            cl = w.cpu(c)
            node = self.routines.start(handler, (site,))
            cl[STACK] = (*cl[STACK], ("bp", node, cl[IRQ], site))
            cl[IRQ] = False
            sync = self.cfg.arch == "arm64"
            if w.ev is not None:
                w.ev.append(E.Exec(*w.at, site, raw, None, "BRK" if sync else "#BP"))
                w.ev.append(E.Entry(c, E.Ctx.BP, sync, X.mode_of(self, w, c), site=site))
            if sync:
                X.serialize(self, w, c)
            return PUSHED
        self._check_visible(w, c, si, out[1])
        if w.ev is not None:
            w.ev.append(E.Exec(*w.at, site, raw, out[1], ""))
        return out[1]

    # ---- memory ----------------------------------------------------------------------
    def _drain(self, w: Work, state: tuple, c: int, alt: int) -> None:
        sb = state[CPUS][c][SB]
        idx = alt  # `moves` names a drain by the entry's index in the buffer
        raddr, value = sb[idx]
        rest = sb[:idx] + sb[idx + 1:]
        while rest and rest[0][0][0] == "w":
            rest = rest[1:]
        w.cpu(c)[SB] = rest
        self.commit_store(w, c, raddr, value)
        if w.ev is not None:
            w.ev.append(E.StoreDrained(c, self.describe_addr(raddr), value))

    def commit_store(self, w: Work, c: int, raddr: tuple, value: Any) -> None:
        kind = raddr[0]
        if kind in ("g", "p"):
            w.set_mem(raddr, value)
        elif kind == "pall":
            for k in range(self.cfg.ncpus):
                w.set_mem(("p", k, raddr[1]), value)
        elif kind == "t":
            w.write_text(raddr[1], raddr[2], value)
        elif kind == "c":
            cl = w.cpu(c)
            cl[LOCKED] = cl[LOCKED] - {raddr[1]}

    def describe_addr(self, raddr: tuple) -> str:
        cfg = self.cfg
        kind = raddr[0]
        if kind == "g":
            return cfg.globals[raddr[1]][0]
        if kind == "p":
            return f"per_cpu({cfg.percpu[raddr[2]][0]}, {raddr[1]})"
        if kind == "pall":
            return f"per_cpu({cfg.percpu[raddr[1]][0]}, each cpu)"
        if kind == "t":
            return f"{cfg.sites[raddr[1]].name}+{raddr[2]}"
        if kind == "c":
            return f"csd of cpu{raddr[1]} (unlock)"
        return "smp_wmb"

    def blocked_on(self, state: tuple, c: int) -> E.Blocked | None:
        """What CPU c is stuck on, for deadlock reports (None: it is idle)."""
        stack = state[CPUS][c][STACK]
        if not stack:
            return None
        node = self.routines.nodes[stack[-1][1]]
        return E.Blocked(c, routine_name(node.root[0]),
                         type(node.op).__name__ if node.op else "return",
                         node.op.label if node.op else "",
                         tuple(_CTX[f[0]] for f in stack), bool(state[CPUS][c][IRQ]))


_CTX = {ctx.value: ctx for ctx in E.Ctx}

MEMO_ENTRIES = 1 << 20
# Ops whose step reads and writes only the performing CPU's tuple and the shared part of
# the state (machine/cpu.py): everything but IPIs and CSD locks aimed at others, the waits
# and RMWs over every CPU, and stores that reach memory at once under "sc" (a text byte
# reaching memory widens every CPU's views; a `pall` store writes every CPU's instance).
_LOCAL_OPS: frozenset[type] = frozenset({
    O.Fence, O.Serialize, O.ExecSite, O.PatchReturned, O.IrqSave, O.IrqRestore,
    O.IrqsEnabled, O.CsdDequeueAll, O.CsdUnlock, O.MutexLock, O.MutexUnlock, O.StackFree,
    O.TlbAccess, O.WriteCr3, O.TlbFlushKernel, O.FreePage, O.Choose, O.ReadText, O.Note,
    O.Warn, O.AssertHeld, O.Ghost, O.SmpProcessorId})
_LOCAL_UNLESS_SC: frozenset[type] = frozenset({O.TextStore, O.StorePerCpu})
# Ops whose enabledness reads other CPUs' tuples (their CSD locks, their per-CPU data).
_ENABLED_FOREIGN: frozenset[type] = frozenset({O.WaitPerCpu, O.CsdQueue, O.CsdLockWait,
                                               O.CsdQueueCond})
# Ops local when every address they name is a global or this CPU's own instance.
_ADDR_OPS: frozenset[type] = frozenset({O.Load, O.Store, O.Rmw, O.WaitUntil,
                                        O.CpumaskClearCpu, O.Check, O.WaitAll})
