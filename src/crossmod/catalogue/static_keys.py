"""Static keys and static calls on x86 (KERNEL.md E): `x86-static-key`, `x86-static-call`
and `static-key-race` (a key flipped from two CPUs at once).

The key is the scheduler's `preempt_notifier_key` (kernel/sched/core.c): its sites are
`fire_sched_in_preempt_notifiers()` / `fire_sched_out_preempt_notifiers()`, inlined into
finish_task_switch() / prepare_task_switch(); KVM turns it on when it creates a VM
(seed 001: a CPU that keeps the NOP skips the notifiers). With `sites` K > 2 the extra
sites are further inlined copies ("#2"). The static call is the tracepoint
`sched_switch`'s: `tracepoint_update_call()` points it from the probe iterator to the one
probe left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from crossmod.catalogue.params import MachineParams, Task, param
from crossmod.kernel import jump_label as jl
from crossmod.kernel import static_call as sc
from crossmod.kernel import text_poke as tp
from crossmod.kernel.smp import Gen, generic_smp_call_function_single_interrupt
from crossmod.machine import ops
from crossmod.machine.ops import atomic_inc
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, call32, jmp32

KEY = "preempt_notifier_key"
NOTIFIERS = ("fire_sched_in_preempt_notifiers", "fire_sched_out_preempt_notifiers")
MAX_SITES = 4


def site_names(k: int) -> tuple[str, ...]:
    """The K sites of preempt_notifier_key: the two notifier hooks, then inlined copies."""
    names = [NOTIFIERS[i % 2] + ("" if i < 2 else f"#{i // 2 + 1}") for i in range(k)]
    return tuple(names)


def notifier_entry(name: str, i: int, nop: bytes, jump: bytes) -> jl.JumpEntry:
    """A `static_branch_unlikely(&preempt_notifier_key)` site: NOP while off, a jump to the
    out-of-line call of `__fire_sched_*_preempt_notifiers()` while on."""
    fn = "__" + name.split("#")[0]
    return jl.JumpEntry(name, nop, jump, f"skips {fn}()", f"calls {fn}()")


def x86_key(k: int, ro_after_init: bool = False) -> jl.StaticKey:
    entries = tuple(notifier_entry(n, i, NOP5, jmp32(0x40 + 0x10 * i))
                    for i, n in enumerate(site_names(k)))
    return jl.StaticKey(KEY, entries, ro_after_init)


def sites_of(key: jl.StaticKey, enabled: bool = False, arch: str = "x86") -> tuple[Site, ...]:
    """The machine's sites for a key's entries, holding the instruction for `enabled`."""
    out = []
    for e in key.entries:
        init = e.code(int(enabled ^ e.branch))[0]
        out.append(Site(e.site, init, ((e.nop, e.nop_effect), (e.jump, e.jump_effect)),
                        arch=arch))
    return tuple(out)


# ---- model tasks ------------------------------------------------------------------------

FLIPS = {"enable": jl.static_key_enable, "disable": jl.static_key_disable,
         "inc": jl.static_key_slow_inc, "dec": jl.static_key_slow_dec,
         "dec@83ab38ef0a0b": jl.static_key_slow_dec_83ab38ef0a0b,
         "disable@lock-first": jl.static_key_disable_lock_first,
         "enable@one-read": jl.static_key_enable_one_read}
RETURNED = {"enable": "static_key_enable returned", "disable": "static_key_disable returned",
            "inc": "static_branch_inc returned", "dec": "static_branch_dec returned",
            "disable@lock-first": "static_key_disable returned",
            "enable@one-read": "static_key_enable returned"}


def model_key_updater(key: jl.StaticKey, arch: jl.JumpLabelArch, flip: str) -> Gen:
    """The caller of the static-key API (KVM's preempt_notifier_inc(), say): flip the key,
    then hold the API to its contract -- every site now has the new effect on every CPU."""
    yield from FLIPS[flip](key, arch)
    for e in key.entries:
        yield ops.PatchReturned(e.site, label=RETURNED[flip])


def model_exec_sites(sites: tuple[str, ...], times: int) -> Gen:
    """Another CPU context-switching: it runs through every site `times` times, IRQs on."""
    for i in range(times):
        for s in sites:
            yield ops.ExecSite(s, label=f"pass {i + 1}")


def model_racing_flip(key: jl.StaticKey, arch: jl.JumpLabelArch, flips: tuple[str, ...],
                      nflips: int, final: int | None, contract: bool = False) -> Gen:
    """One user of the key: its flips (each followed, with `contract`, by the check that
    this CPU now runs the direction it asked for), then -- once every CPU's flips have
    returned -- the checks that the count is what the balanced incs and decs leave
    (`final`, when the order does not decide it) and that the text matches the count."""
    for i, flip in enumerate(flips):
        yield ops.Note(label=f"flip {i + 1}", text=f"{FLIPS[flip].__name__}({key.name})")
        yield from FLIPS[flip](key, arch)
        if contract:
            yield from model_flip_contract(key, flip)
    yield ops.Rmw("model.flips_done", atomic_inc, label="flips returned")
    yield ops.WaitUntil("model.flips_done", lambda n: n == nflips, label="all flips returned")
    if final is not None:
        yield ops.Check((key.enabled,), lambda n: n == final, "static-key-count",
                        f"every flip returned but {key.enabled} is not {final}, what the "
                        "balanced incs and decs leave: a user's reference was lost",
                        label="count is balanced")
    yield ops.Serialize(label="sync_core")
    for e in key.entries:
        effect = yield ops.ExecSite(e.site, label="final text")
        yield ops.Check((key.enabled,), lambda n, e=e, effect=effect:
                        e.effect_for(n != 0) == effect, "static-key-text",
                        f"{e.site} executes '{effect}', which does not match the final "
                        f"count of {key.name}", label="text matches count")


def model_flip_contract(key: jl.StaticKey, flip: str) -> Gen:
    """The caller's reading of the API: once `flip` returned (and this CPU serialized),
    every site does what the flip asked for -- as long as no other CPU flips the other
    way."""
    on = flip.split("@")[0] in ("enable", "inc")
    yield ops.Serialize(label="sync_core")
    for e in key.entries:
        effect = yield ops.ExecSite(e.site, label=RETURNED[flip])
        yield ops.Check((), lambda e=e, effect=effect, on=on: effect == e.effect_for(on),
                        "static-key-contract",
                        f"{RETURNED[flip]} but {e.site} still {effect.split()[0]} "
                        f"{effect.split()[1]}: another CPU's flip in the same direction "
                        "has not finished patching", label="flip took effect")


def model_static_call_updater(key: sc.StaticCallKey, func: str) -> Gen:
    yield from sc.static_call_update(key, func)
    for s in (key.tramp, *key.sites):
        yield ops.PatchReturned(s.site, label="static_call_update returned")


# ---- systems ------------------------------------------------------------------------------

def _int3_handler() -> Callable[[str], Gen]:
    v = tp.PokeVariant()

    def smp_text_poke_int3_handler(site_name: str) -> Gen:
        return tp.smp_text_poke_int3_handler(site_name, v)

    return smp_text_poke_int3_handler


def _x86_config(tasks: list, sites: tuple[Site, ...], cpus: int, nmis: int, fetch: str,
                memory: str, extra: tuple = (), symmetric_from: int = 1) -> MachineConfig:
    glob, percpu = tp.text_poke_memory()
    names = tuple(s.name for s in sites)
    return MachineConfig(
        ncpus=cpus, sites=sites, tasks=tuple(tasks), int3_handler=_int3_handler(),
        ipi_handler=generic_smp_call_function_single_interrupt,
        nmi_handler=(model_exec_sites, (names[:1], 1)), nmis=nmis,
        globals=glob + extra, percpu=percpu,
        cpu_valued=frozenset({"text_mutex", "jump_label_mutex", "static_call_mutex"}),
        fetch=fetch, memory=memory,
        symmetric=((tuple(range(symmetric_from, cpus)),)
                   if cpus - symmetric_from > 1 else ()))


# The updater's calls (model_key_updater); the others of FLIPS only race (RACES).
UPDATER_FLIPS = ("enable", "disable", "inc", "dec")


@dataclass(frozen=True)
class KeyParams(MachineParams):
    """A key with K sites flipped by CPU 0 while CPUs 1.. context-switch through them."""

    cpus: int = param(2, "number of CPUs (CPU 0 flips the key)", range=(2, 4))
    nmis: int = param(0, "NMI budget per run", range=(0, 2))
    sites: int = param(1, "patch sites of the key (K)", range=(1, MAX_SITES))
    execs: int = param(1, "times each CPU but CPU 0 runs through every site", range=(1, 4))
    flip: str = param("enable", "what CPU 0 calls: static_key_enable/disable, "
                      "static_branch_inc/dec", choices=UPDATER_FLIPS)


def build_x86_static_key(variant: str, p: KeyParams) -> System:
    """CPU 0 calls static_key_enable(&preempt_notifier_key) (or `flip`: inc, disable, dec)
    with K = `sites` sites: one int3 batch for all of them. CPUs 1.. context-switch through
    every site `execs` times. `ro-after-init`: the key is __ro_after_init and the flip
    happens after mark_rodata_ro()."""
    key = x86_key(p.sites, ro_after_init=variant == "ro-after-init")
    on = p.flip in ("disable", "dec")
    names = tuple(e.site for e in key.entries)
    tasks: list[Task] = [(model_key_updater, (key, jl.X86_JUMP_LABEL, p.flip))]
    tasks += [(model_exec_sites, (names, p.execs))] * (p.cpus - 1)
    extra = jl.jump_label_memory((key,), {KEY: 1 if on else 0})
    cfg = _x86_config(tasks, sites_of(key, on), p.cpus, p.nmis, p.fetch, p.memory, extra)
    return System("x86-static-key", cfg, variant, asdict(p))


# variant -> (initial count, flips per CPU, final count when the order does not decide
# it, whether each flip's own direction is checked when it returns)
RACES = {"default": (1, (("dec",), ("inc",)), 1, False),
         "enable-disable": (0, (("enable",), ("disable",)), None, False),
         "dec-inc-dec": (1, (("dec",), ("inc", "dec")), 0, False),
         "dec-inc-dec-83ab38ef0a0b": (1, (("dec@83ab38ef0a0b",), ("inc", "dec@83ab38ef0a0b")),
                                      0, False),
         "enable-enable": (0, (("enable",), ("enable",)), 1, True),
         "disable-disable": (1, (("disable",), ("disable",)), 0, True),
         "disable-disable-lock-first": (1, (("disable@lock-first",), ("disable@lock-first",)),
                                        0, True),
         "enable-enable-one-read": (0, (("enable@one-read",), ("enable@one-read",)), 1, True)}


@dataclass(frozen=True)
class RaceParams(MachineParams):
    """Two CPUs flipping one key; CPUs beyond the two are idle (they take the IPIs)."""

    cpus: int = param(2, "number of CPUs (CPUs 0 and 1 flip the key)", range=(2, 3))
    nmis: int = param(0, "NMI budget per run", range=(0, 1))
    sites: int = param(1, "patch sites of the key (K)", range=(1, 2))


def build_static_key_race(variant: str, p: RaceParams) -> System:
    """Two CPUs flip preempt_notifier_key at once (`variant` names who does what; the
    initial count makes every flip a balanced use of the API), then check that the text of
    every site matches the final count. Deadlock freedom is checked by the explorer."""
    initial, flips, final, contract = RACES[variant]
    key = x86_key(p.sites)
    tasks: list[Task] = [
        (model_racing_flip, (key, jl.X86_JUMP_LABEL, f, len(flips), final, contract))
        for f in flips]
    tasks += [None] * (p.cpus - len(flips))
    extra = (*jl.jump_label_memory((key,), {KEY: initial}), ("model.flips_done", 0))
    cfg = _x86_config(tasks, sites_of(key, initial > 0), p.cpus, p.nmis, p.fetch, p.memory,
                      extra, symmetric_from=len(flips))
    return System("static-key-race", cfg, variant, asdict(p))


# ---- static calls -------------------------------------------------------------------------

OLD_FUNC, NEW_FUNC = "__traceiter_sched_switch", "trace_event_raw_event_sched_switch"
SC_KEY = "tp_func_sched_switch"


def _call_site(name: str, i: int, tail: bool) -> sc.StaticCallSite:
    gen, verb = (jmp32, "jmp") if tail else (call32, "call")
    return sc.StaticCallSite(name, tail, (
        sc.CallInsn(OLD_FUNC, gen(0x1000 + 0x100 * i), f"{verb} {OLD_FUNC}"),
        sc.CallInsn(NEW_FUNC, gen(0x2000 + 0x100 * i), f"{verb} {NEW_FUNC}")))


def static_call_key(k: int) -> sc.StaticCallKey:
    tramp = _call_site(f"__SCT__{SC_KEY}", 0, tail=True)
    names = ["trace_sched_switch"] + [f"trace_sched_switch#{i + 1}" for i in range(1, k)]
    return sc.StaticCallKey(SC_KEY, tramp,
                            tuple(_call_site(n, i + 1, tail=False) for i, n in enumerate(names)))


def _sc_sites(key: sc.StaticCallKey) -> tuple[Site, ...]:
    return tuple(Site(s.site, s.insn_for(OLD_FUNC).code,
                      tuple((i.code, i.effect) for i in s.insns))
                 for s in (key.tramp, *key.sites))


@dataclass(frozen=True)
class CallParams(MachineParams):
    """One static call updated by CPU 0 while CPUs 1.. call through it."""

    cpus: int = param(2, "number of CPUs (CPU 0 updates the call)", range=(2, 4))
    nmis: int = param(0, "NMI budget per run", range=(0, 2))
    sites: int = param(1, "inline call sites besides the trampoline (K)", range=(1, 3))
    execs: int = param(1, "times each CPU but CPU 0 runs through every site", range=(1, 4))


def build_x86_static_call(variant: str, p: CallParams) -> System:
    """CPU 0: static_call_update(tp_func_sched_switch, trace_event_raw_event_sched_switch)
    -- the trampoline and K inline sites, each with smp_text_poke_single(). CPUs 1.. run
    through every site `execs` times."""
    key = static_call_key(p.sites)
    if variant == "ro-after-init":
        key = sc.StaticCallKey(key.name, key.tramp, key.sites, ro_after_init=True)
    msites = _sc_sites(key)
    tasks: list[Task] = [(model_static_call_updater, (key, NEW_FUNC))]
    tasks += [(model_exec_sites, (tuple(s.name for s in msites), p.execs))] * (p.cpus - 1)
    extra = sc.static_call_memory((key,), {SC_KEY: OLD_FUNC}) + jl.jump_label_memory(())
    cfg = _x86_config(tasks, msites, p.cpus, p.nmis, p.fetch, p.memory, extra)
    return System("x86-static-call", cfg, variant, asdict(p))
