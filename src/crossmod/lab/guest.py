"""The guest's workload: phases, their plan from a seed, and the configuration the guest reads.

Owns: `PHASES` (what each phase runs on the housekeeping CPUs, as the shared capture's
guest/load.sh does), `Plan` (one seed's choices: tracepoint and module order, socket
count, hackbench size; the same seed and phases give the same plan and so the same
initramfs), `lab_conf` (the shell file /etc/crossmod/lab.conf) and `record_script`
(/etc/crossmod/record.sh: trace-cmd's line for the capabilities the kernel is expected
to have).

May import: the standard library and `crossmod.lab.record`, `crossmod.trace.events`.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from crossmod.lab.record import Capabilities, armed_filter, shell_line, trace_cmd_argv

#: phase -> what it does on the housekeeping CPUs (README and --help)
PHASES = {
    "bpf_jit": "attach a 63-instruction classic BPF filter to N UDP sockets, close, repeat "
               "(JIT on)",
    "bpf_nojit": "the same with net.core.bpf_jit_enable=0 (interpreter; prog made read-only)",
    "tracepoint": "enable/disable 6 trace events in a separate tracefs instance (static keys "
                  "and static calls)",
    "kprobe": "create, enable, disable, delete a kprobe (vfs_read) and a kretprobe "
              "(do_sys_openat2)",
    "module": "insmod/rmmod dummy, minix, crc7 in a loop",
    "hackbench": "hackbench -g G -f 10 -l L in a loop",
    "mixed": "bpf_jit, tracepoint, module and hackbench at once",
}

TRACEPOINTS = ("sched/sched_wakeup", "sched/sched_switch", "timer/hrtimer_start",
               "irq/softirq_entry", "syscalls/sys_enter_read", "kmem/kmalloc")
#: small modules with no dependency, and where they are in a Debian kernel package
MODULES = {"dummy": "kernel/drivers/net/dummy.ko", "minix": "kernel/fs/minix/minix.ko",
           "crc7": "kernel/lib/crc7.ko"}

#: the results port's driver stack, in load order, for a kernel that has it as modules
#: (Debian 6.1; 6.12 builds it in): drivers/char/virtio_console.c and what it needs
PORT_MODULES = {
    "virtio_ring": "kernel/drivers/virtio/virtio_ring.ko",
    "virtio": "kernel/drivers/virtio/virtio.ko",
    "virtio_pci_modern_dev": "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "virtio_pci_legacy_dev": "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "virtio_pci": "kernel/drivers/virtio/virtio_pci.ko",
    "virtio_console": "kernel/drivers/char/virtio_console.ko",
}


def parse_phases(text: str) -> tuple[str, ...]:
    """``"bpf_jit,module"`` -> the phases, checked. Raises ValueError naming a bad one."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not names:
        raise ValueError("no phase given")
    for p in names:
        if p not in PHASES:
            raise ValueError(f"unknown phase {p!r} (phases: {', '.join(PHASES)})")
    return names


@dataclass(frozen=True)
class Plan:
    """One run's workload: everything the guest does, decided on the host."""

    seed: int
    phases: tuple[str, ...]
    seconds_per_phase: int
    spin_us: int
    tracepoints: tuple[str, ...]
    modules: tuple[str, ...]
    bpf_nsock: int
    hackbench_groups: int
    hackbench_loops: int

    @classmethod
    def make(cls, seed: int, phases: Sequence[str], seconds: int, spin_us: int) -> Plan:
        rng = random.Random(seed)
        tps = list(TRACEPOINTS)
        rng.shuffle(tps)
        mods = list(MODULES)
        rng.shuffle(mods)
        return cls(seed=seed, phases=tuple(phases), seconds_per_phase=seconds,
                   spin_us=spin_us, tracepoints=tuple(tps), modules=tuple(mods),
                   bpf_nsock=rng.randrange(48, 81), hackbench_groups=rng.randrange(1, 4),
                   hackbench_loops=rng.randrange(100, 301, 50))

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def lab_conf(plan: Plan, caps: Capabilities, isolated: Sequence[int],
             housekeeping: Sequence[int]) -> str:
    """/etc/crossmod/lab.conf: shell assignments the guest's init and load.sh source."""
    from crossmod.trace.events import format_cpulist

    values = {
        "ARMED_FILTER": armed_filter(trace_cmd_argv(caps, isolated, "-")),
        "ISOLATED": format_cpulist(tuple(isolated)),
        "ISOLATED_CPUS": " ".join(map(str, isolated)),
        "HOUSEKEEPING": format_cpulist(tuple(housekeeping)),
        "PHASES": " ".join(plan.phases),
        "SECONDS_PER_PHASE": str(plan.seconds_per_phase),
        "SPIN_US": str(plan.spin_us),
        "SEED": str(plan.seed),
        "TP_EVENTS": " ".join(plan.tracepoints),
        "MODULES": " ".join(plan.modules),
        "PORT_MODULES": " ".join(PORT_MODULES),
        "BPF_NSOCK": str(plan.bpf_nsock),
        "HB_GROUPS": str(plan.hackbench_groups),
        "HB_LOOPS": str(plan.hackbench_loops),
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def record_script(caps: Capabilities, isolated: Sequence[int]) -> str:
    """/etc/crossmod/record.sh: ``sh record.sh OUT`` records into OUT."""
    argv = trace_cmd_argv(caps, isolated, "@OUT@")
    line = shell_line(["trace-cmd", *argv]).replace("@OUT@", '"$1"')
    return f"#!/bin/sh\n# written by crossmod lab for {caps}\nexec {line}\n"
