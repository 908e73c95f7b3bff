"""What porting foreign protocols showed missing, each pinned by an outcome: a choice inside
a routine, a wait on several addresses, a read of a site's bytes, `smp_processor_id()`, a
bare IPI, NMIs restricted to a CPU's region, and one-line errors for undeclared memory."""

from __future__ import annotations

import pytest

import crossmod
from crossmod import Bounds, MachineConfig, ModelError, Site, System, ops
from crossmod.check.reduction import ample
from crossmod.kernel.smp import generic_smp_call_function_single_interrupt
from crossmod.machine import events as E
from crossmod.machine.machine import Machine
from crossmod.machine.state import CPUS, LOCKED, MEM, PERCPU
from crossmod.machine.text import NOP5, jmp32

from .conftest import finished, terminal_states

SITE = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes")))
IPI = generic_smp_call_function_single_interrupt


def config(*tasks, **kw) -> MachineConfig:
    return MachineConfig(ncpus=len(tasks), sites=(SITE,), tasks=tuple((t, ()) for t in tasks),
                         ipi_handler=IPI, **kw)


def verdicts(system: System, **bounds) -> set[tuple]:
    """(verdict, property, counterexample length) under every reduction on and off."""
    out = set()
    for sym in (True, False):
        for por in (True, False):
            v = crossmod.check(system, Bounds(symmetry=sym, por=por, **bounds))
            out.add((v.verdict, v.property, len(v.counterexample or ())))
    return out


# ---- Choose: Promela's `if :: a :: b fi` ----------------------------------------------------

def chooser(n: int):
    def chooser():
        which = yield ops.Choose(n, label="if :: skip :: set x fi")
        if which == 1:
            yield ops.Store("x", 1)
    return chooser


def x_stays_clear():
    yield ops.Check(("x",), lambda x: x == 0, "assert", "x was set")


def test_a_bug_behind_the_second_alternative_is_found():
    system = System("choose", config(chooser(2), x_stays_clear, globals=(("x", 0),),
                                     readers=frozenset({1})))
    v = crossmod.check(system)
    assert (v.verdict, v.property) == ("violation", "assert")
    assert "choose: alternative 1 of 2" in v.counterexample[0].text
    assert [s.text for s in crossmod.replay(v.token, system)] == \
        [s.text for s in v.counterexample]
    assert verdicts(system) == {("violation", "assert", 4)}
    one = System("choose", config(chooser(1), x_stays_clear, globals=(("x", 0),)))
    assert crossmod.check(one).verdict == "safe"


def test_each_alternative_is_a_move():
    m = Machine(config(chooser(3), x_stays_clear, globals=(("x", 0),)))
    s = m.initial_state()
    assert m.moves(s) == [(0, "run", 0), (0, "run", 1), (0, "run", 2), (1, "run", 0)]
    _, events = m.step(s, (0, "run", 2))
    assert events[0] == E.Chose(0, E.Ctx.TASK, "chooser", "if :: skip :: set x fi", False, 2, 3)
    assert E.narrate(0, events) == "cpu0 chooser [if :: skip :: set x fi]: choose: " \
                                   "alternative 2 of 3; chooser returns (task done)"


# ---- WaitAll: a predicate over several addresses ----------------------------------------------

def waiter():
    yield ops.Store("go", 1)
    acks = yield ops.WaitAll((ops.per_cpu("ack", 1), ops.per_cpu("ack", 2)),
                             lambda a, b: a == 1 and b == 1, label="wait for both acks")
    yield ops.Check((), lambda: acks == (1, 1), "assert", f"woke with {acks}")


def acker():
    yield ops.WaitUntil("go", lambda v: v == 1)
    yield ops.Store(ops.this_cpu("ack"), 1)


def idler():
    yield ops.WaitUntil("go", lambda v: v == 1)


def wait_system(second) -> System:
    return System("waitall", config(waiter, acker, second, globals=(("go", 0),),
                                    percpu=(("ack", 0),), readers=frozenset({1, 2})))


def test_wait_all_wakes_when_every_address_holds_and_returns_the_values():
    assert verdicts(wait_system(acker)) == {("safe", None, 0)}
    stuck = crossmod.check(wait_system(idler))
    assert (stuck.verdict, stuck.property) == ("deadlock", "deadlock")
    assert "cpu0: waiter waits in WaitAll [wait for both acks]" in stuck.message
    assert verdicts(wait_system(idler)) == {("deadlock", "deadlock", stuck.depth)}


def busy_acker():
    yield ops.Load("go")
    yield ops.Store(ops.this_cpu("ack"), 1)


def waits_on(*addrs: ops.Addr):
    def waiter():
        yield ops.WaitAll(addrs, lambda *v: all(v))
    return waiter


def test_the_reduction_counts_every_address_a_wait_all_reads():
    """Reduction point 2: a reader is ample only when the waiting patcher can be woken by
    it alone -- by no address of the wait that another reader writes."""
    for addrs, ample_cpus in (((ops.per_cpu("ack", 1), "go"), {1}),
                              ((ops.per_cpu("ack", 1), ops.per_cpu("ack", 2)), {1, 2})):
        m = Machine(config(waits_on(*addrs), busy_acker, busy_acker, globals=(("go", 0),),
                           percpu=(("ack", 0),), readers=frozenset({1, 2})))
        s = m.initial_state()
        moves = m.moves(s)
        assert {c for c, _, _ in moves} == {1, 2}
        assert {c for c, _, _ in ample(m, s, moves)} == ample_cpus, addrs


# ---- ReadText: a site's bytes as this CPU's loads see them -------------------------------------

def int3_writer():
    yield ops.TextStore("site", 0, b"\xcc")
    mine = yield ops.ReadText("site")
    yield ops.Store("writer_saw", mine)


def text_reader():
    seen = yield ops.ReadText("site")
    yield ops.Store("reader_saw", seen)


def test_read_text_forwards_the_readers_own_buffered_text_stores():
    system = System("readtext", config(int3_writer, text_reader,
                                       globals=(("writer_saw", None), ("reader_saw", None))))
    _, ends = terminal_states(system)
    outcomes = {(s[MEM][0][:1], s[MEM][1][:1]) for s in ends if finished(s)}
    assert outcomes == {(b"\xcc", b"\x0f"), (b"\xcc", b"\xcc")}


# ---- smp_processor_id() ------------------------------------------------------------------------

def whoami():
    me = yield ops.SmpProcessorId()
    yield ops.Store(ops.this_cpu("id"), me)
    yield ops.Store("owner", me)


def owner_is_not(cpu: int):
    def runner():
        yield ops.Check(("owner",), lambda o: o != cpu, "assert", f"cpu{cpu} owns it")
    return runner


def test_smp_processor_id_returns_the_cpu_number():
    system = System("whoami", config(whoami, whoami, globals=(("owner", None),),
                                     percpu=(("id", None),), cpu_valued=frozenset({"owner"})))
    _, ends = terminal_states(system)
    assert {tuple(cpu[PERCPU][0] for cpu in s[CPUS]) for s in ends} == {(0, 1)}


def test_a_cpu_that_learns_its_number_gives_one_verdict_with_symmetry_on_and_off():
    for cpu, want in ((0, {("violation", "assert", 5)}), (1, {("safe", None, 0)})):
        runner = owner_is_not(cpu)
        system = System("owner", config(whoami, runner, runner,
                                        globals=(("owner", None),), percpu=(("id", None),),
                                        cpu_valued=frozenset({"owner"}),
                                        symmetric=((1, 2),)))
        assert verdicts(system) == want


def test_a_symmetric_cpu_may_not_learn_its_number():
    system = System("sym", config(owner_is_not(0), whoami, whoami, globals=(("owner", None),),
                                  percpu=(("id", None),), symmetric=((1, 2),)))
    for sym in (True, False):
        with pytest.raises(ModelError, match=r"^cpu1 calls smp_processor_id\(\) but is in the "
                                             r"symmetry class \(1, 2\)"):
            crossmod.check(system, Bounds(symmetry=sym))


# ---- SendIpi: a bare IPI, no CSD -----------------------------------------------------------------

def mark_done():
    yield ops.Check(("x",), lambda x: x == 1, "ipi-order", "the IPI overtook the store")
    yield ops.Rmw(ops.this_cpu("done"), ops.atomic_inc)


def bare_sender(wait: bool, twice: bool = False):
    def sender():
        yield ops.Store("x", 1)
        for _ in range(1 + twice):
            yield ops.SendIpi("others", mark_done)
        if wait:
            yield ops.WaitUntil(ops.per_cpu("done", 1), lambda v: v == 1 + twice)
        yield ops.Check((ops.per_cpu("done", 1),), lambda d: d == 1 + twice, "assert",
                        "returned before the callback ran")
    return sender


def quiet():
    yield ops.Note(label="idle")


def ipi_system(sender) -> System:
    return System("bare-ipi", config(sender, quiet, globals=(("x", 0),),
                                     percpu=(("done", 0),)))


def test_a_bare_ipi_waits_for_nothing_and_its_callback_runs_from_the_generic_handler():
    v = crossmod.check(ipi_system(bare_sender(wait=False)))
    assert (v.verdict, v.property) == ("violation", "assert")
    assert "cpu0 sender: send_IPI_mask(mark_done): IPI -> cpu1" in \
        [s.text for s in v.counterexample]
    assert crossmod.check(ipi_system(bare_sender(wait=True))).verdict == "safe"
    # two IPIs sent before the target takes one: both callbacks run
    assert crossmod.check(ipi_system(bare_sender(wait=True, twice=True))).verdict == "safe"


def test_a_bare_ipi_locks_no_csd():
    m = Machine(ipi_system(bare_sender(wait=True)).config)
    s = m.initial_state()
    s, _ = m.step(s, (0, "run", 0))  # store x
    s, _ = m.step(s, (0, "drain", 0))
    s, events = m.step(s, (0, "run", 0))
    assert events == (E.BareIpiSend(0, E.Ctx.TASK, "sender", "", False, "mark_done", (1,),
                                    (1,), (None,)),)
    assert E.narrate(0, events) == "cpu0 sender: send_IPI_mask(mark_done): IPI -> cpu1"
    assert s[CPUS][1][LOCKED] == frozenset()


def unlocking_handler():
    entries = yield ops.CsdDequeueAll()
    for index, func, info, _ in entries:
        yield ops.CsdUnlock(index)
        yield from func(*info)


def test_unlocking_a_bare_ipis_entry_is_a_model_error():
    cfg = MachineConfig(ncpus=2, sites=(SITE,), tasks=((bare_sender(True), ()), (quiet, ())),
                        ipi_handler=unlocking_handler, globals=(("x", 0),),
                        percpu=(("done", 0),))
    with pytest.raises(ModelError, match=r"csd_unlock of a bare IPI's entry \(\('bare', 0\)\)"):
        crossmod.check(System("unlock", cfg))


# ---- NMIs restricted to a region -----------------------------------------------------------------

def in_region_work():
    yield ops.Load("x")
    yield from deeper()


def deeper():
    yield ops.Load("x")


def phased_task():
    yield ops.Store("phase", "inside")
    yield from in_region_work()
    yield ops.Store("phase", "outside")
    yield ops.Load("x")


def nmi_in_region():
    yield ops.Check(("phase",), lambda p: p == "inside", "nmi-outside", "NMI outside the region")
    yield ops.Store("hit", 1)


def nmi_system(regions) -> System:
    return System("nmi-region", config(phased_task, quiet, globals=(
        ("phase", None), ("x", 0), ("hit", 0)), nmi_handler=(nmi_in_region, ()), nmis=1,
        nmi_cpus=(0,), nmi_regions=regions))


def test_an_nmi_arrives_only_inside_the_cpus_region():
    v = crossmod.check(nmi_system(()))
    assert (v.verdict, v.property) == ("violation", "nmi-outside")
    assert crossmod.check(nmi_system(((0, (in_region_work,)),))).verdict == "safe"
    _, ends = terminal_states(nmi_system(((0, (in_region_work,)),)))
    assert {s[MEM][2] for s in ends} == {0, 1}  # it does arrive (or not at all)
    # the region includes what it calls: restricted to `deeper`, still inside
    assert crossmod.check(nmi_system(((0, (deeper,)),))).verdict == "safe"


@pytest.mark.parametrize("kw, message", [
    (dict(nmi_cpus=(1,), nmi_regions=((0, (deeper,)),)), "cpu0 is listed twice or is not in"),
    (dict(nmi_regions=((0, ("deeper",)),)), "must be one or more routines"),
    (dict(nmi_regions=((0, (deeper,)),), symmetric=((0, 1),)), "differ in their NMI exposure"),
])
def test_nmi_regions_are_validated(kw, message):
    with pytest.raises(ValueError, match=message):
        config(quiet, quiet, nmi_handler=(quiet, ()), nmis=1, **kw)


# ---- one line naming the missing declaration ---------------------------------------------------

def pti():
    yield ops.WriteCr3(kernel=True, label="E2")


def one_op(op: ops.Op):
    def routine():
        yield op
    return routine


def noop():
    yield from ()


@pytest.mark.parametrize("routine, message", [
    (pti, r"^WriteCr3 \[E2\] in pti \(line \d+\) needs a per-CPU variable 'cr3' \(declare it "
          r"in MachineConfig.percpu\)$"),
    (one_op(ops.Load("nope")), r"^Load in routine \(line \d+\) needs a global variable "
                               r"'nope' \(declare it in MachineConfig.globals\)$"),
    (one_op(ops.Store(ops.this_cpu("nope"), 1)), r"needs a per-CPU variable 'nope'"),
    (one_op(ops.WaitAll(("x", ops.per_cpu("nope", 0)), max)), r"per-CPU variable 'nope'"),
    (one_op(ops.Load(ops.per_cpu("ack", 5))), r"names per_cpu\(ack, 5\); this machine has "
                                              r"CPUs 0\.\.1"),
    (one_op(ops.ExecSite("other")), r"names no site of this machine: 'other' \(sites: site\)"),
    (one_op(ops.ReadText("other")), r"names no site of this machine: 'other'"),
    (one_op(ops.TextStore("site", 3, b"\0\0\0")), r"writes 3 bytes at site\+3, outside the "
                                                   r"site's 5 bytes"),
    (one_op(ops.SendIpi((7,), noop)), r"targets \(7,\): give \"others\" or a tuple of CPU"),
    (one_op(ops.MutexLock("text_mutex")), r"needs a global variable 'text_mutex'"),
    (one_op(ops.Choose(0)), r"needs one alternative or more, not 0"),
])
def test_an_op_needing_undeclared_memory_is_one_line_naming_it(routine, message):
    system = System("undeclared", config(routine, quiet, globals=(("x", 0),),
                                         percpu=(("ack", 0),)))
    with pytest.raises(ModelError, match=message) as info:
        crossmod.check(system)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kw, message", [
    (dict(percpu_init=((1, "cr3", "user"),)), r"percpu_init sets 'cr3': declare it in "
                                              r"MachineConfig.percpu"),
    (dict(nmi_cpus=(5,)), r"nmi_cpus names cpu 5; this machine has CPUs 0\.\.1"),
    (dict(nmis=1), r"nmis=1 but no nmi_handler"),
    (dict(globals=(("x", 0), ("x", 1))), r"global variable 'x' declared twice"),
    (dict(tlb_vas=("va",), percpu=(("tlb", None),)), r"tlb_vas needs a per-CPU variable 'cr3'"),
])
def test_a_configuration_naming_undeclared_things_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        config(quiet, quiet, **kw)


# ---- what the new ops report ----------------------------------------------------------------

NEW_OP_EVENTS = {E.Chose, E.WaitAllDone, E.TextRead, E.ProcessorId, E.BareIpiSend}
"""The events of ops no catalogue protocol uses: tests/model/test_events.py leaves them to
this module, whose walks tell every one."""


def first_move_walk(system: System) -> tuple[list[str], set[type]]:
    """Always the first enabled move, to the end: the trail's lines and the event kinds."""
    m = Machine(system.config)
    s, lines, kinds = m.initial_state(), [], set()
    while moves := m.moves(s):
        s, events = m.step(s, moves[0])
        kinds |= {type(e) for e in events}
        lines.append(E.narrate(moves[0][0], events))
    return lines, kinds


def late_whoami():
    yield ops.Store("owner", None)
    me = yield ops.SmpProcessorId()
    yield ops.Store(ops.this_cpu("id"), me)


def test_the_new_ops_tell_what_they_did():
    walks = {
        "choose": System("choose", config(chooser(2), x_stays_clear, globals=(("x", 0),))),
        "waitall": wait_system(acker),
        "readtext": System("readtext", config(int3_writer, text_reader, globals=(
            ("writer_saw", None), ("reader_saw", None)))),
        "whoami": System("whoami", config(late_whoami, quiet, globals=(("owner", None),),
                                          percpu=(("id", None),))),
        "bare-ipi": ipi_system(bare_sender(wait=True))}
    told = {name: first_move_walk(system) for name, system in walks.items()}
    assert told["choose"][0][0] == "cpu0 chooser [if :: skip :: set x fi]: choose: " \
                                   "alternative 0 of 2; chooser returns (task done)"
    assert "cpu0 waiter [wait for both acks]: wait per_cpu(ack, 1), per_cpu(ack, 2): done " \
           "(1, 1)" in told["waitall"][0]
    assert "cpu0 int3_writer: read site as data: CC 1F 44 00 00" in told["readtext"][0]
    # performed at once after the move that reaches it (an invisible op)
    assert told["whoami"][0][0] == "cpu0 late_whoami: store owner := None; smp_processor_id()"
    assert "cpu0 sender: send_IPI_mask(mark_done): IPI -> cpu1" in told["bare-ipi"][0]
    assert set().union(*(kinds for _, kinds in told.values())) >= NEW_OP_EVENTS
