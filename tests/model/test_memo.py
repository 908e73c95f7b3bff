"""The machine's memo tables (machine/machine.py `_quiet_step`, `moves`): a tabulated step
or move list is the one the machine computes afresh, on every catalogue row's first states
(a narrated step bypasses the tables, so it is the reference)."""

from __future__ import annotations

from collections import deque

import pytest

from crossmod.catalogue import ROWS, build
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine
from crossmod.machine.state import CPUS


def _outcome(m: Machine, s: tuple, move: tuple, narrate: bool) -> tuple:
    m.narrate = narrate
    try:
        return ("ok", m.step(s, move)[0])
    except Violation as v:
        return ("violation", v.prop, v.message, v.site, v.fetched)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.protocol}-{r.variant}")
def test_memoised_steps_and_moves_are_the_machine_s(row) -> None:
    system = build(row.protocol, row.variant, **row.knobs)
    memo = fresh = Machine(system.config)  # node numbers are the routine table's
    init = memo.initial_state()
    seen, todo = {init}, deque([init])
    while todo and len(seen) < 400:
        s = todo.popleft()
        mv = memo.moves(s)
        assert mv == [x for c, cpu in enumerate(s[CPUS])
                      for x in fresh._cpu_moves(s, c, cpu)]
        for move in mv:
            got = _outcome(memo, s, move, narrate=False)
            assert got == _outcome(memo, s, move, narrate=False)  # a table hit
            assert got == _outcome(fresh, s, move, narrate=True)
            if got[0] == "ok" and got[1] not in seen:
                seen.add(got[1])
                todo.append(got[1])
    assert memo.memo_hits > 0
