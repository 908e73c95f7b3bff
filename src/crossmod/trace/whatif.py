"""Which IPI callbacks deferral to the next kernel entry could remove (KERNEL.md F.6).

Owns: the built-in classification table, the ``--classify`` file format that extends or
overrides it, and `Classifier.removable`, the one rule the what-if applies: an IPI is
removable when every callback it carries is deferrable *and* its target was in user mode
when it was queued (or, in a trace without context tracking, is assumed to be).

``--classify`` file: one callback per line, ``name  deferrable|not  [reason ...]``;
``#`` starts a comment. Example::

    ftrace_sync_ipi  deferrable  only orders kernel text updates, like do_sync_core

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crossmod.trace.events import TraceFormatError

DEFERRABLE = "deferrable"
NOT = "not"

# F.6: kernel-only effects defer; anything that acts on user-visible or scheduler state
# at once does not. Unknown callbacks are "not" (the conservative answer).
BUILTIN: dict[str, tuple[str, str]] = {
    "do_sync_core": (DEFERRABLE, "text-patching sync: only which kernel bytes run"),
    "do_kernel_range_flush": (DEFERRABLE, "kernel-range TLB flush"),
    "do_flush_tlb_all": (DEFERRABLE, "full flush issued for kernel ranges (vmalloc, set_memory)"),
    "do_nothing": (DEFERRABLE, "kick_all_cpus_sync used for text sync"),
    "flush_tlb_func": (NOT, "user-mm TLB flush: stale user translations usable at once"),
    "nohz_full_kick_func": (NOT, "irq_work: nohz_full tick dependency kick"),
    "rcu_exp_handler": (NOT, "expedited RCU grace period"),
    "sched_ttwu_pending": (NOT, "scheduler wakeup"),
    "reschedule": (NOT, "scheduler IPI"),
    "pcpu_balance_workfn": (NOT, "not covered by the deferral series (v8)"),
}


@dataclass
class Classifier:
    """The table in force: built-in entries, then ``--classify`` lines over them."""

    table: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(BUILTIN))

    def kind(self, func: str) -> str:
        entry = self.table.get(func)
        return entry[0] if entry else NOT

    def reason(self, func: str) -> str:
        entry = self.table.get(func)
        return entry[1] if entry else "not in the table: assumed not deferrable"

    def deferrable(self, funcs: tuple[str, ...]) -> bool:
        return bool(funcs) and all(self.kind(f) == DEFERRABLE for f in funcs)

    def load(self, text: str, path: str) -> None:
        """Merge a ``--classify`` file; TraceFormatError names the line on junk."""
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            if len(parts) < 2 or parts[1] not in (DEFERRABLE, NOT):
                raise TraceFormatError(f"{path}:{n}", "expected 'callback deferrable|not "
                                       f"[reason]', got {raw.strip()[:60]!r}")
            self.table[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else path)
