"""Static keys and jump labels: kernel/jump_label.c as of v6.11 (after de752774f38b
"jump_label: Fix static_key_slow_dec() yet again", 2024), and the x86 hooks of
arch/x86/kernel/jump_label.c (2025, smp_text_poke_* names).

Owns: `StaticKey`, `JumpEntry`, `JumpLabelArch` (an architecture's patch hooks), the static
key API -- `static_key_enable[_cpuslocked]`, `static_key_disable[_cpuslocked]`,
`static_key_slow_inc[_cpuslocked]`, `static_key_slow_dec[_cpuslocked]` with their helpers
`static_key_fast_inc_not_disabled`, `static_key_dec`, `static_key_dec_not_one`,
`static_key_dec_and_test` -- `jump_label_update` / `__jump_label_update`,
`cpus_read_lock/unlock`, and the x86 hooks (`X86_JUMP_LABEL`). Imports: machine.ops,
kernel.smp, kernel.text_poke.

Memory (declare it with `jump_label_memory(keys)`):
  <key>.enabled       key->enabled: 0 off, n > 0 users, -1 "first enable in progress"
  jump_label_mutex    holder CPU or None
  cpu_hotplug_lock    how many cpus_read_lock() sections are open
  rodata_ro           mark_rodata_ro() has run: __ro_after_init data is read-only
Lock order: cpu_hotplug_lock (read) -> jump_label_mutex -> text_mutex (in the arch hooks).

MODEL: every jump entry is in core-kernel text that is not init text, so
`jump_label_can_update()` is always true and there is no module list to walk; the system
is running (no `text_poke_early()` / SYSTEM_BOOTING fallback); no CPU-hotplug writer exists,
so `cpus_read_lock()` never waits (it is counted, for `lockdep_assert_cpus_held()`).

Longer than STYLE.md's 400 lines: it is the whole static-key API of kernel/jump_label.c
(each routine short, with its step list), the x86 hooks it calls, one dated variant of the
slow-dec path (June-Sept 2024) and two proposals from the March 2024 thread on the
static_key_disable WARN, all reusing the same helpers; splitting would separate routines
that only make sense together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crossmod.kernel import text_poke as tp
from crossmod.kernel.smp import Gen
from crossmod.machine import ops
from crossmod.machine.ops import atomic_dec, atomic_inc

JUMP_LABEL_NOP = 0
JUMP_LABEL_JMP = 1


@dataclass(frozen=True)
class JumpEntry:
    """`struct jump_entry`: one static-branch site of a key.

    `nop` / `jump` are the bytes of the instruction for JUMP_LABEL_NOP / JUMP_LABEL_JMP and
    `nop_effect` / `jump_effect` what executing them does in kernel terms. `branch` is
    `jump_entry_is_branch()` (a `static_branch_likely()` on a false key, say).
    """

    site: str
    nop: bytes
    jump: bytes
    nop_effect: str
    jump_effect: str
    branch: bool = False

    def code(self, jtype: int) -> tuple[bytes, str]:
        """The instruction for `jtype` and its effect (`__jump_label_patch()`)."""
        if jtype == JUMP_LABEL_JMP:
            return self.jump, self.jump_effect
        return self.nop, self.nop_effect

    def effect_for(self, enabled: bool) -> str:
        return self.code(int(enabled ^ self.branch))[1]


@dataclass(frozen=True)
class StaticKey:
    """`struct static_key` and its sorted `__jump_table` entries; `ro_after_init` for keys
    defined with DEFINE_STATIC_KEY_*_RO (in `.data..ro_after_init`)."""

    name: str
    entries: tuple[JumpEntry, ...]
    ro_after_init: bool = False

    @property
    def enabled(self) -> str:
        return f"{self.name}.enabled"


@dataclass(frozen=True)
class JumpLabelArch:
    """An architecture's jump-label hooks (include/linux/jump_label.h).

    With HAVE_JUMP_LABEL_BATCH (`transform_queue` set): `arch_jump_label_transform_queue(
    entry, type) -> bool` (false: queue full) and `arch_jump_label_transform_apply()`.
    Without: `arch_jump_label_transform(entry, type)` per site.
    """

    name: str
    transform: Callable[[JumpEntry, int], Gen] | None = None
    transform_queue: Callable[[JumpEntry, int], Gen] | None = None
    transform_apply: Callable[[], Gen] | None = None

    @property
    def batch(self) -> bool:
        return self.transform_queue is not None


def jump_label_memory(keys: tuple[StaticKey, ...], initial: dict[str, int] | None = None,
                      rodata_ro: bool = True) -> tuple[tuple[str, object], ...]:
    """Globals for `keys` (initial `enabled` counts by key name; 0 by default)."""
    initial = initial or {}
    return (*((k.enabled, initial.get(k.name, 0)) for k in keys),
            ("jump_label_mutex", None), ("cpu_hotplug_lock", 0), ("rodata_ro", rodata_ro))


# ---- locks --------------------------------------------------------------------------------

def cpus_read_lock() -> Gen:
    """kernel/cpu.c `cpus_read_lock()`: percpu_down_read(&cpu_hotplug_lock)."""
    yield ops.Rmw("cpu_hotplug_lock", atomic_inc, label="cpus_read_lock")


def cpus_read_unlock() -> Gen:
    """kernel/cpu.c `cpus_read_unlock()`."""
    yield ops.Rmw("cpu_hotplug_lock", atomic_dec, label="cpus_read_unlock")


def lockdep_assert_cpus_held(label: str) -> Gen:
    """`lockdep_assert_cpus_held()`. MODEL: the read side is counted, not owned per task."""
    yield ops.Check(("cpu_hotplug_lock",), _positive, "lockdep",
                    "cpu_hotplug_lock not held (lockdep_assert_cpus_held)", label=label)


def _positive(v: int) -> bool:
    return v > 0


def _not_ro(ro: bool) -> bool:
    return not ro


def model_ro_after_init_write(what: str, var: str, ro: bool, label: str) -> Gen:
    """A write to `var` of a `__ro_after_init` object: after mark_rodata_ro() the page is
    read-only and the store faults (E-I3: such keys and calls only change during boot)."""
    if ro:
        yield ops.Check(("rodata_ro",), _not_ro, "ro-after-init",
                        f"{what} writes {var}, which is __ro_after_init: mark_rodata_ro() "
                        "made it read-only, the write faults (flip it only during boot)",
                        label=label)


def atomic_set(key: StaticKey, value: int, label: str, what: str) -> Gen:
    """`atomic_set(&key->enabled, value)` / `atomic_set_release()` (a plain store on x86)."""
    yield from model_ro_after_init_write(what, key.enabled, key.ro_after_init, label)
    yield ops.Store(key.enabled, value, label=label)


def atomic_cmpxchg(key: StaticKey, fn: Callable, label: str, what: str) -> Gen:
    """A locked cmpxchg on key->enabled (or a try_cmpxchg loop), `fn` as in `ops.Rmw`."""
    yield from model_ro_after_init_write(what, key.enabled, key.ro_after_init, label)
    return (yield ops.Rmw(key.enabled, fn, label=label))


# ---- jump_label_update --------------------------------------------------------------------

def jump_label_type(key: StaticKey, entry: JumpEntry, label: str) -> Gen:
    """`jump_label_type()`: static_key_enabled(key) ^ jump_entry_is_branch(entry); a count
    of -1 (enable in progress) counts as enabled."""
    enabled = yield ops.Load(key.enabled, label=label)
    return int((enabled != 0) ^ entry.branch)


def jump_label_update(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`jump_label_update()`: patch every entry of `key` to the direction its count says
    (called with jump_label_mutex held), through `__jump_label_update()`."""
    yield ops.AssertHeld("jump_label_mutex", label="U0 jump_label_update")
    yield from __jump_label_update(key, arch)


def __jump_label_update(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`__jump_label_update()`, both flavours:

    U1 for each entry of the key: type := jump_label_type(entry)
    U2   batched: if !arch_jump_label_transform_queue(entry, type):
    U3                arch_jump_label_transform_apply(); queue again (BUG_ON failure)
         otherwise: arch_jump_label_transform(entry, type)
    U4 batched: arch_jump_label_transform_apply() once, for every site of the key
    """
    for entry in key.entries:
        jtype = yield from jump_label_type(key, entry, "U1")
        if arch.transform_queue is None:  # not arch.batch
            assert arch.transform is not None, f"{arch.name}: no arch_jump_label_transform"
            yield from arch.transform(entry, jtype)
        elif not (yield from arch.transform_queue(entry, jtype)):
            assert arch.transform_apply is not None, f"{arch.name}: no transform_apply"
            yield from arch.transform_apply()
            if not (yield from arch.transform_queue(entry, jtype)):
                yield ops.Warn("BUG_ON(!arch_jump_label_transform_queue())", label="U3")
    if arch.batch:
        assert arch.transform_apply is not None, f"{arch.name}: no transform_apply"
        yield from arch.transform_apply()


# ---- enable / disable ---------------------------------------------------------------------

def static_key_enable_cpuslocked(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_enable_cpuslocked()`:

    E1 lockdep_assert_cpus_held()
    E2 if key->enabled > 0: WARN_ON_ONCE(key->enabled != 1); return    (already on)
    E3 jump_label_lock()
    E4 if key->enabled == 0: atomic_set(&key->enabled, -1)             (in progress)
    E5     jump_label_update(key)
    E6     atomic_set_release(&key->enabled, 1)  [pairs with the fast paths' cmpxchg]
    E7 jump_label_unlock()
    """
    yield from lockdep_assert_cpus_held("E1")
    v = yield ops.Load(key.enabled, label="E2")
    if v > 0:
        if v != 1:
            yield ops.Warn("static_key_enable: key->enabled != 1", label="E2")
        return
    yield ops.MutexLock("jump_label_mutex", label="E3 jump_label_lock")
    v = yield ops.Load(key.enabled, label="E4")
    if v == 0:
        yield from atomic_set(key, -1, "E4 atomic_set(-1)", "static_key_enable")
        yield from jump_label_update(key, arch)
        yield from atomic_set(key, 1, "E6 atomic_set_release(1)", "static_key_enable")
    yield ops.MutexUnlock("jump_label_mutex", label="E7 jump_label_unlock")


def static_key_enable(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_enable()`: cpus_read_lock(); static_key_enable_cpuslocked(); unlock."""
    yield from cpus_read_lock()
    yield from static_key_enable_cpuslocked(key, arch)
    yield from cpus_read_unlock()


def static_key_disable_cpuslocked(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_disable_cpuslocked()`:

    D1 lockdep_assert_cpus_held()
    D2 if key->enabled != 1: WARN_ON_ONCE(key->enabled != 0); return
    D3 jump_label_lock()
    D4 if atomic_cmpxchg(&key->enabled, 1, 0) == 1: jump_label_update(key)
    D5 jump_label_unlock()
    """
    yield from lockdep_assert_cpus_held("D1")
    v = yield ops.Load(key.enabled, label="D2")
    if v != 1:
        if v != 0:
            yield ops.Warn(f"static_key_disable: key->enabled == {v}", label="D2")
        return
    yield ops.MutexLock("jump_label_mutex", label="D3 jump_label_lock")
    old = yield from atomic_cmpxchg(key, _cmpxchg_1_0, "D4 atomic_cmpxchg(1, 0)",
                              "static_key_disable")
    if old == 1:
        yield from jump_label_update(key, arch)
    yield ops.MutexUnlock("jump_label_mutex", label="D5 jump_label_unlock")


def static_key_disable(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_disable()`: cpus_read_lock(); static_key_disable_cpuslocked(); unlock."""
    yield from cpus_read_lock()
    yield from static_key_disable_cpuslocked(key, arch)
    yield from cpus_read_unlock()


def _cmpxchg_1_0(v: int) -> tuple[int, int]:
    return (0 if v == 1 else v), v


def _cmpxchg_0_m1(v: int) -> tuple[int, int]:
    return (-1 if v == 0 else v), v


# ---- counted inc / dec ----------------------------------------------------------------------

def _inc_if_positive(v: int) -> tuple[int, bool]:
    return (v + 1, True) if v > 0 else (v, False)


def static_key_fast_inc_not_disabled(key: StaticKey, label: str) -> Gen:
    """`static_key_fast_inc_not_disabled()`: v := atomic_read(); do { if v <= 0: return
    false } while (!atomic_try_cmpxchg(&key->enabled, &v, v + 1)); return true.
    MODEL: the retry loop is one RMW that re-reads v (INT_MAX overflow is not modelled)."""
    v = yield ops.Load(key.enabled, label=label)
    if v <= 0:
        return False
    return (yield from atomic_cmpxchg(key, _inc_if_positive, f"{label} atomic_try_cmpxchg(v, v+1)",
                                "static_key_slow_inc"))


def static_key_slow_inc_cpuslocked(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_slow_inc_cpuslocked()`:

    I1 lockdep_assert_cpus_held()
    I2 if static_key_fast_inc_not_disabled(key): return true          (already on: count++)
    I3 guard(mutex)(&jump_label_mutex)
    I4 if atomic_cmpxchg(&key->enabled, 0, -1) == 0:                  (first user)
    I5     jump_label_update(key); atomic_set_release(&key->enabled, 1)
    I6 else: WARN_ON_ONCE(!static_key_fast_inc_not_disabled(key))
    """
    yield from lockdep_assert_cpus_held("I1")
    if (yield from static_key_fast_inc_not_disabled(key, "I2")):
        return True
    yield ops.MutexLock("jump_label_mutex", label="I3 guard(mutex)")
    ok = True
    old = yield from atomic_cmpxchg(key, _cmpxchg_0_m1, "I4 atomic_cmpxchg(0, -1)",
                              "static_key_slow_inc")
    if old == 0:
        yield from jump_label_update(key, arch)
        yield from atomic_set(key, 1, "I5 atomic_set_release(1)", "static_key_slow_inc")
    elif not (yield from static_key_fast_inc_not_disabled(key, "I6")):
        yield ops.Warn("static_key_slow_inc: fast inc failed under jump_label_mutex", label="I6")
        ok = False
    yield ops.MutexUnlock("jump_label_mutex", label="I3 guard(mutex) ends")
    return ok


def static_key_slow_inc(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_slow_inc()` (what `static_branch_inc()` calls)."""
    yield from cpus_read_lock()
    ok = yield from static_key_slow_inc_cpuslocked(key, arch)
    yield from cpus_read_unlock()
    return ok


def static_key_dec(key: StaticKey, dec_not_one: bool, label: str) -> Gen:
    """`static_key_dec()`: v := atomic_read(); do { if v <= 0: WARN (a dec racing the first
    enable, or an underflow); return v; if dec_not_one && v == 1: return v } while
    (!atomic_try_cmpxchg(&key->enabled, &v, v - 1)); return v (the value before).
    MODEL: the retry loop is one RMW that re-reads v."""
    v = yield ops.Load(key.enabled, label=label)
    if v > 0 and not (dec_not_one and v == 1):
        v = yield from atomic_cmpxchg(key, _dec_fn(dec_not_one),
                                      f"{label} atomic_try_cmpxchg(v, v-1)",
                                      "static_key_slow_dec")
    if v <= 0:
        yield ops.Warn(f"static_key_dec: key->enabled == {v}", label=label)
    return v


def _dec_fn(dec_not_one: bool) -> Callable[[int], tuple[int, int]]:
    return _dec_not_one if dec_not_one else _dec_positive


def _dec_not_one(v: int) -> tuple[int, int]:
    return (v - 1, v) if v > 1 else (v, v)


def _dec_positive(v: int) -> tuple[int, int]:
    return (v - 1, v) if v > 0 else (v, v)


def static_key_dec_not_one(key: StaticKey) -> Gen:
    """`static_key_dec_not_one()`: the fast path; false (go slow) when the count is 1 or -1."""
    v = yield from static_key_dec(key, True, "R2 static_key_dec_not_one")
    return v != 1 and v != -1


def static_key_dec_and_test(key: StaticKey) -> Gen:
    """`static_key_dec_and_test()`: the slow path, under jump_label_mutex; true when the
    count went from 1 to 0."""
    v = yield from static_key_dec(key, False, "R4 static_key_dec_and_test")
    yield ops.AssertHeld("jump_label_mutex", label="R4 lockdep_assert_held")
    return v == 1


def __static_key_slow_dec_cpuslocked(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`__static_key_slow_dec_cpuslocked()`:

    R1 lockdep_assert_cpus_held()
    R2 if static_key_dec_not_one(key): return                          (other users remain)
    R3 guard(mutex)(&jump_label_mutex)
    R4 if static_key_dec_and_test(key): jump_label_update(key)         (last user gone)
    """
    yield from lockdep_assert_cpus_held("R1")
    if (yield from static_key_dec_not_one(key)):
        return
    yield ops.MutexLock("jump_label_mutex", label="R3 guard(mutex)")
    if (yield from static_key_dec_and_test(key)):
        yield from jump_label_update(key, arch)
    yield ops.MutexUnlock("jump_label_mutex", label="R3 guard(mutex) ends")


def static_key_slow_dec(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_slow_dec()` -> `__static_key_slow_dec()`: cpus_read_lock();
    __static_key_slow_dec_cpuslocked(); cpus_read_unlock()."""
    yield from cpus_read_lock()
    yield from __static_key_slow_dec_cpuslocked(key, arch)
    yield from cpus_read_unlock()


# ---- x86 hooks: arch/x86/kernel/jump_label.c ------------------------------------------------

def arch_jump_label_transform_queue(entry: JumpEntry, jtype: int) -> Gen:
    """x86 `arch_jump_label_transform_queue()`:

    Q1 mutex_lock(&text_mutex)
    Q2 jlp := __jump_label_patch(entry, type); smp_text_poke_batch_add(code, jlp.code,
       jlp.size, NULL)  (NULL: the #BP handler emulates the new instruction)
    Q3 mutex_unlock(&text_mutex); return true  (the batch never reports "full" here: a
       full vector is flushed inside smp_text_poke_batch_add)
    MODEL: __jump_label_patch()'s check that the site holds the expected old instruction
    is not modelled (the catalogue's sites only ever hold the key's two instructions).
    """
    yield ops.MutexLock("text_mutex", label="Q1")
    code, effect = entry.code(jtype)
    yield from tp.smp_text_poke_batch_add(entry.site, code, effect)
    yield ops.MutexUnlock("text_mutex", label="Q3")
    return True


def arch_jump_label_transform_apply() -> Gen:
    """x86 `arch_jump_label_transform_apply()`: mutex_lock(&text_mutex);
    smp_text_poke_batch_finish(); mutex_unlock(&text_mutex) -- one int3 batch, three
    syncs, for every site queued.
    MODEL: smp_text_poke_batch_finish() does nothing when no entry is queued; the model's
    finish has no such test, so it is made here."""
    yield ops.MutexLock("text_mutex", label="A1")
    nr = yield ops.Load("text_poke_array.nr", label="A2 nr_entries?")
    if nr:
        yield from tp.smp_text_poke_batch_finish(tp.PokeVariant())
    yield ops.MutexUnlock("text_mutex", label="A3")


X86_JUMP_LABEL = JumpLabelArch("x86 (HAVE_JUMP_LABEL_BATCH, int3 batch)",
                               transform_queue=arch_jump_label_transform_queue,
                               transform_apply=arch_jump_label_transform_apply)


# ---- history: the slow-dec path between 83ab38ef0a0b and de752774f38b (June-Sept 2024) ----

def static_key_slow_try_dec(key: StaticKey) -> Gen:
    """`static_key_slow_try_dec()` as of 83ab38ef0a0b ("jump_label: Fix concurrency issues
    in static_key_slow_dec()"): v := atomic_read(); do { WARN_ON_ONCE(v < 0); if v <= 1:
    return false } while (!atomic_try_cmpxchg(&key->enabled, &v, v - 1)); return true.
    MODEL: the retry loop is one RMW that re-reads v."""
    v = yield ops.Load(key.enabled, label="T1 static_key_slow_try_dec")
    if v > 1:
        v = yield from atomic_cmpxchg(key, _dec_not_one, "T1 atomic_try_cmpxchg(v, v-1)",
                                      "static_key_slow_dec")
    if v < 0:
        yield ops.Warn(f"static_key_slow_try_dec: key->enabled == {v}", label="T1")
    return v > 1


def _static_key_slow_dec_cpuslocked_83ab38ef0a0b(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`__static_key_slow_dec_cpuslocked()` from 83ab38ef0a0b until de752774f38b:

    R1 lockdep_assert_cpus_held()
    R2 if static_key_slow_try_dec(key): return
    R3 guard(mutex)(&jump_label_mutex)
    R4 if atomic_cmpxchg(&key->enabled, 1, 0) == 1: jump_label_update(key)
    R5 else: WARN_ON_ONCE(!static_key_slow_try_dec(key))   -- and the decrement is lost
    """
    yield from lockdep_assert_cpus_held("R1")
    if (yield from static_key_slow_try_dec(key)):
        return
    yield ops.MutexLock("jump_label_mutex", label="R3 guard(mutex)")
    old = yield from atomic_cmpxchg(key, _cmpxchg_1_0, "R4 atomic_cmpxchg(1, 0)",
                                    "static_key_slow_dec")
    if old == 1:
        yield from jump_label_update(key, arch)
    elif not (yield from static_key_slow_try_dec(key)):
        yield ops.Warn("WARN_ON_ONCE(!static_key_slow_try_dec(key))", label="R5")
    yield ops.MutexUnlock("jump_label_mutex", label="R3 guard(mutex) ends")


def _static_key_slow_dec_83ab38ef0a0b(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_slow_dec()` over the 83ab38ef0a0b slow-dec path."""
    yield from cpus_read_lock()
    yield from _static_key_slow_dec_cpuslocked_83ab38ef0a0b(key, arch)
    yield from cpus_read_unlock()


def model_c_name(fn: Callable, name: str) -> Callable:
    """Give a dated variant of a kernel function its C name in trails (STYLE.md rule 10):
    Python cannot hold two functions of one name in a module."""
    fn.__name__ = fn.__qualname__ = name
    fn.__code__ = fn.__code__.replace(co_name=name, co_qualname=name)
    return fn


model_c_name(_static_key_slow_dec_cpuslocked_83ab38ef0a0b, "__static_key_slow_dec_cpuslocked")
static_key_slow_dec_83ab38ef0a0b = model_c_name(_static_key_slow_dec_83ab38ef0a0b,
                                                "static_key_slow_dec")


# ---- proposals from the March 2024 thread "WARNING in static_key_disable_cpuslocked" -----

def _static_key_disable_cpuslocked_lock_first(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_disable_cpuslocked()` as Steven Rostedt proposed (lkml, 2024-03-06,
    <20240306105420.6a6bea2c@gandalf.local.home>): jump_label_lock() *before* the test, so
    a disabler that finds the count at 0 has waited for the one still patching.

    D3 jump_label_lock()
    D2 if key->enabled != 1: WARN_ON_ONCE(key->enabled != 0); goto unlock
    D4 if atomic_cmpxchg(&key->enabled, 1, 0) == 1: jump_label_update(key)
    D5 unlock: jump_label_unlock()
    """
    yield from lockdep_assert_cpus_held("D1")
    yield ops.MutexLock("jump_label_mutex", label="D3 jump_label_lock")
    v = yield ops.Load(key.enabled, label="D2")
    if v != 1:
        if v != 0:
            yield ops.Warn(f"static_key_disable: key->enabled == {v}", label="D2")
    elif (yield from atomic_cmpxchg(key, _cmpxchg_1_0, "D4 atomic_cmpxchg(1, 0)",
                                    "static_key_disable")) == 1:
        yield from jump_label_update(key, arch)
    yield ops.MutexUnlock("jump_label_mutex", label="D5 jump_label_unlock")


def _static_key_enable_cpuslocked_one_read(key: StaticKey, arch: JumpLabelArch) -> Gen:
    """`static_key_enable_cpuslocked()` as Josh Poimboeuf proposed in the same thread
    (<20240306193101.s2g33o4viqi2azf3@treble>): one read, `if (tmp != 0) { WARN_ON_ONCE(tmp
    != 1); return; }` -- which also returns on -1, while another enable is still patching.
    Then E3-E7 as today."""
    yield from lockdep_assert_cpus_held("E1")
    v = yield ops.Load(key.enabled, label="E2 tmp = atomic_read()")
    if v != 0:
        if v != 1:
            yield ops.Warn(f"static_key_enable: key->enabled == {v}", label="E2")
        return
    yield ops.MutexLock("jump_label_mutex", label="E3 jump_label_lock")
    if (yield ops.Load(key.enabled, label="E4")) == 0:
        yield from atomic_set(key, -1, "E4 atomic_set(-1)", "static_key_enable")
        yield from jump_label_update(key, arch)
        yield from atomic_set(key, 1, "E6 atomic_set_release(1)", "static_key_enable")
    yield ops.MutexUnlock("jump_label_mutex", label="E7 jump_label_unlock")


def _with_cpus_read_lock(fn: Callable, name: str) -> Callable:
    def wrapper(key: StaticKey, arch: JumpLabelArch) -> Gen:
        yield from cpus_read_lock()
        yield from fn(key, arch)
        yield from cpus_read_unlock()

    return model_c_name(wrapper, name)


model_c_name(_static_key_disable_cpuslocked_lock_first, "static_key_disable_cpuslocked")
model_c_name(_static_key_enable_cpuslocked_one_read, "static_key_enable_cpuslocked")
static_key_disable_lock_first = _with_cpus_read_lock(
    _static_key_disable_cpuslocked_lock_first, "static_key_disable")
static_key_enable_one_read = _with_cpus_read_lock(
    _static_key_enable_cpuslocked_one_read, "static_key_enable")
