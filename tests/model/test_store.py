"""The hash-compact and bitstate stores (check/store.py): they find the catalogue's bugs
with a trail replayed through the machine, and never call a search "safe"."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import missing
from crossmod.catalogue import build
from crossmod.check import store as S
from crossmod.check.explore import explore, replay_schedule
from crossmod.check.store import omission_estimate
from crossmod.check.verdict import Bounds, StopReason
from crossmod.machine import digest as D

C = D.compiled()
U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@pytest.mark.parametrize("store", ["hash-compact", "bitstate"])
@pytest.mark.parametrize("proto,variant,cpus", [("x86-int3-batch", "no-sync2", 3),
                                                ("defer-cr3", "no-sender-mb", 2)])
def test_a_buggy_row_is_found_again_and_its_trail_replays(store: str, proto: str,
                                                          variant: str, cpus: int) -> None:
    system = build(proto, variant, cpus=cpus)
    exact = explore(system)
    v = explore(system, Bounds(store=store))
    assert exact.verdict == "violation"
    assert (v.verdict, v.property, v.states, v.depth) == \
        (exact.verdict, exact.property, exact.states, exact.depth)
    assert v.counterexample is not None
    replayed = replay_schedule(system, [s.index for s in v.counterexample.steps])
    assert replayed.steps[-1].violation is not None
    assert replayed.steps[-1].violation.prop == exact.property


@pytest.mark.parametrize("store,reason", [("hash-compact", StopReason.HASH_COMPACT),
                                          ("bitstate", StopReason.BITSTATE)])
def test_a_safe_row_is_no_proof(store: str, reason: StopReason) -> None:
    system = build("x86-int3-batch", "default", cpus=3)
    exact = explore(system)
    v = explore(system, Bounds(store=store))
    assert exact.verdict == "safe"
    assert (v.verdict, v.stop_reason, v.states) == ("bound", reason, exact.states)
    assert "not a proof" in v.message and "may have been omitted" in v.describe_stop()
    assert v.stats["store"] == store and v.stats["omitted_estimate"] < 1e-3


def test_a_small_bit_array_omits_states_and_says_about_how_many() -> None:
    system = build("x86-int3-batch", "default", cpus=3)
    exact = explore(system)
    v = explore(system, Bounds(store="bitstate", bitstate_bits=1 << 14))
    assert v.verdict == "bound" and v.states < exact.states
    assert v.stats["omitted_estimate"] > 1
    assert v.stats["hash_factor"] == (1 << 14) / v.states


def test_the_omission_estimates_follow_the_formulas() -> None:
    assert omission_estimate("exact", 10**6) == 0.0
    assert omission_estimate("hash-compact", 2**33) == pytest.approx(2**66 / 2**65, rel=1e-6)
    # m/n = 1: more than an array of m bits can hold with k = 3 (about 0.61 m, the sum of
    # 1 - (1 - e^(-3a/m))^3 over all a): most states that come are omitted
    assert omission_estimate("bitstate", 10**5, bits=10**5) > 10**6
    # where omission is rare, SPIN's sum over i < n of (1 - e^(-k i / m))^k
    n, m = 747_817, 1 << 27
    spin = sum((1 - math.exp(-3 * i / m)) ** 3 for i in range(n))
    assert omission_estimate("bitstate", n, bits=m) == pytest.approx(spin, rel=1e-3)
    assert omission_estimate("bitstate", 1000, bits=1 << 30) < 1e-6


def test_the_cli_store_flag_exits_1_when_nothing_is_proved() -> None:
    r = _run("check", "x86-int3-batch", "--store", "bitstate")
    assert r.returncode == 1
    assert "verdict: bound" in r.stdout and "bitstate" in r.stdout
    r = _run("check", "x86-int3-batch", "--store", "hash-compact", "--liveness")
    assert r.returncode == 2
    assert r.stderr.strip() == ("crossmod: error: --liveness needs the whole state graph: "
                                "use it with --store exact")


def test_a_seed_omits_the_same_states_in_every_process() -> None:
    # a small bit array, so that collisions hide states: which ones is the seed's doing
    # (machine/digest.py), not PYTHONHASHSEED's (Python's str hash is salted per process)
    args = ("check", "x86-int3-batch", "--cpus", "3", "--store", "bitstate",
            "--bitstate-bits", "16384", "--json")
    runs = [json.loads(_run(*args, hashseed=h).stdout) for h in ("1", "2", "random")]
    assert len({(r["states"], r["transitions"], r["depth"]) for r in runs}) == 1
    assert runs[0]["stats"]["hash_seed"] == 0 and "--hash-seed" not in runs[0]["command"]
    exact = explore(build("x86-int3-batch", "default", cpus=3))
    assert runs[0]["states"] < exact.states  # collisions did occur
    again = explore(build("x86-int3-batch", "default", cpus=3),
                    Bounds(store="bitstate", bitstate_bits=1 << 14))
    assert (again.states, again.transitions) == (runs[0]["states"], runs[0]["transitions"])


def test_other_seeds_omit_other_states() -> None:
    system = build("x86-int3-batch", "default", cpus=3)
    runs = {seed: explore(system, Bounds(store="bitstate", bitstate_bits=1 << 14,
                                         hash_seed=seed)) for seed in range(4)}
    assert len({v.states for v in runs.values()}) > 1
    assert all(v.stats["hash_seed"] == seed for seed, v in runs.items())
    again = explore(system, Bounds(store="bitstate", bitstate_bits=1 << 14, hash_seed=3))
    assert (again.states, again.transitions) == (runs[3].states, runs[3].transitions)


def test_the_reference_digest_omits_what_the_compiled_one_does(monkeypatch) -> None:
    # without the C port (no compiler, CROSSMOD_DIGEST_PURE=1) a seed still means the same
    import crossmod.check.store as store
    from crossmod.machine import digest as D

    system = build("x86-int3-batch", "default", cpus=3)
    bounds = Bounds(store="bitstate", bitstate_bits=1 << 13, hash_seed=5, max_states=2000)
    monkeypatch.setattr(store, "digest", D.digest_py)
    pure = explore(system, bounds)
    monkeypatch.setattr(store, "digest", D.digest)
    v = explore(system, bounds)
    assert (pure.states, pure.transitions, pure.depth) == (v.states, v.transitions, v.depth)


def test_the_cli_prints_the_seed_and_takes_it_back() -> None:
    r = _run("check", "x86-int3-batch", "--store", "hash-compact", "--hash-seed", "77")
    assert "store: hash-compact, hash seed 77 (--hash-seed repeats it)" in r.stdout
    r = _run("check", "x86-int3-batch", "--store", "bitstate", "--hash-seed", "77", "--json")
    v = json.loads(r.stdout)
    assert v["stats"]["hash_seed"] == 77 and v["command"].endswith("--hash-seed 77")
    assert "hash seed" not in _run("check", "x86-int3-batch").stdout
    r = _run("check", "x86-int3-batch", "--store", "bitstate", "--hash-seed", "-1")
    assert r.returncode == 2


def _run(*args: str, hashseed: str | None = None) -> subprocess.CompletedProcess:
    env = None if hashseed is None else {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.run([sys.executable, "-m", "crossmod", *args], capture_output=True,
                          text=True, env=env)


def test_bounds_refuse_an_unknown_store() -> None:
    with pytest.raises(ValueError, match="hash-compact"):
        Bounds(store="disk")
    with pytest.raises(ValueError, match="hash_seed"):
        Bounds(hash_seed=1 << 64)


def need_c() -> None:
    if C is None:
        missing("crossmod.machine._digest is not built (pip install -e . with a C compiler)")


@given(st.integers(min_value=8, max_value=5000), st.integers(min_value=1, max_value=5),
       st.lists(U64, max_size=300), st.lists(U64, max_size=50))
def test_the_compiled_bits_are_the_reference_bits(m: int, k: int, hashes: list[int],
                                                   probes: list[int]) -> None:
    need_c()
    assert C is not None
    ref, port = bytearray((m + 7) // 8), bytearray((m + 7) // 8)
    hashes += hashes[::3]  # some states come again
    for h in hashes:
        assert C.bits_add(port, m, k, h) == S.bits_add_py(ref, m, k, h)
    assert port == ref
    for h in probes + hashes:
        assert C.bits_has(port, m, k, h) == S.bits_has_py(ref, m, k, h)


@given(U64, st.integers(min_value=1, max_value=(1 << 64) - 1),
       st.integers(min_value=1, max_value=64))
def test_the_compiled_positions_are_the_reference_positions(h: int, m: int, k: int) -> None:
    need_c()
    assert C is not None
    assert C.bit_positions(h, m, k) == S.bit_positions(h, m, k)


def test_the_compiled_bits_refuse_what_they_cannot_do() -> None:
    need_c()
    assert C is not None
    with pytest.raises(ValueError, match="fewer than m bits"):
        C.bits_add(bytearray(1), 9, 3, 5)
    with pytest.raises(TypeError, match="bytearray"):
        C.bits_add(bytes(2), 9, 3, 5)
    with pytest.raises(ValueError, match="k <= 64"):
        C.bits_has(bytearray(2), 9, 0, 5)
    with pytest.raises(ValueError, match=r"h must be in \[0, 2\*\*64\)"):
        C.bits_add(bytearray(2), 9, 3, -1)


def test_an_array_of_more_than_2_to_the_32_bits_is_used_whole() -> None:
    # the first position took 32 bits of the digest: 2^40 bits had 1/256 of them reachable
    m = 1 << 40
    first = [S.bit_positions(D.digest(i, 0), m)[0] for i in range(4000)]
    assert sum(p >= 1 << 32 for p in first) > 0.98 * len(first)
    assert max(first) >= m - m // 100 and len(set(first)) == len(first)
    # and for a power of two the k bits of a state are distinct (h2 is odd)
    assert all(len(set(S.bit_positions(D.digest(i, 7), 1 << 27))) == 3 for i in range(1000))


@pytest.mark.parametrize("m", [1 << 14, 3 * 5000 + 1])
def test_the_omission_estimate_is_what_the_bits_omit(m: int) -> None:
    # distinct states (distinct digests) into m bits until n are stored: the states found
    # all set are the omitted ones, and SPIN's formula predicts how many
    n, omitted, stored, i = m // 2, 0, 0, 0
    bits = S.Bitstate(m)
    while stored < n:
        if bits.add(D.digest(i, 11)):
            stored += 1
        else:
            omitted += 1
        i += 1
    estimate = omission_estimate("bitstate", n, bits=m)
    assert estimate > 50
    assert 0.9 * estimate < omitted < 1.1 * estimate


@given(st.lists(st.one_of(U64, st.sampled_from([0, 1, (1 << 64) - 1, 1 << 32])),
                max_size=3000), st.lists(U64, max_size=50))
def test_the_compiled_digest_set_is_the_reference_set(hashes: list[int],
                                                      probes: list[int]) -> None:
    need_c()
    assert C is not None
    port, ref = C.U64Set(), S.U64SetPy()
    hashes += hashes[::2]  # some come again, after the table has grown
    for h in hashes:
        assert port.add(h) == ref.add(h)
    assert len(port) == len(ref)
    for h in probes + hashes + [-1, 1 << 64]:
        assert (h in port) == (h in ref)
    assert port.nbytes() >= 8 * len(port)
    with pytest.raises(ValueError):
        port.add(-1)
