"""arm64 protocols (KERNEL.md D): `arm64-jump-label` (K10 and the 2024 fix) and
`arm64-stop-machine` (aarch64_insn_patch_text's master election, K11).

Machine: `MachineConfig(arch="arm64", fetch="arm64", memory="sc")`. Instructions are
32-bit words written with one single-copy-atomic store; a CPU may execute any value a word
held since its last context synchronization event (ISB = `Serialize`, exception entry --
an IPI, a pseudo-NMI, a BRK -- and exception return). Data memory is sequentially
consistent: see kernel/arm64_patching.py for what that cannot show.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from crossmod.catalogue.params import MachineParams, Task, fetch_param, memory_param, param
from crossmod.catalogue.static_keys import (
    KEY,
    MAX_SITES,
    KeyParams,
    model_exec_sites,
    model_key_updater,
    notifier_entry,
    site_names,
    sites_of,
)
from crossmod.kernel import arm64_patching as ap
from crossmod.kernel import jump_label as jl
from crossmod.kernel.smp import Gen, generic_smp_call_function_single_interrupt
from crossmod.machine import ops
from crossmod.machine.routines import Routine
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import (
    A64_NOP,
    BRK64_OPCODE_KPROBES,
    Site,
    a64,
    a64_b,
)

NOP = a64(A64_NOP)
BRK = a64(BRK64_OPCODE_KPROBES)
# The probed instruction in multi_cpu_stop(): `mov x0, x19` (orr x0, xzr, x19), an ordinary
# instruction -- not one the Arm ARM lets a CPU execute while it is rewritten.
PROBED = a64(0xAA1303E0)
PROBE_SITE = "multi_cpu_stop+0x5c"
KPROBE_EFFECT = "kprobe hit: pre_handler, then mov x0, x19 stepped out of line"


def arm64_key(k: int) -> jl.StaticKey:
    return jl.StaticKey(KEY, tuple(notifier_entry(n, i, NOP, a64_b(0x40 + 0x10 * i))
                                   for i, n in enumerate(site_names(k))))


def _config(tasks: list, sites: tuple[Site, ...], cpus: int, nmis: int, extra: tuple,
            int3: Routine | None = None) -> MachineConfig:
    names = tuple(s.name for s in sites)
    return MachineConfig(
        ncpus=cpus, sites=sites, tasks=tuple(tasks), int3_handler=int3,
        ipi_handler=generic_smp_call_function_single_interrupt,
        nmi_handler=(model_exec_sites, (names[:1], 1)), nmis=nmis,
        globals=(("text_mutex", None), *extra),
        cpu_valued=frozenset({"text_mutex", "jump_label_mutex", "patch_lock"}),
        fetch="arm64", memory="sc", arch="arm64",
        symmetric=(tuple(range(1, cpus)),) if cpus > 2 else ())


JUMP_LABEL_ARCHS = {"default": ap.ARM64_JUMP_LABEL, "nosync": ap.ARM64_JUMP_LABEL_NOSYNC}


@dataclass(frozen=True)
class Arm64KeyParams(KeyParams):
    """arm64's machine: the arm64 fetch model; data memory sequentially consistent only."""

    fetch: str = fetch_param("arm64")
    memory: str = memory_param("sc")
    execs: int = param(2, "times each CPU but CPU 0 runs through every site", range=(1, 4))


def build_arm64_jump_label(variant: str, p: Arm64KeyParams) -> System:
    """CPU 0 calls static_key_enable(&preempt_notifier_key) (or `flip`) on arm64 with K =
    `sites` sites; CPUs 1.. context-switch through every site `execs` times, taking no
    exception unless an IPI makes them. `nosync`: f6cc0c501649's nosync writes (K10);
    default: the 2024 queue/apply hooks with one kick_all_cpus_sync()."""
    key = arm64_key(p.sites)
    on = p.flip in ("disable", "dec")
    names = tuple(e.site for e in key.entries)
    tasks: list[Task] = [(model_key_updater, (key, JUMP_LABEL_ARCHS[variant], p.flip))]
    tasks += [(model_exec_sites, (names, p.execs))] * (p.cpus - 1)
    extra = jl.jump_label_memory((key,), {KEY: 1 if on else 0}) + ap.arm64_patching_memory()
    cfg = _config(tasks, sites_of(key, on, arch="arm64"), p.cpus, p.nmis, extra)
    return System("arm64-jump-label", cfg, variant, asdict(p))


def model_kprobe_arm(site: str, ncpus: int, master: str) -> Gen:
    """register_kprobe() on an instruction of multi_cpu_stop(): arm it, then hold the
    patch to its contract (every later execution hits the BRK)."""
    yield from jl.cpus_read_lock()
    yield from ap.arch_arm_kprobe(site, BRK, ncpus, master, probe=site)
    yield from jl.cpus_read_unlock()
    yield ops.PatchReturned(site, label="arm_kprobe returned")


def _kprobe_handler(site: str) -> Gen:
    return ap.kprobe_breakpoint_handler(site, KPROBE_EFFECT)


_kprobe_handler.__name__ = "kprobe_breakpoint_handler"
MASTERS = {"default": "last", "first-master": "first"}


@dataclass(frozen=True)
class Arm64StopMachineParams(MachineParams):
    """What CPU 0 patches under stop_machine() while CPUs 1.. run through it."""

    cpus: int = param(2, "number of CPUs (CPU 0 patches)", range=(2, 4))
    nmis: int = param(0, "NMI budget per run", range=(0, 2))
    fetch: str = fetch_param("arm64")
    memory: str = memory_param("sc")
    sites: int = param(1, "patch sites of the key (K), with patch=jump-label",
                       range=(1, MAX_SITES))
    execs: int = param(1, "times each CPU but CPU 0 runs through every site", range=(1, 4))
    patch: str = param("kprobe", "what is patched: a kprobe on multi_cpu_stop() (not "
                       "CMODX-safe) or the key's NOP <-> B sites", choices=("kprobe", "jump-label"))

    def conflict(self) -> str | None:
        if self.patch == "kprobe" and self.sites != 1:
            return "--sites applies to arm64-stop-machine with patch=jump-label only"
        return None


def build_arm64_stop_machine(variant: str, p: Arm64StopMachineParams) -> System:
    """aarch64_insn_patch_text() under stop_machine(); `first-master` is the election before
    2022 (K11). `patch="kprobe"` (default): CPU 0 arms a kprobe on an instruction that every
    CPU executes in multi_cpu_stop() before the callback -- not a CMODX-safe change, so a
    CPU that runs it while it is rewritten may do anything. `patch="jump-label"`: CPU 0
    enables preempt_notifier_key through the pre-f6cc0c501649 hook, one stop_machine() per
    site; NOP <-> B is CMODX-safe, so even the first-master election is safe there."""
    master = MASTERS[variant]
    cpus = p.cpus
    if p.patch == "jump-label":
        key = arm64_key(p.sites)
        names = tuple(e.site for e in key.entries)
        tasks: list[Task] = [(model_key_updater, (key, ap.model_jump_label_transform_stop_machine(
            cpus, master), "enable"))]
        msites = sites_of(key, False, arch="arm64")
        extra = jl.jump_label_memory((key,))
        int3 = None
    else:
        names = (PROBE_SITE,)
        tasks = [(model_kprobe_arm, (PROBE_SITE, cpus, master))]
        msites = (Site(PROBE_SITE, PROBED, ((PROBED, "mov x0, x19"),),
                       int3_effect=KPROBE_EFFECT, arch="arm64"),)
        extra = jl.jump_label_memory(())
        int3 = _kprobe_handler
    tasks += [(model_exec_sites, (names, p.execs))] * (cpus - 1)
    cfg = _config(tasks, msites, cpus, p.nmis, extra + ap.arm64_patching_memory(), int3)
    return System("arm64-stop-machine", cfg, variant, asdict(p))


def key_flip_systems(cpus: int = 3, sites: tuple[int, ...] = (1, 2, 4)
                     ) -> list[tuple[str, System]]:
    """One static_key_enable() per system, side by side: x86 (one int3 batch), arm64 since
    2024 (nosync writes + kick_all_cpus_sync) and arm64 before f6cc0c501649 (one
    stop_machine() per site), for each K in `sites`. Feed it to
    `crossmod.check.stats.cost_rows()` for the IPIs and rendezvous per key flip."""
    from crossmod.catalogue.static_keys import build_x86_static_key

    out: list[tuple[str, System]] = []
    for k in sites:
        out.append((f"x86-static-key K={k}",
                    build_x86_static_key("default", KeyParams(cpus=cpus, sites=k))))
        out.append((f"arm64-jump-label K={k}",
                    build_arm64_jump_label("default", Arm64KeyParams(cpus=cpus, sites=k))))
        out.append((f"arm64-stop-machine patch=jump-label K={k}", build_arm64_stop_machine(
            "default", Arm64StopMachineParams(cpus=cpus, sites=k, patch="jump-label"))))
    return out
