"""Differential soundness: random small protocols give the same verdict and property with
every combination of CPU symmetry, partial-order reduction and routine identity as a plain
walk of the machine, and every counterexample replays to its violation (the lasting guard of
check/reduction.py and machine/symmetry.py; the generator is tests/model/randomproto.py).

A bounded profile runs here; `python benchmarks/differential_soundness.py` runs the long
one. Every disagreement either finds becomes a named regression below."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings

from .randomproto import Protocol, TooLarge, compare, protocols


@given(protocols())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_reductions_agree_with_the_plain_machine_on_random_protocols(p: Protocol):
    try:
        compare(p)
    except TooLarge:
        assume(False)


# ---- regressions the differential test found --------------------------------------------

def test_a_lockdep_assertion_first_thing_in_a_task_is_reported_not_raised():
    # Found by the differential test: an invisible op that breaks a property as the very
    # first thing a task does used to escape `Machine.initial_state` as a bare Violation.
    c = compare(Protocol(programs=((("held",),), (("held",),))))
    assert c.properties == {"lockdep"}
    for v in c.runs.values():
        assert (v.verdict, v.property, len(v.counterexample)) == ("violation", "lockdep", 1)
