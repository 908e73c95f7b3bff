"""Static calls on x86: kernel/static_call_inline.c `__static_call_update()` and
arch/x86/kernel/static_call.c `arch_static_call_transform()` / `__static_call_transform()`
(v6.x, smp_text_poke_* names).

Owns: `CallInsn`, `StaticCallSite`, `StaticCallKey`, `static_call_update`
(`__static_call_update`), `arch_static_call_transform`, `__static_call_transform`.
Imports: machine.ops, kernel.text_poke, kernel.jump_label (cpus_read_lock, the
__ro_after_init check).

Memory: `<key>.func` (key->func), `static_call_mutex`, plus text_poke's and
jump_label_memory's `cpu_hotplug_lock` / `rodata_ro`.

MODEL: every site is core-kernel, non-init text and the system is running (no
`text_poke_early()`); `__static_call_validate()` and the `memcmp()` that skips a site already
holding the new instruction are not modelled: `__static_call_update()` returns early when
key->func already is `func`, and every site of a key holds the instruction for key->func.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmod.kernel import text_poke as tp
from crossmod.kernel.jump_label import cpus_read_lock, cpus_read_unlock, model_ro_after_init_write
from crossmod.kernel.smp import Gen
from crossmod.machine import ops


@dataclass(frozen=True)
class CallInsn:
    """What `text_gen_insn(CALL or JMP, site, func)` gives at one site, and its effect."""

    func: str
    code: bytes
    effect: str


@dataclass(frozen=True)
class StaticCallSite:
    """A `struct static_call_site` (or the trampoline `__SCT__<name>`): its text and the
    instruction it holds for each function the key may point to."""

    site: str
    tail: bool
    insns: tuple[CallInsn, ...]

    def insn_for(self, func: str) -> CallInsn:
        for i in self.insns:
            if i.func == func:
                return i
        raise KeyError(f"{self.site}: no instruction for {func}")


@dataclass(frozen=True)
class StaticCallKey:
    """`struct static_call_key` with its trampoline and inline call sites;
    `ro_after_init` for DEFINE_STATIC_CALL_RO."""

    name: str
    tramp: StaticCallSite
    sites: tuple[StaticCallSite, ...]
    ro_after_init: bool = False

    @property
    def func(self) -> str:
        return f"{self.name}.func"


def static_call_memory(keys: tuple[StaticCallKey, ...],
                       initial: dict[str, str]) -> tuple[tuple[str, object], ...]:
    return (*((k.func, initial[k.name]) for k in keys), ("static_call_mutex", None))


def __static_call_transform(s: StaticCallSite, func: str) -> Gen:
    """`__static_call_transform()`: code := CALL/JMP to func at this site;
    smp_text_poke_single(insn, code, size, emulate) -- one whole int3 protocol (three
    syncs) per site; the #BP handler emulates the new call meanwhile."""
    insn = s.insn_for(func)
    yield from tp.smp_text_poke_single(s.site, insn.code, insn.effect, tp.PokeVariant())


def arch_static_call_transform(site: StaticCallSite | None, tramp: StaticCallSite | None,
                               func: str) -> Gen:
    """x86 `arch_static_call_transform(site, tramp, func, tail)`:

    T1 mutex_lock(&text_mutex)
    T2 if tramp && !site: __static_call_transform(tramp, JMP/RET to func)
    T3 if site: __static_call_transform(site, CALL/JMP/NOP for func)
    T4 mutex_unlock(&text_mutex)
    """
    yield ops.MutexLock("text_mutex", label="T1")
    if tramp is not None and site is None:
        yield from __static_call_transform(tramp, func)
    if site is not None:
        yield from __static_call_transform(site, func)
    yield ops.MutexUnlock("text_mutex", label="T4")


def static_call_update(key: StaticCallKey, func: str) -> Gen:
    """`static_call_update(name, func)` -> `__static_call_update(key, tramp, func)`:

    C1 cpus_read_lock(); static_call_lock()
    C2 if key->func == func: goto done
    C3 key->func := func
    C4 arch_static_call_transform(NULL, tramp, func, false)     (the trampoline)
    C5 for each site of the key: arch_static_call_transform(site, NULL, func, tail)
    C6 done: static_call_unlock(); cpus_read_unlock()
    """
    yield from cpus_read_lock()
    yield ops.MutexLock("static_call_mutex", label="C1 static_call_lock")
    cur = yield ops.Load(key.func, label="C2")
    if cur != func:
        yield from model_ro_after_init_write("static_call_update", key.func, key.ro_after_init,
                                             "C3")
        yield ops.Store(key.func, func, label="C3 key->func = func")
        yield from arch_static_call_transform(None, key.tramp, func)
        for s in key.sites:
            yield from arch_static_call_transform(s, None, func)
    yield ops.MutexUnlock("static_call_mutex", label="C6 static_call_unlock")
    yield from cpus_read_unlock()
