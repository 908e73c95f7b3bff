"""What each op does to the machine: the semantics of one CPU's next step.

Owns: for every op of machine/ops.py, when it is enabled (how many alternatives it has; 0 =
blocked), its effect on a `Work` copy of the state, and the events it reports
(machine/events.py). Imports: machine.ops, machine.text, machine.state, machine.routines,
machine.events.

`enabled(m, state, c, op)`, `apply(m, w, state, c, op, alt)` and `apply_invisible(m, w, c,
op)` dispatch on the op's type through one table each: one small function per op, all in
this module so that an op's semantics read in one place, which is why it passes 400 lines.
An op's function returns the value sent back to the routine, and appends its event to
`w.ev` only when that is a list (the machine narrates): exploring builds no event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crossmod.machine import events as E
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
    STACK,
    TEXT,
    VIEWS,
    Work,
    read,
    resolve,
)

if TYPE_CHECKING:
    from crossmod.machine.machine import Machine

Property = E.Property


class Violation(Exception):
    """A property broken by a step: `prop` is its short name, `message` says it in kernel
    terms; a fetch names its `site` and the bytes it `fetched`. `events` are the step's
    events up to the violation, its `Violated` event last (set by `Machine.step` while it
    narrates)."""

    def __init__(self, prop: str, message: str, site: str | None = None,
                 fetched: bytes | None = None) -> None:
        super().__init__(f"{prop}: {message}")
        self.prop = E.as_property(prop)
        self.message = message
        self.site = site
        self.fetched = fetched
        self.events: tuple[E.Event, ...] = ()


def targets_of(m: Machine, c: int, targets: str | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(targets, str):  # "others"
        return tuple(t for t in range(m.cfg.ncpus) if t != c)
    return tuple(t for t in targets if t != c)


# ---- when an op can be performed ---------------------------------------------------------

def enabled(m: Machine, state: tuple, c: int, op: O.Op) -> int:
    """How many ways CPU c can perform `op` now (0 = blocked)."""
    cpu = state[CPUS][c]
    tp = type(op)
    if cpu[SB] and tp in _NEEDS_EMPTY_SB:
        return 0
    f = _ENABLED.get(tp)
    return 1 if f is None else f(m, state, c, cpu, op)


# Locked instructions (llist_add's cmpxchg in CsdQueue included: KERNEL.md F.5), fences
# and serializing instructions wait for the store buffer. CsdQueueCond does not: its cond
# reads (kernel_cr3_loaded, the ct word) come before llist_add and may pass buffered
# stores (K18); the barrier llist_add then gives drains the buffer within its step, once a
# target passes the cond (`_csd_queue_cond`).
_NEEDS_EMPTY_SB: frozenset[type[O.Op]] = frozenset({
    O.Rmw, O.RmwPerCpu, O.Serialize, O.MutexLock, O.MutexUnlock, O.CpumaskClearCpu,
    O.CsdQueue, O.WriteCr3, O.SendIpi})


def _exec_enabled(m: Machine, state: tuple, c: int, cpu: tuple, op: O.ExecSite) -> int:
    si = m.cfg.sidx[op.site]
    return len(T.fetch_outcomes(m.cfg.fetch, m.cfg.sites[si], cpu[VIEWS][si]))


def _wait_enabled(m: Machine, state: tuple, c: int, cpu: tuple, op: O.WaitUntil) -> int:
    return int(bool(op.pred(read(state, c, resolve(m.cfg, c, op.addr)))))


def _wait_each_enabled(m: Machine, state: tuple, c: int, cpu: tuple, op: O.WaitPerCpu) -> int:
    idx = m.cfg.pidx[op.name]
    return int(all(op.pred(read(state, c, ("p", k, idx))) for k in range(m.cfg.ncpus)))


def _csd_free(m: Machine, state: tuple, c: int, cpu: tuple,
              op: O.CsdQueue | O.CsdLockWait) -> int:
    cpus = state[CPUS]
    return int(all(c not in cpus[t][LOCKED] for t in targets_of(m, c, op.targets)))


def _csd_cond_free(m: Machine, state: tuple, c: int, cpu: tuple, op: O.CsdQueueCond) -> int:
    cpus = state[CPUS]
    return int(all(c not in cpus[t][LOCKED] for t in targets_of(m, c, "others")))


def _mutex_free(m: Machine, state: tuple, c: int, cpu: tuple, op: O.MutexLock) -> int:
    return int(state[0][m.cfg.gidx[op.name]] is None)


def _fence_enabled(m: Machine, state: tuple, c: int, cpu: tuple, op: O.Fence) -> int:
    return int(op.kind != "mb" or not cpu[SB])


def _choose_enabled(m: Machine, state: tuple, c: int, cpu: tuple, op: O.Choose) -> int:
    return op.n


def _wait_all_enabled(m: Machine, state: tuple, c: int, cpu: tuple, op: O.WaitAll) -> int:
    return int(bool(op.pred(*(read(state, c, resolve(m.cfg, c, a)) for a in op.addrs))))


_ENABLED: dict[type[O.Op], Callable[[Machine, tuple, int, tuple, Any], int]] = {
    O.ExecSite: _exec_enabled, O.WaitUntil: _wait_enabled, O.WaitPerCpu: _wait_each_enabled,
    O.CsdQueue: _csd_free, O.CsdLockWait: _csd_free, O.MutexLock: _mutex_free,
    O.Fence: _fence_enabled, O.CsdQueueCond: _csd_cond_free, O.Choose: _choose_enabled,
    O.WaitAll: _wait_all_enabled}


# ---- performing an op --------------------------------------------------------------------

def apply(m: Machine, w: Work, state: tuple, c: int, op: O.Op, alt: int) -> Any:
    """Perform `op` on CPU c; returns the value sent back to the routine."""
    if c in m.cfg.readers:
        _check_reader(m, c, op)
    f = _APPLY.get(type(op))
    if f is None:
        raise TypeError(f"unknown op {op!r}")
    return f(m, w, state, c, op, alt)


def _load(m: Machine, state: tuple, c: int, addr: O.Addr) -> Any:
    v = read(state, c, resolve(m.cfg, c, addr))
    if v == POISON:
        raise Violation(Property.USE_AFTER_RETURN,
                        f"cpu{c} reads {_addr_name(addr)} from a stack frame already popped")
    return v


def _addr_name(addr: O.Addr) -> str:
    if isinstance(addr, str):
        return addr
    _, name, who = addr
    return f"this_cpu({name})" if who == "this" else f"per_cpu({name}, {who})"


def fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", repr(fn))


def _ap_load(m: Machine, w: Work, state: tuple, c: int, op: O.Load, alt: int) -> Any:
    v = _load(m, state, c, op.addr)
    if w.ev is not None:
        w.ev.append(E.Load(*w.at, _addr_name(op.addr), v))
    return v


def _ap_store(m: Machine, w: Work, state: tuple, c: int, op: O.Store, alt: int) -> None:
    cfg = m.cfg
    value = frozenset(range(cfg.ncpus)) if op.value == O.CPU_ONLINE_MASK else op.value
    _buffer(m, w, c, resolve(cfg, c, op.addr), value)
    if w.ev is not None:
        w.ev.append(E.StoreIssued(*w.at, _addr_name(op.addr), op.value, cfg.memory != "sc"))


def _ap_store_each(m: Machine, w: Work, state: tuple, c: int, op: O.StorePerCpu,
                   alt: int) -> None:
    _buffer(m, w, c, ("pall", m.cfg.pidx[op.name]), op.value)
    if w.ev is not None:
        w.ev.append(E.StoreIssued(*w.at, f"per_cpu({op.name}, each cpu)", op.value,
                                  m.cfg.memory != "sc"))


def _ap_rmw(m: Machine, w: Work, state: tuple, c: int, op: O.Rmw, alt: int) -> Any:
    raddr = resolve(m.cfg, c, op.addr)
    old = _load(m, state, c, op.addr)
    new, res = op.fn(old)
    w.set_mem(raddr, new)
    if w.ev is not None:
        w.ev.append(E.Rmw(*w.at, fn_name(op.fn), _addr_name(op.addr), old, new))
    return res


def _ap_rmw_each(m: Machine, w: Work, state: tuple, c: int, op: O.RmwPerCpu,
                 alt: int) -> tuple[Any, ...]:
    idx, res = m.cfg.pidx[op.name], []
    for k in range(m.cfg.ncpus):
        new, r = op.fn(w.get_mem(("p", k, idx)))
        w.set_mem(("p", k, idx), new)
        res.append(r)
    if w.ev is not None:
        w.ev.append(E.RmwEach(*w.at, fn_name(op.fn), op.name, tuple(res)))
    return tuple(res)


def _ap_cpumask_clear(m: Machine, w: Work, state: tuple, c: int, op: O.CpumaskClearCpu,
                      alt: int) -> bool:
    raddr = resolve(m.cfg, c, op.addr)
    new = _load(m, state, c, op.addr) - {c}
    w.set_mem(raddr, new)
    if w.ev is not None:
        w.ev.append(E.CpumaskClear(*w.at, _addr_name(op.addr), new))
    return not new


def _ap_wait(m: Machine, w: Work, state: tuple, c: int, op: O.WaitUntil, alt: int) -> Any:
    v = _load(m, state, c, op.addr)
    if w.ev is not None:
        w.ev.append(E.WaitDone(*w.at, _addr_name(op.addr), v))
    return v


def _ap_wait_each(m: Machine, w: Work, state: tuple, c: int, op: O.WaitPerCpu,
                  alt: int) -> None:
    if w.ev is not None:
        w.ev.append(E.WaitEachDone(*w.at, op.name))


def _ap_fence(m: Machine, w: Work, state: tuple, c: int, op: O.Fence, alt: int) -> None:
    if op.kind == "wmb" and m.cfg.memory == "pso":
        _buffer(m, w, c, ("w",), None)
    if w.ev is not None:
        w.ev.append(E.Fence(*w.at, op.kind))


def _ap_serialize(m: Machine, w: Work, state: tuple, c: int, op: O.Serialize,
                  alt: int) -> None:
    if w.ev is not None:
        w.ev.append(E.Serialize(*w.at))
    serialize(m, w, c)


def _ap_exec(m: Machine, w: Work, state: tuple, c: int, op: O.ExecSite, alt: int) -> Any:
    return m.exec_outcome(w, state, c, op.site, alt)


def _ap_patch_returned(m: Machine, w: Work, state: tuple, c: int, op: O.PatchReturned,
                       alt: int) -> None:
    # The contract is what the caller wrote, its own buffered text stores included: a
    # patch routine that returns before they drain has not made them visible, and a
    # CPU that then executes the old bytes breaks the contract (the caller itself, which
    # forwards from its buffer, executes the new ones).
    si = m.cfg.sidx[op.site]
    eff = m.effect_of_bytes(_site_bytes_seen_by(m, state, c, si), si)
    w.set_committed(si, eff)
    if w.ev is not None:
        w.ev.append(E.PatchReturned(*w.at, op.site, eff))


def _ap_irq_save(m: Machine, w: Work, state: tuple, c: int, op: O.IrqSave, alt: int) -> Any:
    cl = w.cpu(c)
    was, cl[IRQ] = cl[IRQ], False
    if w.ev is not None:
        w.ev.append(E.IrqSave(*w.at, was))
    return was


def _ap_invisible(m: Machine, w: Work, state: tuple, c: int, op: O.Op, alt: int) -> Any:
    # normally run eagerly by Machine._run_invisible; same semantics
    return apply_invisible(m, w, c, op)


def _ap_csd_queue(m: Machine, w: Work, state: tuple, c: int, op: O.CsdQueue,
                  alt: int) -> None:
    targets = targets_of(m, c, op.targets)
    raised = _queue(w, c, targets, op.func, op.args, op.sync)
    if w.ev is not None:
        w.ev.append(E.IpiSend(*w.at, fn_name(op.func), targets, raised,
                              _modes(m, w, targets)))


def _ap_csd_lock_wait(m: Machine, w: Work, state: tuple, c: int, op: O.CsdLockWait,
                      alt: int) -> None:
    if w.ev is not None:
        w.ev.append(E.CsdLockWaitDone(*w.at))


def _ap_csd_dequeue(m: Machine, w: Work, state: tuple, c: int, op: O.CsdDequeueAll,
                    alt: int) -> tuple[Any, ...]:
    """`llist_del_all()`: every entry, oldest first, as (index, func, args, sync); a CSD's
    sender is kept in RUNNING under its index, a bare IPI's entry has none: its index is
    ("bare", position), which names no CSD but keeps two equal entries apart (a routine's
    identity is its locals: two iterations over equal items must differ in one)."""
    cl = w.cpu(c)
    q = cl[CSDQ]
    running: list[int] = []
    entries: list[tuple[Any, ...]] = []
    for k, (sender, f, a, sync) in enumerate(q):
        if sync is None:
            entries.append((("bare", k), f, a, None))
        else:
            entries.append((len(running), f, a, sync))
            running.append(sender)
    cl[CSDQ], cl[RUNNING] = (), tuple(running)
    got = tuple(entries)
    if w.ev is not None:
        w.ev.append(E.CsdDequeue(*w.at, tuple(fn_name(f) for _, f, _, _ in q),
                                 tuple(e[0] for e in q)))
    return got


def _ap_csd_unlock(m: Machine, w: Work, state: tuple, c: int, op: O.CsdUnlock,
                   alt: int) -> None:
    if not isinstance(op.index, int):
        raise ModelError(f"cpu{c}: csd_unlock of a bare IPI's entry ({op.index!r}): "
                         "SendIpi locks no CSD, so there is none to unlock")
    sender = state[CPUS][c][RUNNING][op.index]
    _buffer(m, w, c, ("c", sender), None)
    if w.ev is not None:
        w.ev.append(E.CsdUnlock(*w.at, sender))


def _ap_mutex_lock(m: Machine, w: Work, state: tuple, c: int, op: O.MutexLock,
                   alt: int) -> None:
    w.set_mem(("g", m.cfg.gidx[op.name]), c)
    if w.ev is not None:
        w.ev.append(E.MutexLock(*w.at, op.name))


def _ap_mutex_unlock(m: Machine, w: Work, state: tuple, c: int, op: O.MutexUnlock,
                     alt: int) -> None:
    w.set_mem(("g", m.cfg.gidx[op.name]), None)
    if w.ev is not None:
        w.ev.append(E.MutexUnlock(*w.at, op.name))


def _ap_check(m: Machine, w: Work, state: tuple, c: int, op: O.Check, alt: int) -> None:
    vals = tuple(_load(m, state, c, a) for a in op.addrs)
    if not op.pred(*vals):
        raise Violation(op.prop, f"cpu{c}: {op.message} (values {vals})")
    if w.ev is not None:
        w.ev.append(E.CheckPassed(*w.at, op.prop))


def _ap_stack_free(m: Machine, w: Work, state: tuple, c: int, op: O.StackFree,
                   alt: int) -> None:
    for name in op.names:
        w.set_mem(("g", m.cfg.gidx[name]), POISON)
    if w.ev is not None:
        w.ev.append(E.StackFree(*w.at, op.names))


_READER_FORBIDDEN = frozenset({O.StorePerCpu, O.RmwPerCpu, O.TextStore, O.CsdQueue,
                               O.CsdQueueCond, O.MutexLock, O.MutexUnlock, O.StackFree,
                               O.PatchReturned, O.FreePage, O.WaitPerCpu, O.SendIpi})
_READER_WRITES = (O.Store, O.Rmw, O.CpumaskClearCpu)
_READER_READS = (O.Load, O.WaitUntil, O.Rmw, O.CpumaskClearCpu)


def _check_reader(m: Machine, c: int, op: O.Op) -> None:
    """A CPU declared a reader (`MachineConfig.readers`) may write only its own per-CPU
    variables and its own CSD unlocks, and may read no other reader's per-CPU variables
    (check/reduction.py, assumption A); the partial-order reduction is sound only then."""
    why = "it sends IPIs, patches, locks or frees" if type(op) in _READER_FORBIDDEN else ""
    if isinstance(op, _READER_WRITES):
        raddr = resolve(m.cfg, c, op.addr)
        if raddr[0] != "p" or raddr[1] != c:
            why = "a reader may write only its own per-CPU variables"
    if not why:
        addrs = (op.addr,) if isinstance(op, _READER_READS) else \
            op.addrs if isinstance(op, O.Check | O.WaitAll) else ()
        for a in addrs:
            raddr = resolve(m.cfg, c, a)
            if raddr[0] == "p" and raddr[1] != c and raddr[1] in m.cfg.readers:
                why = f"it reads cpu{raddr[1]}'s instance, and cpu{raddr[1]} is a reader too"
    if why:
        raise ModelError(f"cpu{c} is declared a reader but performs {op!r}: {why}")


# ---- ops performed at once (Machine._run_invisible) --------------------------------------

def invisible(m: Machine, w: Work, c: int, op: O.Op) -> bool:
    """Ops whose only effect is this CPU's program position or interrupt flag."""
    if type(op) in _INVISIBLE_ALWAYS:
        return True
    if isinstance(op, O.Fence):
        return op.kind == "rmb" or (op.kind == "wmb" and m.cfg.memory != "pso") \
            or not w.cpus[c][SB]
    return False


def apply_invisible(m: Machine, w: Work, c: int, op: O.Op) -> Any:
    return _INVISIBLE[type(op)](m, w, c, op)


def _inv_assert_held(m: Machine, w: Work, c: int, op: O.AssertHeld) -> None:
    if w.mem[m.cfg.gidx[op.name]] != c:
        raise Violation(Property.LOCKDEP,
                        f"cpu{c}: {op.name} not held (lockdep_assert_held)")
    if w.ev is not None:
        w.ev.append(E.AssertHeld(*w.at, op.name))


def _inv_irqs_enabled(m: Machine, w: Work, c: int, op: O.IrqsEnabled) -> Any:
    on = w.cpus[c][IRQ]
    if w.ev is not None:
        w.ev.append(E.IrqsEnabled(*w.at, on))
    return on


def _inv_irq_restore(m: Machine, w: Work, c: int, op: O.IrqRestore) -> None:
    cl = w.cpu(c)
    if op.enabled:
        ctx = next((f[0] for f in cl[STACK] if f[0] in ("irq", "nmi")), None)
        if ctx is not None:
            # hardirq and NMI handlers run with interrupts off until they return (lockdep
            # warns otherwise); a nested IPI handler would take over this one's dequeued
            # call_single_queue entries (RUNNING), which the model keeps once per CPU
            raise ModelError(f"cpu{c}: local_irq_restore enables interrupts in {ctx} "
                             "context, which the kernel never does")
    cl[IRQ] = op.enabled
    if w.ev is not None:
        w.ev.append(E.IrqRestore(*w.at, op.enabled))


def _inv_fence(m: Machine, w: Work, c: int, op: O.Fence) -> None:
    if w.ev is not None:
        w.ev.append(E.Fence(*w.at, op.kind))


def _inv_warn(m: Machine, w: Work, c: int, op: O.Warn) -> None:
    if w.ev is not None:
        w.ev.append(E.Warn(*w.at, op.message))


def _inv_ghost(m: Machine, w: Work, c: int, op: O.Ghost) -> Any:
    raddr = resolve(m.cfg, c, op.addr)
    if raddr[0] != "p" or raddr[1] != c:
        raise ModelError(f"cpu{c}: {op!r} updates memory that is not its own per-CPU "
                         "state; a Ghost op is performed eagerly, which is sound only "
                         "for state no other CPU reads")
    old = w.get_mem(raddr)
    new, res = op.fn(old)
    if new != old:
        w.set_mem(raddr, new)
    if w.ev is not None:
        w.ev.append(E.Ghost(*w.at, _addr_name(op.addr), old, new, op.label or fn_name(op.fn)))
        if new != old and raddr[2] == m.cfg.pidx.get("mode"):
            w.ev.append(E.ModeChange(c, old, new))
    return res


def _inv_smp_processor_id(m: Machine, w: Work, c: int, op: O.SmpProcessorId) -> int:
    """`smp_processor_id()`. A CPU of a symmetry class may not learn its number: a routine
    that knows it can name CPUs, which renumbering cannot follow (machine/symmetry.py)."""
    for cls in m.cfg.symmetric:
        if c in cls:
            raise ModelError(
                f"cpu{c} calls smp_processor_id() but is in the symmetry class {cls} "
                "(MachineConfig.symmetric): a routine that knows its CPU number can name "
                f"CPUs, which renumbering cannot follow; leave cpu{c} out of `symmetric`, "
                "or address per-CPU data as this_cpu(name)")
    if w.ev is not None:
        w.ev.append(E.ProcessorId(*w.at, c))
    return c


def _inv_note(m: Machine, w: Work, c: int, op: O.Note) -> None:
    if w.ev is not None:
        w.ev.append(E.Note(*w.at, op.text or op.label))


_INVISIBLE: dict[type[O.Op], Callable[[Machine, Work, int, Any], Any]] = {
    O.Note: _inv_note, O.Warn: _inv_warn, O.AssertHeld: _inv_assert_held,
    O.IrqsEnabled: _inv_irqs_enabled, O.IrqRestore: _inv_irq_restore, O.Ghost: _inv_ghost,
    O.Fence: _inv_fence, O.SmpProcessorId: _inv_smp_processor_id}
_INVISIBLE_ALWAYS = frozenset(_INVISIBLE) - {O.Fence}


# ---- memory and text ---------------------------------------------------------------------

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
    if w.ev is not None:
        w.ev.append(E.Serialized(c))


def _ap_text_store(m: Machine, w: Work, state: tuple, c: int, op: O.TextStore,
                   alt: int) -> None:
    si = m.cfg.sidx[op.site]
    w.set_committed(si, None)
    word = m.cfg.arch == "arm64" and m.cfg.memory == "sc"
    if word:
        _store_word(w, si, op.offset, op.data)
    else:
        for i, b in enumerate(op.data):
            _buffer(m, w, c, ("t", si, op.offset + i), b)
    if not word and m.cfg.memory != "sc":
        # Own stores are visible to own instruction fetch (x86 self-modifying-code snooping).
        cl = w.cpu(c)
        raw = bytearray(m.cfg.site_bytes(bytes(w.text), si))
        for (kind, *rest), val in cl[SB]:
            if kind == "t" and rest[0] == si:
                raw[rest[1]] = val
        views = cl[VIEWS]
        cl[VIEWS] = (*views[:si], T.widen_view(m.cfg.fetch, views[si], bytes(raw)),
                     *views[si + 1:])
    if w.ev is not None:
        w.ev.append(E.TextStore(*w.at, op.site, op.offset, op.data, word))


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


# ---- IPIs --------------------------------------------------------------------------------

def _queue(w: Work, c: int, targets: tuple[int, ...], func: Callable[..., Any],
           args: tuple[Any, ...], sync: bool) -> tuple[int, ...]:
    """csd_lock + llist_add on each target; returns those that get an IPI (their queue was
    empty)."""
    sent = []
    for t in targets:
        tl = w.cpu(t)
        was_empty = not tl[CSDQ]
        tl[CSDQ] = (*tl[CSDQ], (c, func, args, sync))
        tl[LOCKED] = tl[LOCKED] | {c}
        if was_empty:
            tl[IPI] = True
            sent.append(t)
    return tuple(sent)


def mode_of(m: Machine, w: Work, c: int) -> Any:
    """CPU c's ghost `mode` ("user" / "kernel"), or None when the machine has none."""
    idx = m.cfg.pidx.get("mode")
    return None if idx is None else w.cpus[c][PERCPU][idx]


def _modes(m: Machine, w: Work, targets: tuple[int, ...]) -> tuple[Any, ...]:
    return tuple(mode_of(m, w, t) for t in targets)


def _ap_csd_queue_cond(m: Machine, w: Work, state: tuple, c: int, op: O.CsdQueueCond,
                       alt: int) -> None:
    idx = m.cfg.pidx[op.name]
    others = targets_of(m, c, "others")
    targets = tuple(t for t in others if op.pred(read(state, c, ("p", t, idx))))
    raised: tuple[int, ...] = ()
    if targets:
        # llist_add()'s cmpxchg, after the cond reads: a full barrier, so this CPU's
        # buffered stores become visible with the first csd it queues
        sb = w.cpu(c)[SB]
        for raddr, value in sb:
            if raddr[0] != "w":  # (a write-barrier marker, not a store)
                m.commit_store(w, c, raddr, value)
                if w.ev is not None:
                    w.ev.append(E.StoreCommitted(c, m.describe_addr(raddr), value))
        if sb:
            w.cpu(c)[SB] = ()
        raised = _queue(w, c, targets, op.func, op.args, op.sync)
    if w.ev is not None:
        w.ev.append(E.IpiSend(*w.at, fn_name(op.func), targets, raised, _modes(m, w, targets),
                              fn_name(op.pred), tuple(t for t in others if t not in targets)))


def _ap_send_ipi(m: Machine, w: Work, state: tuple, c: int, op: O.SendIpi, alt: int) -> None:
    """A bare IPI: each target gets the callback queued and its IPI raised; nothing is
    locked, so the sender learns nothing of when (or whether) it ran."""
    targets = targets_of(m, c, op.targets)
    for t in targets:
        tl = w.cpu(t)
        tl[CSDQ] = (*tl[CSDQ], (c, op.func, op.args, None))
        tl[IPI] = True
    if w.ev is not None:
        w.ev.append(E.BareIpiSend(*w.at, fn_name(op.func), targets, targets,
                                  _modes(m, w, targets)))


# ---- the ops user protocols asked for: choices, multi-address waits, text reads ----------

def _ap_choose(m: Machine, w: Work, state: tuple, c: int, op: O.Choose, alt: int) -> int:
    if w.ev is not None:
        w.ev.append(E.Chose(*w.at, alt, op.n))
    return alt


def _ap_wait_all(m: Machine, w: Work, state: tuple, c: int, op: O.WaitAll,
                 alt: int) -> tuple[Any, ...]:
    vals = tuple(_load(m, state, c, a) for a in op.addrs)
    if w.ev is not None:
        w.ev.append(E.WaitAllDone(*w.at, tuple(_addr_name(a) for a in op.addrs), vals))
    return vals


def _ap_read_text(m: Machine, w: Work, state: tuple, c: int, op: O.ReadText,
                  alt: int) -> bytes:
    raw = _site_bytes_seen_by(m, state, c, m.cfg.sidx[op.site])
    if w.ev is not None:
        w.ev.append(E.TextRead(*w.at, op.site, raw))
    return raw


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


def tlb_fill(m: Machine, w: Work, state: tuple, c: int, i: int) -> None:
    """A speculative page walk: CPU c caches the translation memory holds for va i."""
    va = m.cfg.tlb_vas[i]
    page = state[0][m.cfg.gidx[f"pte.{va}"]]
    tlb = state[CPUS][c][PERCPU][_tlb_idx(m)]
    _set_tlb(m, w, c, frozenset(e for e in tlb if e[0] != va) | {(va, page, not m.cfg.pti)})
    if w.ev is not None:
        w.ev.append(E.TlbFill(c, va, page))


def _ap_tlb_access(m: Machine, w: Work, state: tuple, c: int, op: O.TlbAccess,
                   alt: int) -> None:
    tlb = w.cpus[c][PERCPU][_tlb_idx(m)] or frozenset()
    freed = state[0][m.cfg.gidx["freed_pages"]]
    for va, page, _ in tlb:
        if va == op.va:
            if page in freed:
                raise Violation(Property.USE_AFTER_FREE,
                                f"cpu{c} dereferences {op.va} through a stale TLB entry -> "
                                f"{page}, a page freed after flush_tlb_kernel_range returned")
            if w.ev is not None:
                w.ev.append(E.TlbAccess(*w.at, op.va, page, True))
            return
    page = state[0][m.cfg.gidx[f"pte.{op.va}"]]
    if page is None:
        raise Violation(Property.PAGE_FAULT, f"cpu{c} dereferences {op.va}, which is not "
                                             "mapped (BUG: unable to handle page fault)")
    if w.cpus[c][PERCPU][_tlb_idx(m)] is not None:
        _set_tlb(m, w, c, tlb | {(op.va, page, not m.cfg.pti)})
    if w.ev is not None:
        w.ev.append(E.TlbAccess(*w.at, op.va, page, False))


def _ap_write_cr3(m: Machine, w: Work, state: tuple, c: int, op: O.WriteCr3,
                  alt: int) -> None:
    if w.ev is not None:
        w.ev.append(E.WriteCr3(*w.at, op.kernel, op.flush))
    serialize(m, w, c)
    w.set_mem(("p", c, m.cfg.pidx["cr3"]), "kernel" if op.kernel else "user")
    tlb = w.cpus[c][PERCPU][_tlb_idx(m)] if "tlb" in m.cfg.pidx else None
    if op.flush and tlb:
        _set_tlb(m, w, c, frozenset(e for e in tlb if e[2]))


def _ap_tlb_flush(m: Machine, w: Work, state: tuple, c: int, op: O.TlbFlushKernel,
                  alt: int) -> None:
    tlb = w.cpus[c][PERCPU][_tlb_idx(m)]
    if tlb:
        _set_tlb(m, w, c, frozenset(e for e in tlb if op.va is not None and e[0] != op.va))
    if w.ev is not None:
        w.ev.append(E.TlbFlush(*w.at, op.va))


def _ap_free_page(m: Machine, w: Work, state: tuple, c: int, op: O.FreePage,
                  alt: int) -> None:
    raddr = ("g", m.cfg.gidx["freed_pages"])
    w.set_mem(raddr, w.get_mem(raddr) | {op.page})
    if w.ev is not None:
        w.ev.append(E.FreePage(*w.at, op.page))


_APPLY: dict[type[O.Op], Callable[[Machine, Work, tuple, int, Any, int], Any]] = {
    O.Load: _ap_load, O.Store: _ap_store, O.StorePerCpu: _ap_store_each, O.Rmw: _ap_rmw,
    O.RmwPerCpu: _ap_rmw_each, O.CpumaskClearCpu: _ap_cpumask_clear, O.WaitUntil: _ap_wait,
    O.WaitPerCpu: _ap_wait_each, O.Fence: _ap_fence, O.Serialize: _ap_serialize,
    O.TextStore: _ap_text_store, O.ExecSite: _ap_exec, O.PatchReturned: _ap_patch_returned,
    O.IrqSave: _ap_irq_save, O.CsdQueue: _ap_csd_queue, O.CsdLockWait: _ap_csd_lock_wait,
    O.CsdDequeueAll: _ap_csd_dequeue, O.CsdUnlock: _ap_csd_unlock,
    O.MutexLock: _ap_mutex_lock, O.MutexUnlock: _ap_mutex_unlock, O.Check: _ap_check,
    O.StackFree: _ap_stack_free, O.TlbAccess: _ap_tlb_access, O.WriteCr3: _ap_write_cr3,
    O.TlbFlushKernel: _ap_tlb_flush, O.FreePage: _ap_free_page,
    O.CsdQueueCond: _ap_csd_queue_cond, O.SendIpi: _ap_send_ipi, O.Choose: _ap_choose,
    O.WaitAll: _ap_wait_all, O.ReadText: _ap_read_text,
    **{tp: _ap_invisible for tp in _INVISIBLE_ALWAYS}}
