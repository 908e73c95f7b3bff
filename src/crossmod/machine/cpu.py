"""What each op does to the machine: the semantics of one CPU's next step.

Owns: for every op of machine/ops.py, when it is enabled (how many alternatives it has; 0 =
blocked) and its effect on a `Work` copy of the state. Imports: machine.ops, machine.text,
machine.state, machine.routines.

`enabled(m, state, c, op)` and `apply(m, w, c, op, alt)` are flat dispatches on the op type;
that is the one place a function here may run long (STYLE.md rule 13), and why the module
passes 400 lines: one branch per op, kept together so an op's semantics read in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crossmod.machine import ops as O
from crossmod.machine import text as T
from crossmod.machine.routines import ModelError
from crossmod.machine.state import (
    CPUS,
    CSDQ,
    IPI,
    IRQ,
    LOCKED,
    PERCPU,
    POISON,
    RUNNING,
    SB,
    TEXT,
    VIEWS,
    Work,
    read,
    resolve,
)

if TYPE_CHECKING:
    from crossmod.machine.machine import Machine


class Violation(Exception):
    """A property broken by a step: `prop` is its short name, `message` says it in kernel
    terms."""

    def __init__(self, prop: str, message: str) -> None:
        super().__init__(f"{prop}: {message}")
        self.prop = prop
        self.message = message


def targets_of(m: Machine, c: int, targets: str | tuple[int, ...]) -> tuple[int, ...]:
    if targets == "others":
        return tuple(t for t in range(m.cfg.ncpus) if t != c)
    return tuple(t for t in targets if t != c)


def enabled(m: Machine, state: tuple, c: int, op: O.Op) -> int:
    """How many ways CPU c can perform `op` now (0 = blocked)."""
    cpu = state[CPUS][c]
    tp = type(op)
    if tp in _NEEDS_EMPTY_SB and cpu[SB]:
        return 0
    if tp is O.ExecSite:
        si = m.cfg.sidx[op.site]
        return len(T.fetch_outcomes(m.cfg.fetch, m.cfg.sites[si], cpu[VIEWS][si]))
    if tp is O.WaitUntil:
        return int(bool(op.pred(read(state, c, resolve(m.cfg, c, op.addr)))))
    if tp is O.WaitPerCpu:
        idx = m.cfg.pidx[op.name]
        return int(all(op.pred(read(state, c, ("p", k, idx))) for k in range(m.cfg.ncpus)))
    if tp is O.CsdQueue or tp is O.CsdLockWait:
        cpus = state[CPUS]
        return int(all(c not in cpus[t][LOCKED] for t in targets_of(m, c, op.targets)))
    if tp is O.MutexLock:
        return int(state[0][m.cfg.gidx[op.name]] is None)
    if tp is O.Fence and _fence_blocked(op, cpu):
        return 0
    if tp is O.WriteCr3 and cpu[SB]:
        return 0
    if tp is O.CsdQueueCond:
        return int(all(c not in state[CPUS][t][LOCKED] for t in targets_of(m, c, "others")))
    return 1


# Locked instructions (llist_add's cmpxchg in CsdQueue included: KERNEL.md F.5), fences
# and serializing instructions wait for the store buffer. CsdQueueCond does not: its cond
# reads (kernel_cr3_loaded, the ct word) come before llist_add and may pass buffered
# stores (K18); the barrier llist_add then gives drains the buffer within its step, once a
# target passes the cond (`_csd_queue_cond`).
_NEEDS_EMPTY_SB = frozenset({O.Rmw, O.RmwPerCpu, O.Serialize, O.MutexLock, O.MutexUnlock,
                             O.CpumaskClearCpu, O.CsdQueue})


def _fence_blocked(op: O.Fence, cpu: tuple) -> bool:
    return op.kind == "mb" and bool(cpu[SB])


def _load(m: Machine, w: Work, state: tuple, c: int, addr: O.Addr) -> Any:
    v = read(state, c, resolve(m.cfg, c, addr))
    if v == POISON:
        raise Violation("use-after-return",
                        f"cpu{c} reads {_addr_name(addr)} from a stack frame already popped")
    return v


def _addr_name(addr: O.Addr) -> str:
    if isinstance(addr, str):
        return addr
    _, name, who = addr
    return f"this_cpu({name})" if who == "this" else f"per_cpu({name}, {who})"


def apply(m: Machine, w: Work, state: tuple, c: int, op: O.Op, alt: int) -> tuple[Any, str]:
    """Perform `op` on CPU c; returns (value sent back to the routine, trail text)."""
    tp = type(op)
    cfg = m.cfg
    if c in cfg.readers:
        _check_reader(m, c, op)
    if tp is O.Load:
        v = _load(m, w, state, c, op.addr)
        return v, f"load {_addr_name(op.addr)} = {v!r}" if m.narrate else ""
    if tp is O.Store:
        value = frozenset(range(cfg.ncpus)) if op.value == O.CPU_ONLINE_MASK else op.value
        _buffer(m, w, c, resolve(cfg, c, op.addr), value)
        return None, f"store {_addr_name(op.addr)} := {op.value!r}" if m.narrate else ""
    if tp is O.StorePerCpu:
        _buffer(m, w, c, ("pall", cfg.pidx[op.name]), op.value)
        return None, f"store per_cpu({op.name}, each cpu) := {op.value!r}"
    if tp is O.Rmw:
        raddr = resolve(cfg, c, op.addr)
        old = _load(m, w, state, c, op.addr)
        new, res = op.fn(old)
        w.set_mem(raddr, new)
        if not m.narrate:
            return res, ""
        return res, f"{_fn_name(op.fn)}({_addr_name(op.addr)}): {old!r} -> {new!r}"
    if tp is O.RmwPerCpu:
        idx, res = cfg.pidx[op.name], []
        for k in range(cfg.ncpus):
            new, r = op.fn(w.get_mem(("p", k, idx)))
            w.set_mem(("p", k, idx), new)
            res.append(r)
        return tuple(res), f"{_fn_name(op.fn)}(per_cpu({op.name}, each cpu)) -> {tuple(res)}"
    if tp is O.CpumaskClearCpu:
        raddr = resolve(cfg, c, op.addr)
        old = _load(m, w, state, c, op.addr)
        new = old - {c}
        w.set_mem(raddr, new)
        return not new, f"cpumask_clear_cpu(cpu{c}, {_addr_name(op.addr)}) -> {_mask(new)}"
    if tp is O.WaitUntil:
        v = _load(m, w, state, c, op.addr)
        return v, f"wait {_addr_name(op.addr)}: done ({v!r})"
    if tp is O.WaitPerCpu:
        return None, f"wait per_cpu({op.name}, each cpu): done"
    if tp is O.Fence:
        if op.kind == "wmb" and cfg.memory == "pso":
            _buffer(m, w, c, ("w",), None)
        return None, f"smp_{op.kind}()"
    if tp is O.Serialize:
        serialize(m, w, c)
        return None, "serialize (store buffer drained, stale instructions discarded)"
    if tp is O.TextStore:
        return None, _text_store(m, w, c, op)
    if tp is O.ExecSite:
        return m.exec_outcome(w, state, c, op.site, alt)
    if tp is O.PatchReturned:
        # The contract is what the caller wrote, its own buffered text stores included: a
        # patch routine that returns before they drain has not made them visible, and a
        # CPU that then executes the old bytes breaks the contract (the caller itself, which
        # forwards from its buffer, executes the new ones).
        si = cfg.sidx[op.site]
        eff = m.effect_of_bytes(_site_bytes_seen_by(m, state, c, si), si)
        w.set_committed(si, eff)
        return None, f"{op.site} patched: from now on every CPU must execute '{eff}'"
    if tp is O.IrqSave:
        cl = w.cpu(c)
        was, cl[IRQ] = cl[IRQ], False
        return was, "local_irq_save()"
    if tp in _INVISIBLE:  # normally run eagerly by Machine._run_invisible; same semantics
        return apply_invisible(m, w, c, op)
    if tp is O.CsdQueue:
        return None, _csd_queue(m, w, c, op)
    if tp is O.CsdLockWait:
        return None, "csd_lock_wait: every target has run the function"
    if tp is O.CsdDequeueAll:
        cl = w.cpu(c)
        q = cl[CSDQ]
        cl[CSDQ], cl[RUNNING] = (), tuple(e[0] for e in q)
        got = tuple((i, f, a, s) for i, (_, f, a, s) in enumerate(q))
        names = ", ".join(_fn_name(f) for _, f, _, _ in got) or "nothing"
        return got, f"llist_del_all(call_single_queue): {names}"
    if tp is O.CsdUnlock:
        sender = state[CPUS][c][RUNNING][op.index]
        _buffer(m, w, c, ("c", sender), None)
        return None, f"csd_unlock (csd of cpu{sender})"
    if tp is O.MutexLock:
        w.set_mem(("g", cfg.gidx[op.name]), c)
        return None, f"mutex_lock({op.name})"
    if tp is O.MutexUnlock:
        w.set_mem(("g", cfg.gidx[op.name]), None)
        return None, f"mutex_unlock({op.name})"
    if tp is O.Check:
        vals = tuple(_load(m, w, state, c, a) for a in op.addrs)
        if not op.pred(*vals):
            raise Violation(op.prop, f"cpu{c}: {op.message} (values {vals})")
        return None, f"check {op.prop}: ok"
    if tp is O.StackFree:
        for name in op.names:
            w.set_mem(("g", cfg.gidx[name]), POISON)
        return None, f"return: stack frame holding {', '.join(op.names)} popped and reused"
    if tp in _TLB_OPS:
        return _TLB_OPS[tp](m, w, state, c, op)
    if tp is O.CsdQueueCond:
        return None, _csd_queue_cond(m, w, state, c, op)
    raise TypeError(f"unknown op {op!r}")


def _mask(mask: frozenset) -> str:
    return "{" + ",".join(str(c) for c in sorted(mask)) + "}"


_READER_FORBIDDEN = frozenset({O.StorePerCpu, O.RmwPerCpu, O.TextStore, O.CsdQueue,
                               O.CsdQueueCond, O.MutexLock, O.MutexUnlock, O.StackFree,
                               O.PatchReturned, O.FreePage, O.WaitPerCpu})
_READER_WRITES = (O.Store, O.Rmw, O.CpumaskClearCpu)
_READER_READS = (O.Load, O.WaitUntil, O.Rmw, O.CpumaskClearCpu)


def _check_reader(m: Machine, c: int, op: O.Op) -> None:
    """A CPU declared a reader (`MachineConfig.readers`) may write only its own per-CPU
    variables and its own CSD unlocks, and may read no other reader's per-CPU variables
    (check/reduction.py, assumption A); the partial-order reduction is sound only then."""
    tp = type(op)
    why = "it sends IPIs, patches, locks or frees" if tp in _READER_FORBIDDEN else ""
    if isinstance(op, _READER_WRITES):
        raddr = resolve(m.cfg, c, op.addr)
        if raddr[0] != "p" or raddr[1] != c:
            why = "a reader may write only its own per-CPU variables"
    if not why:
        addrs = (op.addr,) if isinstance(op, _READER_READS) else \
            op.addrs if tp is O.Check else ()
        for a in addrs:
            raddr = resolve(m.cfg, c, a)
            if raddr[0] == "p" and raddr[1] != c and raddr[1] in m.cfg.readers:
                why = f"it reads cpu{raddr[1]}'s instance, and cpu{raddr[1]} is a reader too"
    if why:
        raise ModelError(f"cpu{c} is declared a reader but performs {op!r}: {why}")


def invisible(m: Machine, w: Work, c: int, op: O.Op) -> bool:

    """Ops whose only effect is this CPU's program position or interrupt flag."""
    tp = type(op)
    if tp in _INVISIBLE:
        return True
    if tp is O.Fence:
        return op.kind == "rmb" or (op.kind == "wmb" and m.cfg.memory != "pso") \
            or not w.cpus[c][SB]
    return False


_INVISIBLE = frozenset({O.Note, O.Warn, O.AssertHeld, O.IrqsEnabled, O.IrqRestore, O.Ghost})


def apply_invisible(m: Machine, w: Work, c: int, op: O.Op) -> tuple[Any, str]:
    tp = type(op)
    if tp is O.AssertHeld:
        if w.mem[m.cfg.gidx[op.name]] != c:
            raise Violation("lockdep", f"cpu{c}: {op.name} not held (lockdep_assert_held)")
        return None, f"lockdep_assert_held({op.name})"
    if tp is O.IrqsEnabled:
        return w.cpus[c][IRQ], "irqs_disabled()?"
    if tp is O.IrqRestore:
        w.cpu(c)[IRQ] = op.enabled
        return None, "local_irq_restore()" + (" (irqs on)" if op.enabled else "")
    if tp is O.Fence:
        return None, f"smp_{op.kind}()"
    if tp is O.Warn:
        return None, f"WARNING: {op.message}"
    if tp is O.Ghost:
        raddr = resolve(m.cfg, c, op.addr)
        if raddr[0] != "p" or raddr[1] != c:
            raise ModelError(f"cpu{c}: {op!r} updates memory that is not its own per-CPU "
                             "state; a Ghost op is performed eagerly, which is sound only "
                             "for state no other CPU reads")
        old = w.get_mem(raddr)
        new, res = op.fn(old)
        if new != old:
            w.set_mem(raddr, new)
        return res, op.label or _fn_name(op.fn)
    return None, op.text or op.label


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", repr(fn))


def _buffer(m: Machine, w: Work, c: int, raddr: tuple, value: Any) -> None:
    if m.cfg.memory == "sc":
        m.commit_store(w, c, raddr, value)
        return
    cl = w.cpu(c)
    cl[SB] = (*cl[SB], (raddr, value))


def serialize(m: Machine, w: Work, c: int) -> None:
    """Discard every stale instruction: the CPU may now fetch only what memory holds."""
    text = bytes(w.text)
    views = m.fresh_views.get(text)
    if views is None:
        views = m.fresh_views[text] = tuple(
            T.initial_view(m.cfg.fetch, m.cfg.site_bytes(text, si))
            for si in range(len(m.cfg.sites)))
    if w.cpus[c][VIEWS] != views:
        w.cpu(c)[VIEWS] = views


def _text_store(m: Machine, w: Work, c: int, op: O.TextStore) -> str:
    si = m.cfg.sidx[op.site]
    w.set_committed(si, None)
    if m.cfg.arch == "arm64" and m.cfg.memory == "sc":
        _store_word(w, si, op.offset, op.data)
        return f"aarch64_insn_write: {T.hexbytes(op.data)} -> {op.site}+{op.offset}"
    for i, b in enumerate(op.data):
        _buffer(m, w, c, ("t", si, op.offset + i), b)
    # Own stores are visible to own instruction fetch (x86 self-modifying-code snooping).
    cl = w.cpu(c)
    if m.cfg.memory != "sc":
        raw = bytearray(m.cfg.site_bytes(bytes(w.text), si))
        for (kind, *rest), val in cl[SB]:
            if kind == "t" and rest[0] == si:
                raw[rest[1]] = val
        views = cl[VIEWS]
        cl[VIEWS] = (*views[:si], T.widen_view(m.cfg.fetch, views[si], bytes(raw)),
                     *views[si + 1:])
    where = f"{op.site}+{op.offset}"
    what = "INT3" if op.data == b"\xcc" else T.hexbytes(op.data)
    return f"text_poke: {what} -> {where}"


def _site_bytes_seen_by(m: Machine, state: tuple, c: int, si: int) -> bytes:
    """Site si's bytes as CPU c's loads would see them: memory, then its buffered stores."""
    raw = bytearray(m.cfg.site_bytes(state[TEXT], si))
    for (kind, *rest), val in state[CPUS][c][SB]:
        if kind == "t" and rest[0] == si:
            raw[rest[1]] = val
    return bytes(raw)


def _store_word(w: Work, si: int, off: int, data: bytes) -> None:
    """An arm64 STR of a whole instruction: single-copy atomic, so no CPU may ever fetch
    it half-written. The leading bytes land silently and the last one widens every view."""
    if isinstance(w.text, bytes):
        w.text = bytearray(w.text)
    base = w.cfg.soff[si] + off
    w.text[base:base + len(data) - 1] = data[:-1]
    w.write_text(si, off + len(data) - 1, data[-1])


def _csd_queue(m: Machine, w: Work, c: int, op: O.CsdQueue) -> str:
    sent = []
    for t in targets_of(m, c, op.targets):
        tl = w.cpu(t)
        was_empty = not tl[CSDQ]
        tl[CSDQ] = (*tl[CSDQ], (c, op.func, op.args, op.sync))
        tl[LOCKED] = tl[LOCKED] | {c}
        if was_empty:
            tl[IPI] = True
            sent.append(t)
    fname = _fn_name(op.func)
    dest = ", ".join(f"cpu{t}" for t in sent) or "none (queues already non-empty)"
    return f"smp_call_function_many_cond({fname}): IPI -> {dest}"



# ---- kernel TLB and CR3 (kernel/tlb.py, kernel/entry.py) ------------------------------

def _tlb_idx(m: Machine) -> int:
    return m.cfg.pidx["tlb"]


def tlb_fillable(m: Machine, state: tuple, c: int) -> list[int]:
    """Indices of `tlb_vas` CPU c's page walker may cache now: mapped in memory, reachable
    from its current page tables, not cached already."""
    cfg = m.cfg
    cpu = state[CPUS][c]
    tlb = cpu[PERCPU][_tlb_idx(m)]
    if tlb is None or (cfg.pti and cpu[PERCPU][cfg.pidx["cr3"]] != "kernel"):
        return []
    out = []
    for i, va in enumerate(cfg.tlb_vas):
        page = state[0][cfg.gidx[f"pte.{va}"]]
        if page is not None and (va, page, not cfg.pti) not in tlb:
            out.append(i)
    return out


def _set_tlb(m: Machine, w: Work, c: int, tlb: frozenset) -> None:
    w.set_mem(("p", c, _tlb_idx(m)), tlb)


def tlb_fill(m: Machine, w: Work, state: tuple, c: int, i: int) -> str:
    """A speculative page walk: CPU c caches the translation memory holds for va i."""
    va = m.cfg.tlb_vas[i]
    page = state[0][m.cfg.gidx[f"pte.{va}"]]
    tlb = state[CPUS][c][PERCPU][_tlb_idx(m)]
    _set_tlb(m, w, c, frozenset(e for e in tlb if e[0] != va) | {(va, page, not m.cfg.pti)})
    return f"page walker (speculative) caches {va} -> {page}"


def _tlb_access(m: Machine, w: Work, state: tuple, c: int, op: O.TlbAccess) -> tuple:
    tlb = w.cpus[c][PERCPU][_tlb_idx(m)] or frozenset()
    freed = state[0][m.cfg.gidx["freed_pages"]]
    for va, page, _ in tlb:
        if va == op.va:
            if page in freed:
                raise Violation("use-after-free",
                                f"cpu{c} dereferences {op.va} through a stale TLB entry -> "
                                f"{page}, a page freed after flush_tlb_kernel_range returned")
            return None, f"access {op.va} (TLB hit -> {page})"
    page = state[0][m.cfg.gidx[f"pte.{op.va}"]]
    if page is None:
        raise Violation("page-fault", f"cpu{c} dereferences {op.va}, which is not mapped "
                                      "(BUG: unable to handle page fault)")
    if w.cpus[c][PERCPU][_tlb_idx(m)] is not None:
        _set_tlb(m, w, c, tlb | {(op.va, page, not m.cfg.pti)})
    return None, f"access {op.va} (page walk -> {page})"


def _write_cr3(m: Machine, w: Work, state: tuple, c: int, op: O.WriteCr3) -> tuple:
    serialize(m, w, c)
    w.set_mem(("p", c, m.cfg.pidx["cr3"]), "kernel" if op.kernel else "user")
    tlb = w.cpus[c][PERCPU][_tlb_idx(m)] if "tlb" in m.cfg.pidx else None
    if op.flush and tlb:
        _set_tlb(m, w, c, frozenset(e for e in tlb if e[2]))
    which = "kernel" if op.kernel else "user"
    return None, f"MOV CR3 <- {which} page tables ({'flushing' if op.flush else 'NOFLUSH'}; " \
                 "serializing)"


def _tlb_flush(m: Machine, w: Work, state: tuple, c: int, op: O.TlbFlushKernel) -> tuple:
    tlb = w.cpus[c][PERCPU][_tlb_idx(m)]
    if tlb:
        _set_tlb(m, w, c, frozenset(e for e in tlb if op.va is not None and e[0] != op.va))
    return None, f"flush kernel TLB ({'invlpg ' + op.va if op.va else 'all, global too'})"


def _free_page(m: Machine, w: Work, state: tuple, c: int, op: O.FreePage) -> tuple:
    raddr = ("g", m.cfg.gidx["freed_pages"])
    w.set_mem(raddr, w.get_mem(raddr) | {op.page})
    return None, f"__free_page({op.page}): the page may be reused from now on"


_TLB_OPS = {O.TlbAccess: _tlb_access, O.WriteCr3: _write_cr3, O.TlbFlushKernel: _tlb_flush,
            O.FreePage: _free_page}


def _csd_queue_cond(m: Machine, w: Work, state: tuple, c: int, op: O.CsdQueueCond) -> str:
    idx = m.cfg.pidx[op.name]
    targets = tuple(t for t in targets_of(m, c, "others")
                    if op.pred(read(state, c, ("p", t, idx))))
    skipped = [f"cpu{t}" for t in targets_of(m, c, "others") if t not in targets]
    if targets:
        # llist_add()'s cmpxchg, after the cond reads: a full barrier, so this CPU's
        # buffered stores become visible with the first csd it queues
        sb = w.cpu(c)[SB]
        for raddr, value in sb:
            if raddr[0] != "w":  # (a write-barrier marker, not a store)
                m.commit_store(w, c, raddr, value)
        if sb:
            w.cpu(c)[SB] = ()
        text = _csd_queue(m, w, c, O.CsdQueue(targets, op.func, op.args, op.sync, op.label))
    else:
        text = f"smp_call_function_many_cond({_fn_name(op.func)}): no CPU passes the cond"
    return text + (f"; {_fn_name(op.pred)}: skips {', '.join(skipped)}" if skipped else "")
