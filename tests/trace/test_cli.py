"""`crossmod trace` end to end: exit codes, one-line errors, --json, --plot, --perfetto."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from crossmod.cli import main

from .conftest import FIXTURES


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["trace", *args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_help() -> None:
    code, out, _ = run("--help")
    assert code == 0 and "--isolated CPULIST" in out and "--by-phase" in out


def test_report_on_a_fixture() -> None:
    code, out, err = run(str(FIXTURES / "report_small.txt"), "--isolated", "2-3", "--by-phase")
    assert code == 0 and err == ""
    assert "3 IPIs received, about 2 per isolated CPU, one every 156.8 ms" in out
    assert "sk_attach_filter → bpf_prog_select_runtime" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_output() -> None:
    code, out, _ = run(str(FIXTURES / "report_small.txt"), "--isolated", "2,3", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["isolated"] == [2, 3] and rep["lost_events"] == 3
    assert rep["cpus"]["2"]["by_callback"] == [["do_flush_tlb_all", 1], ["reschedule", 1]]
    assert rep["cpus"]["2"]["whatif"]["removable"] == 1
    assert rep["phases"] == [{"name": "bpf_jit", "start_ns": 19164733000,
                              "end_ns": 19400000000}]


def test_unreadable_input_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "missing.dat"), "--isolated", "2")
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path / 'missing.dat'}: cannot open: No such file or directory\n"
    (tmp_path / "bad.dat").write_bytes(b"\x17\x08\x44tracing7\0\0\x08")
    code, _, err = run(str(tmp_path / "bad.dat"), "--isolated", "2")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_bad_cpulist_is_a_usage_error() -> None:
    code, _, err = run(str(FIXTURES / "report_small.txt"), "--isolated", "two")
    assert code == 2 and err == ("crossmod: error: Invalid value for '--isolated': 'two' is not "
                                 "a CPU number or a range like 2-3\n")


def test_malformed_lines_warn_and_strict_fails() -> None:
    path = str(FIXTURES / "malformed.txt")
    code, out, err = run(path, "--isolated", "2")
    assert code == 0 and "0 IPIs received" in out
    assert err.splitlines()[0] == f"warning: {path}:3: unparseable line 'this line is not a " \
        "trace line'"
    assert len(err.splitlines()) == 4
    code, out, err = run(path, "--isolated", "2", "--strict")
    assert code == 2 and out == ""
    assert err == f"error: {path}:3: unparseable line 'this line is not a trace line'\n"


def test_bad_classify_file(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("do_sync_core perhaps\n")
    code, _, err = run(str(FIXTURES / "report_small.txt"), "--isolated", "2",
                       "--classify", str(tmp_path / "c.txt"))
    assert code == 2 and err.startswith(f"error: {tmp_path / 'c.txt'}:1: expected")


def test_plot_and_perfetto(tmp_path: Path) -> None:
    png, pf = tmp_path / "p.png", tmp_path / "p.json"
    code, _, _ = run(str(FIXTURES / "report_small.txt"), str(FIXTURES / "tracefs_trace.txt"),
                     "--isolated", "2-3", "--plot", str(png), "--perfetto", str(pf))
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(pf.read_text())
    evs = doc["traceEvents"]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"CPU 0", "CPU 1", "CPU 2", "CPU 3"}
    starts = [e for e in evs if e["ph"] == "s"]
    ends = [e for e in evs if e["ph"] == "f"]
    # the tracefs fixture's mask IPI to CPU 3 is never handled there: one arrow dangles
    assert len(starts) == 6 and len(ends) == 5
    assert {e["id"] for e in ends} < {e["id"] for e in starts}
    assert [e["name"] for e in evs if e["ph"] == "X" and e["cat"] == "handler"] == [
        "do_flush_tlb_all", "do_flush_tlb_all", "do_sync_core"]


def test_truncated_dat_reports_then_exits_2(shared: Path, tmp_path: Path) -> None:
    (tmp_path / "cut.dat").write_bytes((shared / "trace.dat").read_bytes()[:2_000_000])
    code, out, err = run(str(tmp_path / "cut.dat"), "--isolated", "2-3")
    assert code == 2
    assert "IPIs received" in out
    assert err.count("error: ") == 3 and "CPU 2: file ends inside CPU 2 chunk 14" in err


def test_standard_input_gives_the_report_the_file_gives(tmp_path: Path) -> None:
    """``-`` reads standard input: plain and gzip text stream through, a trace.dat (read out
    of order) is spooled first; each gives the report its file gives."""
    import gzip

    from crossmod.trace.synth import DatOptions, Rec, write_dat

    def report(args: list[str], stdin: bytes | None = None) -> dict:
        r = CliRunner().invoke(main, ["trace", *args, "--isolated", "2-3", "--json"],
                               input=stdin, catch_exceptions=False)
        assert r.exit_code == 0, r.stderr
        rep = json.loads(r.stdout)
        rep.pop("sources")
        return rep

    text = (FIXTURES / "report_small.txt").read_bytes()
    assert report(["-"], text) == report([str(FIXTURES / "report_small.txt")])
    assert report(["-"], gzip.compress(text)) == report([str(FIXTURES / "report_small.txt")])
    dat = tmp_path / "t.dat"
    gen = "generic_smp_call_function_single_interrupt"
    recs = [Rec(1_000, 0, "csd_queue_cpu", 10, {"cpu": 2, "callsite": "cs+0x1",
                                                 "func": "do_sync_core", "csd": 1}),
            Rec(2_000, 0, "ipi_send_cpu", 10, {"cpu": 2, "callsite": "cs+0x1",
                                                "callback": gen + "+0x0"})]
    with open(dat, "wb") as f:
        write_dat(f, {0: lambda: recs, 3: list}, DatOptions(  # a 4-CPU machine
            version=7, symbols=["cs", "do_sync_core", gen], comms={10: "sh"}))
    from_pipe = report(["-"], dat.read_bytes())
    assert from_pipe == report([str(dat)])
    assert from_pipe["cpus"]["2"]["by_callback"] == [["do_sync_core", 1]]


def test_interrupt_reports_what_was_read(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """^C (a live trace_pipe on stdin ends so) prints the report of the events read so
    far, says so on stderr, and exits 130 -- no traceback."""
    import importlib

    from crossmod.trace.source import merged as real_merged

    cli_trace = importlib.import_module("crossmod.cli.trace")

    class Interrupted:  # the readers' events a list at a time, and ^C after ten
        def __init__(self, readers):  # type: ignore[no-untyped-def]
            self.events = list(real_merged(readers))

        def batches(self):  # type: ignore[no-untyped-def]
            for i, ev in enumerate(self.events):
                if i == 10:
                    raise KeyboardInterrupt
                yield [ev]

    interrupted = Interrupted

    monkeypatch.setattr(cli_trace, "merged", interrupted)
    code, out, err = run(str(FIXTURES / "report_small.txt"), "--isolated", "2-3", "--json")
    assert code == 130 and "interrupted" in err
    seen = json.loads(out)["events"]
    assert sum(n for per_cpu in seen.values() for n in per_cpu.values()) == 10
