"""The SMP machine: its moves and its deterministic step function.

Owns: `Machine.moves(state)` -- every choice enabled in a state (which CPU runs, which stale
bytes a fetch sees, which store drains, when a pending IPI or an NMI is taken) -- and
`Machine.step(state, move)`, the single place where an op is applied and the next choice is
offered (loom's `branch()`). Imports: machine.*; knows no protocol and no engine.

A move is `(cpu, kind, alt)`:
  run    the top context of `cpu` performs its next op (`alt` picks a fetch outcome) or, when
         its routine returned, returns (a handler's return is IRET: serializing)
  drain  the oldest store of `cpu`'s buffer reaches memory (`alt` picks one under `pso`)
  irq    `cpu` takes its pending function-call IPI (IRQs on); not serializing
  nmi    `cpu` takes an NMI (any time outside an NMI; spends one of the run's budget)
  fill   `cpu`'s page walker speculatively caches the translation of `tlb_vas[alt]`
"""

from __future__ import annotations

from typing import Any

from crossmod.machine import cpu as X
from crossmod.machine import text as T
from crossmod.machine.ops import RETRY
from crossmod.machine.routines import RoutineTable, routine_name
from crossmod.machine.state import (
    CPUS,
    IPI,
    IRQ,
    LOCKED,
    NMIS,
    SB,
    STACK,
    TEXT,
    VIEWS,
    MachineConfig,
    Work,
)

Move = tuple[int, str, int]
PUSHED = object()


class Machine:
    """A machine built from a `MachineConfig`; stateless apart from its routine table."""

    def __init__(self, cfg: MachineConfig, identity: str = "locals") -> None:
        self.cfg = cfg
        self.routines = RoutineTable(identity)
        self.fresh_views: dict[bytes, tuple] = {}
        # Whether steps describe themselves in full; the explorer turns it off and trails
        # are told by replaying with it on (STYLE.md rule 28).
        self.narrate = True
        self._nmi_cpus = frozenset(cfg.nmi_cpus if cfg.nmi_cpus is not None
                                   else range(cfg.ncpus))

    # ---- state -----------------------------------------------------------------------
    def initial_state(self) -> tuple:
        cfg = self.cfg
        text = b"".join(s.initial for s in cfg.sites)
        views = tuple(T.initial_view(cfg.fetch, s.initial) for s in cfg.sites)
        percpu = tuple(v for _, v in cfg.percpu)
        cpus = []
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
        return w.freeze()

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
        cfg = self.cfg
        nodes = self.routines.nodes
        for c, cpu in enumerate(state[CPUS]):
            stack = cpu[STACK]
            if stack:
                node = nodes[stack[-1][1]]
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
                    and not any(f[0] == "nmi" for f in stack)):
                out.append((c, "nmi", 0))
            if cfg.tlb_vas:
                out.extend((c, "fill", i) for i in X.tlb_fillable(self, state, c))
        return out

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
    def step(self, state: tuple, move: Move) -> tuple[tuple, str]:
        """Apply one move; returns the next state and a one-line account in kernel terms.

        Raises `cpu.Violation` when the move breaks a property.
        """
        c, kind, alt = move
        w = Work(self.cfg, state)
        if kind == "run":
            text = self._run(w, state, c, alt)
            text += self._run_invisible(w, c)
        elif kind == "drain":
            text = self._drain(w, state, c, alt)
        elif kind == "fill":
            text = X.tlb_fill(self, w, state, c, alt)
        elif kind == "irq":
            cl = w.cpu(c)
            cl[IPI], cl[IRQ] = False, False
            node = self.routines.start(self.cfg.ipi_handler, ())
            cl[STACK] = (*cl[STACK], ("irq", node, True, None))
            text = "takes the function-call IPI"
            if self.cfg.arch == "arm64":
                X.serialize(self, w, c)
                text += " (exception entry: context synchronization)"
        else:
            cl = w.cpu(c)
            fn, args = self.cfg.nmi_handler
            cl[STACK] = (*cl[STACK], ("nmi", self.routines.start(fn, args), cl[IRQ], None))
            cl[IRQ] = False
            w.nmis -= 1
            text = "takes an NMI"
            if self.cfg.arch == "arm64":
                X.serialize(self, w, c)
                text = "takes a pseudo-NMI (exception entry: context synchronization)"
        if kind != "run":
            text += self._run_invisible(w, c)
        return w.freeze(), f"cpu{c} {text}"

    def _run_invisible(self, w: Work, c: int, initial: bool = False) -> str:
        """Perform at once the ops nobody else can observe (`cpu.invisible`).

        Why this is sound: such an op touches only this CPU's program position and its
        interrupt flag, so it commutes with every other CPU's moves and with this CPU's
        drains; an NMI or IPI handler saves and restores the flag, so a handler taken just
        before the op behaves as one taken just after it. Only `local_irq_save` is not
        invisible: it decides whether a pending IPI can still be taken. A task's final
        return is invisible too: it only empties the stack, and a handler taken before or
        after it runs and returns alike.
        """
        parts = []
        nodes = self.routines.nodes
        while True:
            stack = w.cpus[c][STACK]
            if not stack:
                break
            node = nodes[stack[-1][1]]
            if node.op is None and len(stack) == 1 and stack[0][0] == "task":
                w.cpu(c)[STACK] = ()
                parts.append(f"{routine_name(node.root[0])} returns (task done)")
                break
            if node.op is None or not X.invisible(self, w, c, node.op):
                break
            try:
                val, text = X.apply_invisible(self, w, c, node.op)
            except X.Violation:
                if not initial:
                    raise
                break  # left pending: the CPU's first move reports it, with a trail
            self._advance_top(w, c, val)
            parts.append(text)
        return "; " + "; ".join(parts) if parts else ""

    def _run(self, w: Work, state: tuple, c: int, alt: int) -> str:
        frame = state[CPUS][c][STACK][-1]
        node = self.routines.nodes[frame[1]]
        name = node.func or routine_name(node.root[0])
        if node.op is None:
            name = routine_name(node.root[0])
            return f"{name}: {self._return(w, state, c, frame, node.ret)}"
        val, text = X.apply(self, w, state, c, node.op, alt)
        if val is not PUSHED:
            self._advance_top(w, c, val)
        label = f" [{node.op.label}]" if node.op.label else ""
        return f"{name}{label}: {text}"

    def _advance_top(self, w: Work, c: int, val: Any) -> None:
        cl = w.cpu(c)
        stack = cl[STACK]
        kind, nid, saved, site = stack[-1]
        cl[STACK] = (*stack[:-1], (kind, self.routines.advance(nid, val), saved, site))

    def _return(self, w: Work, state: tuple, c: int, frame: tuple, ret: Any) -> str:
        kind, _, saved, site = frame
        cl = w.cpu(c)
        cl[STACK] = cl[STACK][:-1]
        if kind == "task":
            return "returns (task done)"
        X.serialize(self, w, c)
        cl[IRQ] = saved
        # the exception return, in the architecture's words: both are context
        # synchronizing (x86 IRET is serializing; arm64 ERET is a context synchronization
        # event), which is what the serialize above models
        ret_insn, trap = ("ERET", "BRK") if self.cfg.arch == "arm64" else ("IRET", "#BP")
        if kind != "bp":
            return f"{ret_insn} (serializing)"
        if ret == RETRY:
            return f"{ret_insn} from {trap}: re-executes {site}"
        eff = self._int3_result(w, state, c, site, ret)
        self._advance_top(w, c, eff)
        return f"{ret_insn} from {trap}: {site} executed as '{eff}'"

    def _int3_result(self, w: Work, state: tuple, c: int, site: str, ret: Any) -> str:
        si = self.cfg.sidx[site]
        s = self.cfg.sites[si]
        if ret is None:
            raw = self.cfg.site_bytes(state[TEXT], si)
            if s.int3_effect is None or raw[0] != T.INT3:
                raise X.Violation(
                    "unexpected-int3",
                    f"cpu{c} int3 at {site} not claimed by smp_text_poke_int3_handler and no "
                    f"INT3 is installed there (memory: {T.hexbytes(raw)}): die(\"int3\")")
            ret = s.int3_effect
        if ret not in s.effects():
            raise X.Violation("int3-emulation",
                              f"cpu{c} #BP handler emulated '{ret}' at {site}, which is "
                              f"neither its old nor its new instruction")
        self._check_visible(w, c, si, ret)
        return ret

    def _check_visible(self, w: Work, c: int, si: int, eff: str) -> None:
        want = w.committed[si]
        if want is not None and eff != want:
            site = self.cfg.sites[si].name
            raise X.Violation(
                "patch-visibility",
                f"cpu{c} executes '{eff}' at {site} after the patch returned "
                f"(every CPU must now execute '{want}')")

    def exec_outcome(self, w: Work, state: tuple, c: int, site: str, alt: int) -> tuple:
        si = self.cfg.sidx[site]
        s = self.cfg.sites[si]
        out = T.fetch_outcomes(self.cfg.fetch, s, state[CPUS][c][VIEWS][si])[alt]
        fetched = T.hexbytes(out[-1])
        if out[0] == "torn":
            raise X.Violation("torn-instruction",
                              f"cpu{c} exec {site}: fetched {fetched} -> not an instruction "
                              f"the site may hold (torn)")
        if out[0] == "int3":
            cl = w.cpu(c)
            node = self.routines.start(self.cfg.int3_handler, (site,))
            cl[STACK] = (*cl[STACK], ("bp", node, cl[IRQ], site))
            cl[IRQ] = False
            if self.cfg.arch == "arm64":
                X.serialize(self, w, c)
                return PUSHED, f"exec {site}: fetched {fetched} -> BRK exception"
            return PUSHED, f"exec {site}: fetched {fetched} -> #BP"
        self._check_visible(w, c, si, out[1])
        return out[1], f"exec {site}: fetched {fetched} -> {out[1]}"

    # ---- memory ----------------------------------------------------------------------
    def _drain(self, w: Work, state: tuple, c: int, alt: int) -> str:
        sb = state[CPUS][c][SB]
        idx = alt  # `moves` names a drain by the entry's index in the buffer
        raddr, value = sb[idx]
        rest = sb[:idx] + sb[idx + 1:]
        while rest and rest[0][0][0] == "w":
            rest = rest[1:]
        w.cpu(c)[SB] = rest
        self.commit_store(w, c, raddr, value)
        if not self.narrate:
            return "store buffer drains"
        return f"store buffer drains: {self.describe_addr(raddr)} := {value!r}"

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

    def blocked_on(self, state: tuple, c: int) -> str:
        """What CPU c is stuck on, for deadlock reports."""
        stack = state[CPUS][c][STACK]
        if not stack:
            return "idle"
        node = self.routines.nodes[stack[-1][1]]
        ctx = "/".join(f[0] for f in stack)
        what = type(node.op).__name__ if node.op else "return"
        label = getattr(node.op, "label", "") if node.op else ""
        irq = "on" if state[CPUS][c][IRQ] else "off"
        return f"{routine_name(node.root[0])} waits in {what}{f' [{label}]' if label else ''}" \
               f" (contexts {ctx}, irqs {irq})"
