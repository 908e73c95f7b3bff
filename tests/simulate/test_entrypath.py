"""The simulator's fast path (`entrypath.passes`) against the checker's routines: every
interleaving of a housekeeping CPU's deferrable send with an isolated CPU's syscall (and
the IPI it may take), run through Machine.step, must skip or IPI the target exactly as
`passes` says for the last entry/exit step the target performed."""

from __future__ import annotations

import pytest

from crossmod.catalogue.deferral import DeferralParams, build_deferral
from crossmod.machine import events as E
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.simulate import entrypath


def _decisions(protocol: str, patch: bool, vmalloc: bool) -> dict[tuple[str, bool], set[bool]]:
    system = build_deferral(protocol, "default",
                            DeferralParams(cpus=2, syscalls=1, patch=patch, vmalloc=vmalloc))
    m = Machine(system.config)
    seen: set[tuple] = set()
    out: dict[tuple[str, bool], set[bool]] = {}
    # state, target's last step, has its last signal store drained
    # v6's cond is decided at ct_set_cpu_work's cmpxchg (W2): the target's step there
    stack: list[tuple] = [(m.initial_state(), "user", True, None)]
    while stack:
        s, step, drained, at_w2 = stack.pop()
        key = (s, step, drained, at_w2)
        if key in seen:
            continue
        seen.add(key)
        for mv in m.moves(s):
            try:
                nxt, evs = m.step(s, mv)
            except Violation:
                continue
            st, dr, w2 = step, drained, at_w2
            for ev in evs:
                if ev.cpu == 0 and isinstance(ev, E.OpEvent) and " W2" in ev.label:
                    w2 = (st, dr)
                if ev.cpu == 1 and isinstance(ev, E.OpEvent):
                    new = entrypath.step_of(ev.label)
                    if new is not None:
                        st = new
                        if isinstance(ev, E.StoreIssued) and "kernel_cr3_loaded" in ev.addr:
                            dr = not ev.buffered
                if ev.cpu == 1 and isinstance(ev, (E.StoreDrained, E.StoreCommitted)) \
                        and "kernel_cr3_loaded" in ev.addr:
                    dr = True
                if ev.cpu == 1 and isinstance(ev, E.WriteCr3):
                    dr = True
                if ev.cpu == 0 and isinstance(ev, E.IpiSend) and ev.cond is not None:
                    out.setdefault((st, dr), set()).add(1 in ev.targets)
                elif ev.cpu == 0 and isinstance(ev, E.IpiSend) and w2 is not None:
                    out.setdefault(w2, set()).add(1 in ev.targets)
                    w2 = None
            stack.append((nxt, st, dr, w2))
    return out


@pytest.mark.parametrize(("patch", "vmalloc"), [(False, True), (True, False)])
def test_cr3_cond_is_the_signal_at_the_targets_step(patch: bool, vmalloc: bool) -> None:
    """flush_tlb_kernel_cond (vmalloc purge) and the text sync's cond (int3 batch)."""
    got = _decisions("defer-cr3", patch=patch, vmalloc=vmalloc)
    # every step of the entry and exit, the signal stores buffered and drained
    assert set(got) == {("user", True), ("entry", True), ("E2a", False), ("E2a", True),
                        ("E2b", True), ("X2a", False), ("X2a", True)}
    for (step, drained), sent in got.items():
        assert sent == {entrypath.passes("cr3", step, drained)}, (step, drained, sent)
    # the windows: signal 1 while context tracking would still say user (E2b) and after
    # user_enter (X1 is not a cr3 step: X2a with the store still buffered)
    assert got.get(("E2b", True)) == {True}
    assert got.get(("user", True)) == {False}


def test_ct_cond_is_rcu_watching_at_the_targets_step() -> None:
    got = _decisions("defer-ct", patch=True, vmalloc=False)
    assert set(got) == {("user", True), ("entry", True), ("E2b", True), ("E3", True),
                        ("X1", True)}
    for (step, drained), sent in got.items():
        assert sent == {entrypath.passes("ct", step, drained)}, (step, drained, sent)
    assert got.get(("E3", True)) == {True}
    assert got.get(("user", True)) == {False}
