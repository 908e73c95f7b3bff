"""The catalogue as a quality suite: each historic bug found with the expected property,
each fixed protocol proved within its bounds (STYLE.md rule 22)."""

from __future__ import annotations

import pytest

from crossmod.catalogue import ENTRIES, ROWS, CatalogueError, build
from crossmod.check.explore import explore
from crossmod.check.verdict import Bounds, Outcome

FAST_ROWS = [r for r in ROWS if r.knobs.get("cpus", 2) <= 2 and not r.knobs.get("nmis")]


@pytest.mark.parametrize("row", FAST_ROWS, ids=lambda r: f"{r.protocol}:{r.variant}:{r.knobs}")
def test_row_gives_expected_verdict(row):
    """Every 2-CPU catalogue row: verdict and broken property as the catalogue expects."""
    v = explore(build(row.protocol, row.variant, **row.knobs), Bounds(liveness=row.liveness))
    assert v.verdict == row.expected, v.message
    if row.prop:
        assert v.property == row.prop
    assert ("liveness" in v.stats) == (row.liveness and v.verdict != "deadlock")
    if v.verdict == "safe":
        assert v.states > 50 and v.stop_reason == "exhausted"
    elif v.property == "liveness":
        assert v.counterexample and 0 < v.cycle_start < len(v.counterexample)
    elif v.verdict == "deadlock":
        assert v.counterexample is not None and v.counterexample.deadlock is not None
        assert v.counterexample.deadlock.message == v.message
        assert v.counterexample.outcome is Outcome.DEADLOCK
        assert v.cycle_start is None
    else:
        assert v.counterexample and v.counterexample[-1].text.startswith("VIOLATION")
        assert v.counterexample.outcome is Outcome.VIOLATION
        assert v.cycle_start is None


def test_int3_batch_safe_under_both_fetch_models_with_2_cpus():
    """Today's protocol: no torn instruction, no unexpected int3, new instruction everywhere
    after return -- under the SDM-literal per-byte model and the snapshot model."""
    for fetch in ("per-byte", "snapshot"):
        v = explore(build("x86-int3-batch", fetch=fetch))
        assert v.verdict == "safe" and v.states >= 700, (fetch, v.states)


@pytest.mark.slow
@pytest.mark.parametrize("fetch", ["per-byte", "snapshot"])
def test_int3_batch_safe_with_3_cpus_and_an_nmi_executing_the_site(fetch):
    """3 CPUs, one NMI anywhere (the patcher included) running through the site."""
    v = explore(build("x86-int3-batch", cpus=3, nmis=1, fetch=fetch, execs=1))
    assert v.verdict == "safe"
    assert v.states >= 100_000


def test_no_sync1_tears_old_opcode_with_new_tail():
    """K2: without S1 a CPU that fetched the old first byte before the INT3 went in still
    decodes it, now followed by new tail bytes."""
    v = explore(build("x86-int3-batch", "no-sync1"))
    assert v.property == "torn-instruction"
    assert "fetched 0F 40" in v.message  # NOP5's first byte, JMP's displacement byte


def test_no_sync2_answers_the_2010_question_both_ways():
    """K3: torn when bytes are fetched independently (per-byte), safe when a fetch sees one
    instant of memory (snapshot) -- Intel's 2010 unofficial answer holds only then."""
    per_byte = explore(build("x86-int3-batch", "no-sync2", fetch="per-byte"))
    snapshot = explore(build("x86-int3-batch", "no-sync2", fetch="snapshot"))
    assert per_byte.property == "torn-instruction"
    assert "fetched E9 40 44" in per_byte.message  # new first byte, a stale tail byte
    assert snapshot.verdict == "safe"


def test_no_sync3_leaves_a_stale_int3_after_the_batch_is_torn_down():
    """K4: without S3 a CPU that serialized at S2 may still fetch the INT3 after F6 dropped
    the references: the handler declines it and no INT3 is in memory -- die("int3"). (The
    other K4 outcome, the old instruction after return, needs a CPU that did not serialize
    at S2, which S2 rules out.)"""
    v = explore(build("x86-int3-batch", "no-sync3"))
    assert v.property == "unexpected-int3"
    texts = [s.text for s in v.counterexample]
    assert any("text_poke: E9 -> site+0" in t for t in texts)
    assert any("F6" in t for t in texts)


def test_publish_barrier_matters_only_when_stores_may_reorder():
    """K6: under x86-TSO stores reach memory in order, so refs=1 is visible before the INT3
    even without F2/H1; with a store order that lets later stores pass (pso) the handler
    sees the INT3 with refs still 0 and declines it."""
    assert explore(build("x86-int3-batch", "no-publish-barrier")).verdict == "safe"
    v = explore(build("x86-int3-batch", "no-publish-barrier", memory="pso"))
    assert v.property == "unexpected-int3"
    assert "CC 1F 44 00 00" in v.message  # the INT3 is in memory, yet unclaimed


def test_stack_descriptor_handler_reads_a_popped_frame():
    """K5: the 2019 handler read bp_desc, the patcher cleared it, dropped the last reference
    and returned; the handler then takes a reference through the stale pointer."""
    v = explore(build("x86-int3-batch", "stack-descriptor"))
    assert v.property == "use-after-return"
    texts = "\n".join(s.text for s in v.counterexample)
    assert "READ_ONCE(bp_desc)" in texts and "stack frame holding" in texts
    assert explore(build("x86-int3-batch", "global-descriptor")).verdict == "safe"


def test_memcpy_tears_even_under_snapshot_fetch():
    """K1: memcpy's bytes become visible one at a time, so even whole-site fetches tear."""
    for fetch in ("per-byte", "snapshot"):
        assert explore(build("x86-memcpy", fetch=fetch)).property == "torn-instruction"


def test_fixup_2010_as_written():
    """Masami's steps (5)-(6) have no sync between the tail and the first byte: the model
    says torn under per-byte fetch and safe under snapshot, i.e. exactly K3's answer."""
    assert explore(build("x86-fixup-2010")).property == "torn-instruction"
    assert explore(build("x86-fixup-2010", fetch="snapshot")).verdict == "safe"


def test_cpumask_2019_deadlocks_with_an_nmi_on_the_patcher():
    """K8: the NMI on the patching CPU hits the INT3 and the #BP handler waits for a patch
    that only the interrupted task can finish."""
    v = explore(build("x86-cpumask-2019"))
    assert v.verdict == "deadlock"
    assert "cpu0: int3_wait_for_patch waits" in v.message
    assert "task/nmi/bp" in v.message
    assert explore(build("x86-cpumask-2019", "last-clearer-completes")).verdict == "safe"


def test_ipi_with_irqs_off_deadlocks():
    """K9: both CPUs wait on each other's CSD with interrupts disabled."""
    v = explore(build("x86-ipi-irqs-off"))
    assert v.verdict == "deadlock"
    assert v.message.count("CsdLockWait") == 2
    assert any("WARNING" in s.text for s in v.counterexample)


def test_stop_machine_safe_without_nmis_torn_with_one():
    assert explore(build("x86-stop-machine", cpus=3)).verdict == "safe"
    assert explore(build("x86-stop-machine", nmis=1)).property == "torn-instruction"


BUG_ROWS = [r for r in ROWS if r.expected != "safe"]


@pytest.mark.parametrize("row", BUG_ROWS, ids=lambda r: f"{r.protocol}:{r.variant}:{r.knobs}")
def test_shortest_counterexample_length_is_pinned(row):
    """Breadth-first search gives the fewest moves; every bug row's length is written in the
    catalogue, so a model change that lengthens or shortens a known bug is noticed (and the
    trail the user sees is exactly that long)."""
    assert row.length is not None, "a bug row must pin its counterexample length"
    v = explore(build(row.protocol, row.variant, **row.knobs), Bounds(liveness=row.liveness))
    assert (v.verdict, v.property) == (row.expected, row.prop)
    assert len(v.counterexample) == v.depth == row.length


@pytest.mark.parametrize("name,knobs,fragment", [
    ("x86-nope", {}, "unknown protocol 'x86-nope'"),
    ("x86-int3-batch", {"cpus": 99}, "--cpus 99"),
    ("x86-int3-batch", {"nmis": 9}, "--nmis 9"),
    ("x86-int3-batch", {"memory": "weird"}, "unknown memory model"),
])
def test_bad_knobs_are_refused_with_the_valid_values(name, knobs, fragment):
    with pytest.raises(CatalogueError, match=fragment.replace("(", r"\(")):
        build(name, **knobs)


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(CatalogueError, match="no-sync1"):
        build("x86-int3-batch", "no-sync9")


def test_every_entry_builds_with_defaults():
    for name in ENTRIES:
        assert build(name).config.ncpus >= 2


def test_an_empty_batch_finishes_at_once_without_an_ipi():
    """`smp_text_poke_batch_finish()` on an empty batch returns before publishing refs or
    syncing (``if (!text_poke_array.nr_entries) return;``): no IPI, nothing patched."""
    from dataclasses import replace

    from crossmod.catalogue.x86_int3 import VARIANTS
    from crossmod.check.stats import flip_costs
    from crossmod.kernel import text_poke as tp
    from crossmod.kernel.model import model_text_mutex_caller

    system = build("x86-int3-batch", cpus=3)
    empty = (model_text_mutex_caller, ("site", tp.smp_text_poke_batch_finish,
                                       (VARIANTS["default"],)))
    idle = replace(system, config=replace(system.config, tasks=(empty, *system.config.tasks[1:])))
    assert flip_costs(idle).ipis == 0
    assert flip_costs(system).ipis == 3 * 2  # the same machine with one site queued


# -- parameter schemas (issue 11, item 5) ---------------------------------------------------

def test_every_entry_declares_one_schema_and_its_defaults_build() -> None:
    """Each entry's parameters are one frozen dataclass; the variants' own defaults are
    values of that schema; every row's knobs are parameters of its entry."""
    import dataclasses

    for e in ENTRIES.values():
        assert dataclasses.is_dataclass(e.params) and e.params.__dataclass_params__.frozen
        assert [s.name for s in e.specs][:4] == ["cpus", "nmis", "fetch", "memory"]
        for s in e.specs:
            assert s.help and (s.type is bool or s.range or s.choices), (e.name, s.name)
            assert s.valid()
        for variant, d in e.variant_defaults.items():
            assert variant in e.variants and set(d) <= {s.name for s in e.specs}
            assert build(e.name, variant).params == {**dataclasses.asdict(e.params()), **d}
    for r in ROWS:
        assert set(r.knobs) <= {s.name for s in ENTRIES[r.protocol].specs}, r


def test_a_system_carries_every_resolved_parameter() -> None:
    assert build("x86-cpumask-2019", "last-clearer-completes", nmi_on="all").params == {
        "cpus": 2, "nmis": 1, "fetch": "per-byte", "memory": "tso", "execs": 1,
        "nmi_on": "all"}
    assert build("defer-ct", "state-field").params == {
        "cpus": 2, "nmis": 1, "fetch": "per-byte", "memory": "tso", "syscalls": 0,
        "patch": True, "vmalloc": False, "senders": 1}


@pytest.mark.parametrize(("name", "knobs", "message"), [
    ("x86-int3-batch", {"execs": "2"}, "parameter execs='2' of x86-int3-batch is not an int "
                                       "(valid: 1..4)"),
    ("x86-int3-batch", {"cpus": True}, "parameter cpus=True of x86-int3-batch is not an int "
                                       "(valid: 2..8)"),
    ("x86-int3-batch", {"cpus": None}, "parameter cpus=None of x86-int3-batch is not an int "
                                       "(valid: 2..8)"),
    ("x86-int3-batch", {"execs": 9}, "--set execs=9 is outside what x86-int3-batch can "
                                     "honour (1..4)"),
    ("x86-int3-batch", {"sites": 2}, "--sites does not apply to x86-int3-batch (its "
                                     "parameters: cpus, nmis, fetch, memory, execs, users)"),
    ("x86-int3-batch", {"nmi_on": "all"}, "parameter 'nmi_on' does not apply to "
                                          "x86-int3-batch (its parameters: cpus, nmis, "
                                          "fetch, memory, execs, users)"),
    ("x86-cpumask-2019", {"nmi_on": "some"}, "--set nmi_on='some' does not apply to "
                                             "x86-cpumask-2019; valid: patcher, all"),
    ("defer-ct", {"patch": 1}, "parameter patch=1 of defer-ct is not a bool (valid: true, "
                               "false)"),
    ("defer-ct", {"memory": "sc"}, "--memory 'sc' does not apply to defer-ct; valid: tso, "
                                   "pso (all models: tso, pso, sc)"),
    ("x86-static-key", {"flip": "dec@83ab38ef0a0b"}, "--set flip='dec@83ab38ef0a0b' does not "
                                                     "apply to x86-static-key; valid: enable, "
                                                     "disable, inc, dec"),
    ("x86-ipi-irqs-off", {"nmis": 1}, "--nmis 1 is outside what x86-ipi-irqs-off can honour "
                                      "(0..0)"),
    ("arm64-stop-machine", {"sites": 2}, "--sites applies to arm64-stop-machine with "
                                         "patch=jump-label only"),
    ("arm64-jump-label", {"fetch": "snapshot"}, "--fetch 'snapshot' does not apply to "
                                                "arm64-jump-label; valid: arm64 (all models: "
                                                "per-byte, snapshot, arm64)"),
])
def test_a_parameter_it_cannot_honour_is_one_line_naming_the_valid_ones(
        name: str, knobs: dict, message: str) -> None:
    with pytest.raises(CatalogueError) as e:
        build(name, **knobs)
    assert str(e.value) == message


def test_build_takes_any_parameter_name_without_a_type_error() -> None:
    """`build`'s own arguments are positional: a parameter called `name` or `variant` (from
    a token, say) is refused as a parameter, never a TypeError."""
    for key in ("name", "variant"):
        with pytest.raises(CatalogueError, match=f"parameter '{key}' does not apply"):
            build("x86-int3-batch", "default", **{key: 1})


@pytest.mark.parametrize(("items", "expected"), [
    (["execs=1"], {"execs": 1}),
    (["nmi_on=all", "execs=+3"], {"nmi_on": "all", "execs": 3}),
])
def test_assignments_are_read_by_the_schema(items: list[str], expected: dict) -> None:
    from crossmod.catalogue import assignments

    assert assignments("x86-cpumask-2019", items) == expected
    assert assignments("defer-cr3", ["patch=false", "vmalloc=TRUE"]) == {
        "patch": False, "vmalloc": True}


@pytest.mark.parametrize(("items", "message"), [
    (["execs"], "--set execs: expected NAME=VALUE (x86-cpumask-2019 takes cpus, nmis, fetch, "
                "memory, execs, nmi_on, users)"),
    (["=1"], "--set =1: expected NAME=VALUE"),
    (["execs=1.5"], "--set execs=1.5: not an integer (valid for x86-cpumask-2019: 1..4)"),
    (["execs=one"], "--set execs=one: not an integer"),
    (["syscalls=1"], "--set syscalls: not a parameter of x86-cpumask-2019 (its parameters: "
                     "cpus, nmis, fetch, memory, execs, nmi_on, users)"),
    (["execs=1", "execs=2"], "--set execs given twice"),
])
def test_bad_assignments_are_one_line(items: list[str], message: str) -> None:
    from crossmod.catalogue import assignments

    with pytest.raises(CatalogueError) as e:
        assignments("x86-cpumask-2019", items)
    assert str(e.value).startswith(message)


def test_a_bool_assignment_is_true_or_false() -> None:
    from crossmod.catalogue import assignments

    with pytest.raises(CatalogueError, match=r"^--set patch=1: defer-ct takes true or false$"):
        assignments("defer-ct", ["patch=1"])


def test_the_command_args_of_a_row_name_what_differs_from_the_variant_defaults() -> None:
    from crossmod.catalogue import command_args

    s = build("x86-cpumask-2019", "last-clearer-completes", nmi_on="all")
    assert command_args(s.name, s.variant, s.params) == [
        "x86-cpumask-2019", "--variant", "last-clearer-completes", "--set", "nmi_on=all"]
    s = build("defer-ct", "state-field", vmalloc=True, memory="pso")
    assert command_args(s.name, s.variant, s.params) == [
        "defer-ct", "--variant", "state-field", "--memory", "pso", "--set", "vmalloc=true"]
