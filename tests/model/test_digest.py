"""The state digest (machine/digest.py and its C port `_digest.c`): the port agrees with the
reference, equal values digest equally, the digest is the same in every process whatever
PYTHONHASHSEED says, different seeds give unrelated functions, and what is not plain data
is a TypeError naming its type.

Without a built port the comparisons skip, except in CI (``CI=true``), where a missing
port must fail, not pass silently.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import missing
from crossmod.catalogue import build
from crossmod.kernel.text_poke import TextPokeLoc
from crossmod.machine import digest as D
from crossmod.machine.machine import Machine
from crossmod.machine.symmetry import Canonicalizer

C = D.compiled()
# st.recursive's nested strategies have a repr that grows with the draw: not a problem here
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
SEEDS = st.integers(min_value=0, max_value=(1 << 64) - 1)
INTS = st.one_of(st.integers(min_value=-(1 << 70), max_value=1 << 70),
                 st.sampled_from([-(1 << 63) - 1, -(1 << 63), (1 << 63) - 1, 1 << 63,
                                  (1 << 64) - 1, 1 << 64, 1 << 300, -(1 << 300)]))
LEAVES = st.one_of(st.none(), st.booleans(), INTS, st.text(max_size=20),
                   st.binary(max_size=40))
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=6).map(tuple)
                      | st.frozensets(inner, max_size=6), max_leaves=40)


def need_c() -> ModuleType:
    if C is None:
        missing("crossmod.machine._digest is not built (pip install -e . with a C compiler)")
    return C


def reached(protocol: str, limit: int, **knobs: object) -> list[tuple]:
    """The first `limit` canonical states a breadth-first walk of `protocol` reaches."""
    system = build(protocol, "default", **knobs)  # type: ignore[arg-type]
    m, canon = Machine(system.config), Canonicalizer(system.config)
    init, _ = canon(m.initial_state())
    seen, queue = {init: None}, collections.deque([init])
    while queue and len(seen) < limit:
        s = queue.popleft()
        for mv in m.moves(s):
            try:
                t, _ = m.step(s, mv)
            except Exception:  # a violating move: its state is not needed here
                continue
            t, _ = canon(t, s)
            if t not in seen:
                seen[t] = None
                queue.append(t)
    return list(seen)


@settings(max_examples=400, deadline=None)
@given(VALUES, SEEDS)
def test_the_port_agrees_with_the_reference(value: object, seed: int) -> None:
    c = need_c()
    assert c.digest(value, seed) == D.digest_py(value, seed)
    assert 0 <= D.digest_py(value, seed) < 1 << 64


@settings(max_examples=200, deadline=None)
@given(st.lists(VALUES, max_size=8), st.randoms(use_true_random=False), SEEDS)
def test_equal_values_digest_equally(items: list, rnd: object, seed: int) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = frozenset(items), frozenset(shuffled)
    assert a == b
    assert D.digest_py(a, seed) == D.digest_py(b, seed)
    if C is not None:
        assert C.digest(a, seed) == C.digest(b, seed) == D.digest_py(a, seed)


@pytest.mark.parametrize("fn", ["py", "c"])
def test_bool_digests_as_the_int_it_equals(fn: str) -> None:
    # True == 1 and hash(True) == hash(1): the exact store takes (True,) and (1,) for one
    # state, so the compact stores must too
    dg = D.digest_py if fn == "py" else need_c().digest
    assert dg(True, 3) == dg(1, 3) and dg(False, 3) == dg(0, 3)
    assert dg((True, frozenset({False})), 3) == dg((1, frozenset({0})), 3)
    Pair = collections.namedtuple("Pair", "a b")
    assert dg(Pair(1, "x"), 3) == dg((1, "x"), 3)  # a tuple subclass: == compares as tuple


@pytest.mark.parametrize("fn", ["py", "c"])
def test_distinct_types_do_not_collide(fn: str) -> None:
    dg = D.digest_py if fn == "py" else need_c().digest
    values = [None, 0, 1, -1, 1 << 63, "", "a", "0", b"", b"a", b"\0", (), (0,), (None,),
              ((),), frozenset(), frozenset({0}), frozenset({()}), ("a",), (b"a",),
              "\0" * 8, b"\0" * 8, b"\0" * 9, "a" * 8, (0, 1), (1, 0)]
    for seed in (0, 1, 2**63):
        assert len({dg(v, seed) for v in values}) == len(values)


@pytest.mark.parametrize("fn", ["py", "c"])
def test_nesting_too_deep_is_a_recursion_error(fn: str) -> None:
    dg = D.digest_py if fn == "py" else need_c().digest
    deep: tuple = ()
    for _ in range(400):
        deep = (deep,)
    assert dg(deep, 1) == D.digest_py(deep, 1)
    for _ in range(5000):
        deep = (deep,)
    with pytest.raises(RecursionError):
        dg(deep, 1)
    assert dg((1,), 1) == D.digest_py((1,), 1)  # and the depth count is back at zero


def test_surrogates_are_passed_through() -> None:
    s = "a\ud800b"
    assert D.digest_py(s, 1) != D.digest_py("ab", 1)
    if C is not None:
        assert C.digest(s, 1) == D.digest_py(s, 1)


@dataclasses.dataclass
class Mutable:
    x: int


@pytest.mark.parametrize("fn", ["py", "c"])
@pytest.mark.parametrize("bad,name", [([1], "builtins.list"), ({1}, "builtins.set"),
                                      ({1: 2}, "builtins.dict"), (1.0, "builtins.float"),
                                      (object(), "builtins.object"),
                                      ((1, ("a", [])), "builtins.list"),
                                      (frozenset({(1.5,)}), "builtins.float")])
def test_what_is_not_plain_data_is_a_type_error(fn: str, bad: object, name: str) -> None:
    dg = D.digest_py if fn == "py" else need_c().digest
    with pytest.raises(TypeError, match=f"type {name}"):
        dg(bad, 0)
    with pytest.raises(TypeError, match="Mutable: a dataclass"):
        dg((Mutable(1),), 0)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        dg(1, -1)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        dg(1, 1 << 64)


def test_what_real_states_hold_besides_plain_data() -> None:
    # TextPokeLoc (a frozen dataclass) in memory and store buffers, the CSD function in a
    # call_single_queue: equal by ==, so equal digests; built apart, still equal
    a, b = TextPokeLoc("site", b"\xe9\0\0\0\0", "jmp"), TextPokeLoc("site", b"\xe9\0\0\0\0",
                                                                   "jmp")
    assert a is not b and a == b
    assert D.digest_py(a, 5) == D.digest_py(b, 5) != D.digest_py(("site", b"\xe9\0\0\0\0",
                                                                   "jmp"), 5)
    assert D.digest_py(TextPokeLoc("site", b"\xcc", None), 5) != D.digest_py(a, 5)
    assert D.digest_py(build, 5) != D.digest_py(reached, 5)
    states = reached("x86-int3-batch", 2000)
    kinds = {type(x) for s in states for x in _leaves(s)}
    assert TextPokeLoc in kinds and any(k.__name__ == "function" for k in kinds)
    if C is not None:
        assert [C.digest(s, 9) for s in states] == [D.digest_py(s, 9) for s in states]


def _leaves(x: object) -> list[object]:
    if isinstance(x, tuple | frozenset):
        return [y for e in x for y in _leaves(e)]
    return [x]


def test_seeds_give_unrelated_functions() -> None:
    dg = C.digest if C is not None else D.digest_py
    states = reached("defer-cr3", 3000)
    d0 = [dg(s, 0) for s in states]
    d1 = [dg(s, 1) for s in states]
    assert len(set(d0)) == len(set(d1)) == len(states)  # no 64-bit collision
    # each bit of digest(s, 0) xor digest(s, 1) is set about half the time
    n = len(states)
    for bit in range(64):
        ones = sum((a ^ b) >> bit & 1 for a, b in zip(d0, d1, strict=True))
        assert 0.45 * n < ones < 0.55 * n, bit
    # and the low bits a bitstate store indexes with are spread out
    buckets = collections.Counter(d & 63 for d in d0)
    assert max(buckets.values()) < 2 * n / 64


PROBE = """
import sys
from crossmod.catalogue import build
from crossmod.machine import digest as D
from crossmod.machine.machine import Machine
s = Machine(build('defer-cr3', 'default').config).initial_state()
print(D.backend(), D.digest(s, 0), D.digest(s, 12345), D.digest(frozenset(sys.argv[1:]), 0))
"""


@pytest.mark.parametrize("pure", ["0", "1"])
def test_the_digest_is_the_same_in_every_process(pure: str) -> None:
    if pure == "0":
        need_c()
    outs = set()
    for hashseed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, D.PURE_ENV: pure}
        outs.add(subprocess.run([sys.executable, "-c", PROBE, *"abcdefghij"], env=env,
                                capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1
    words = outs.pop().split()
    assert " ".join(words[:-3]) == ("compiled" if pure == "0" else "pure Python")
    digests = words[-3:]
    here = Machine(build("defer-cr3", "default").config).initial_state()
    assert [int(d) for d in digests[:3]] == [D.digest_py(here, 0), D.digest_py(here, 12345),
                                             D.digest_py(frozenset("abcdefghij"), 0)]


def test_the_definition_is_pinned() -> None:
    # which states a seed omits must not change between versions unnoticed: a change here
    # is a change of every compact-store search's result (say so in the changelog)
    value = ("task", 3, True, None, b"\x0f\x1f\x44\x00\x00", frozenset({1, 2}), -5, 1 << 70,
             ("", ()))
    assert [D.digest_py(value, seed) for seed in (0, 1, (1 << 64) - 1)] == PINNED
    if C is not None:
        assert [C.digest(value, seed) for seed in (0, 1, (1 << 64) - 1)] == PINNED


PINNED = [11667322725582320587, 5329139073114860231, 9726435198754146657]
