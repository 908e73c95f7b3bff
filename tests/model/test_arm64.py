"""arm64 as a second architecture (KERNEL.md D): A64 words, the CMODX rule, context
synchronization events, K10 (jump labels without cross-CPU sync), K11 (stop_machine master
election), and the cost of a key flip next to x86's."""

from __future__ import annotations

import pytest

from crossmod.catalogue import CatalogueError, build
from crossmod.catalogue.arm64 import BRK, NOP, PROBE_SITE, PROBED, key_flip_systems
from crossmod.check.explore import explore
from crossmod.check.stats import cost_rows, flip_costs
from crossmod.machine import events as E
from crossmod.machine import text as T
from crossmod.machine.machine import Machine
from crossmod.machine.state import CPUS, VIEWS

SITE = "fire_sched_in_preempt_notifiers"


# ---- instruction words ------------------------------------------------------------------

def test_a_branch_whose_low_byte_is_0xcc_is_not_a_trap_on_arm64():
    """B with imm26 = 0xCC is stored CC 00 00 14: an x86 decoder would see INT3."""
    b = T.a64_b(0xCC * 4)
    assert b[0] == 0xCC
    arm = T.Site("s", NOP, ((NOP, "nop"), (b, "b l_yes")), arch="arm64")
    x86 = T.Site("s", NOP, ((NOP, "nop"), (b, "b l_yes")))
    assert T.decode(arm, b) == ("effect", "b l_yes", b)
    assert T.decode(x86, b)[0] == "int3"
    assert T.decode(arm, BRK)[0] == "int3"  # BRK is the arm64 trap


def test_cmodx_nop_b_is_old_or_new_but_an_ordinary_instruction_may_be_anything():
    site = T.Site("s", NOP, ((NOP, "nop"), (T.a64_b(0x40), "b")), arch="arm64")
    outs = T.fetch_outcomes("arm64", site, frozenset({NOP, T.a64_b(0x40)}))
    assert [o[:2] for o in outs] == [("effect", "b"), ("effect", "nop")]
    probe = T.Site("p", PROBED, ((PROBED, "mov"),), int3_effect="kprobe", arch="arm64")
    kinds = [o[0] for o in T.fetch_outcomes("arm64", probe, frozenset({PROBED, BRK}))]
    assert kinds == ["effect", "int3", "torn"]
    assert [o[0] for o in T.fetch_outcomes("arm64", probe, frozenset({BRK}))] == ["int3"]


def test_an_arm64_instruction_write_is_single_copy_atomic():
    """The nosync write lands as one word: no CPU's view ever holds a half-written one."""
    system = build("arm64-jump-label", "nosync")
    m = Machine(system.config)
    s, events = m.initial_state(), ()
    while not (writes := [e for e in events if isinstance(e, E.TextStore)]):
        before = s[CPUS][1][VIEWS][0]
        s, events = m.step(s, m.moves(s)[0])
    assert writes[0].word and writes[0].data == bytes.fromhex("10000014")
    assert "aarch64_insn_write: 10 00 00 14" in E.describe(writes[0])
    assert before == frozenset({NOP})
    assert s[CPUS][1][VIEWS][0] == frozenset({NOP, T.a64_b(0x40)})


# ---- K10: arm64 jump labels ----------------------------------------------------------------

def test_k10_nosync_cpu_runs_the_old_nop_after_static_key_enable_returned():
    """f6cc0c501649: the patcher writes the branch and returns; CPU 1 never took an
    exception, so it may keep the NOP and skip the preempt notifiers."""
    v = explore(build("arm64-jump-label", "nosync"))
    assert v.verdict == "violation" and v.property == "patch-visibility"
    trail = [s.text for s in v.counterexample]
    returned = next(i for i, t in enumerate(trail) if "[static_key_enable returned]" in t)
    last = v.counterexample[-1]
    assert last.cpu == 1 and returned < len(trail) - 1
    assert f"cpu1 executes 'skips __fire_sched_in_preempt_notifiers()' at {SITE}" in last.text
    assert "'calls __fire_sched_in_preempt_notifiers()'" in last.text
    assert not any("IPI ->" in t for t in trail)
    assert any("aarch64_insn_write: 10 00 00 14" in t for t in trail[:returned])


@pytest.mark.parametrize(("cpus", "k", "floor"), [(2, 1, 70), (2, 2, 150), (3, 2, 750)])
def test_2024_fix_kick_all_cpus_sync_makes_the_flip_visible(cpus, k, floor):
    v = explore(build("arm64-jump-label", cpus=cpus, sites=k))
    assert v.verdict == "safe" and v.stop_reason == "exhausted", v.message
    assert v.states >= floor


def test_2024_fix_safe_for_a_disable_and_with_a_pseudo_nmi():
    assert explore(build("arm64-jump-label", flip="disable", sites=2)).verdict == "safe"
    assert explore(build("arm64-jump-label", nmis=1, sites=2)).verdict == "safe"


@pytest.mark.parametrize("k", [1, 2, 4])
def test_2024_fix_is_one_kick_per_key_flip_whatever_k(k):
    c = flip_costs(build("arm64-jump-label", cpus=3, sites=k))
    assert c.by_function == {"do_nothing": 2} and c.rendezvous == 0


# ---- K11: stop_machine master election -----------------------------------------------------

def test_k11_first_master_patches_while_a_late_cpu_runs_the_probed_instruction():
    v = explore(build("arm64-stop-machine", "first-master"))
    assert v.verdict == "violation" and v.property == "torn-instruction"
    trail = [s.text for s in v.counterexample]
    write = next(i for i, t in enumerate(trail) if "aarch64_insn_write: 80 00 20 D4" in t)
    master = v.counterexample[write].cpu
    late = v.counterexample[-1].cpu
    assert late != master
    assert f"exec {PROBE_SITE}" in trail[-1]
    # the late CPU had not reached the callback's spin loop (no C4 step of its own yet)
    assert not any(s.cpu == late and "[C4" in s.text for s in v.counterexample)


@pytest.mark.parametrize(("cpus", "floor"), [(2, 120), (3, 600)])
def test_last_master_is_safe(cpus, floor):
    v = explore(build("arm64-stop-machine", cpus=cpus))
    assert v.verdict == "safe" and v.states >= floor


def test_k11_needs_a_site_that_is_not_cmodx_safe():
    """Jump labels only swap NOP and B: even the first-master election is safe for them."""
    v = explore(build("arm64-stop-machine", "first-master", patch="jump-label", sites=2))
    assert v.verdict == "safe"
    assert explore(build("arm64-stop-machine", "first-master", cpus=3)).property == \
        "torn-instruction"


@pytest.mark.parametrize("k", [1, 2, 4])
def test_stop_machine_jump_labels_cost_a_rendezvous_per_site(k):
    c = flip_costs(build("arm64-stop-machine", cpus=3, sites=k, patch="jump-label"))
    assert c.rendezvous == k and c.ipis == 2 * k


# ---- side by side ---------------------------------------------------------------------

def test_key_flip_costs_side_by_side():
    rows = {r["label"]: r for r in cost_rows(key_flip_systems(cpus=3, sites=(1, 4)))}
    assert rows["x86-static-key K=1"]["ipis"] == rows["x86-static-key K=4"]["ipis"] == 6
    assert rows["arm64-jump-label K=4"]["ipis"] == 2
    assert rows["arm64-stop-machine patch=jump-label K=4"]["rendezvous"] == 4
    assert all(r["rendezvous"] == 0 for k, r in rows.items() if "stop-machine" not in k)


def test_arm64_knobs_are_checked():
    with pytest.raises(CatalogueError, match="memory"):
        build("arm64-jump-label", memory="tso")
    with pytest.raises(CatalogueError, match="fetch"):
        build("arm64-stop-machine", fetch="snapshot")
    with pytest.raises(CatalogueError, match="patch=jump-label only"):
        build("arm64-stop-machine", sites=2)


def test_sites_of_one_name_in_two_systems_do_not_share_fetch_outcomes():
    """x86 and arm64 systems name their sites alike; the outcome cache must not mix them."""
    full = T.Site("s", T.NOP5, ((T.NOP5, "nop"), (T.jmp32(0x40), "jmp")))
    nop_only = T.Site("s", T.NOP5, ((T.NOP5, "nop"),))
    view = frozenset({T.NOP5, T.jmp32(0x40)})
    assert [o[0] for o in T.fetch_outcomes("snapshot", full, view)] == ["effect", "effect"]
    assert [o[0] for o in T.fetch_outcomes("snapshot", nop_only, view)] == ["effect", "torn"]
