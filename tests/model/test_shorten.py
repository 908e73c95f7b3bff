"""check/shorten.py: a violation the partial-order reduction found is reported with a
shortest trail (tests/model/randomproto.py checks the same on every random protocol)."""

from __future__ import annotations

from dataclasses import replace

from crossmod.catalogue import build
from crossmod.check import shorten
from crossmod.check.explore import explore, replay_schedule
from crossmod.check.verdict import Bounds


def _k20() -> object:
    return build("defer-cr3", "nmi-exit-window", cpus=3, patch=False)


def test_a_trail_the_reduction_lengthened_is_replaced_by_a_shortest_one():
    v = explore(_k20())
    plain = explore(_k20(), Bounds(por=False))
    assert (v.property, plain.property) == ("use-after-free", "use-after-free")
    assert v.stats["shortest"] is True
    assert v.stats["shorten"]["reduced_depth"] > v.depth == plain.depth == 22
    # the states counted are the reduced search's, which stores more here than the plain
    # walk does before its first violation, but the trail replays to the same violation
    trail = replay_schedule(_k20(), list(v.counterexample.choices))
    assert trail[-1].text == f"VIOLATION use-after-free: {v.message}"


def test_a_trail_already_shortest_is_kept():
    v = explore(build("x86-int3-batch", "no-sync3"))
    assert v.stats["shortest"] is True
    assert v.stats["shorten"]["reduced_depth"] == v.depth == 51


def test_a_second_search_out_of_budget_keeps_the_trail_and_says_so(monkeypatch):
    monkeypatch.setattr(shorten, "FACTOR", 0)
    monkeypatch.setattr(shorten, "FLOOR", 10)
    v = explore(_k20())
    assert v.stats["shortest"] is False
    assert v.depth == v.stats["shorten"]["reduced_depth"] > 22


def test_without_the_reduction_nothing_is_searched_twice():
    v = explore(_k20(), Bounds(por=False))
    assert "shorten" not in v.stats and v.depth == 22


def test_the_second_search_keeps_within_the_callers_time():
    """With no time left of `max_seconds`, no second search runs, and the trail is not
    claimed shortest."""
    bounds = Bounds(max_seconds=5.0)
    reduced = replace(explore(_k20(), replace(bounds, por=False)), seconds=6.0,
                      stats={}, depth=28)
    calls = []
    v = shorten.shortest(_k20(), bounds, reduced, lambda s, b: calls.append(b) or reduced)
    assert calls == [] and v.stats["shortest"] is False and v.depth == 28


def test_a_compact_store_never_rules_a_shorter_trail_out():
    v = explore(build("x86-int3-batch", "no-sync3"), Bounds(store="hash-compact"))
    assert v.property == "unexpected-int3" and v.depth == 51
    assert v.stats["shortest"] is False
