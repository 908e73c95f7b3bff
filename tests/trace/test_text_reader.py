"""Hand-written text fixtures, one per format, and malformed input (line numbers)."""

from __future__ import annotations

import contextlib
import gzip
import lzma
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmod.trace.events import TraceFormatError
from crossmod.trace.source import open_trace
from crossmod.trace.text import TextReader

from .conftest import FIXTURES


def _read(name: str, **kw: bool) -> tuple[list, TextReader, str]:
    r, kind = open_trace(str(FIXTURES / name), **kw)
    return list(r), r, kind  # type: ignore[return-value]


def test_trace_cmd_report_fixture() -> None:
    evs, r, kind = _read("report_small.txt")
    assert kind == "trace-cmd report text"
    assert [e.name for e in evs].count("csd_queue_cpu") == 2
    assert len(evs) == 20 and r.problems == [] and r.lost_events == 3
    q3 = evs[4]
    assert (q3.ts, q3.cpu, q3.pid, q3.comm, q3.fields["cpu"]) == (19200001000, 0, 224,
                                                                  "bpfload", 3)
    # the stack line is attached to the event before it on CPU 0, not to CPU 2's user_exit
    assert q3.stack is not None and q3.stack[-2:] == ("sk_attach_filter", "do_syscall_64")
    assert evs[3].stack is None
    assert evs[6].fields == {"cpumask": (2, 3), "callsite": "on_each_cpu_cond_mask+0x24",
                             "callback": "generic_smp_call_function_single_interrupt+0x0"}
    tlb = next(e for e in evs if e.name == "tlb_flush")
    assert tlb.fields == {"pages": -1, "reason": 1}
    assert evs[0].fields == {"buf": "PHASE bpf_jit start"}
    assert next(e for e in evs if e.name == "sched_waking").fields == {}


def test_tracefs_trace_fixture() -> None:
    evs, r, kind = _read("tracefs_trace.txt")
    assert kind == "tracefs trace text" and r.problems == []
    assert [e.name for e in evs] == ["print", "csd_queue_cpu", "ipi_send_cpu",
                                     "ipi_send_cpumask", "call_function_single_entry",
                                     "csd_function_entry", "csd_function_exit", "print"]
    # the kernel prints cpumasks as hex bitmaps (%*pb), trace-cmd as lists
    assert evs[3].fields["cpumask"] == (2, 3)
    assert evs[0].fields == {"buf": "PHASE tracepoint start"}
    # raw tracefs prints %pS with /size: the record contract drops it
    assert evs[1].fields["callsite"] == "on_each_cpu_cond_mask+0x24"
    assert evs[1].stack == ("trace_event_raw_event_csd_queue_cpu", "smp_call_function_many_cond",
                            "on_each_cpu_cond_mask", "text_poke_bp_batch",
                            "__static_call_update", "tracepoint_add_func", "do_syscall_64")
    assert evs[1].ts == 100_000_100_000


def test_trace_pipe_fixture_with_tgid_and_ns() -> None:
    evs, r, _ = _read("trace_pipe.txt")
    assert r.problems == []
    assert [(e.ts, e.cpu, e.pid, e.comm) for e in evs] == [
        (50_000_000_001, 2, 183, "spin"), (50_100_000_000, 0, 20, "kworker/0:1"),
        (50_100_000_500, 1, 4100, "Web Content"), (50_100_001_000, 3, 184, "spin")]
    assert evs[1].fields["cpumask"] == (0, 1, 2, 3)


def test_malformed_lines_reported_with_line_numbers() -> None:
    evs, r, _ = _read("malformed.txt")
    assert [e.name for e in evs] == ["user_exit", "call_function_entry"]
    assert [str(p) for p in r.problems] == [
        f"{FIXTURES / 'malformed.txt'}:3: unparseable line 'this line is not a trace line'",
        f"{FIXTURES / 'malformed.txt'}:4: stack frame without a <stack trace> line",
        f"{FIXTURES / 'malformed.txt'}:5: csd_queue_cpu: field cpu='two' is not a number",
        f"{FIXTURES / 'malformed.txt'}:6: ipi_send_cpumask: no field 'cpumask' in "
        "'callsite=on_each_cpu_cond_mask+0x24 callback=generic_smp_cal'",
    ]


def test_strict_makes_the_first_problem_fatal() -> None:
    r, _ = open_trace(str(FIXTURES / "malformed.txt"), strict=True)
    with pytest.raises(TraceFormatError, match=r"malformed.txt:3: unparseable line"):
        list(r)


def test_compressed_text_is_streamed(tmp_path: Path) -> None:
    raw = (FIXTURES / "report_small.txt").read_bytes()
    for name, data in (("r.txt.xz", lzma.compress(raw)), ("r.txt.gz", gzip.compress(raw))):
        (tmp_path / name).write_bytes(data)
        evs, _r, kind = _read_path(tmp_path / name)
        assert len(evs) == 20 and kind.endswith("trace-cmd report text")


def test_truncated_xz_yields_the_text_before_the_cut(tmp_path: Path) -> None:
    """A cut xz file: every event decoded before the cut is read, then one error."""
    text = (FIXTURES / "report_small.txt").read_bytes() * 50
    raw = lzma.compress(text)
    (tmp_path / "cut.txt.xz").write_bytes(raw[: len(raw) // 2])
    r, _ = open_trace(str(tmp_path / "cut.txt.xz"))
    whole, _ = open_trace(str(FIXTURES / "report_small.txt"))
    n = len(list(r))
    assert 0 < n < 50 * len(list(whole))
    assert [e.what.split(":")[0] for e in r.errors] == ["xz data cut short"]


def _read_path(p: Path) -> tuple[list, TextReader, str]:
    r, kind = open_trace(str(p))
    return list(r), r, kind  # type: ignore[return-value]


def test_stack_split_across_read_chunks() -> None:
    """A stack longer than the reader's chunk boundary stays attached and whole."""
    head = "cpus=2\n    a-1 [000] 1.000000: csd_queue_cpu: cpu=1 callsite=x+0x1 func=f csd=0x1\n"
    stack = "    a-1 [000] 1.000001: kernel_stack: <stack trace >\n" + "".join(
        f"=> frame{i} (ffffffff81000000)\n" for i in range(20000))
    lines = (head + stack + "    a-1 [000] 2.000000: user_enter: \n").splitlines(True)
    evs = list(TextReader(lines, "mem"))
    assert len(evs) == 2 and evs[0].stack is not None and len(evs[0].stack) == 20000


_LINEISH = st.lists(st.one_of(
    st.text(max_size=80),
    st.sampled_from([
        "  sh-1 [001] 1.000001: csd_queue_cpu: cpu=2 callsite=a+0x1 func=b csd=0x1",
        "  sh-1 [001] 1.000002: kernel_stack: <stack trace >", "=> f (ffff)", " => g+0x1/0x2",
        "  sh-1 [001] 1.0: ipi_send_cpumask: cpumask=9999999-1 callsite= callback=",
        "  sh-1 [001] 1.000003: tlb_flush: pages:x reason:(", "  x-1 [0] 1.1: print: ",
        "  x-1 [0] 1.1: <stack trace>", "cpus=4", "# tracer: nop", "CPU:1 [LOST 5 EVENTS]",
    ])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_LINEISH)
def test_text_reader_never_raises(lines: list[str]) -> None:
    r = TextReader([s + "\n" for s in lines], "fuzz")
    evs = list(r)
    assert len(evs) + r.problem_count <= len(lines) + sum(s.count("\n") for s in lines)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_text_reader_on_arbitrary_bytes(blob: bytes) -> None:
    lines = blob.decode("utf-8", "replace").splitlines(True)
    r = TextReader(lines, "fuzz")
    list(r)
    strict = TextReader(lines, "fuzz", strict=True)
    with contextlib.suppress(TraceFormatError):
        list(strict)


def test_numbers_out_of_range_are_problems_not_crashes() -> None:
    """A pid, CPU number or seconds field of thousands of digits (int() refuses more than
    4300), or a CPU number no kernel has (the analysis indexes lists by CPU), is a
    problem on its line; the lines around it are still read."""
    import io

    text = ("cpus=4\n  sh-219 [000] 1.000001: user_enter: \n"
            "  sh-" + "9" * 5000 + " [000] 1.0: user_enter: \n"
            "  sh-1 [" + "9" * 5000 + "] 1.0: user_enter: \n"
            "  sh-1 [1000000] 1.0: user_enter: \n"
            "  sh-1 [001] " + "1" * 5000 + ".0: user_enter: \n"
            "  sh-1 [001] 2.0: user_exit: \n")
    r = TextReader(io.StringIO(text))
    assert [(e.ts, e.cpu, e.name) for e in r] == [(1_000_001_000, 0, "user_enter"),
                                                   (2_000_000_000, 1, "user_exit")]
    assert [p.where for p in r.problems] == ["trace.txt:3", "trace.txt:4", "trace.txt:5",
                                             "trace.txt:6"]
    assert "out of range" in r.problems[-1].what and len(r.problems[-1].what) < 80


def test_cpumask_without_a_report_header() -> None:
    """Without trace-cmd's header the reader takes tracefs' hex bitmaps, but a mask that
    cannot be hex and is a CPU list (a report's lines cut from their header) is read as
    the list; anything else is a problem that says what it expected."""
    import io

    line = ("  sh-1 [000] 1.0: ipi_send_cpumask: cpumask={} callsite=cs+0x1 "
            "callback=generic_smp_call_function_single_interrupt+0x0\n")
    r = TextReader(io.StringIO("".join(line.format(m) for m in ("0000000c", "1-3", "x-1"))))
    assert [e.fields["cpumask"] for e in r] == [(2, 3), (1, 2, 3)]
    assert [str(p) for p in r.problems] == [
        "trace.txt:3: cpumask 'x-1' is neither a CPU list nor a hex bitmap"]
