"""The command line: exit codes, one-line errors, JSON fields, Perfetto output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmod", *args], capture_output=True,
                          text=True, timeout=300)


def test_check_violation_exit_1_with_trail_and_replay_token():
    r = run("check", "x86-int3-batch", "--variant", "no-sync1")
    assert r.returncode == 1
    assert "verdict: violation (torn-instruction)" in r.stdout
    assert "text_poke [F3]: text_poke: INT3 -> site+0" in r.stdout
    assert "exec site: fetched 0F 40 44 00 00" in r.stdout
    token = r.stdout.split("crossmod replay ")[1].split()[0]
    again = run("replay", token)
    assert again.returncode == 1 and "VIOLATION torn-instruction" in again.stdout


def test_check_safe_exit_0_and_json_fields():
    r = run("check", "x86-int3-batch", "--json")
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    for key in ("protocol", "variant", "config", "verdict", "property", "states",
                "transitions", "seconds", "counterexample"):
        assert key in doc
    assert doc["verdict"] == "safe" and doc["counterexample"] is None and doc["states"] > 700


def test_max_depth_bounds_the_search_from_the_command_line():
    """`--max-depth K`: a violation on move K is found; with K-1 the verdict is a bound
    (exit 1: not proved), named as the step bound; `--no-por` gives the same verdict."""
    found = run("check", "x86-memcpy", "--max-depth", "3", "--json")
    assert found.returncode == 1
    assert json.loads(found.stdout)["verdict"] == "violation"
    cut = run("check", "x86-memcpy", "--max-depth", "2", "--json")
    doc = json.loads(cut.stdout)
    assert cut.returncode == 1
    assert (doc["verdict"], doc["stop_reason"]) == ("bound", "step bound 2 reached")
    assert run("check", "x86-int3-batch", "--no-por").returncode == 0
    assert run("check", "x86-memcpy", "--max-depth", "0").returncode == 2


def test_perfetto_export_is_chrome_trace_json(tmp_path):
    out = tmp_path / "cex.json"
    r = run("check", "x86-cpumask-2019", "--perfetto", str(out))
    assert r.returncode == 1
    doc = json.loads(out.read_text())
    events = doc["traceEvents"]
    assert {e["ph"] for e in events} >= {"M", "X", "i"}
    assert {e["args"]["name"] for e in events if e.get("name") == "thread_name"} == \
        {"cpu0", "cpu1"}
    assert all(isinstance(e["ts"], int) for e in events if e["ph"] == "X")


@pytest.mark.parametrize("args,fragment", [
    (("check", "x86-nope"), "unknown protocol 'x86-nope'; valid: x86-int3-batch"),
    (("check", "x86-int3-batch", "--variant", "zz"), "unknown variant 'zz'"),
    (("check", "x86-int3-batch", "--fetch", "zz"), "'zz' is not one of"),
    (("check", "x86-int3-batch", "--cpus", "40"), "--cpus 40 is outside"),
    (("check", "x86-int3-batch", "--arch", "arm64"), "--arch arm64 does not apply"),
    (("check",), "missing PROTOCOL"),
    (("replay", "cm2-garbage"), "corrupt schedule token"),
    (("replay", "cm1-eNqrVipTsjLUUSpQslKqsDDTzcwrMdZNSixJzlDSUSpLLAIK5-XrFlfmJRsCBbKVrKpr"),
     "schedule token format cm1 is old (this crossmod reads cm2)"),
])
def test_bad_input_one_line_exit_2(args, fragment):
    r = run(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_list_fits_100_columns():
    r = run("list")
    assert r.returncode == 0 and "x86-int3-batch" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 100


def test_help_everywhere():
    for sub in ((), ("check",), ("list",), ("replay",), ("trace",), ("audit",)):
        r = run(*sub, "--help")
        assert r.returncode == 0 and "Usage:" in r.stdout


def test_compare_reports_ipis_per_patch_side_by_side():
    """int3 batch: three sync rounds, one IPI per other CPU each; stop_machine: one wake-up
    per other CPU and one rendezvous; a static key flip costs the same whatever K."""
    r = run("compare", "--json")
    assert r.returncode == 0
    rows = {row["label"]: row for row in json.loads(r.stdout)}
    assert rows["x86-int3-batch (1 site)"]["ipis"] == 3 * 2
    assert rows["x86-stop-machine (1 site)"]["ipis"] == 2
    assert rows["x86-stop-machine (1 site)"]["rendezvous"] == 1
    assert {rows[f"x86-static-key K={k}"]["ipis"] for k in (1, 2, 4)} == {6}


def test_ignore_looks_past_a_known_bug_for_the_next():
    """`--ignore P`: a move that breaks P ends its path silently. memcpy-patching tears
    the instruction (found first); past that, the patch is not visible when it returns;
    past both, nothing is left. With --all it is a usage error."""
    first = json.loads(run("check", "x86-memcpy", "--json").stdout)
    assert first["property"] == "torn-instruction"
    nxt = run("check", "x86-memcpy", "--ignore", "torn-instruction", "--json")
    doc = json.loads(nxt.stdout)
    assert nxt.returncode == 1 and doc["property"] == "patch-visibility"
    assert doc["stats"]["ignored"] == ["torn-instruction"]
    rest = run("check", "x86-memcpy", "--ignore", "torn-instruction",
               "--ignore", "patch-visibility")
    assert rest.returncode == 0
    assert "no violation in any interleaving (ignoring patch-visibility, torn-instruction)" \
        in rest.stdout
    assert run("check", "--all", "--ignore", "deadlock").returncode == 2


def test_liveness_lasso_from_the_command_line_and_its_replay():
    """`--liveness`: K8 with CPU 1 in user code is a lasso (prefix, then a cycle marked as
    repeating forever), exit 1; its token replays to the same cycle, exit 1; --json
    carries where the cycle starts."""
    r = run("check", "x86-cpumask-2019", "--users", "1", "--liveness")
    assert r.returncode == 1
    assert "verdict: violation (liveness)" in r.stdout
    assert "liveness pass: states 707  transitions 1,506" in r.stdout
    lines = r.stdout.splitlines()
    assert lines.index("     --- cycle (repeats forever) ---") < \
        lines.index("     --- back to step 13: step 13 repeats forever ---")
    token = r.stdout.split("crossmod replay ")[1].split()[0]
    again = run("replay", token)
    assert again.returncode == 1
    assert "--- cycle (repeats forever) ---" in again.stdout
    assert "the cycle closes: it repeats forever (liveness)" in again.stdout
    doc = json.loads(run("replay", token, "--json").stdout)
    assert (doc["violation"], doc["cycle_start"], len(doc["steps"])) == (True, 12, 13)
    doc = json.loads(run("check", "x86-cpumask-2019", "--users", "1", "--liveness",
                         "--json").stdout)
    assert (doc["verdict"], doc["property"], doc["cycle_start"]) == \
        ("violation", "liveness", 12)
    assert doc["stats"]["liveness"]["states"] == 707


def test_liveness_passes_and_is_refused_where_it_cannot_apply():
    doc = json.loads(run("check", "x86-cpumask-2019", "--variant", "last-clearer-completes",
                         "--users", "1", "--liveness", "--json").stdout)
    assert (doc["verdict"], doc["cycle_start"]) == ("safe", None)
    assert doc["stats"]["liveness"]["states"] == 856
    # without --liveness the same configuration is safe too: no deadlock, CPU 1 runs on
    plain = run("check", "x86-cpumask-2019", "--users", "1", "--json")
    assert plain.returncode == 0 and "liveness" not in json.loads(plain.stdout)["stats"]
    r = run("check", "--all", "--liveness")
    assert r.returncode == 2 and r.stderr.startswith("crossmod: error: --liveness applies")
    r = run("check", "x86-memcpy", "--users", "1")
    assert r.returncode == 2 and r.stderr == ("crossmod: error: --users does not apply to "
                                              "x86-memcpy (its parameters: cpus, nmis, fetch, "
                                              "memory, execs)\n")
