"""The entry and exit steps of kernel/entry.py and kernel/context_tracking.py as a
timeline: where a CPU is in a kernel period at a given time, and whether a sender's cond
lets an IPI through to it there.

Owns: `STEPS` (the routines' step labels, in the order a syscall or an IPI taken from
user mode performs them), `passes` (the one decision: given the last step the target
performed and whether its signal store has drained, does the policy's cond send it the
IPI?), `Period` and `Period.at` (the same steps placed in time by the cost model), and the
names of the windows a residual IPI falls in. Imports: simulate.costs.

The decision follows the routines, step for step:
- cr3 (v8): `flush_tlb_kernel_cond` / the text sync's cond read `kernel_cr3_loaded`
  (kernel/history/deferral.py): 1 from `E2a NOTE_SWITCH_TO_KERNEL_CR3` (once the store has
  drained -- at the latest by the serializing `E2b` CR3 write) until `X2a
  NOTE_SWITCH_TO_USER_CR3` has drained (at the latest `X2b`).
- ct (v6): `ct_set_cpu_work` fails (IPI) while the word has CT_RCU_WATCHING: from `E3
  ct_kernel_enter_state` until `X1 ct_kernel_exit_state` (one atomic word: no store
  buffer between them); an NMI's `ct_nmi_enter` makes RCU watch with the state field left
  USER (KERNEL.md G.6 race 2, fixed by gating on CT_RCU_WATCHING: the IPI is sent).
- none: every CPU gets it.
tests/simulate/test_entrypath.py checks `passes` against every interleaving of the
checker's own defer-cr3 and defer-ct configurations (Machine.step events).
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmod.simulate.costs import CostModel

# (label prefix as the routines print it, the step's name on the timeline)
STEPS: tuple[tuple[str, str], ...] = (
    ("entry_SYSCALL_64 enters the kernel", "entry"),
    ("I1 idtentry enters the kernel", "entry"),
    ("E2a", "E2a"),            # NOTE_SWITCH_TO_KERNEL_CR3: kernel_cr3_loaded := 1
    ("E2b", "E2b"),            # SWITCH_TO_KERNEL_CR3 (serializing)
    ("E3 ct_kernel_enter_state", "E3"),
    ("X1 ct_kernel_exit_state", "X1"),
    ("X2a", "X2a"),            # NOTE_SWITCH_TO_USER_CR3: kernel_cr3_loaded := 0
    ("X2b", "X2b"),            # SWITCH_TO_USER_CR3
    ("X3", "user"),
)
ORDER = ("user", "entry", "E2a", "E2b", "E3", "body", "X1", "X2a", "X2b")

ENTRY_WINDOW = "entry window: kernel_cr3_loaded already 1, context tracking still USER"
EXIT_WINDOW = "exit window: after user_enter, before NOTE_SWITCH_TO_USER_CR3 drained"
NMI_WINDOW = "NMI from user mode: ct_nmi_enter made RCU watch, state field still USER"


def step_of(label: str) -> str | None:
    """The timeline step a routine's op label is, or None for a step that does not move it."""
    for prefix, step in STEPS:
        if label.startswith(prefix):
            return step
    return None


def passes(policy: str, step: str, drained: bool) -> bool:
    """Does the policy's cond send the IPI to a target whose last step is `step`
    (`drained`: its last signal store has reached memory)?"""
    if policy == "none":
        return True
    i = ORDER.index(step)
    if policy == "ct":
        return ORDER.index("E3") <= i < ORDER.index("X1")
    # cr3: the value of kernel_cr3_loaded memory holds
    if step == "E2a":
        return drained
    if step == "X2a":
        return not drained
    return ORDER.index("E2b") <= i <= ORDER.index("X1")


@dataclass(frozen=True, slots=True)
class Period:
    """One stay in the kernel from user mode: hardware entry at `start`, back in user mode
    at `end`; `kind` says why (syscall, tick, ipi, nmi)."""

    start: float
    end: float
    kind: str

    def at(self, t: float, c: CostModel) -> tuple[str, bool]:
        """(last step performed at time t, has its signal store drained) -- the steps of
        STEPS placed by the cost model, clipped to a short period."""
        s, e = self.start, self.end
        e2a = s + c.entry_stub_ns
        e2b = e2a + c.signal_store_ns
        e3 = e2b + c.cr3_write_ns + c.ct_enter_ns
        x1 = max(e - c.exit_ns, e3)
        x2a = x1 + c.ct_exit_ns
        x2b = x2a + c.exit_cr3_ns
        if t < s or t >= e:
            return "user", True
        if t < e2a:
            return "entry", True
        if t < e2b:
            return "E2a", t >= min(e2a + c.store_drain_ns, e2b)
        if t < e3:
            return "E2b", True
        if t < x1:
            return "body", True
        if t < x2a:
            return "X1", True
        if t < x2b:
            return "X2a", t >= min(x2a + c.store_drain_ns, x2b)
        return "X2b", True


def window(policy: str, step: str, kind: str) -> str:
    """Why a deferrable callback still reached a CPU at `step` of a `kind` period."""
    if kind == "nmi" and policy == "ct":
        return NMI_WINDOW
    if policy == "cr3" and ORDER.index(step) < ORDER.index("E3"):
        return ENTRY_WINDOW
    if policy == "cr3" and step in ("X1", "X2a"):
        return EXIT_WINDOW
    return f"in the kernel ({kind})"
