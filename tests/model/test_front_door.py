"""`crossmod.check` and `crossmod.replay` as a user calls them: the replay token for any
System, replay with and without the system, the progress callback, properties switched
off by name."""

from __future__ import annotations

import itertools

import pytest

import crossmod
from crossmod import Bounds, MachineConfig, ScheduleError, Site, System, ops
from crossmod.catalogue import build
from crossmod.machine.text import NOP5, jmp32

SITE = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes")))


def memcpy_patcher():
    """The new instruction copied over live text (K1): torn for a CPU running it."""
    yield ops.TextStore("site", 0, jmp32(0x40))


def runner():
    yield ops.ExecSite("site")


def torn_system(name: str = "user-memcpy") -> System:
    cfg = MachineConfig(ncpus=2, sites=(SITE,), tasks=((memcpy_patcher, ()), (runner, ())))
    return System(name, cfg)


def test_check_records_a_token_for_a_users_own_system_and_replay_takes_it():
    system = torn_system()
    v = crossmod.check(system)
    assert (v.verdict, v.property, v.states) == ("violation", "torn-instruction", 7)
    assert v.token is not None and v.token.startswith("cm2-")
    trail = crossmod.replay(v.token, system)
    assert [s.text for s in trail] == [s.text for s in v.counterexample]
    assert trail[-1].text.startswith("VIOLATION torn-instruction: cpu1 exec site")


def test_a_users_token_needs_its_system_and_refuses_another():
    v = crossmod.check(torn_system())
    with pytest.raises(ScheduleError, match="'user-memcpy', which is not a catalogue protocol"):
        crossmod.replay(v.token)
    with pytest.raises(ScheduleError, match="recorded on protocol 'user-memcpy', not 'other'"):
        crossmod.replay(v.token, torn_system("other"))
    with pytest.raises(ScheduleError, match="not a crossmod schedule token"):
        crossmod.replay("hello", torn_system())


def test_a_users_token_on_a_changed_model_is_refused():
    v = crossmod.check(torn_system())
    changed = System("user-memcpy", MachineConfig(
        ncpus=2, sites=(SITE,), tasks=((memcpy_patcher, ()), (runner, ())), nmi_cpus=(0,)))
    with pytest.raises(ScheduleError, match=r"the model changed since the token was "
                                            r"recorded: its configuration"):
        crossmod.replay(v.token, changed)


def test_a_catalogue_token_replays_with_nothing_else():
    v = crossmod.check(build("x86-int3-batch", "no-sync1", cpus=3))
    assert (v.verdict, v.property) == ("violation", "torn-instruction")
    trail = crossmod.replay(v.token)
    assert [s.text for s in trail] == [s.text for s in v.counterexample]


def test_a_safe_verdict_has_no_token():
    v = crossmod.check(build("x86-int3-batch"))
    assert (v.verdict, v.token) == ("safe", None)


def test_progress_is_called_once_per_level_with_states_transitions_depth():
    seen: list[tuple[int, int, int]] = []
    v = crossmod.check(build("x86-int3-batch"), progress=lambda *a: seen.append(a))
    assert [d for _, _, d in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][:2] == (v.states, v.transitions)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(seen))


def test_properties_switched_off_by_name_or_through_bounds():
    # x86-cpumask-2019 deadlocks first; ignoring the deadlock, the rest is safe.
    system = build("x86-cpumask-2019")
    assert crossmod.check(system).verdict == "deadlock"
    for v in (crossmod.check(system, ignore={"deadlock"}),
              crossmod.check(system, ignore="deadlock"),
              crossmod.check(system, Bounds(ignore=frozenset({"deadlock"})))):
        assert (v.verdict, v.stats["ignored"]) == ("safe", ["deadlock"])
    # `ignore=` adds to the bounds' own list
    both = crossmod.check(build("x86-int3-batch", "no-sync1"),
                          Bounds(ignore=frozenset({"deadlock"})), ignore=["torn-instruction"])
    assert both.stats["ignored"] == ["deadlock", "torn-instruction"]


def test_check_refuses_a_bare_config_in_one_line():
    with pytest.raises(TypeError, match=r"takes a System: wrap the MachineConfig"):
        crossmod.check(torn_system().config)  # type: ignore[arg-type]


def test_a_liveness_lasso_from_check_replays_through_the_front_door():
    v = crossmod.check(build("x86-cpumask-2019", users=1), Bounds(liveness=True))
    assert (v.verdict, v.property, v.cycle_start) == ("violation", "liveness", 12)
    trail = crossmod.replay(v.token)
    assert [s.text for s in trail] == [s.text for s in v.counterexample]
