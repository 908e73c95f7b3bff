"""arm64 protocols (KERNEL.md D): `arm64-jump-label` (K10 and the 2024 fix) and
`arm64-stop-machine` (aarch64_insn_patch_text's master election, K11).

Machine: `MachineConfig(arch="arm64", fetch="arm64", memory="sc")`. Instructions are
32-bit words written with one single-copy-atomic store; a CPU may execute any value a word
held since its last context synchronization event (ISB = `Serialize`, exception entry --
an IPI, a pseudo-NMI, a BRK -- and exception return). Data memory is sequentially
consistent: see kernel/arm64_patching.py for what that cannot show.
"""

from __future__ import annotations

from crossmod.catalogue.static_keys import (
    KEY,
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
            int3=None) -> MachineConfig:
    names = tuple(s.name for s in sites)
    return MachineConfig(
        ncpus=cpus, sites=sites, tasks=tuple(tasks), int3_handler=int3,
        ipi_handler=generic_smp_call_function_single_interrupt,
        nmi_handler=(model_exec_sites, (names[:1], 1)), nmis=nmis,
        globals=(("text_mutex", None), *extra),
        cpu_valued=frozenset({"text_mutex", "jump_label_mutex", "patch_lock"}),
        fetch="arm64", memory="sc", arch="arm64",
        symmetric=(tuple(range(1, cpus)),) if cpus > 2 else ())


def _check(name: str, arch: str | None, fetch: str, memory: str) -> None:
    if arch is not None and arch != "arm64":
        raise ValueError(f"{name} is an arm64 protocol; --arch {arch} does not apply")
    if fetch != "arm64":
        raise ValueError(f"{name} uses the arm64 fetch model; --fetch {fetch} does not apply")
    if memory != "sc":
        raise ValueError(f"{name} models arm64 data memory as sc only; --memory {memory} "
                         "does not apply")


JUMP_LABEL_ARCHS = {"default": ap.ARM64_JUMP_LABEL, "nosync": ap.ARM64_JUMP_LABEL_NOSYNC}


def build_arm64_jump_label(variant: str = "default", cpus: int = 2, nmis: int = 0,
                           fetch: str = "arm64", memory: str = "sc", sites: int = 1,
                           execs: int = 2, flip: str = "enable", arch: str | None = None
                           ) -> System:
    """CPU 0 calls static_key_enable(&preempt_notifier_key) (or `flip`) on arm64 with K =
    `sites` sites; CPUs 1.. context-switch through every site `execs` times, taking no
    exception unless an IPI makes them. `nosync`: f6cc0c501649's nosync writes (K10);
    default: the 2024 queue/apply hooks with one kick_all_cpus_sync()."""
    _check("arm64-jump-label", arch, fetch, memory)
    key = arm64_key(sites)
    on = flip in ("disable", "dec")
    names = tuple(e.site for e in key.entries)
    tasks = [(model_key_updater, (key, JUMP_LABEL_ARCHS[variant], flip))]
    tasks += [(model_exec_sites, (names, execs))] * (cpus - 1)
    extra = jl.jump_label_memory((key,), {KEY: 1 if on else 0}) + ap.arm64_patching_memory()
    cfg = _config(tasks, sites_of(key, on, arch="arm64"), cpus, nmis, extra)
    return System("arm64-jump-label", cfg, variant,
                  dict(cpus=cpus, nmis=nmis, fetch=fetch, memory=memory, sites=sites,
                       execs=execs, flip=flip))


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


def build_arm64_stop_machine(variant: str = "default", cpus: int = 2, nmis: int = 0,
                             fetch: str = "arm64", memory: str = "sc", sites: int = 1,
                             execs: int = 1, patch: str = "kprobe", arch: str | None = None
                             ) -> System:
    """aarch64_insn_patch_text() under stop_machine(); `first-master` is the election before
    2022 (K11). `patch="kprobe"` (default): CPU 0 arms a kprobe on an instruction that every
    CPU executes in multi_cpu_stop() before the callback -- not a CMODX-safe change, so a
    CPU that runs it while it is rewritten may do anything. `patch="jump-label"`: CPU 0
    enables preempt_notifier_key through the pre-f6cc0c501649 hook, one stop_machine() per
    site; NOP <-> B is CMODX-safe, so even the first-master election is safe there."""
    _check("arm64-stop-machine", arch, fetch, memory)
    master = MASTERS[variant]
    if patch == "jump-label":
        key = arm64_key(sites)
        names = tuple(e.site for e in key.entries)
        tasks = [(model_key_updater, (key, ap.model_jump_label_transform_stop_machine(
            cpus, master), "enable"))]
        msites = sites_of(key, False, arch="arm64")
        extra = jl.jump_label_memory((key,))
        int3 = None
    elif patch == "kprobe":
        if sites != 1:
            raise ValueError("--sites applies to arm64-stop-machine with patch=jump-label only")
        names = (PROBE_SITE,)
        tasks = [(model_kprobe_arm, (PROBE_SITE, cpus, master))]
        msites = (Site(PROBE_SITE, PROBED, ((PROBED, "mov x0, x19"),),
                       int3_effect=KPROBE_EFFECT, arch="arm64"),)
        extra = jl.jump_label_memory(())
        int3 = _kprobe_handler
    else:
        raise ValueError(f"patch must be 'kprobe' or 'jump-label', not {patch!r}")
    tasks += [(model_exec_sites, (names, execs))] * (cpus - 1)
    cfg = _config(tasks, msites, cpus, nmis, extra + ap.arm64_patching_memory(), int3)
    return System("arm64-stop-machine", cfg, variant,
                  dict(cpus=cpus, nmis=nmis, fetch=fetch, memory=memory, sites=sites,
                       execs=execs, patch=patch))


def key_flip_systems(cpus: int = 3, sites: tuple[int, ...] = (1, 2, 4)
                     ) -> list[tuple[str, System]]:
    """One static_key_enable() per system, side by side: x86 (one int3 batch), arm64 since
    2024 (nosync writes + kick_all_cpus_sync) and arm64 before f6cc0c501649 (one
    stop_machine() per site), for each K in `sites`. Feed it to
    `crossmod.check.stats.cost_rows()` for the IPIs and rendezvous per key flip."""
    from crossmod.catalogue.static_keys import build_x86_static_key

    out: list[tuple[str, System]] = []
    for k in sites:
        out.append((f"x86-static-key K={k}", build_x86_static_key(cpus=cpus, sites=k)))
        out.append((f"arm64-jump-label K={k}", build_arm64_jump_label(cpus=cpus, sites=k)))
        out.append((f"arm64-stop-machine patch=jump-label K={k}",
                    build_arm64_stop_machine(cpus=cpus, sites=k, patch="jump-label")))
    return out
