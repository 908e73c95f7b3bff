"""Replay tokens are fingerprinted (issue 11, item 4): a token recorded on one model and
replayed on a changed one is refused, naming what changed; an unchanged model replays,
whatever process, hash seed or exploration came before."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import crossmod.catalogue as catalogue
from crossmod.catalogue import ROWS, build
from crossmod.check.explore import explore, replay_schedule
from crossmod.check.schedule import ScheduleError, decode_for, record_token
from crossmod.cli import main
from crossmod.kernel import text_poke as tp
from crossmod.machine import fingerprint as fp
from crossmod.machine import ops
from crossmod.machine.state import MachineConfig
from crossmod.machine.system import System
from crossmod.machine.text import NOP5, Site, jmp32

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def replay(token: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["replay", token], prog_name="crossmod")
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def recorded(protocol: str, variant: str = "default", **knobs: object) -> tuple[str, list]:
    v = explore(build(protocol, variant, **knobs))
    assert v.counterexample
    return record_token(build(protocol, variant, **knobs),
                        [s.index for s in v.counterexample if s.index >= 0]), v.counterexample


def test_a_token_replays_on_the_model_it_was_recorded_on() -> None:
    token, _ = recorded("x86-int3-batch", "no-publish-barrier", memory="pso")
    code, out, err = replay(token)
    assert (code, err) == (1, "") and "VIOLATION unexpected-int3" in out
    assert out.startswith("x86-int3-batch --variant no-publish-barrier 2cpu per-byte pso ")


def test_a_lasso_keeps_where_its_cycle_starts() -> None:
    system = build("x86-int3-batch")
    sched = decode_for(system, record_token(system, [0, 1, 0], cycle_start=1))
    assert (sched.choices, sched.cycle_start) == ((0, 1, 0), 1)
    assert decode_for(system, record_token(system, [0])).cycle_start is None


def test_a_changed_routine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The #BP handler the int3 batch calls, changed after the token was recorded (here: it
    loses its smp_rmb): the same choice indices would now run another interleaving."""
    token, _ = recorded("x86-int3-batch", "no-sync1")
    original = tp.smp_text_poke_int3_handler

    def smp_text_poke_int3_handler(site: str, v: tp.PokeVariant):  # type: ignore[no-untyped-def]
        return (yield from original(site, replace(v, publish_barrier=False)))

    monkeypatch.setattr(tp, "smp_text_poke_int3_handler", smp_text_poke_int3_handler)
    code, out, err = replay(token)
    assert (code, out) == (2, "")
    assert err.startswith("crossmod: error: the model changed since the token was recorded: "
                          "its routine code (fingerprint code ") and err.count("\n") == 1
    monkeypatch.undo()
    assert replay(token)[0] == 1  # the routine restored, the token fits again


def test_a_changed_site_encoding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossmod.catalogue import x86_int3

    token, _ = recorded("x86-int3-batch", "no-sync1")
    site = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x44), "jmp l_yes")))
    monkeypatch.setattr(x86_int3, "JUMP_SITE", site)
    code, out, err = replay(token)
    assert (code, out) == (2, "")
    assert err.startswith("crossmod: error: the model changed since the token was recorded: "
                          "its configuration (fingerprint config ")


def test_a_changed_machine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    token, _ = recorded("x86-memcpy")
    monkeypatch.setattr(fp, "machine_digest", lambda: "0123456789abcdef")
    code, _, err = replay(token)
    assert code == 2 and "the machine model (crossmod/machine)" in err


def test_a_changed_default_does_not_change_what_a_token_replays(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A token holds every parameter, defaults filled in: a default changed later changes
    what `crossmod check` builds, not what the token rebuilds -- it replays the same trail
    (and `check --all` prints the value the row now needs)."""
    token, trail = recorded("x86-int3-batch", "no-sync2")
    entry = catalogue.ENTRIES["x86-int3-batch"]
    monkeypatch.setitem(catalogue.ENTRIES, "x86-int3-batch",
                        replace(entry, variant_defaults={"no-sync2": {"execs": 1}}))
    assert build("x86-int3-batch", "no-sync2").params["execs"] == 1
    code, out, _ = replay(token)
    assert code == 1 and "execs=2" in out.splitlines()[0]
    sched = decode_for(None, token)
    again = replay_schedule(build(sched.protocol, sched.variant, **sched.params),
                            list(sched.choices))
    assert [s.text for s in again] == [s.text for s in trail]
    assert catalogue.command_args("x86-int3-batch", "no-sync2", sched.params) == [
        "x86-int3-batch", "--variant", "no-sync2", "--set", "execs=2"]


def _user_system(fetch: str = "per-byte", **params: object) -> System:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import my_protocol
    finally:
        sys.path.remove(str(EXAMPLES))
    s = my_protocol.system(fetch)
    return replace(s, params=dict(params)) if params else s


def test_a_user_protocol_token_is_checked_against_the_system_given() -> None:
    """The front door's path: a System outside the catalogue, replayed on the System the
    caller passes -- refused when it is not the one recorded on."""
    system = _user_system()
    v = explore(system)
    token = record_token(system, [s.index for s in v.counterexample if s.index >= 0])
    sched = decode_for(_user_system(), token)  # rebuilt: new objects, the same model
    assert [s.text for s in replay_schedule(system, list(sched.choices))] == \
        [s.text for s in v.counterexample]
    with pytest.raises(ScheduleError, match=r"changed .*: its configuration \(fingerprint"):
        decode_for(_user_system("snapshot"), token)
    with pytest.raises(ScheduleError, match="recorded with other parameters: k "
                                            r"\(none in the token; 1 now\)"):
        decode_for(_user_system(k=1), token)
    with pytest.raises(ScheduleError, match="recorded on protocol 'my-2010-protocol', not "
                                            "'x86-memcpy'"):
        decode_for(build("x86-memcpy"), token)


def _config(routine) -> MachineConfig:  # type: ignore[no-untyped-def]
    site = Site("site", NOP5, ((NOP5, "nop"),))
    return MachineConfig(ncpus=2, sites=(site,), tasks=((routine, ()), None))


def _routine(source: str):  # type: ignore[no-untyped-def]
    ns: dict = {"ops": ops}
    exec(compile(source, "<test>", "exec"), ns)
    return ns["runner"]


def test_docstrings_and_line_numbers_do_not_count_code_does() -> None:
    base = _routine("def runner():\n    'Runs the site.'\n    yield ops.ExecSite('site')\n")
    documented = _routine("\n\n\ndef runner():\n    'Runs through the patch site.'\n"
                          "    yield ops.ExecSite('site')\n")
    twice = _routine("def runner():\n    'Runs the site.'\n    yield ops.ExecSite('site')\n"
                     "    yield ops.ExecSite('site')\n")
    a, b, c = (fp.fingerprint(_config(r)) for r in (base, documented, twice))
    assert a == b
    assert a.config == c.config and a.code != c.code


def test_a_helper_a_routine_calls_counts() -> None:
    """Code reached through the routine's globals is walked: change the helper, not the
    routine, and the code part changes."""
    def make(body: str):  # type: ignore[no-untyped-def]
        return _routine(f"def helper():\n    {body}\n\n"
                        "def runner():\n    yield from helper()\n")
    one = make("yield ops.ExecSite('site')")
    two = make("yield ops.Serialize(label='x')")
    assert fp.fingerprint(_config(one)).code != fp.fingerprint(_config(two)).code


def test_every_row_has_its_own_configuration_and_a_stable_fingerprint() -> None:
    """Distinct rows, distinct configuration hashes; building twice or exploring first
    changes nothing (the machine's caches are not part of the model)."""
    before = [fp.fingerprint(build(r.protocol, r.variant, **r.knobs).config) for r in ROWS]
    configurations = {(r.protocol, r.variant, tuple(sorted(r.knobs.items()))) for r in ROWS}
    assert len({f.config for f in before}) == len(configurations)  # liveness rows repeat one
    for r in ROWS[:6]:
        explore(build(r.protocol, r.variant, **r.knobs))
    after = [fp.fingerprint(build(r.protocol, r.variant, **r.knobs).config) for r in ROWS]
    assert before == after


def test_fingerprints_do_not_depend_on_the_process_or_its_hash_seed() -> None:
    script = ("import json; from crossmod.catalogue import ROWS, build; "
              "from crossmod.machine.fingerprint import fingerprint; "
              "print(json.dumps([fingerprint(build(r.protocol, r.variant, **r.knobs).config)"
              ".to_json() for r in ROWS]))")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin"})
            for seed in ("0", "4242")]
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)
    here = [fp.fingerprint(build(r.protocol, r.variant, **r.knobs).config).to_json()
            for r in ROWS]
    assert json.loads(runs[0].stdout) == here
