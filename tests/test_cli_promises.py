"""Every command keeps the promise of DESIGN.md on bad input (issue 13): a one-line error
naming what and where, exit 2, no traceback, nothing silently lost; the front door reads
right to a newcomer."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmod.catalogue import ROWS
from crossmod.cli import COMMANDS, main

SMALL = Path(__file__).resolve().parent / "trace" / "fixtures" / "report_small.txt"


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), prog_name="crossmod")
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def token(doc: object) -> str:
    raw = zlib.compress(json.dumps(doc).encode())
    return "cm1-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


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


GOOD = {"v": 1, "p": "x86-int3-batch", "var": "default", "k": {}, "c": []}


@pytest.mark.parametrize(("doc", "message"), [
    ([1, 2], "corrupt schedule token (not a schedule's fields)"),
    ("text", "corrupt schedule token (not a schedule's fields)"),
    ({**GOOD, "p": 1}, "corrupt schedule token (not a schedule's fields)"),
    ({**GOOD, "p": ["a"]}, "corrupt schedule token (not a schedule's fields)"),
    ({**GOOD, "k": []}, "corrupt schedule token (not a schedule's fields)"),
    ({**GOOD, "c": "01"}, "corrupt schedule token (not a schedule's fields)"),
    ({**GOOD, "c": ["a"]}, "corrupt schedule token (ValueError)"),
    ({**GOOD, "k": {"cpus": "x"}}, "knob cpus='x' of x86-int3-batch is not an int"),
    ({**GOOD, "k": {"bogus": 1}}, "knob 'bogus' does not apply to x86-int3-batch (it takes "
                                  "cpus, nmis, fetch, memory, execs, users)"),
    ({**GOOD, "p": "defer-ct", "k": {"patch": 3}}, "knob patch=3 of defer-ct is not a bool"),
])
def test_replay_tokens_of_the_wrong_shape(doc: object, message: str) -> None:
    code, out, err = run("replay", token(doc))
    assert (code, out, err) == (2, "", f"crossmod: error: {message}\n")


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


# -- necessity -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--cpus", "99"], "--cpus 99 is outside what x86-int3-batch can honour (2..8)"),
    (["--fetch", "arm64"], "--fetch 'arm64' does not apply to x86-int3-batch; valid: "
                           "per-byte, snapshot (all models: per-byte, snapshot, arm64)"),
    (["--fetch", "bogus"], "Invalid value for '--fetch': 'bogus' is not one of 'per-byte', "
                           "'snapshot', 'arm64'."),
    (["--memory", "xx"], "Invalid value for '--memory': 'xx' is not one of 'tso', 'pso', "
                         "'sc'."),
])
def test_necessity_bad_options_are_one_line(args: list[str], message: str) -> None:
    code, out, err = run("necessity", "x86-int3-batch", *args)
    assert (code, out, err) == (2, "", f"crossmod: error: {message}\n")


def test_necessity_help_says_how_to_give_several_models() -> None:
    code, out, _ = run("necessity", "--help")
    flat = " ".join(re.sub(r"-\s+", "-", out).split())  # help wraps after a hyphen
    assert code == 0 and "--fetch per-byte --fetch snapshot" in flat
    assert "[per-byte|snapshot|arm64]" in flat and "[tso|pso|sc]" in flat
