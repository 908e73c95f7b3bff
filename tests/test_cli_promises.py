"""Every command keeps the promise of DESIGN.md on bad input (issue 13): a one-line error
naming what and where, exit 2, no traceback, nothing silently lost; the front door reads
right to a newcomer."""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmod.catalogue import ENTRIES, ROWS, build, resolve_params
from crossmod.check.schedule import record_token
from crossmod.cli import COMMANDS, main

SMALL = Path(__file__).resolve().parent / "trace" / "fixtures" / "report_small.txt"


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), prog_name="crossmod")
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def token(doc: object, prefix: str = "cm2-") -> str:
    raw = zlib.compress(json.dumps(doc).encode())
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def document(tok: str) -> dict:
    body = tok.split("-", 1)[1]
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def test_no_arguments_prints_the_help_not_an_error() -> None:
    code, out, err = run()
    assert (code, err) == (0, "")
    assert out.startswith("Usage: crossmod [OPTIONS] COMMAND [ARGS]...")


def test_the_help_lists_every_command_once() -> None:
    code, out, _ = run("--help")
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert code == 0 and listed == list(COMMANDS)
    assert sum(line.startswith("  trace ") for line in out.splitlines()) == 1


@pytest.mark.parametrize("args", [["list"], ["trace", str(SMALL), "--isolated", "2"]])
def test_full_standard_output_is_exit_2_with_one_line(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "crossmod", *args], stdout=full,
                           stderr=subprocess.PIPE, text=True, check=False)
    assert (r.returncode, r.stderr) == (
        2, "crossmod: error: cannot write standard output: No space left on device\n")


# -- check and replay ----------------------------------------------------------------------

def test_check_perfetto_to_an_unwritable_path_fails_before_the_search(tmp_path: Path) -> None:
    code, out, err = run("check", "x86-int3-batch", "--variant", "no-sync1", "--perfetto",
                         "/nonexistent/x.json")
    assert (code, out) == (2, "")
    assert err == ("crossmod: error: --perfetto /nonexistent/x.json: directory /nonexistent "
                   "does not exist\n")
    code, out, err = run("check", "x86-int3-batch", "--perfetto", str(tmp_path))
    assert (code, out) == (2, "") and "is a directory" in err


def test_check_perfetto_on_a_safe_verdict_says_it_wrote_nothing(tmp_path: Path) -> None:
    out_file = tmp_path / "t.json"
    code, out, err = run("check", "x86-int3-batch", "--perfetto", str(out_file))
    assert code == 0 and "verdict: safe" in out
    assert err == f"crossmod: no counterexample (safe): --perfetto {out_file} not written\n"
    assert not out_file.exists()
    code, _, err = run("check", "x86-int3-batch", "--variant", "no-sync1", "--perfetto",
                       str(out_file))
    assert (code, err) == (1, "") and json.loads(out_file.read_text())["traceEvents"]
    code, _, err = run("check", "--all", "--perfetto", str(out_file))
    assert code == 2 and err == ("crossmod: error: --perfetto writes one counterexample: give "
                                 "a PROTOCOL, not --all\n")


def test_replay_perfetto_to_an_unwritable_path() -> None:
    code, out, err = run("check", "x86-int3-batch", "--variant", "no-sync1", "--json")
    tok = json.loads(out)["token"]
    code, out, err = run("replay", tok, "--perfetto", "/nonexistent/x.json")
    assert (code, out) == (2, "")
    assert err == ("crossmod: error: --perfetto /nonexistent/x.json: directory /nonexistent "
                   "does not exist\n")


# A real token: x86-int3-batch as it is, no choice made (replays to exit 0).
GOOD = document(record_token(build("x86-int3-batch"), []))
FIELDS = "corrupt schedule token (fields: "
CHOICES = "corrupt schedule token (choices are not small non-negative integers)"
NAMES = "corrupt schedule token (protocol and variant are names)"


def test_the_good_token_replays() -> None:
    assert run("replay", token(GOOD))[0] == 0


@pytest.mark.parametrize(("doc", "message"), [
    ([1, 2], "corrupt schedule token (not a schedule's fields)"),
    ("text", "corrupt schedule token (not a schedule's fields)"),
    ({**GOOD, "p": 1}, NAMES),
    ({**GOOD, "p": ["a"]}, NAMES),
    ({**GOOD, "var": None}, NAMES),
    ({**GOOD, "params": []}, "corrupt schedule token (parameters are not name: value)"),
    ({**GOOD, "c": "01"}, CHOICES),
    ({**GOOD, "c": ["a"]}, CHOICES),
    ({**GOOD, "c": [1.0]}, CHOICES),
    ({**GOOD, "c": [-1]}, CHOICES),
    ({**GOOD, "c": [10**30]}, CHOICES),
    ({**GOOD, "c": [[1]]}, CHOICES),
    ({**GOOD, "c": [True]}, CHOICES),
    ({k: v for k, v in GOOD.items() if k != "fp"}, FIELDS + "missing fp)"),
    ({**GOOD, "x": 1}, FIELDS + "unknown 'x')"),
    ({**GOOD, "cyc": 0}, "corrupt schedule token (the cycle starts outside it)"),
    ({**GOOD, "c": [0], "cyc": "0"}, "corrupt schedule token (the cycle starts outside it)"),
    ({**GOOD, "v": 1}, "corrupt schedule token (format 1 in a cm2- token)"),
    ({**GOOD, "v": 2.0}, "corrupt schedule token (format 2.0 in a cm2- token)"),
    ({**GOOD, "fp": "abc"}, "corrupt schedule token (not a model fingerprint)"),
    ({**GOOD, "fp": {**GOOD["fp"], "code": 7}}, "corrupt schedule token (not a model "
                                                "fingerprint)"),
    ({**GOOD, "p": "nope"}, "schedule token: unknown protocol 'nope'; valid: "
                            + ", ".join(ENTRIES)),
    ({**GOOD, "var": "no-sync9"}, "schedule token: unknown variant 'no-sync9' of "
                                  "x86-int3-batch; valid: default, no-sync1, no-sync2, "
                                  "no-sync3, no-publish-barrier, stack-descriptor, "
                                  "global-descriptor, spin-in-handler"),
    ({**GOOD, "params": {"cpus": "x"}}, "schedule token: parameter cpus='x' of x86-int3-batch "
                                        "is not an int (valid: 2..8)"),
    ({**GOOD, "params": {"cpus": 2.0}}, "schedule token: parameter cpus=2.0 of x86-int3-batch "
                                        "is not an int (valid: 2..8)"),
    ({**GOOD, "params": {"cpus": 10**30}}, "schedule token: --cpus "
                                           "1000000000000000000000000000000 is outside what "
                                           "x86-int3-batch can honour (2..8)"),
    ({**GOOD, "params": {"bogus": 1}}, "schedule token: parameter 'bogus' does not apply to "
                                       "x86-int3-batch (its parameters: cpus, nmis, fetch, "
                                       "memory, execs, users)"),
    ({**GOOD, "p": "defer-ct", "params": {"patch": 3}},
     "schedule token: parameter patch=3 of defer-ct is not a bool (valid: true, false)"),
    ({**GOOD, "params": {"fetch": ["per-byte"]}},
     "schedule token: parameter fetch=['per-byte'] of x86-int3-batch is not a str (valid: "
     "per-byte, snapshot)"),
    ({**GOOD, "params": {**GOOD["params"], "execs": 1}},
     "the model changed since the token was recorded: its configuration (fingerprint "
     "config "),
    ({**GOOD, "params": {k: v for k, v in GOOD["params"].items() if k != "execs"}},
     "the token was recorded with other parameters: execs (none in the token; 2 now)"),
    ({**GOOD, "fp": {"config": "0" * 16, "code": "0" * 16, "machine": "0" * 16}},
     "the model changed since the token was recorded: its configuration, its routine code "
     "and the machine model (crossmod/machine) (fingerprint config 00000000 -> "),
    ({**GOOD, "c": [99]}, "choice 0: index 99 out of range (0..1): the schedule does not fit "
                          "this protocol"),
])
def test_replay_tokens_of_the_wrong_shape(doc: object, message: str) -> None:
    code, out, err = run("replay", token(doc))
    assert (code, out) == (2, "")
    assert err.startswith(f"crossmod: error: {message}") and err.count("\n") == 1, err


def test_an_old_token_is_named_old() -> None:
    code, out, err = run("replay", token({"v": 1, "p": "x86-int3-batch", "var": "default",
                                          "k": {}, "c": []}, prefix="cm1-"))
    assert (code, out, err) == (2, "", "crossmod: error: schedule token format cm1 is old "
                                "(this crossmod reads cm2); re-run `crossmod check` to record "
                                "a new one\n")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
VARIANTS_SEEN = sorted({v for e in ENTRIES.values() for v in e.variants} | {"", "zz"})
PARAM_NAMES = sorted({s.name for e in ENTRIES.values() for s in e.specs} | {"", "variant"})


HEX = st.text("0123456789abcdef", min_size=16, max_size=16)


@st.composite
def near_documents(draw: st.DrawFn) -> dict:
    """Documents of a token's shape whose fields are mostly drawn near what a real one holds
    -- so that every check along the way is reached: shape, protocol, variant, parameters,
    fingerprint -- and now and then anything; the fingerprint is never the real one."""
    def near(good: st.SearchStrategy) -> object:  # hypothesis favours 0: 0..4 is "near"
        return draw(good if draw(st.integers(0, 5)) < 5 else JSON)

    protocol = near(st.sampled_from([*ENTRIES, "", "x86-int3-batch\n"]))
    entry = ENTRIES.get(protocol) if isinstance(protocol, str) else None
    params: object = dict(entry.defaults()) if entry else {}
    if isinstance(params, dict) and draw(st.integers(0, 3)) == 3:
        params[draw(st.sampled_from(PARAM_NAMES))] = draw(st.sampled_from(
            [0, 1, 2, 3, 9, -1, True, False, "tso", "pso", "all", "arm64", "per-byte"]) | JSON)
    doc = {"v": near(st.just(2)), "p": protocol,
           "var": near(st.sampled_from(["default", *VARIANTS_SEEN])),
           "params": near(st.just(params)),
           "fp": near(st.fixed_dictionaries({"config": HEX, "code": HEX, "machine": HEX})),
           "c": near(st.lists(st.integers(0, 12), max_size=8))}
    if draw(st.integers(0, 5)) == 5:
        del doc[draw(st.sampled_from(sorted(doc)))]
    if draw(st.integers(0, 5)) == 5:
        doc[draw(st.text(max_size=4))] = draw(JSON)
    return doc


def _refused_in_one_line(doc: object) -> None:
    r = CliRunner().invoke(main, ["replay", token(doc)], prog_name="crossmod")
    assert isinstance(r.exception, SystemExit), r.exception  # never another exception
    assert r.exit_code == 2 and r.stdout == "", (doc, r.stdout)
    assert r.stderr.startswith("crossmod: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


@given(JSON)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_replay_refuses_any_json_document_in_one_line(doc: object) -> None:
    _refused_in_one_line(doc)


@given(near_documents())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_replay_refuses_any_near_token_in_one_line(doc: dict) -> None:
    _refused_in_one_line(doc)


@given(st.lists(st.integers(0, 9), max_size=40))
@settings(max_examples=60, deadline=None)
def test_replay_of_real_fingerprints_with_any_choices(choices: list[int]) -> None:
    """With the real fingerprint the choices decide: a trail (exit 0 or 1) or one line."""
    doc = document(record_token(build("x86-int3-batch", "no-sync1"), choices))
    r = CliRunner().invoke(main, ["replay", token(doc)], prog_name="crossmod")
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code in (0, 1, 2)
    if r.exit_code == 2:
        assert r.stdout == "" and r.stderr.startswith("crossmod: error: choice ")
        assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "nan", "-1", "-inf"])
def test_max_seconds_must_be_positive(value: str) -> None:
    for cmd in (["check", "x86-int3-batch"], ["necessity", "x86-int3-batch"]):
        code, out, err = run(*cmd, "--max-seconds", value)
        assert (code, out) == (2, "")
        assert err == (f"crossmod: error: Invalid value for '--max-seconds': {value!r} is not a "
                       "positive number of seconds (leave the option out for no limit)\n")


def test_check_all_heads_each_protocol_once_and_is_quiet_off_a_terminal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib

    model = importlib.import_module("crossmod.cli.model")
    quick = [r for r in ROWS if r.protocol == "x86-int3-batch" and not r.knobs][:3]
    quick += [r for r in ROWS if r.protocol == "x86-memcpy"][:1]
    monkeypatch.setattr(model, "ROWS", quick)
    code, out, err = run("check", "--all")
    assert (code, err) == (0, "")
    headings = [line for line in out.splitlines() if line.startswith("[")]
    assert headings == ["[x86-int3-batch]", "[x86-memcpy]"]
    assert out.rstrip().splitlines()[-1].startswith("4/4 as expected")


# -- parameters on the command line (issue 11, item 5) -------------------------------------

@pytest.mark.parametrize("args", [["--cpus", "3"], ["--nmis", "1"], ["--fetch", "snapshot"],
                                  ["--memory", "pso"], ["--sites", "2"], ["--arch", "x86"],
                                  ["--variant", "no-sync1"], ["--set", "execs=1"]])
def test_check_all_refuses_a_per_row_option(args: list[str]) -> None:
    code, out, err = run("check", "--all", *args)
    flag = args[0]
    assert (code, out, err) == (2, "", f"crossmod: error: {flag} sets one protocol's "
                                "parameters: --all runs every row with its own (each row's "
                                "command is under it with --commands)\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "bogus=1"], "--set bogus: not a parameter of x86-int3-batch (its parameters: "
                           "cpus, nmis, fetch, memory, execs, users)"),
    (["--set", "execs"], "--set execs: expected NAME=VALUE (x86-int3-batch takes cpus, nmis, "
                         "fetch, memory, execs, users)"),
    (["--set", "execs=x"], "--set execs=x: not an integer (valid for x86-int3-batch: 1..4)"),
    (["--set", "execs=0"], "--set execs=0 is outside what x86-int3-batch can honour (1..4)"),
    (["--cpus", "3", "--set", "cpus=3"], "cpus given twice (--cpus and --set cpus=...)"),
    (["--sites", "2"], "--sites does not apply to x86-int3-batch (its parameters: cpus, nmis, "
                       "fetch, memory, execs, users)"),
    (["--commands"], "--commands applies to --all (one PROTOCOL's command is the one given)"),
])
def test_check_bad_parameters_are_one_line(args: list[str], message: str) -> None:
    code, out, err = run("check", "x86-int3-batch", *args)
    assert (code, out, err) == (2, "", f"crossmod: error: {message}\n")


def test_check_set_reaches_the_protocol_and_json_carries_every_parameter() -> None:
    code, out, _ = run("check", "x86-cpumask-2019", "--variant", "last-clearer-completes",
                       "--set", "nmi_on=all", "--json")
    doc = json.loads(out)
    assert (code, doc["verdict"], doc["property"]) == (1, "violation", "torn-instruction")
    assert doc["params"] == {"cpus": 2, "nmis": 1, "fetch": "per-byte", "memory": "tso",
                             "execs": 1, "nmi_on": "all", "users": 0}
    assert doc["command"] == ("crossmod check x86-cpumask-2019 --variant "
                              "last-clearer-completes --set nmi_on=all")


def _quick_rows(monkeypatch) -> list:  # type: ignore[no-untyped-def]
    import importlib

    model = importlib.import_module("crossmod.cli.model")
    quick = [r for r in ROWS if r.protocol == "x86-memcpy" or
             (r.protocol == "x86-cpumask-2019" and not r.knobs.get("cpus"))]
    quick += [r for r in ROWS if r.protocol == "defer-ct"][:4]  # state-field among them
    monkeypatch.setattr(model, "ROWS", quick)
    return quick


def test_every_check_all_row_prints_the_command_that_reproduces_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    quick = _quick_rows(monkeypatch)
    code, out, _ = run("check", "--all", "--json", "--max-depth", "400")
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(quick)
    for row, doc in zip(quick, rows, strict=True):
        assert doc["params"] == resolve_params(row.protocol, row.variant, **row.knobs)
        args = shlex.split(doc["command"])
        assert args[:2] == ["crossmod", "check"] and "--max-depth 400" in doc["command"]
        assert ("--liveness" in args) == row.liveness
        again = json.loads(run(*args[1:], "--json")[1])
        for key in ("protocol", "variant", "config", "verdict", "property", "states",
                    "transitions", "depth", "params", "command"):
            assert again[key] == doc[key], (doc["command"], key)


def test_check_all_commands_under_each_row_within_100_columns(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    quick = _quick_rows(monkeypatch)
    code, out, _ = run("check", "--all", "--commands")
    lines = out.splitlines()
    commands = [line for line in lines if line.startswith("  $ ")]
    assert code == 0 and len(commands) == len(quick)
    assert "  $ crossmod check x86-memcpy --fetch snapshot" in commands
    assert "  $ crossmod check defer-ct --variant state-field" in commands
    assert max(len(line) for line in lines) <= 100
    for i, line in enumerate(lines):  # each command right under its row
        if line.startswith("  $ "):
            assert not lines[i - 1].startswith(("  $ ", "[", "-"))


def test_a_long_command_goes_on_as_a_continuation_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib

    model = importlib.import_module("crossmod.cli.model")
    row = next(r for r in ROWS if r.variant == "spin-in-handler" and r.liveness)
    monkeypatch.setattr(model, "ROWS", [row])
    code, out, _ = run("check", "--all", "--commands")
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("  $ "))
    assert code == 0 and max(len(line) for line in lines) <= 100
    assert lines[i].endswith(" \\") and lines[i + 1].startswith("      --")
    joined = lines[i][4:-2] + " " + lines[i + 1].strip()
    doc = json.loads(run("check", "--all", "--json")[1])[0]
    assert joined == doc["command"] == ("crossmod check x86-int3-batch --variant "
                                        "spin-in-handler --cpus 3 --set execs=1 --users 1 "
                                        "--liveness")


def test_every_row_command_builds_that_row() -> None:
    """All of them, cheaply: the command's parameters are the row's (one state is
    explored)."""
    from crossmod.catalogue import command_args, resolve_params

    for row in ROWS:
        params = resolve_params(row.protocol, row.variant, **row.knobs)
        args = command_args(row.protocol, row.variant, params)
        _, out, err = run("check", *args, "--max-states", "1", "--json")
        assert json.loads(out)["params"] == params, (row, err)


def test_list_shows_every_parameter_with_default_and_valid_values() -> None:
    code, out, _ = run("list")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100
    flat = " ".join(out.split())
    assert "x86-cpumask-2019 cpus 2 (2..8), nmis 1 (0..2), fetch per-byte (per-byte, " \
           "snapshot), memory tso (tso, pso, sc), execs 1 (1..4), nmi_on patcher (patcher, " \
           "all)" in flat
    assert "by variant: nmi-exit-window, nmi-exit-window-fix: nmis=1" in flat
    code, out, _ = run("list", "x86-cpumask-2019")
    assert code == 0 and "nmi_on     --set nmi_on  patcher   patcher, all" in out
    code, out, _ = run("list", "--json")
    doc = {e["protocol"]: e for e in json.loads(out)}
    assert doc["x86-cpumask-2019"]["parameters"][-2] == {
        "name": "nmi_on", "type": "str", "default": "patcher",
        "help": "where NMIs arrive: the patching CPU 0 (K8) or every CPU",
        "choices": ["patcher", "all"]}
    assert doc["defer-ct"]["variant_defaults"]["tlb-at-ct-flush"] == {"patch": False}
    assert run("list", "nope")[::2] == (2, "crossmod: error: unknown protocol 'nope'; valid: "
                                        + ", ".join(ENTRIES) + "\n")


# -- necessity -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--cpus", "99"], "--cpus 99 is outside what x86-int3-batch can honour (2..8)"),
    (["--fetch", "arm64"], "--fetch 'arm64' does not apply to x86-int3-batch; valid: "
                           "per-byte, snapshot (all models: per-byte, snapshot, arm64)"),
    (["--fetch", "bogus"], "Invalid value for '--fetch': 'bogus' is not one of 'per-byte', "
                           "'snapshot', 'arm64'."),
    (["--memory", "xx"], "Invalid value for '--memory': 'xx' is not one of 'tso', 'pso', "
                         "'sc'."),
    (["--set", "execs=9"], "--set execs=9 is outside what x86-int3-batch can honour (1..4)"),
    (["--set", "fetch=snapshot"], "--set fetch: the fetch models are what necessity varies; "
                                  "give them as --fetch (repeat for several)"),
])
def test_necessity_bad_options_are_one_line(args: list[str], message: str) -> None:
    code, out, err = run("necessity", "x86-int3-batch", *args)
    assert (code, out, err) == (2, "", f"crossmod: error: {message}\n")


def test_necessity_help_says_how_to_give_several_models() -> None:
    code, out, _ = run("necessity", "--help")
    flat = " ".join(re.sub(r"-\s+", "-", out).split())  # help wraps after a hyphen
    assert code == 0 and "--fetch per-byte --fetch snapshot" in flat
    assert "[per-byte|snapshot|arm64]" in flat and "[tso|pso|sc]" in flat
