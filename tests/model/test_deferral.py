"""IPI deferral to isolated CPUs (KERNEL.md F.6, G, H; K12-K20): the v6 context-tracking
design (`defer-ct`), the v8 CR3 design (`defer-cr3`), no deferral (`defer-none`), the kernel
TLB with speculative fills, and the isolation property (DESIGN.md property 6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crossmod.catalogue import ROWS, build
from crossmod.catalogue.deferral import POLICIES, VARIANT_PARAMS
from crossmod.check.explore import explore
from crossmod.check.isolation import user_ipi_counts
from crossmod.check.verdict import Bounds
from crossmod.kernel import context_tracking as ct
from crossmod.machine.system import System

from .randomproto import compare_system


def check(protocol: str, variant: str = "default", **knobs):
    return explore(build(protocol, variant, **knobs))


def trail(v) -> list[str]:
    return [s.text for s in v.counterexample]


def index_of(lines: list[str], needle: str, start: int = 0) -> int:
    for i in range(start, len(lines)):
        if needle in lines[i]:
            return i
    raise AssertionError(f"{needle!r} not in the trail after step {start}")


# ---- defer-none: today's kernel ----------------------------------------------------------

def test_without_deferral_a_cpu_in_userspace_takes_every_sync_and_flush_ipi():
    """Three do_sync_core (S1, S2, S3) and one do_kernel_range_flush, in every run."""
    system = build("defer-none", syscalls=0)
    v = explore(system)
    assert v.verdict == "safe" and v.states >= 250
    counts = user_ipi_counts(system)
    assert counts.low[1] == counts.high[1] == {"do_sync_core": 3, "do_kernel_range_flush": 1}
    assert counts.high[0] == {}


def test_without_deferral_a_syscalling_cpu_is_safe():
    assert check("defer-none").verdict == "safe"


# ---- defer-cr3 (v8) ----------------------------------------------------------------------

def test_v8_is_safe_with_a_text_patch_and_a_vmalloc_purge_in_flight():
    v = check("defer-cr3", fetch="per-byte", memory="tso")
    assert v.verdict == "safe" and v.states >= 6_000
    assert "1cpu" not in v.config and "per-byte tso" in v.config


def test_v8_cpu_staying_in_userspace_takes_no_text_patch_or_tlb_flush_ipi():
    system = build("defer-cr3", syscalls=0)
    assert explore(system).verdict == "safe"  # property 6 is checked on cpu1
    counts = user_ipi_counts(system)
    assert counts.high[1] == {} and counts.with_ipi[1] == 0


def test_v8_cpu_leaving_the_kernel_may_take_a_chain_of_benign_ipis():
    """The 1 -> 0 window: an IPI sent while the target was on the kernel CR3 is taken after
    it returned to user mode; that IPI's own entry sets the signal again, so the next sync
    step may IPI it too. Allowed (the CPU did not stay in userspace), and counted."""
    counts = user_ipi_counts(build("defer-cr3"))
    assert counts.high[1] == {"do_sync_core": 3, "do_kernel_range_flush": 1}
    assert counts.low[1] == {"do_sync_core": 0, "do_kernel_range_flush": 0}


def test_k17_v7_signal_after_flush_misses_a_flush():
    v = check("defer-cr3", "signal-after-flush", patch=False)
    assert (v.verdict, v.property) == ("violation", "use-after-free")
    t = trail(v)
    cr3 = index_of(t, "E2b SWITCH_TO_KERNEL_CR3")
    signal = index_of(t, "E2c COALESCE_TLBI", cr3)  # buffered: the CR3 write came first
    fill = index_of(t, "page walker (speculative) caches va -> P1", cr3)
    skip = index_of(t, "kernel_cr3_loaded: skips cpu1", max(fill, signal))
    assert not any("drains: per_cpu(kernel_cr3_loaded, 1) := 1" in x for x in t[:skip])
    assert "freed after flush_tlb_kernel_range returned" in t[-1]


def test_k17_v7_signal_after_flush_misses_a_sync_too():
    v = check("defer-cr3", "signal-after-flush")
    assert (v.verdict, v.property) == ("violation", "torn-instruction")


def test_k18_sender_without_smp_mb_is_store_buffering():
    v = check("defer-cr3", "no-sender-mb")
    assert (v.verdict, v.property) == ("violation", "use-after-free")
    t = trail(v)
    clear = index_of(t, "store pte.va := None")
    skip = index_of(t, "skips cpu1", clear)
    assert index_of(t, "store buffer drains: pte.va := None", skip) > skip


def test_k18_is_masked_when_the_pte_clear_is_vunmaps_xchg():
    assert check("defer-cr3", "xchg-no-sender-mb").verdict == "safe"


def test_without_kpti_nothing_serializes_or_flushes_the_skipped_cpu():
    for knobs, prop in (({}, "torn-instruction"), ({"patch": False}, "use-after-free")):
        v = check("defer-cr3", "no-pti", **knobs)
        assert (v.verdict, v.property) == ("violation", prop)
        assert not any("MOV CR3" in line for line in trail(v))


def test_a_noflush_entry_cr3_write_keeps_the_stale_translation():
    v = check("defer-cr3", "noflush-entry")
    assert (v.verdict, v.property) == ("violation", "use-after-free")


def test_k20_nmi_in_the_exit_window_runs_unsynchronized():
    for knobs, prop in (({}, "torn-instruction"), ({"patch": False}, "use-after-free")):
        v = check("defer-cr3", "nmi-exit-window", **knobs)
        assert (v.verdict, v.property) == ("violation", prop)
        t = trail(v)
        zero = index_of(t, "X2a NOTE_SWITCH_TO_USER_CR3")
        nmi = index_of(t, "takes an NMI", zero)
        assert not any("MOV CR3" in line for line in t[zero:nmi])
        assert not any("cpu1" in line and "MOV CR3" in line for line in t[nmi:])


def test_k20_paranoid_entry_that_saves_and_catches_up_on_the_signal_is_safe():
    v = check("defer-cr3", "nmi-exit-window-fix", patch=False)
    assert v.verdict == "safe" and v.states >= 2800


# ---- defer-ct (v6) -----------------------------------------------------------------------

def test_v6_rcu_watching_gate_is_safe():
    v = check("defer-ct")
    assert v.verdict == "safe" and v.states >= 3000
    v = check("defer-ct", nmis=1, syscalls=0)
    assert v.verdict == "safe" and v.states >= 2500


def test_k12_state_field_gate_defers_to_a_cpu_in_an_nmi():
    v = check("defer-ct", "state-field")
    assert (v.verdict, v.property) == ("violation", "torn-instruction")
    t = trail(v)
    nmi = index_of(t, "ct_nmi_enter")
    assert index_of(t, "atomic_try_cmpxchg(per_cpu(context_tracking.state, 1))", nmi) > nmi
    assert "in NMI" in t[-1] or "N3 NMI handler" in t[-1] or "exec site" in t[-1]


def test_k13_plain_read_is_safe_and_its_spurious_ipis_are_counted():
    system = build("defer-ct", "plain-read")
    assert explore(system).verdict == "safe"
    counts = user_ipi_counts(system)
    assert counts.high[1] == {"do_sync_core": 3}
    assert counts.with_ipi[1] >= 1


def test_k14_mutable_key_in_the_danger_zone_tears_on_entry():
    v = check("defer-ct", "mutable-entry-key")
    assert (v.verdict, v.property) == ("violation", "torn-instruction")
    assert "exec entry_key" in trail(v)[-1]
    assert not any("MOV CR3" in line for line in trail(v)[index_of(trail(v), "SYSCALL"):])


@pytest.mark.parametrize("variant", ["entry-key-ro", "entry-key-noinstr"])
def test_k14_fixed_by_ro_after_init_or_always_ipi(variant):
    assert check("defer-ct", variant).verdict == "safe"


def test_k15_deferring_a_noinstr_patch_tears_before_ct_work_flush():
    v = check("defer-ct", "noinstr-patch")
    assert (v.verdict, v.property) == ("violation", "torn-instruction")
    assert "exec noinstr_site" in trail(v)[-1]
    assert check("defer-ct", "noinstr-patch-checked").verdict == "safe"


def test_k16_tlb_flush_at_ct_work_flush_is_a_use_after_free():
    v = check("defer-ct", "tlb-at-ct-flush")
    assert (v.verdict, v.property) == ("violation", "use-after-free")
    assert "vmapped stack" in trail(v)[-2] or "vmapped stack" in trail(v)[-1]
    assert not any("ct_work_flush" in line for line in trail(v))


def test_v6_nmi_between_the_ct_add_and_ct_work_flush_runs_stale_text():
    """Found by the model, not in KERNEL.md: ct_nmi_enter sees RCU watching and skips the
    flush; the deferred sync_core has not run yet."""
    v = check("defer-ct", nmis=1)
    assert (v.verdict, v.property) == ("violation", "torn-instruction")
    t = trail(v)
    add = index_of(t, "E3 ct_kernel_enter_state")
    assert index_of(t, "takes an NMI", add) > add
    assert not any("ct_work_flush" in line for line in t[add:])


def test_ct_word_layout():
    assert ct.describe(ct.CT_STATE_USER | ct.CT_WORK_SYNC) == "CT_STATE_USER|SYNC"
    assert ct.describe(ct.CT_RCU_WATCHING) == "CT_STATE_KERNEL|RCU_WATCHING"


# ---- isolation property ------------------------------------------------------------------

def test_isolation_violation_when_the_signal_says_kernel_while_in_userspace():
    """v7's default kernel_cr3_loaded = true on a CPU that stays in userspace: the sender
    IPIs it, and property 6 says so."""
    system = build("defer-cr3", syscalls=0)
    cfg = replace(system.config, percpu_init=tuple(
        (c, n, 1 if n == "kernel_cr3_loaded" else val) for c, n, val in system.config.percpu_init))
    v = explore(System(system.name, cfg, system.variant, system.params))
    assert (v.verdict, v.property) == ("violation", "isolation")
    assert "do_sync_core IPI taken in user mode" in v.message


def test_symmetry_halves_the_deferral_state_space_with_two_isolated_cpus():
    for proto in ("defer-none", "defer-cr3"):
        system = build(proto, cpus=3, syscalls=0, nmis=1 if proto == "defer-cr3" else 0)
        # without the partial-order reduction, whose private ops (reduction.py point 7)
        # interleave differently with each representative
        a = explore(system, Bounds(por=False))
        b = explore(system, Bounds(symmetry=False, por=False))
        assert a.verdict == b.verdict == "safe"
        assert 1.8 <= b.states / a.states <= 2.0


def test_two_senders_run_the_patch_and_the_purge_on_two_housekeeping_cpus():
    """senders=2: CPU 0 patches while CPU 1 unmaps and purges; the isolated CPU is the last;
    each sender's IPIs reach the other housekeeping CPU (it runs kernel code), none reach
    the CPU staying in userspace (property 6)."""
    system = build("defer-cr3", cpus=3, senders=2, syscalls=0)
    cfg = system.config
    assert [t[1][3:5] for t in cfg.tasks[:2]] == [(True, False), (False, True)]
    assert cfg.nmi_cpus == (2,) and cfg.symmetric == ()
    v = explore(system)
    assert (v.verdict, v.states) == ("safe", 4184)
    v = explore(build("defer-cr3", "signal-after-flush", cpus=3, senders=2))
    assert (v.verdict, v.property, len(v.counterexample)) == ("violation", "use-after-free", 22)
    text = trail(v)
    assert any(line.startswith("cpu1") and "IPI -> cpu0; kernel_cr3_loaded: skips cpu2" in line
               for line in text)


@pytest.mark.parametrize("knobs", [{"senders": 2}, {"cpus": 3, "senders": 2, "patch": False}])
def test_two_senders_need_both_jobs_and_three_cpus(knobs):
    from crossmod.catalogue import CatalogueError

    with pytest.raises(CatalogueError, match="senders=2 runs the patch and the vmalloc purge"):
        build("defer-cr3", **knobs)


# ---- the isolated CPUs as readers: the reduced search against the plain walk --------------

# each variant at 2 CPUs, with and without the text patch (not without it where the variant
# has no vmalloc purge either; with it, the NMI-window variants' plain walk is too long here)
_VARIANTS = [(proto, variant, patch) for proto, variants in POLICIES.items()
             for variant in variants for patch in (True, False)
             if not (patch is False and VARIANT_PARAMS.get(proto, {}).get(variant, {})
                     .get("vmalloc") is False)
             and not (patch and variant.startswith("nmi-exit-window"))]


@pytest.mark.parametrize("proto,variant,patch", _VARIANTS,
                         ids=[f"{p}-{v}-patch={t}" for p, v, t in _VARIANTS])
def test_the_reduction_on_isolated_cpus_agrees_with_the_plain_walk(proto, variant, patch):
    """Every property the plain walk of the machine breaks is found, alone, by the search
    that reduces the isolated CPUs' moves, in as few moves, and ignoring them all that
    search is safe (benchmarks/deferral_differential.py runs the whole grid)."""
    c = compare_system(lambda: build(proto, variant, patch=patch), limit=60_000)
    assert c.reference_states >= 50
    wanted = {r.prop for r in ROWS if (r.protocol, r.variant) == (proto, variant)
              and r.expected != "safe" and r.knobs.get("patch", True) == patch
              and set(r.knobs) <= {"patch"}}
    assert wanted <= c.properties
