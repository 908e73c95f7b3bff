"""`crossmod trace` keeps its promise on bad input (issue 13): one ``error:`` line naming what
and where, exit 2, never a traceback, never a silent loss; phase markers as people write
them; the series' three counting units."""

from __future__ import annotations

import gzip
import json
import lzma
import random
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from crossmod.cli import main
from crossmod.trace.dat import DatReader
from crossmod.trace.datpages import PageDecoder
from crossmod.trace.synth import DatOptions, Rec, write_dat

from .conftest import FIXTURES

SMALL = FIXTURES / "report_small.txt"
GEN = "generic_smp_call_function_single_interrupt+0x0"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["trace", *args], input=stdin)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def events_in(out: str) -> int:
    return sum(n for per_cpu in json.loads(out)["events"].values() for n in per_cpu.values())


def long_text(n: int) -> bytes:
    """A report text of `n` IPI rounds (one csd queued and sent to CPU 2, then handled)."""
    lines = ["cpus=4\n"]
    for i in range(n):
        t = 10 + i / 1000
        lines += [
            f"  bpfload-224   [000] {t:.6f}: csd_queue_cpu: cpu=2 callsite=cs+0x1 "
            "func=do_sync_core csd=0x1\n",
            f"  bpfload-224   [000] {t + 0.000001:.6f}: ipi_send_cpu: cpu=2 callsite=cs+0x1 "
            f"callback={GEN}\n",
            f"     spin-183   [002] {t + 0.000002:.6f}: call_function_single_entry: "
            "vector=251\n"]
    return "".join(lines).encode()


# -- inputs with no trace event ------------------------------------------------------------

def _dat_head(tmp_path: Path) -> bytes:
    with open(tmp_path / "t.dat", "wb") as f:
        write_dat(f, {0: list, 3: list}, DatOptions())
    return (tmp_path / "t.dat").read_bytes()[:8]


NO_EVENTS = {
    "empty": (lambda _t: b"", "it is empty (0 bytes)"),
    "binary": (lambda _t: random.Random(13).randbytes(5000),
               "it is binary data (it starts 7b 61 4e 42 8a 18 6f 4a), neither a trace.dat "
               "nor trace text"),
    "utf16": (lambda _t: SMALL.read_text().encode("utf-16"),
              "it is UTF-16 text; tracefs and trace-cmd write UTF-8 (convert it: iconv -f "
              "UTF-16 -t UTF-8)"),
    "long-line": (lambda _t: b"x" * 3_000_000,
                  "3,000,000 bytes without a line break of their own: not trace text"),
    "header-only": (lambda _t: b"cpus=4\n", "1 header line(s) and no event"),
    "junk-lines": (lambda _t: b"hello\nworld\n",
                   "2 line(s) of text, none of them a trace event (the first: 'hello')"),
}


@pytest.mark.parametrize("case", sorted(NO_EVENTS))
def test_input_with_no_event_is_an_input_error(tmp_path: Path, case: str) -> None:
    make, looks = NO_EVENTS[case]
    path = tmp_path / case
    path.write_bytes(make(tmp_path))
    code, out, err = run(str(path), "--isolated", "2")
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == f"error: {path}: no trace events in it: {looks}"
    code, out, err = run("-", "--isolated", "2", stdin=make(tmp_path))
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == f"error: -: no trace events in it: {looks}"


def test_dev_null_and_the_head_of_a_trace_dat(tmp_path: Path) -> None:
    code, out, err = run("/dev/null", "--isolated", "2")
    assert (code, out, err) == (2, "", "error: /dev/null: no trace events in it: it is empty "
                                       "(0 bytes)\n")
    (tmp_path / "head.dat").write_bytes(_dat_head(tmp_path))
    code, out, err = run(str(tmp_path / "head.dat"), "--isolated", "2")
    assert (code, out) == (2, "")
    assert err == (f"error: {tmp_path / 'head.dat'}: the first 8 bytes of a trace.dat file and "
                   "nothing more: it was cut inside its file header\n")


def test_one_empty_file_among_good_ones_fails_after_the_report(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    code, out, err = run(str(SMALL), str(tmp_path / "empty"), "--isolated", "2-3", "--json")
    assert code == 2 and events_in(out) == events_in(run(str(SMALL), "--isolated", "2-3",
                                                         "--json")[1])
    assert err == f"error: {tmp_path / 'empty'}: no trace events in it: it is empty (0 bytes)\n"


# -- compressed text: the report of what was readable, then error: and exit 2 --------------

COMPRESS = {"xz": lzma.compress, "gz": gzip.compress,
            "zst": lambda b: zstandard.ZstdCompressor().compress(b)}
KIND = {"xz": "xz", "gz": "gzip", "zst": "zstd"}


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_cut_compressed_text_reports_what_was_read(tmp_path: Path, ext: str) -> None:
    text = long_text(4000)
    whole = COMPRESS[ext](text)
    (tmp_path / f"t.{ext}").write_bytes(whole)
    code, out, _ = run(str(tmp_path / f"t.{ext}"), "--isolated", "2", "--json")
    assert code == 0 and events_in(out) == 12_000
    (tmp_path / f"cut.{ext}").write_bytes(whole[: len(whole) // 2])
    code, out, err = run(str(tmp_path / f"cut.{ext}"), "--isolated", "2", "--json")
    assert code == 2 and 0 < events_in(out) < 12_000
    last = err.splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / f'cut.{ext}'}@0x")
    assert f": {KIND[ext]} data cut short: the file ends inside a compressed stream" in last
    assert json.loads(out)["errors"] == [last.removeprefix("error: ")]


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_damaged_compressed_text_reports_what_was_read(tmp_path: Path, ext: str) -> None:
    """A flipped byte in the middle: the text before it is reported, then the damage (every
    form has a check: xz's CRC64, gzip's CRC32, the frame checksum zstd writes by default)."""
    text = long_text(20000)
    pack = (lambda b: zstandard.ZstdCompressor(write_checksum=True).compress(b)
            ) if ext == "zst" else COMPRESS[ext]
    whole = bytearray(pack(text))
    whole[len(whole) // 2] ^= 0xFF
    (tmp_path / f"bad.{ext}").write_bytes(bytes(whole))
    code, out, err = run(str(tmp_path / f"bad.{ext}"), "--isolated", "2", "--json")
    assert code == 2 and 0 < events_in(out) <= 60_000
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert f": {KIND[ext]} data damaged (" in last and last.endswith(" bytes of text before it")


def test_gzip_with_trailing_garbage_is_read_whole_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "t.gz"
    data = gzip.compress(long_text(100))
    path.write_bytes(data + b"garbage\n")
    code, out, err = run(str(path), "--isolated", "2", "--json")
    assert code == 0 and events_in(out) == 300
    assert err == (f"warning: {path}@0x{len(data):x}: trailing garbage after the gzip data "
                   f"ignored ({len(long_text(100)):,} bytes of text decoded)\n")


def test_concatenated_streams_are_read_one_after_another(tmp_path: Path) -> None:
    text = long_text(100)
    lines = text.splitlines(keepends=True)
    first, rest = b"".join(lines[:151]), b"".join(lines[151:])
    for ext, pack in COMPRESS.items():
        path = tmp_path / f"two.{ext}"
        path.write_bytes(pack(first) + pack(rest))
        code, out, err = run(str(path), "--isolated", "2", "--json")
        assert (code, err) == (0, "") and events_in(out) == 300, ext


# -- trace.dat: lose only what is damaged, and say what ------------------------------------

def _dat(tmp_path: Path) -> tuple[Path, list[int], list[int]]:
    """A zstd trace.dat whose CPU 2 has several chunks: (path, chunk offsets of CPU 2,
    events per chunk of CPU 2)."""
    recs = [Rec(1_000_000 + i * 1000, 2, "user_exit" if i % 2 else "user_enter", 20)
            for i in range(3000)]
    path = tmp_path / "t.dat"
    with open(path, "wb") as f:
        write_dat(f, {0: list, 2: lambda: recs, 3: list},
                  DatOptions(chunk_pages=2, comms={20: "spin"}))
    r = DatReader.from_path(str(path))
    (_c, off, size), = [c for c in r.cpu_data if c[0] == 2]
    offsets = [foff for _b, foff, _l in r.blocks(2, off, size)]
    per_chunk = [len(b) for b in PageDecoder(r).cpu_blocks(2, off, size)]
    return path, offsets, per_chunk


def test_a_corrupt_chunk_loses_only_itself(tmp_path: Path) -> None:
    path, offsets, per_chunk = _dat(tmp_path)
    assert len(offsets) >= 4
    data = bytearray(path.read_bytes())
    data[offsets[1] + 8 + 6] ^= 0xFF  # inside chunk 1's zstd frame header
    (tmp_path / "bad.dat").write_bytes(bytes(data))
    code, out, err = run(str(tmp_path / "bad.dat"), "--isolated", "2", "--json")
    assert code == 2 and events_in(out) == sum(per_chunk) - per_chunk[1]
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {tmp_path / 'bad.dat'}@0x{offsets[1]:x}: CPU 2: cannot "
                          "decompress") and err.endswith("; chunk 1 (2 pages) is lost\n")


def test_a_corrupt_chunk_header_is_skipped_to_the_next_frame(tmp_path: Path) -> None:
    path, offsets, per_chunk = _dat(tmp_path)
    data = bytearray(path.read_bytes())
    data[offsets[1] + 3] = 0x7F  # chunk 1's compressed size: far past the data
    (tmp_path / "bad.dat").write_bytes(bytes(data))
    code, out, err = run(str(tmp_path / "bad.dat"), "--isolated", "2", "--json")
    assert code == 2 and events_in(out) == sum(per_chunk) - per_chunk[1]
    assert err == (f"error: {tmp_path / 'bad.dat'}@0x{offsets[1]:x}: CPU 2 chunk 1 header "
                   f"damaged ({int.from_bytes(data[offsets[1]:offsets[1] + 4], 'little'):,} "
                   f"bytes, 8,192 unpacked); its data from 0x{offsets[1]:x} to "
                   f"0x{offsets[2]:x} is lost\n")


def test_damaged_kallsyms_keeps_every_event(shared: Path, tmp_path: Path) -> None:
    r = DatReader.from_path(str(shared / "trace.dat"))
    at = r.section_offsets[19]  # OPT_KALLSYMS: its section header, then the compressed body
    data = bytearray((shared / "trace.dat").read_bytes())
    data[at + 16 + 8] ^= 0x01  # one bit of the zstd frame's magic
    (tmp_path / "bad.dat").write_bytes(bytes(data))
    code, out, err = run(str(tmp_path / "bad.dat"), "--isolated", "2-3", "--json")
    assert code == 2 and events_in(out) == 259_297
    assert err.startswith(f"error: {tmp_path / 'bad.dat'}@0x")
    assert err.endswith(": callbacks, callsites and stacks are shown as addresses\n")
    assert "kallsyms section unreadable" in err and err.count("\n") == 1


# -- CPU numbers -----------------------------------------------------------------------------

@pytest.mark.parametrize(("cpus", "message"), [
    ("0-65536", "CPU 65536 is beyond the largest CPU number allowed (8191)"),
    ("99999999", "CPU 99999999 is beyond the largest CPU number allowed (8191)"),
    ("3-2", "CPU range '3-2' is reversed (write 2-3)"),
    ("1,,2", "empty item in CPU list '1,,2'"),
    ("", "empty CPU list"),
    ("2-", "'2-' is not a CPU number or a range like 2-3"),
])
def test_bad_isolated_lists(cpus: str, message: str) -> None:
    code, out, err = run(str(SMALL), "--isolated", cpus)
    assert (code, out) == (2, "")
    assert err == f"crossmod: error: Invalid value for '--isolated': {message}\n"


def test_isolated_cpus_are_bounded_by_the_trace(tmp_path: Path) -> None:
    code, out, err = run(str(SMALL), "--isolated", "2-4000")
    assert (code, out) == (2, "")
    assert err == (f"error: --isolated 2-4000: CPUs 4-4000 not in the trace ({SMALL} has CPUs "
                   "0-3)\n")
    headless = tmp_path / "pipe.txt"  # trace_pipe text has no CPU count: its events bound it
    headless.write_text("".join(SMALL.read_text().splitlines(True)[1:]))
    code, out, err = run(str(headless), "--isolated", "3-5")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == ("error: --isolated 3-5: CPUs 4-5 not in the trace (no CPU "
                                    "count in the trace's header, and its events name CPUs up "
                                    "to 3 only)")


def test_impossible_cpu_numbers_are_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("cpus=4\n"
                    "   a-1 [990] 1.000000: user_exit: \n"
                    f"   a-1 [000] 1.000001: ipi_send_cpu: cpu={'9' * 20} callsite=a callback=b\n"
                    "   a-1 [000] 1.000002: ipi_send_cpumask: cpumask=2,7 callsite=a callback=b\n"
                    "   a-1 [002] 1.000003: user_exit: \n")
    code, out, err = run(str(path), "--isolated", "2", "--json")
    assert code == 0 and events_in(out) == 1
    assert err.splitlines() == [
        f"warning: {path}:2: CPU 990 out of range (the trace has CPUs 0-3) in 'a-1 [990]'",
        f"warning: {path}:3: ipi_send_cpu: target CPU 999999999999... out of range (the trace "
        "has CPUs 0-3)",
        f"warning: {path}:4: ipi_send_cpumask: cpumask names CPU 7 out of range (the trace has "
        "CPUs 0-3)"]


# -- output paths, checked before the work -------------------------------------------------

def test_output_paths_are_checked_before_the_work(tmp_path: Path) -> None:
    cases = [
        ("--plot", "x.xyz", "--plot x.xyz: cannot draw a .xyz file; use .png, .svg or .pdf"),
        ("--plot", str(tmp_path), f"--plot {tmp_path}: is a directory; give a file name"),
        ("--plot", "/nonexistent/x.png",
         "--plot /nonexistent/x.png: directory /nonexistent does not exist"),
        ("--perfetto", "/nonexistent/x.json",
         "--perfetto /nonexistent/x.json: directory /nonexistent does not exist"),
    ]
    for opt, path, message in cases:
        code, out, err = run(str(SMALL), "--isolated", "2", opt, path)
        assert (code, out) == (2, "") and err.startswith(f"error: {message}"), (opt, path)
        assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written beside the directory either


def test_plot_without_suffix_is_a_png_of_that_name(tmp_path: Path) -> None:
    code, _, _ = run(str(SMALL), "--isolated", "2", "--plot", str(tmp_path / "ipis"))
    assert code == 0 and (tmp_path / "ipis").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, _ = run(str(SMALL), "--isolated", "2", "--plot", str(tmp_path / "ipis.svg"))
    assert code == 0 and b"<svg" in (tmp_path / "ipis.svg").read_bytes()[:400]


# -- phase markers ---------------------------------------------------------------------------

def _phases_trace(tmp_path: Path, marks: list[tuple[float, str]]) -> Path:
    """An IPI to CPU 2 every 10 ms from 1.000 s to 1.990 s, and print markers."""
    lines = [(1 + i / 100, "  k-1 [000] {t:.6f}: ipi_send_cpu: cpu=2 callsite=c+0x1 "
              "callback=0x0") for i in range(100)]
    lines += [(t, f"  sh-2 [001] {{t:.6f}}: print: tracing_mark_write: {m}") for t, m in marks]
    lines.sort(key=lambda x: x[0])
    path = tmp_path / "phases.txt"
    path.write_text("cpus=4\n" + "".join(line.format(t=t) + "\n" for t, line in lines))
    return path


def _by_phase(out: str) -> dict[str, int]:
    return {p: d["aimed"] for p, d in json.loads(out)["cpus"]["2"]["by_phase"].items()}


def test_phase_markers_with_more_words(tmp_path: Path) -> None:
    path = _phases_trace(tmp_path, [(1.2051, "PHASE load start (30 s, 4 threads)"),
                                    (1.5051, "PHASE load end took 0.3 s")])
    code, out, err = run(str(path), "--isolated", "2", "--json", "--by-phase")
    assert (code, err) == (0, "")
    assert _by_phase(out) == {"(no phase)": 70, "load": 30}
    assert json.loads(out)["phases"] == [{"name": "load", "start_ns": 1_205_100_000,
                                          "end_ns": 1_505_100_000}]


def test_end_without_start_runs_from_the_start_of_the_trace(tmp_path: Path) -> None:
    path = _phases_trace(tmp_path, [(1.5051, "PHASE warmup end")])
    code, out, err = run(str(path), "--isolated", "2", "--by-phase")
    assert (code, err) == (0, "")
    assert "phase warmup: no start marker: runs from the start of the trace" in out
    code, out, _ = run(str(path), "--isolated", "2", "--json", "--by-phase")
    assert _by_phase(out) == {"(no phase)": 49, "warmup": 51}
    assert json.loads(out)["phases"][0]["start_ns"] == 1_000_000_000


def test_start_without_end_runs_to_the_end(tmp_path: Path) -> None:
    path = _phases_trace(tmp_path, [(1.9051, "PHASE tail start")])
    code, out, err = run(str(path), "--isolated", "2", "--json", "--by-phase")
    assert (code, err) == (0, "")
    assert _by_phase(out) == {"(no phase)": 91, "tail": 9}
    assert json.loads(out)["phases"] == [{"name": "tail", "start_ns": 1_905_100_000,
                                          "end_ns": None, "note": "no end marker: runs to "
                                          "the end of the trace"}]


def test_nested_and_interleaved_phases_warn_and_say_how(tmp_path: Path) -> None:
    path = _phases_trace(tmp_path, [(1.1001, "PHASE a start"), (1.2001, "PHASE b start"),
                                    (1.3001, "PHASE b end"), (1.4001, "PHASE c start"),
                                    (1.5001, "PHASE a end"), (1.6001, "PHASE c end"),
                                    (1.7001, "PHASE oops begin")])
    code, out, err = run(str(path), "--isolated", "2", "--json", "--by-phase")
    assert code == 0
    assert _by_phase(out) == {"(no phase)": 50, "a": 20, "b": 10, "c": 20}
    assert err.splitlines() == [
        "warning: phase markers: phase b starts at 1.200100 s inside phase a: until one of "
        "them ends, events are counted under b only",
        "warning: phase markers: phase c starts at 1.400100 s inside phase a: until one of "
        "them ends, events are counted under c only",
        "warning: phase markers: phase a ends at 1.500100 s inside phase c (interleaved): "
        "events since c started were counted under c, not a",
        "warning: phase markers: print at 1.700100 s 'PHASE oops begin' is not a phase marker "
        "('PHASE <name> start' or 'end'): ignored"]


# -- the series' counting units --------------------------------------------------------------

def test_the_three_units_of_the_series(tmp_path: Path) -> None:
    """One cpumask IPI to CPUs 2-3 carrying two csds for each: 1 send event, 2 IPIs aimed,
    4 CSDs queued, 2 IPIs received."""
    path = tmp_path / "units.txt"
    q = "  k-9 [000] 1.00000{}: csd_queue_cpu: cpu={} callsite=c+0x1 func={} csd=0x{}\n"
    path.write_text("cpus=4\n" + q.format(1, 2, "do_sync_core", 1)
                    + q.format(2, 2, "do_flush_tlb_all", 2) + q.format(3, 3, "do_sync_core", 3)
                    + q.format(4, 3, "do_flush_tlb_all", 4)
                    + f"  k-9 [000] 1.000005: ipi_send_cpumask: cpumask=2-3 callsite=c+0x1 "
                      f"callback={GEN}\n"
                    "  s-1 [002] 1.000006: call_function_entry: vector=252\n"
                    "  s-2 [003] 1.000007: call_function_entry: vector=252\n")
    code, out, err = run(str(path), "--isolated", "2-3", "--json")
    rep = json.loads(out)
    assert (code, err) == (0, "")
    assert rep["units"] == {"ipi_send_events": 1, "ipis_aimed": 2, "csds_queued": 4,
                            "ipis_received": 2}
    assert rep["cpus"]["3"]["units"] == {"ipi_send_events": 1, "ipis_aimed": 1,
                                         "csds_queued": 2, "ipis_received": 1}
    text = run(str(path), "--isolated", "2-3")[1]
    assert "        1  ipi_send_cpu/ipi_send_cpumask events naming an isolated CPU" in text
    assert "        4  CSDs queued for an isolated CPU (csd_queue_cpu" in text


def test_help_has_an_exit_status_section() -> None:
    code, out, _ = run("--help")
    assert code == 0 and "Exit status:" in out and "130  interrupted" in out


# -- ^C ---------------------------------------------------------------------------------------

def test_interrupt_of_a_live_pipe_gives_a_consistent_report(tmp_path: Path) -> None:
    """`trace-cmd ... | crossmod trace -` ended by ^C: exit 130, a span that is not negative,
    counts over it, and a --perfetto file that is valid JSON (three tries)."""
    import signal
    import subprocess
    import sys
    import time

    text = long_text(60_000)
    for i, part in enumerate((1, 2, 3)):
        pf = tmp_path / f"p{i}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossmod", "trace", "-", "--isolated", "2", "--json",
             "--perfetto", str(pf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(text[: len(text) * part // 4])  # returns once most of it was read
        proc.stdin.flush()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.decode().splitlines()[-1] == ("interrupted: the report covers the events "
                                                 "analysed before ^C")
        rep = json.loads(out)
        assert rep["span_ns"] >= 0 and rep["cpus"]["2"]["rate_per_s"] >= 0
        n = events_in(out)
        assert n > 0 and rep["last_ts_ns"] >= rep["first_ts_ns"]
        doc = json.loads(pf.read_text())
        sends = [e for e in doc["traceEvents"] if e.get("cat") == "ipi_send"]
        assert len(sends) == rep["cpus"]["2"]["aimed"]


def test_interrupt_during_a_batch_waits_for_the_batch() -> None:
    """SIGINT while a batch is analysed is held until that batch is done: the counters,
    the span and the Perfetto sink all stop at the same event."""
    import importlib

    from crossmod.trace.analyze import Analysis
    from crossmod.trace.events import Event

    cli_trace = importlib.import_module("crossmod.cli.trace")
    guard = cli_trace._Interrupts()

    def send(ts: int) -> Event:
        return Event(ts, 0, 1, "k", "ipi_send_cpu", {"cpu": 2, "callsite": "c", "callback": "0x0"})

    class Three:
        def batches(self):  # type: ignore[no-untyped-def]
            return iter([[send(1), send(2)], [send(3), send(4)], [send(5)]])

    seen: list[int] = []

    def sink(_kind: str, ev: Event, _info: dict) -> None:
        seen.append(ev.ts)
        if ev.ts == 3:
            guard._handler(2, None)  # ^C in the middle of the second batch

    a = Analysis((2,), sink=sink)
    with pytest.raises(KeyboardInterrupt):
        a.run(cli_trace._Progress(Three(), False, guard))  # type: ignore[arg-type]
    assert seen == [1, 2, 3, 4] and (a.first_ts, a.last_ts) == (1, 4)
    assert sum(a.events.values()) == 4


def test_a_damaged_record_length_is_said(shared: Path, tmp_path: Path) -> None:
    """Found by benchmarks/fuzz_trace.py (seed 2026): a flipped byte in a zstd chunk that
    turns a 24-byte csd_function_exit into an 88-byte one, swallowing the 4 events after
    it. The payload is longer than the event's format allows: reported, not silent."""
    data = bytearray((shared / "trace.dat").read_bytes())
    data[0x1D5498] = 25
    (tmp_path / "bad.dat").write_bytes(bytes(data))
    code, out, err = run(str(tmp_path / "bad.dat"), "--isolated", "2-3", "--json")
    assert code == 0 and events_in(out) == 259_292  # the record and the 4 it swallowed
    assert err == (f"warning: {tmp_path / 'bad.dat'}@0x1d6115 (CPU 2 chunk 4): CPU 2 "
                   "csd_function_exit record of 88 bytes, its format's 24: a damaged length "
                   "(what it covers is lost)\n")
