"""Static keys and static calls on x86 (KERNEL.md E): kernel/jump_label.c over the int3
batch, static_call_update() over smp_text_poke_single(), keys flipped from two CPUs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crossmod.catalogue import CatalogueError, build
from crossmod.catalogue import static_keys as sk
from crossmod.check.explore import explore
from crossmod.check.stats import flip_costs
from crossmod.kernel import jump_label as jl
from crossmod.machine import events as E
from crossmod.machine import ops
from crossmod.machine.machine import Machine
from crossmod.machine.state import MEM, TEXT
from crossmod.machine.system import System

from .conftest import terminal_states


@pytest.mark.parametrize(("k", "floor"), [(1, 500), (2, 1_500)])
def test_x86_static_key_enable_is_safe(k, floor):
    """static_key_enable() with K sites: after it returns every CPU calls the notifiers."""
    v = explore(build("x86-static-key", sites=k))
    assert v.verdict == "safe" and v.stop_reason == "exhausted", v.message
    assert v.states >= floor


def test_x86_static_key_safe_with_an_nmi_running_a_site_mid_batch():
    v = explore(build("x86-static-key", sites=2, nmis=1))
    assert v.verdict == "safe"
    assert v.states >= 20_000


@pytest.mark.parametrize("cpus", [2, 3])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_x86_static_key_flip_is_one_batch_three_syncs_whatever_k(k, cpus):
    """One int3 batch for all K sites: three on_each_cpu(do_sync_core) -- 3*(ncpus-1) IPIs
    per key flip, independent of K, and no stop_machine rendezvous."""
    c = flip_costs(build("x86-static-key", cpus=cpus, sites=k))
    assert c.ipis == 3 * (cpus - 1)
    assert c.by_function == {"do_sync_core": 3 * (cpus - 1)}
    assert c.rendezvous == 0


def test_x86_static_key_flip_writes_each_site_three_times_in_one_batch():
    """F3 (INT3), F4 (tail), F5 (first byte) for each of the K sites, then one F6/F7."""
    system = build("x86-static-key", sites=4, cpus=2)
    m = Machine(system.config)
    s, events = m.initial_state(), []
    while (mv := m.moves(s)):
        s, ev = m.step(s, mv[0])
        events += ev
    assert sum(isinstance(e, E.TextStore) and e.data == b"\xcc" for e in events) == 4
    assert sum(isinstance(e, E.OpEvent) and e.label == "F7" and "text_poke_array.nr" in
               (E.describe(e) or "") for e in events) == 1


def test_ro_after_init_key_flipped_after_boot_is_reported():
    """E-I3: a __ro_after_init key is written after mark_rodata_ro(): the write faults."""
    v = explore(build("x86-static-key", "ro-after-init"))
    assert v.verdict == "violation" and v.property == "ro-after-init"
    assert "static_key_enable writes preempt_notifier_key.enabled" in v.message
    assert "__ro_after_init" in v.message
    assert v.counterexample[-1].text.startswith("VIOLATION ro-after-init")


def test_ro_after_init_key_flipped_during_boot_is_fine():
    """The same key flipped before mark_rodata_ro() (rodata_ro false) is no violation."""
    system = build("x86-static-key", "ro-after-init")
    glob = tuple((n, False if n == "rodata_ro" else v) for n, v in system.config.globals)
    v = explore(System(system.name, replace(system.config, globals=glob), system.variant))
    assert v.verdict == "safe"


def test_x86_static_call_every_cpu_calls_the_new_function():
    """static_call_update(): once it returned, the trampoline and every inline site call
    trace_event_raw_event_sched_switch on every CPU (property 2 after PatchReturned)."""
    for k, floor in ((1, 1_200), (2, 2_400)):
        v = explore(build("x86-static-call", sites=k))
        assert v.verdict == "safe" and v.states >= floor, (k, v.message)


def test_x86_static_call_final_text_calls_the_new_function():
    system = build("x86-static-call")
    m, finals = terminal_states(system)
    assert finals
    for s in finals:
        for si, site in enumerate(system.config.sites):
            eff = m.memory_effect(s[TEXT], si)
            assert eff.endswith(sk.NEW_FUNC), (site.name, eff)


@pytest.mark.parametrize("k", [1, 2])
def test_x86_static_call_costs_a_whole_int3_protocol_per_site(k):
    """Not batched: the trampoline and each of K inline sites get smp_text_poke_single()."""
    c = flip_costs(build("x86-static-call", sites=k, cpus=3))
    assert c.ipis == 3 * (k + 1) * 2


def test_ro_after_init_static_call_update_is_reported():
    v = explore(build("x86-static-call", "ro-after-init"))
    assert v.property == "ro-after-init"
    assert "static_call_update writes tp_func_sched_switch.func" in v.message


RACE_FINALS = {"default": {1}, "enable-disable": {0, 1}, "dec-inc-dec": {0},
               "enable-enable": {1}}


@pytest.mark.parametrize("variant", sorted(RACE_FINALS))
def test_racing_flips_no_deadlock_and_text_matches_count(variant):
    """Two CPUs flip the key at once: no deadlock, and in every final state the text of
    each site is what the final count says (checked by the model's own Check op and here
    again from the terminal states)."""
    v = explore(build("static-key-race", variant))
    assert v.verdict == "safe" and v.states >= 1_500, v.message
    system = build("static-key-race", variant)
    m, finals = terminal_states(system)
    idx = system.config.gidx["preempt_notifier_key.enabled"]
    counts = set()
    for s in finals:
        n = s[MEM][idx]
        counts.add(n)
        entry = sk.x86_key(1).entries[0]
        assert m.memory_effect(s[TEXT], 0) == entry.effect_for(n != 0)
        assert s[MEM][system.config.gidx["jump_label_mutex"]] is None
    assert counts == RACE_FINALS[variant]


def test_june_2024_slow_dec_loses_a_decrement_in_de752774f38b_interleaving():
    """83ab38ef0a0b's slow path: CPU 0's dec sees 1 and goes slow; CPU 1 incs (2) and decs
    (1) on the fast path; CPU 0's cmpxchg(1, 0) fails, its retry of try_dec sees 1 and gives
    up with a WARN: every user is gone but the key stays enabled."""
    v = explore(build("static-key-race", "dec-inc-dec-83ab38ef0a0b"))
    assert v.verdict == "violation" and v.property == "static-key-count"
    trail = [s.text for s in v.counterexample]
    assert any("WARN_ON_ONCE(!static_key_slow_try_dec(key))" in t for t in trail)
    assert any("atomic_cmpxchg(1, 0)" in t and "2 -> 2" in t for t in trail)
    assert "values (1,)" in v.message


def test_a_second_static_key_disable_returns_before_the_first_has_patched():
    """Today's static_key_disable_cpuslocked(): `if (atomic_read(&key->enabled) != 1)
    return;` -- a second disabler sees the 0 the first one's cmpxchg wrote and returns
    without taking jump_label_mutex, while the first is still in jump_label_update(). The
    same race with two enables is safe: they meet -1 and wait on the mutex."""
    v = explore(build("static-key-race", "disable-disable"))
    assert v.verdict == "violation" and v.property == "static-key-contract"
    assert "static_key_disable returned but fire_sched_in_preempt_notifiers still calls" \
        in v.message
    trail = v.counterexample
    cmpxchg = next(i for i, s in enumerate(trail) if "atomic_cmpxchg(1, 0)" in s.text)
    early = next(i for i, s in enumerate(trail) if "[D2]" in s.text and "= 0" in s.text)
    assert trail[cmpxchg].cpu != trail[early].cpu and cmpxchg < early
    assert not any("text_poke" in s.text for s in trail)  # nothing patched yet
    assert explore(build("static-key-race", "enable-enable")).verdict == "safe"


def test_march_2024_proposals_for_the_static_key_disable_warning():
    """Steven Rostedt's proposal (test under jump_label_lock) closes the early return;
    Josh Poimboeuf's (one read, return unless 0) would open it for enables: -1 is not 0."""
    assert explore(build("static-key-race", "disable-disable-lock-first")).verdict == "safe"
    v = explore(build("static-key-race", "enable-enable-one-read"))
    assert v.property == "static-key-contract"
    assert "static_key_enable returned but fire_sched_in_preempt_notifiers still skips" \
        in v.message
    assert any("E2 tmp = atomic_read()" in s.text and "= -1" in s.text
               for s in v.counterexample)


def test_racing_flips_with_a_third_cpu_taking_the_syncs():
    v = explore(build("static-key-race", cpus=3))
    assert v.verdict == "safe" and v.states >= 10_000


def _enable_publishing_one_before_patching(key, arch):
    """A broken static_key_enable: no -1 "in progress" state -- enabled := 1 first."""
    yield from jl.cpus_read_lock()
    yield ops.MutexLock("jump_label_mutex")
    if (yield ops.Load(key.enabled)) == 0:
        yield ops.Store(key.enabled, 1)
        yield from jl.jump_label_update(key, arch)
    yield ops.MutexUnlock("jump_label_mutex")
    yield from jl.cpus_read_unlock()


def test_without_the_in_progress_count_a_concurrent_inc_returns_too_early(monkeypatch):
    """Why -1 exists: if enable published 1 before patching, a static_branch_inc() on
    another CPU takes the fast path and returns while the sites still hold the NOP."""
    monkeypatch.setitem(sk.FLIPS, "enable", _enable_publishing_one_before_patching)
    key = sk.x86_key(1)
    site = key.entries[0].site
    tasks = [(sk.model_key_updater, (key, jl.X86_JUMP_LABEL, "enable")),
             (sk.model_key_updater, (key, jl.X86_JUMP_LABEL, "inc")),
             (sk.model_exec_sites, ((site,), 1))]
    cfg = sk._x86_config(tasks, sk.sites_of(key), 3, 0, "per-byte", "tso",
                         jl.jump_label_memory((key,)), symmetric_from=3)
    v = explore(System("broken-enable", cfg))
    assert v.property == "patch-visibility"
    trail = [s.text for s in v.counterexample]
    assert any("static_branch_inc returned" in t for t in trail)


def test_bad_knobs_are_catalogue_errors():
    with pytest.raises(CatalogueError, match="outside"):
        build("x86-static-key", sites=5)
    with pytest.raises(CatalogueError, match="--sites does not apply"):
        build("x86-int3-batch", sites=2)
