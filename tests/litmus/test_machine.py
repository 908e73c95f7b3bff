"""The arm64 instruction-level machine (machine/aarch64): the order it keeps within a
thread, what a fetch may still see, exact state counts, and witnesses that replay."""

from __future__ import annotations

from crossmod.check.outcomes import final_states, path_to
from crossmod.litmus.parse import parse, parse_file
from crossmod.litmus.run import Run, check
from crossmod.machine.aarch64.events import INVALID, Deps, Event
from crossmod.machine.aarch64.machine import A64Config, A64Machine
from crossmod.machine.aarch64.order import order_thread

from .conftest import CASES

L = "m0"


def _ev(*kinds: str) -> list[Event]:
    out = []
    for k in kinds:
        kind, _, strength = k.partition(".")
        loc = L if kind in ("R", "W", "F", "DC", "IC") else None
        out.append(Event(kind, loc, 1 if kind in "RW" else None, strength=strength))
    return out


def test_the_kernels_cache_maintenance_chains_the_write_to_the_fetch():
    """STR; DC CVAU; DSB ISH; IC IVAU; DSB ISH; ISB; fetch: each event waits for the one
    before (the DC for the store: same location; a DSB for every access and maintenance
    before it; the ISB for the DSBs; the fetch only for the ISB)."""
    ev = _ev("W", "DC", "DSB.full", "IC", "DSB.full", "ISB", "F")
    o = order_thread(ev, [Deps()] * len(ev))
    assert o.preds == (0, 0b1, 0b11, 0b100, 0b1111, 0b10100, 0b100000)
    assert o.c_ic == (False, False, False, True, False, False, False)
    assert o.gates == ((), (), (), (), (), (3,), (3,))


def test_a_fetch_waits_for_no_dsb_but_for_an_isb():
    ev = _ev("W", "DSB.full", "F", "ISB", "W")
    o = order_thread(ev, [Deps()] * len(ev))
    assert o.preds[2] == 0            # DSB-ordered-before excludes fetches
    assert o.preds[3] == 0b110        # the ISB after the DSB and (f-ob) the fetch
    assert o.preds[4] == 0b1111       # the later store after all of them (lmws, DSB, f-ob)


def test_dependencies_order_what_the_cat_file_says():
    ev = [Event("R", "y", 1), Event("R", "x", 0), Event("W", "z", 1), Event("ISB"),
          Event("R", "w", 0)]
    deps = [Deps(), Deps(addr=0b1), Deps(ctrl=0b1), Deps(ctrl=0b1), Deps(ctrl=0b1)]
    o = order_thread(ev, deps)
    # addr orders the read; ctrl orders the write and the ISB, and the ISB the last read
    assert o.preds == (0, 0b1, 0b1, 0b1, 0b1000)
    pick = order_thread(ev[:2], [Deps(), Deps(paddr=0b1)])
    assert pick.preds == (0, 0)       # a pick dependency does not order a read


def _machine(dic: bool, idc: bool) -> tuple[A64Machine, tuple]:
    """One writer: STR new; DC; DSB; IC; DSB -- performed one at a time."""
    writer = order_thread(_ev("W", "DC", "DSB.full", "IC", "DSB.full"), [Deps()] * 5)
    cfg = A64Config(threads=((writer,),), locs=(L,), init=(0,), names=("m0",),
                    fetched=frozenset({L}), dic=dic, idc=idc)
    m = A64Machine(cfg)
    return m, m.initial_states()[0]


def test_what_a_fetch_may_see_by_ctr_el0():
    """(fetchable values) after the write, after the clean, after the invalidation."""
    for dic, idc, want in ((False, False, [(0, 1), (0, 1), (1,)]),
                           (False, True, [(0, 1), (0, 1), (1,)]),
                           (True, True, [(1,), (1,), (1,)])):
        m, s = _machine(dic, idc)
        seen = []
        for i in (0, 1, 3):
            s, _ = m.step(s, (0, i))
            seen.append(m.fetchable(s, 0, 0))
        assert seen == want, (dic, idc)


def test_without_the_clean_an_ic_changes_nothing_unless_idc():
    for idc, want in ((False, (0, 1)), (True, (1,))):
        writer = order_thread(_ev("W", "DSB.full", "IC", "DSB.full"), [Deps()] * 4)
        m = A64Machine(A64Config(threads=((writer,),), locs=(L,), init=(0,), names=("m0",),
                                 fetched=frozenset({L}), idc=idc))
        s = m.initial_states()[0]
        s, _ = m.step(s, (0, 0))
        s, _ = m.step(s, (0, 2))
        assert m.fetchable(s, 0, 0) == want


def test_an_invalid_prediction_needs_a_value_that_decodes_to_nothing():
    f = Event("F", L, INVALID, decodes=frozenset({0}))
    reader = order_thread([f], [Deps()])
    writer = order_thread(_ev("W"), [Deps()])
    m = A64Machine(A64Config(threads=((writer,), (reader,)), locs=(L,), init=(0,),
                             names=("m0",), fetched=frozenset({L})))
    s = m.initial_states()[0]
    assert m.moves(s) == [(0, 0)]                 # 0 decodes: the fetch must wait
    s, _ = m.step(s, (0, 0))
    assert m.moves(s) == [(1, 0)]


def test_state_counts_are_pinned():
    """Exact sizes of small state spaces, so that a change of semantics shows.

    cm-SM+isb by hand: P0's events are the STR (W), the ISB and the fetch of m0 (F); the
    ISB waits for nothing, so every initial state has it performed. Two paths: F predicts
    the old B (states: nothing, W, F, W+F -- F then W and W then F meet) or the new NOP
    (nothing, W, W+F: F cannot go before the NOP is written): 4 + 3 = 7.
    """
    got = {p.stem: check(parse_file(p)).states for p in sorted(CASES.glob("cm-SM*.litmus"))}
    assert got == {"cm-SM+cachesync": 15, "cm-SM+cachesync-iallu-isb": 9,
                   "cm-SM+cachesync-isb": 9, "cm-SM+dsb-ic-dsb-isb": 8, "cm-SM+isb": 7,
                   "cm-SM.ldr+cset": 25}


def test_the_witness_replays_to_a_state_that_satisfies_the_condition():
    """--explain's trail is told by replaying the moves through step(): the last state
    is final and satisfies the proposition (STYLE.md rule 28)."""
    for path in sorted(CASES.glob("*.litmus")):
        r = check(parse_file(path), explain=True)
        if r.verdict != "Allowed" or r.quantifier == "forall":
            continue
        run = Run(parse_file(path))
        out = final_states(run.machine)
        target = next(s for s in out.finals if run.show(s) == r.witness_state)
        start, moves = path_to(out, target)
        s = start
        for mv, step in zip(moves, r.witness, strict=True):
            assert mv == (step.cpu, step.alt)
            s, _ = run.machine.step(s, mv)
        assert run.machine.final(s) and run.holds(s, run.test.prop), path.name


def test_a_test_without_predictions_to_fulfil_has_one_final_state():
    t = parse("AArch64 t\n{ 0:X1=x; }\n P0 ;\n MOV W0,#5 ;\n STR W0,[X1] ;\n"
              "exists (x=5 /\\ 0:X0=5)\n", "t")
    r = check(t)
    assert (r.verdict, r.final_states, r.states) == ("Allowed", ["x=5; 0:X0=5;"], 2)
