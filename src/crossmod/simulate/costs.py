"""The simulator's cost model: every duration it charges, in nanoseconds, with the place
each default comes from (`SOURCES`). A scenario's ``[costs]`` table overrides any of them.

Owns: `CostModel`, `SOURCES`, `GETPID_ENTRY_COST` (the v6 thread's getpid figures).
Imports: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# Where each default comes from. "MODEL" marks an estimate of ours, with its reasoning.
SOURCES: dict[str, str] = {
    "ipi_delivery_ns": "x86 APIC IPI send to handler entry, ~1-2 us on Xeon (seed 000 thread; "
                       "the QEMU recording's ipi_send -> call_function_entry is emulated, slower)",
    "entry_stub_ns": "entry_SYSCALL_64/idtentry up to SWITCH_TO_KERNEL_CR3: ~30 instructions "
                     "(arch/x86/entry/entry_64.S); MODEL: 20 ns",
    "signal_store_ns": "kernel_cr3_loaded store to the CR3 write: a few instructions; MODEL: 2 ns",
    "cr3_write_ns": "MOV CR3 (serializing), ~100-250 cycles on Skylake-era Xeons (Agner Fog's "
                    "tables; KERNEL.md H.1); MODEL: 80 ns",
    "ct_enter_ns": "SWITCH_TO_KERNEL_CR3 to ct_kernel_enter_state (enter_from_user_mode, "
                   "KERNEL.md G.2/G.5 danger zone); MODEL: 60 ns",
    "ct_exit_ns": "ct_kernel_exit_state (user_enter) to NOTE_SWITCH_TO_USER_CR3: "
                  "exit_to_user_mode's tail (KERNEL.md G.2); MODEL: 40 ns",
    "exit_cr3_ns": "NOTE_SWITCH_TO_USER_CR3 to the user CR3 write; MODEL: 2 ns",
    "exit_tail_ns": "user CR3 write to SYSRET/IRET retiring; MODEL: 30 ns",
    "store_drain_ns": "a store buffer entry reaching L1 (TSO); capped by the next serializing "
                      "instruction (the CR3 write); MODEL: 5 ns",
    "syscall_body_ns": "getppid()'s body in the kernel (the QEMU spin loop's syscall); "
                       "MODEL: 60 ns",
    "tick_ns": "residual tick handler on a nohz_full CPU (tick_nohz, ~2-5 us); MODEL: 3000 ns",
    "nmi_ns": "perf/watchdog NMI handler; MODEL: 2000 ns",
    "handler_do_sync_core_ns": "sync_core() (SERIALIZE/IRET-to-self) plus the CSD dispatch; "
                               "the QEMU recording's mean 33 us is emulated; MODEL: 1500 ns",
    "handler_do_kernel_range_flush_ns": "INVLPG per page (~200 cycles each); the recording's "
                                        "mean 28.5 us is emulated; MODEL: 1500 ns",
    "handler_do_flush_tlb_all_ns": "__flush_tlb_all + refill; recording mean 64 us emulated; "
                                   "MODEL: 3000 ns",
    "handler_default_ns": "any other callback (reschedule, irq_work, rcu_exp_handler): "
                          "MODEL 2000 ns",
    "ipi_entry_exit_ns": "idtentry + irqentry_exit_to_user_mode around an IPI taken from user "
                         "mode; MODEL: 1000 ns",
    "deferred_flush_ns": "cr3/ct: the deferred work at entry -- TLB refill after the flushing "
                         "CR3 write, or ct_work_flush's sync_core/__flush_tlb_all; MODEL: 800 ns",
    "entry_overhead_ns": "what the deferral code adds to every user->kernel entry: the signal "
                         "stores (v8) or the ct word's extra RMW and flush check (v6). The v6 "
                         "thread's getpid figures (GETPID_ENTRY_COST) are the data points; "
                         "default: the Gold 6248 one (+1 % of a ~100 ns getpid)",
    "round_gap_ns": "one int3 sync round to the next: the sender's csd_lock_wait plus the "
                    "text_poke writes (KERNEL.md B.4); MODEL: 5000 ns",
}

# v6 thread: getpid() on isolated CPUs, slower with deferral by this fraction (entry and
# exit of a ~100 ns syscall): the cost-model data points for the syscall-rate sweep.
GETPID_NS = 100.0
GETPID_ENTRY_COST: dict[str, float] = {"E5-2699": 0.74, "E7-8890": 0.27, "Gold 6248": 0.01}


@dataclass(frozen=True)
class CostModel:
    """Durations in ns (see `SOURCES`)."""

    ipi_delivery_ns: float = 1500.0
    entry_stub_ns: float = 20.0
    signal_store_ns: float = 2.0
    cr3_write_ns: float = 80.0
    ct_enter_ns: float = 60.0
    ct_exit_ns: float = 40.0
    exit_cr3_ns: float = 2.0
    exit_tail_ns: float = 30.0
    store_drain_ns: float = 5.0
    syscall_body_ns: float = 60.0
    tick_ns: float = 3000.0
    nmi_ns: float = 2000.0
    handler_do_sync_core_ns: float = 1500.0
    handler_do_kernel_range_flush_ns: float = 1500.0
    handler_do_flush_tlb_all_ns: float = 3000.0
    handler_default_ns: float = 2000.0
    ipi_entry_exit_ns: float = 1000.0
    deferred_flush_ns: float = 800.0
    entry_overhead_ns: float = GETPID_NS * GETPID_ENTRY_COST["Gold 6248"]
    round_gap_ns: float = 5000.0

    def handler(self, callback: str) -> float:
        """The handler's cost for one callback ("a+b": both, one IPI)."""
        return sum(float(getattr(self, f"handler_{cb}_ns", self.handler_default_ns))
                   for cb in callback.split("+"))

    @property
    def entry_ns(self) -> float:
        """Hardware entry to ct_kernel_enter_state."""
        return self.entry_stub_ns + self.signal_store_ns + self.cr3_write_ns + self.ct_enter_ns

    @property
    def exit_ns(self) -> float:
        """ct_kernel_exit_state to the return to user mode."""
        return self.ct_exit_ns + self.exit_cr3_ns + self.exit_tail_ns

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))
