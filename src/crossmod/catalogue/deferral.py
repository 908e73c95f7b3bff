"""`defer-none`, `defer-ct` (v6) and `defer-cr3` (v8): IPI deferral to isolated CPUs, with
their variants (KERNEL.md F.6, G, H, K12-K20; seeds 000 and 002).

CPU 0 is a housekeeping CPU: it patches one site with the int3 batch (S1-S3 deferrable)
and/or unmaps a vmalloc area, purges it (flush_tlb_kernel_range, deferrable), reuses the
address for a new page and publishes it. With `senders=2` the two jobs run at once on two
housekeeping CPUs: CPU 0 patches, CPU 1 unmaps and purges. The CPUs after the housekeeping
ones are NOHZ_FULL CPUs running a user task that makes `syscalls` system calls (0: it stays
in userspace -- the isolation property is then checked on it); NMIs, when allowed, hit
those CPUs and run the same kernel work.

The isolated CPUs are declared readers (`MachineConfig.readers`), so the partial-order
reduction applies to them (check/reduction.py): what they do -- entry and exit with their CR3
writes and `kernel_cr3_loaded` stores, the context-tracking word, their TLB, the IPI
handler's callbacks and CSD unlocks, user-mode accounting -- writes only their own per-CPU
state, and they send no IPI, patch nothing, take no mutex and free nothing; the machine
raises a ModelError on the first op that breaks this. The housekeeping CPUs read the
isolated CPUs' words and write their CSD queues, which the reduction's conflicts account for.
tests/model/test_deferral.py compares the reduced search with the plain walk on every
variant (`benchmarks/deferral_differential.py` over the whole grid of small configurations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from crossmod.catalogue.params import (
    CatalogueError,
    MachineParams,
    Task,
    Value,
    memory_param,
    param,
)
from crossmod.catalogue.x86_int3 import JUMP_SITE, model_patch_task
from crossmod.kernel import context_tracking as ct
from crossmod.kernel import text_poke as tp
from crossmod.kernel import tlb
from crossmod.kernel.entry import asm_exc_nmi, entry_memory, model_user_task, sysvec_call_function
from crossmod.kernel.history.deferral import Deferral, smp_text_poke_sync_each_cpu_deferrable
from crossmod.kernel.smp import Gen
from crossmod.machine import ops
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, jmp32

_ENC = ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes"))
ENTRY_KEY_SITE = Site("entry_key", NOP5, _ENC)
ENTRY_KEY_NOINSTR = Site("entry_key", NOP5, _ENC, noinstr=True)
NOINSTR_SITE = Site("noinstr_site", NOP5, _ENC, noinstr=True)

_CR3 = Deferral(policy="cr3", tlb="cr3", entry_flush=True)
_CT = Deferral(policy="ct")

POLICIES: dict[str, dict[str, Deferral]] = {
    "defer-none": {"default": Deferral()},
    "defer-cr3": {
        "default": _CR3,
        "signal-after-flush": replace(_CR3, signal="after-flush"),
        "no-sender-mb": replace(_CR3, sender_mb=False, pte_clear="plain"),
        "xchg-no-sender-mb": replace(_CR3, sender_mb=False),
        "no-pti": replace(_CR3, pti=False),
        "noflush-entry": replace(_CR3, entry_flush=False),
        "nmi-exit-window": _CR3,
        "nmi-exit-window-fix": replace(_CR3, paranoid_fix=True),
        "no-sync1": _CR3, "no-sync2": _CR3, "no-sync3": _CR3,
    },
    "defer-ct": {
        "default": _CT,
        "state-field": replace(_CT, ct_gate="state-field"),
        "plain-read": replace(_CT, ct_gate="plain-read"),
        "mutable-entry-key": replace(_CT, entry_key="mutable"),
        "entry-key-ro": replace(_CT, entry_key="ro"),
        "entry-key-noinstr": replace(_CT, entry_key="noinstr"),
        "noinstr-patch": replace(_CT, noinstr_site=True, noinstr_check=False),
        "noinstr-patch-checked": replace(_CT, noinstr_site=True),
        "tlb-at-ct-flush": replace(_CT, tlb="ct-work", danger_vmalloc=True),
    },
}



@dataclass(frozen=True)
class DeferralParams(MachineParams):
    """CPU 0 (and CPU 1 with senders=2) housekeeping, the others NOHZ_FULL CPUs running a
    user task."""

    cpus: int = param(2, "number of CPUs (the housekeeping ones, then the isolated)",
                      range=(2, 4))
    nmis: int = param(0, "NMI budget per run (NMIs hit the isolated CPUs)", range=(0, 1))
    memory: str = memory_param("tso", "pso")
    syscalls: int = param(1, "system calls each user task makes (0: it stays in userspace "
                          "and the isolation property is checked on it)", range=(0, 3))
    patch: bool = param(True, "CPU 0 patches a site with the int3 batch")
    vmalloc: bool = param(True, "CPU 0 unmaps, purges and reuses a vmalloc area")
    senders: int = param(1, "housekeeping CPUs: 1 (CPU 0 patches, then unmaps) or 2 (CPU 0 "
                         "patches while CPU 1 unmaps; needs patch, vmalloc and 3+ CPUs)",
                         range=(1, 2))


# The scenario of each variant where it differs from DeferralParams' defaults (a value
# the user gives wins).
VARIANT_PARAMS: dict[str, dict[str, dict[str, Value]]] = {
    "defer-none": {},
    "defer-cr3": {"nmi-exit-window": {"nmis": 1}, "nmi-exit-window-fix": {"nmis": 1}},
    "defer-ct": {
        **{v: {"vmalloc": False} for v in POLICIES["defer-ct"] if v != "tlb-at-ct-flush"},
        "state-field": {"nmis": 1, "syscalls": 0, "vmalloc": False},
        "tlb-at-ct-flush": {"patch": False},
    },
}

VARIANT_DOC: dict[str, dict[str, str]] = {
    "defer-none": {"default": "today: every callback IPIs every online CPU"},
    "defer-cr3": {
        "default": "v8: kernel_cr3_loaded := 1 before the (flushing) entry CR3 write; "
                   "sender smp_mb() then IPIs only CPUs on the kernel CR3",
        "signal-after-flush": "K17: v7 order -- CR3 write and flush, then the signal",
        "no-sender-mb": "K18: no smp_mb() between a plain-store PTE update (set_pte, as "
                        "change_page_attr does) and the flag reads",
        "xchg-no-sender-mb": "K18 with vunmap's ptep_get_and_clear (an xchg: a full "
                             "barrier itself) as the PTE clear",
        "no-pti": "user page tables map the kernel: no CR3 write on entry, global pages",
        "noflush-entry": "the entry CR3 write keeps NOFLUSH (PCID): serializes, no flush",
        "nmi-exit-window": "K20: an NMI may hit between the signal := 0 and the user CR3 "
                           "write of the exit path",
        "nmi-exit-window-fix": "K20 with paranoid entry catching up when the signal is 0",
        "no-sync1": "drop S1 (deferrable)", "no-sync2": "drop S2 (deferrable)",
        "no-sync3": "drop S3 (deferrable)",
    },
    "defer-ct": {
        "default": "v6: ct_set_cpu_work() gated on CT_RCU_WATCHING, ct_work_flush() on "
                   "entry runs the deferred sync_core()",
        "state-field": "K12: v4 gate on the state field (USER/IDLE); an NMI leaves it USER",
        "plain-read": "K13: a plain read of the word before the cmpxchg (2023 RFC)",
        "mutable-entry-key": "K14: a runtime-flippable static key in the entry danger zone",
        "entry-key-ro": "K14 fixed: the danger-zone key is __ro_after_init (never flipped)",
        "entry-key-noinstr": "K14 fixed: the key is _NOINSTR: flipping it always IPIs",
        "noinstr-patch": "K15: a batch touching .noinstr.text deferred anyway",
        "noinstr-patch-checked": "K15 fixed: cond := NULL for .noinstr.text batches",
        "tlb-at-ct-flush": "K16: kernel TLB flush deferred to ct_work_flush; the entry "
                           "code before it dereferences a vmalloc address",
    },
}

STEPS: dict[str, dict[str, str]] = {
    "defer-cr3": {"S1 sync after INT3": "no-sync1", "S2 sync after tail": "no-sync2",
                  "S3 sync after first byte": "no-sync3",
                  "T0/D2 sender smp_mb (PTE cleared by xchg)": "xchg-no-sender-mb",
                  "T0/D2 smp_mb, PTE by plain store": "no-sender-mb",
                  "E2a signal before CR3 write": "signal-after-flush",
                  "E2b entry CR3 write flushes": "noflush-entry",
                  "kPTI CR3 switch on entry": "no-pti"},
}


def _row(protocol: str, variant: str = "default", knobs: dict | None = None,
         expected: str = "safe", prop: str | None = None, why: str = "",
         length: int | None = None) -> dict[str, Any]:
    return dict(protocol=protocol, variant=variant, knobs=knobs or {}, expected=expected,
                prop=prop, why=why, length=length)


_UAF, _TORN = "use-after-free", "torn-instruction"
ROWS: tuple[dict[str, Any], ...] = (
    _row("defer-none", knobs={"syscalls": 0},
         why="a CPU staying in userspace takes every do_sync_core and do_kernel_range_flush"),
    _row("defer-none", why="the userspace CPU makes a syscall"),
    _row("defer-cr3", why="v8: text patch and vmalloc purge in flight, user CPU syscalls"),
    _row("defer-cr3", knobs={"syscalls": 0},
         why="property 6: a CPU staying in userspace takes no deferred IPI"),
    _row("defer-cr3", "signal-after-flush", expected="violation", prop=_TORN,
         why="K17: signal read as 0 after the CR3 write serialized the target", length=26),
    _row("defer-cr3", "signal-after-flush", {"patch": False}, "violation", _UAF,
         why="K17: the target re-caches the translation between flush and signal", length=16),
    _row("defer-cr3", "no-sender-mb", expected="violation", prop=_UAF,
         why="K18: the PTE store still buffered when the signal reads 0", length=66),
    _row("defer-cr3", "xchg-no-sender-mb",
         why="vunmap's ptep_get_and_clear is an xchg: a full barrier already"),
    _row("defer-cr3", "no-pti", expected="violation", prop=_TORN,
         why="no CR3 write on entry: nothing serializes the skipped CPU", length=25),
    _row("defer-cr3", "no-pti", {"patch": False}, "violation", _UAF,
         why="global kernel translations cached from user mode survive entry", length=14),
    _row("defer-cr3", "noflush-entry", expected="violation", prop=_UAF,
         why="a NOFLUSH (PCID) entry CR3 write serializes but keeps the stale entry", length=64),
    _row("defer-cr3", "nmi-exit-window", expected="violation", prop=_TORN,
         why="K20: NMI after signal := 0, before the user CR3 write: no CR3 write, no sync",
         length=33),
    _row("defer-cr3", "nmi-exit-window", {"patch": False}, "violation", _UAF,
         why="K20: the same NMI uses the stale vmalloc translation", length=22),
    _row("defer-cr3", "nmi-exit-window-fix", {"patch": False},
         why="paranoid entry saves the signal, catches up when it is 0, restores it"),
    # 3 CPUs (issue 12): two isolated CPUs, one entering the kernel while the other
    # leaves it; two senders at once; the known-bad variants found again. 4 CPUs with the
    # patch, the purge and syscalls is past what --all can exhaust (BENCHMARKS.md).
    _row("defer-cr3", knobs={"cpus": 3, "patch": False},
         why="two isolated CPUs making syscalls while the vmalloc purge defers to both"),
    _row("defer-cr3", knobs={"cpus": 3},
         why="two isolated CPUs making syscalls while CPU 0 patches the site and purges"),
    _row("defer-cr3", knobs={"cpus": 3, "senders": 2, "syscalls": 0},
         why="a patch on CPU 0 and a vmalloc purge on CPU 1 at once: each IPIs the other "
             "housekeeping CPU and defers to the one staying in userspace"),
    _row("defer-cr3", "signal-after-flush", {"cpus": 3, "senders": 2}, "violation", _UAF,
         why="K17 with the patch and the purge in flight at once", length=22),
    _row("defer-cr3", "signal-after-flush", {"cpus": 3}, "violation", _TORN,
         why="K17 with two isolated CPUs", length=26),
    _row("defer-cr3", "signal-after-flush", {"cpus": 3, "patch": False}, "violation", _UAF,
         why="K17 with two isolated CPUs", length=16),
    _row("defer-cr3", "no-sender-mb", {"cpus": 3, "patch": False}, "violation", _UAF,
         why="K18 with two isolated CPUs", length=18),
    _row("defer-cr3", "nmi-exit-window", {"cpus": 3, "patch": False}, "violation", _UAF,
         why="K20 with two isolated CPUs", length=22),
    _row("defer-cr3", "no-sender-mb", {"cpus": 3}, "violation", _UAF,
         why="K18 with two isolated CPUs, the text patch in flight too", length=66),
    _row("defer-cr3", "nmi-exit-window", {"cpus": 3}, "violation", _TORN,
         why="K20 with two isolated CPUs, the text patch in flight too", length=33),
    # 4 CPUs: the configurations exhausted in a few seconds.
    _row("defer-cr3", knobs={"cpus": 4, "senders": 2, "syscalls": 0},
         why="two senders at once, two CPUs staying in userspace: none takes a deferred IPI"),
    _row("defer-cr3", "signal-after-flush", {"cpus": 4, "patch": False}, "violation", _UAF,
         why="K17 with three isolated CPUs", length=16),
    _row("defer-cr3", "no-sender-mb", {"cpus": 4, "patch": False}, "violation", _UAF,
         why="K18 with three isolated CPUs", length=18),
    _row("defer-ct", why="v6: RCU-watching gate, ct_work_flush on entry"),
    _row("defer-ct", knobs={"nmis": 1, "syscalls": 0},
         why="an NMI on the userspace CPU makes RCU watch: the sender IPIs"),
    _row("defer-ct", knobs={"nmis": 1}, expected="violation", prop=_TORN,
         why="an NMI between ct_kernel_enter_state's add and ct_work_flush runs stale text",
         length=30),
    _row("defer-ct", "state-field", expected="violation", prop=_TORN,
         why="K12: the NMI leaves the state field USER; the sender defers", length=29),
    _row("defer-ct", "plain-read", why="K13: safe; its spurious IPIs are counted by the tests"),
    _row("defer-ct", "mutable-entry-key", expected="violation", prop=_TORN,
         why="K14: the danger-zone key runs before any serializing instruction", length=26),
    _row("defer-ct", "entry-key-ro", why="K14 fixed: __ro_after_init keys are never flipped"),
    _row("defer-ct", "entry-key-noinstr", why="K14 fixed: a _NOINSTR key always IPIs"),
    _row("defer-ct", "noinstr-patch", expected="violation", prop=_TORN,
         why="K15: deferred sync of a noinstr site run before ct_work_flush", length=27),
    _row("defer-ct", "noinstr-patch-checked", why="K15 fixed: cond := NULL for noinstr"),
    _row("defer-ct", "tlb-at-ct-flush", expected="violation", prop=_UAF,
         why="K16: a vmalloc dereference before ct_work_flush's TLB flush", length=16),
    _row("defer-ct", knobs={"cpus": 3},
         why="two isolated CPUs making syscalls while CPU 0 patches: ct_work_flush on entry"),
    _row("defer-ct", knobs={"cpus": 3, "syscalls": 0},
         why="property 6 on two CPUs staying in userspace: the sync is deferred to both"),
)


@dataclass(frozen=True)
class _DeferSync:
    """`PokeVariant.defer`: the deferrable S1-S3 bound to one configuration."""

    d: Deferral
    others: tuple[int, ...]
    noinstr: frozenset[str]

    def __call__(self, label: str, vec: tuple) -> Gen:
        return smp_text_poke_sync_each_cpu_deferrable(label, vec, self.d, self.others,
                                                      self.noinstr)


def model_housekeeping_task(site: str, v: tp.PokeVariant, d: Deferral, patch: bool,
                            vmalloc: bool, others: tuple[int, ...]) -> Gen:
    """CPU 0: patch `site` (int3 batch), then vunmap + lazy purge + reuse of "va"
    (V1 clear the PTE, V2 flush_tlb_kernel_range, V3 free the page, V4 map a new page at
    the same address, V5 publish the pointer)."""
    if patch:
        yield from model_patch_task(site, jmp32(0x40), "jmp l_yes", v)
    if vmalloc:
        yield from tlb.vunmap_range("va", d)
        yield from tlb.__purge_vmap_area_lazy("va", d, others)
        yield from tlb.vmap_pages_range("va", "P2")
        yield ops.Fence("wmb", label="V5 smp_store_release", pairs_with="READ_ONCE(ptr)")
        yield ops.Store("vmalloc_ptr", "va", label="V5 publish: smp_store_release(ptr)")


def _sites(d: Deferral) -> tuple[tuple[Site, ...], str]:
    sites, patched = [JUMP_SITE], "site"
    if d.entry_key is not None:
        sites.append(ENTRY_KEY_NOINSTR if d.entry_key == "noinstr" else ENTRY_KEY_SITE)
        if d.entry_key != "ro":
            patched = "entry_key"
    if d.noinstr_site:
        sites.append(NOINSTR_SITE)
        patched = "noinstr_site"
    return tuple(sites), patched


def _poke_variant(protocol: str, variant: str, d: Deferral, others: tuple[int, ...],
                  sites: tuple[Site, ...]) -> tp.PokeVariant:
    defer = None
    if d.policy != "none":
        defer = _DeferSync(d, others if d.policy == "ct" else (),
                           frozenset(s.name for s in sites if s.noinstr))
    return tp.PokeVariant(sync1=variant != "no-sync1", sync2=variant != "no-sync2",
                          sync3=variant != "no-sync3", defer=defer)


def _memory(d: Deferral, users: tuple[int, ...], isolated: tuple[int, ...],
            vmalloc: bool) -> tuple[tuple, tuple, tuple]:
    glob, percpu = tp.text_poke_memory()
    ent_pc, init = entry_memory(users, isolated)
    ct_pc, ct_init = ct.context_tracking_memory(users)
    glob = (*glob, ("pte.va", "P1"), ("freed_pages", frozenset()), ("vmalloc_ptr", None))
    if vmalloc:
        entry = frozenset({("va", "P1", not d.pti)})
        init = (*init, *((c, "tlb", entry) for c in users))
    return glob, (*percpu, *ent_pc, *ct_pc), (*init, *ct_init)


def build_deferral(protocol: str, variant: str, p: DeferralParams) -> System:
    """The configuration described in the module docstring."""
    d = POLICIES[protocol][variant]
    cpus, syscalls, patch, vmalloc = p.cpus, p.syscalls, p.patch, p.vmalloc
    if p.senders == 2 and not (patch and vmalloc and cpus >= 3):
        raise CatalogueError(f"{protocol}: senders=2 runs the patch and the vmalloc purge on "
                             "two CPUs: it needs patch, vmalloc and at least 3 CPUs (given "
                             f"patch={patch}, vmalloc={vmalloc}, cpus={cpus})")
    users = tuple(range(p.senders, cpus))
    sites, patched = _sites(d)
    # The senders IPI (or defer to) every other CPU: the isolated ones and the other
    # housekeeping CPU, which runs kernel code and is never deferred to.
    v = _poke_variant(protocol, variant, d, _others(0, cpus), sites)
    glob, percpu, init = _memory(d, users, users if syscalls == 0 else (), vmalloc)

    def int3(site_name: str) -> Gen:
        return tp.smp_text_poke_int3_handler(site_name, v)

    def ipi() -> Gen:
        return sysvec_call_function(d)

    int3.__name__ = "smp_text_poke_int3_handler"
    ipi.__name__ = "sysvec_call_function"
    if p.senders == 1:
        tasks: list[Task] = [(model_housekeeping_task,
                              (patched, v, d, patch, vmalloc, _others(0, cpus)))]
    else:
        tasks = [(model_housekeeping_task, (patched, v, d, True, False, _others(0, cpus))),
                 (model_housekeeping_task, (patched, v, d, False, True, _others(1, cpus)))]
    tasks += [(model_user_task, (d, syscalls, patch, vmalloc))] * len(users)
    cfg = MachineConfig(
        ncpus=cpus, sites=sites, tasks=tuple(tasks), int3_handler=int3, ipi_handler=ipi,
        nmi_handler=(asm_exc_nmi, (d, patch, vmalloc)), nmis=p.nmis, nmi_cpus=users,
        globals=glob, percpu=percpu, percpu_init=init, cpu_valued=frozenset({"text_mutex"}),
        fetch=p.fetch, memory=p.memory, tlb_vas=("va",) if vmalloc else (), pti=d.pti,
        symmetric=(users,) if len(users) > 1 and d.policy != "ct" else (),
        readers=frozenset(users),
    )
    return System(protocol, cfg, variant, asdict(p), notes=VARIANT_DOC[protocol][variant])


def _others(me: int, cpus: int) -> tuple[int, ...]:
    return tuple(c for c in range(cpus) if c != me)


def builder(protocol: str) -> Callable[[str, DeferralParams], System]:
    """The `Entry.build` of one deferral protocol."""
    def build(variant: str, p: DeferralParams) -> System:
        return build_deferral(protocol, variant, p)
    build.__name__ = f"build_{protocol.replace('-', '_')}"
    return build
