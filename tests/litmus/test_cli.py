"""`crossmod litmus`: exit statuses, the table, JSON fields, --explain, --kinds, input
errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import CASES, KERNEL


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmod", "litmus", *args],
                          capture_output=True, text=True, timeout=300)


def case(name: str) -> str:
    return str(CASES / f"{name}.litmus")


def test_a_verdict_per_test_exit_0():
    r = run(case("cm-SM+isb"), case("cm-SM+cachesync-isb"))
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["test", "cache", "verdict", "states", "finals", "seconds",
                                "flag"]
    assert lines[2].split()[:5] == ["cm-SM+isb", "DIC0-IDC0", "Allowed", "7", "2"]
    assert lines[3].split()[:3] == ["cm-SM+cachesync-isb", "DIC0-IDC0", "Forbidden"]
    assert lines[-1].startswith("2 tests, 16 states, ")
    assert max(len(x) for x in lines) <= 100


def test_json_gives_the_fields_the_issue_names():
    r = run("--json", case("cm-MP+dmb.st+po"))
    assert r.returncode == 0
    [doc] = json.loads(r.stdout)
    for key in ("file", "test", "verdict", "states", "seconds", "final_states", "tier",
                "flags", "cache_type", "memory", "fetch"):
        assert key in doc
    assert (doc["test"], doc["verdict"], doc["memory"]) == ("cm-MP+dmb.st+po", "Allowed", "arm")
    assert doc["final_states"] == ["1:X2=0; 1:X4=0;", "1:X2=0; 1:X4=1;", "1:X2=1; 1:X4=0;",
                                   "1:X2=1; 1:X4=1;"]


def test_memory_sc_and_fetch_cse_are_options():
    sc = json.loads(run("--json", "--memory", "sc", case("cm-MP+dmb.st+po")).stdout)[0]
    assert (sc["verdict"], sc["memory"]) == ("Forbidden", "sc")
    cse = json.loads(run("--json", "--fetch", "cse", case("cm-SM+isb")).stdout)[0]
    assert (cse["verdict"], cse["fetch"]) == ("Forbidden", "cse")


def test_explain_tells_the_witness_step_by_step():
    r = run("--explain", case("cm-MP.FF+cachesync+isb"))
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    flat = " ".join(r.stdout.split())
    assert "verdict: Allowed (1 of 4 final states satisfy it" in flat
    assert "an execution that satisfies it, ending in 1:X2=1; 1:X9=0;" in flat
    assert "P1 runs: LDR W2,[X3]; ISB; P1:m0: B l0" in flat
    assert "before any move (nothing orders them after anything): P1 ISB" in flat
    head = next(x for x in lines if x.startswith("   # "))
    assert head.split() == ["#", "P0", "P1"]
    # the stale fetch is told in P1's column, between P0's clean and its invalidation
    assert "fetch P1:m0: fetches P1:m0 = B .+8 (stale: memory holds NOP)" in flat
    assert flat.index("cleaned to the point of unification") < flat.index("(stale:") < \
        flat.index("invalidated to the point of unification")
    assert lines[-1] == "trail ends after 6 steps"


def test_explain_of_a_forbidden_test_lists_its_final_states():
    r = run("--explain", case("cm-SM+cachesync-isb"))
    assert "no execution reaches the condition; final states: 0:X9=1;" in r.stdout


def test_kinds_agreement_and_a_difference_exit_1(tmp_path):
    kinds = tmp_path / "kinds.txt"
    kinds.write_text("cm-SM+isb Allowed\ncm-SM+cachesync-isb Allowed\n")
    r = run("--kinds", str(kinds), case("cm-SM+isb"), case("cm-SM+cachesync-isb"),
            case("cm-CoRR"))
    assert r.returncode == 1
    assert "DIFFERS cm-SM+cachesync-isb: kinds.txt Allowed, crossmod Forbidden" in r.stdout
    assert "no kind for 1: cm-CoRR" in r.stdout
    assert next(x for x in r.stdout.splitlines() if x.startswith("all ")).split() == [
        "all", "3", "2", "1"]
    kinds.write_text("cm-SM+isb Allow\n")
    assert run("--kinds", str(kinds), case("cm-SM+isb")).returncode == 0


def test_directories_and_herd_index_files(tmp_path):
    index = tmp_path / "@all"
    index.write_text(f"# a comment\n{case('cm-SM+isb')}\n@more\n")
    (tmp_path / "@more").write_text(f"{CASES}\n")
    r = run("--json", str(index))
    names = [d["test"] for d in json.loads(r.stdout)]
    assert names[0] == "cm-SM+isb" and len(names) == len(list(CASES.glob("*.litmus")))
    assert len(json.loads(run("--json", str(KERNEL)).stdout)) == 14


def test_input_errors_are_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.litmus"
    bad.write_text("AArch64 bad\n{ }\n P0 ;\n FROB X1 ;\n")
    r = run(str(bad), case("cm-SM+isb"))
    assert r.returncode == 2
    assert r.stderr == (f"crossmod: error: {bad}:4:2: unsupported instruction 'FROB' "
                        "(crossmod runs: LDR, STR, STLR, B, B.cond, BL, BR, BLR, RET, CBZ, "
                        "CBNZ, NOP, MOV, ADD, SUB, EOR, AND, ORR, CMP, CSEL, CSET, ADR, DC, "
                        "IC, DMB, DSB, ISB, SVC, ERET, MSR, MRS, UDF, BRK)\n")
    assert "cm-SM+isb" in r.stdout  # the other file still ran
    missing = run(str(tmp_path / "nope.litmus"))
    assert missing.returncode == 2 and "nope.litmus:0:0: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr + r.stderr


def test_a_state_limit_is_an_input_error():
    r = run("--max-states", "5", case("cm-IRIW+addrs"))
    assert r.returncode == 2
    assert r.stderr.endswith("cm-IRIW+addrs.litmus: more than 5 states (raise --max-states)\n")


def test_help():
    r = run("--help")
    assert r.returncode == 0 and "--explain" in r.stdout and "--kinds" in r.stdout
