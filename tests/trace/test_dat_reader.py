"""trace.dat fixtures written by `synth.write_dat`: versions 6 and 7, each compression,
time extends, absolute time stamps, padding, long records, stacks; corrupt and truncated
files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmod.trace.dat import DatReader
from crossmod.trace.events import TraceFormatError
from crossmod.trace.synth import DatOptions, Rec, report_line, write_dat
from crossmod.trace.text import TextReader

SYMS = ["on_each_cpu_cond_mask", "do_sync_core", "generic_smp_call_function_single_interrupt",
        "text_poke_bp_batch", "tracepoint_add_func", "tracing_mark_write",
        "smp_call_function_many_cond", "dl_task_timer"]
COMMS = {10: "sh", 20: "spin"}
STACK = ("smp_call_function_many_cond", "text_poke_bp_batch", "tracepoint_add_func")


def _cpu0() -> list[Rec]:
    return [
        Rec(1_000_000_000, 0, "print", 10, {"buf": "PHASE p start"}),
        Rec(1_000_001_000, 0, "csd_queue_cpu", 10, {
            "cpu": 2, "callsite": "on_each_cpu_cond_mask+0x24", "func": "do_sync_core",
            "csd": 0x1234}, STACK),
        Rec(1_000_002_000, 0, "ipi_send_cpumask", 10, {
            "cpumask": (2, 3, 70), "callsite": "on_each_cpu_cond_mask+0x24",
            "callback": "generic_smp_call_function_single_interrupt+0x0"}),
        Rec(1_000_002_500, 0, "sched_waking", 10, {"pid": 5, "prio": 120, "target_cpu": 1}),
        # a 130-byte message: a record too long for type_len, length in array[0]
        Rec(1_500_000_000, 0, "print", 10, {"buf": "x" * 130}),
        # 3.5 s later: needs a time extend (deltas have 27 bits)
        Rec(5_000_000_000, 0, "print", 10, {"buf": "PHASE p end"}),
    ]


def _cpu2() -> list[Rec]:
    recs = [Rec(999_000_000, 2, "user_enter", 20), Rec(1_000_003_000, 2, "user_exit", 20),
            Rec(1_000_004_000, 2, "call_function_entry", 20, {"vector": 252}),
            Rec(1_000_005_000, 2, "csd_function_entry", 20, {"func": "do_sync_core",
                                                             "csd": 0x1234}),
            Rec(1_000_006_000, 2, "csd_function_exit", 20, {"func": "do_sync_core",
                                                            "csd": 0x1234}),
            Rec(1_000_007_000, 2, "tlb_flush", 20, {"pages": -1, "reason": 1}),
            Rec(1_000_008_000, 2, "user_enter", 20)]
    # enough records for several pages and compressed chunks
    recs += [Rec(1_000_009_000 + i * 7, 2, "user_exit" if i % 2 else "user_enter", 20)
             for i in range(3000)]
    return recs


def _write(path: Path, **kw: object) -> Path:
    opts = DatOptions(symbols=SYMS, comms=COMMS, chunk_pages=2, **kw)  # type: ignore[arg-type]
    with open(path, "wb") as f:
        write_dat(f, {0: _cpu0, 2: _cpu2, 71: list}, opts)  # 72 CPUs: cpumask bit 70
    return path


def _expected() -> list[Rec]:
    return sorted(_cpu0() + _cpu2(), key=lambda r: (r.ts, r.cpu))


CASES = [(6, "none", 0, 0), (7, "none", 0, 0), (7, "zlib", 0, 0), (7, "zstd", 0, 0),
         (6, "none", 3, 5), (7, "zstd", 3, 5)]


@pytest.mark.parametrize(("version", "compression", "absolute", "padding"), CASES)
def test_round_trip(tmp_path: Path, version: int, compression: str, absolute: int,
                    padding: int) -> None:
    path = _write(tmp_path / "t.dat", version=version, compression=compression,
                  absolute_every=absolute, padding_every=padding)
    r = DatReader.from_path(str(path))
    assert (r.version, r.page_size) == (version, 4096)
    events = list(r)
    assert r.problems == [] and r.errors == []
    exp = _expected()
    assert [(e.ts, e.cpu, e.pid, e.name) for e in events] == [
        (x.ts, x.cpu, x.pid, x.name) for x in exp]
    by_name = {e.name: e for e in events}
    assert by_name["csd_queue_cpu"].fields == {"cpu": 2, "callsite": "on_each_cpu_cond_mask+0x24",
                                               "func": "do_sync_core", "csd": 0x1234}
    assert by_name["csd_queue_cpu"].stack == STACK
    assert by_name["ipi_send_cpumask"].fields["cpumask"] == (2, 3, 70)
    assert by_name["tlb_flush"].fields == {"pages": -1, "reason": 1}
    assert by_name["sched_waking"].fields == {} and by_name["sched_waking"].comm == "sh"
    prints = [e.fields["buf"] for e in events if e.name == "print"]
    assert prints == ["PHASE p start", "x" * 130, "PHASE p end"]


def test_dat_and_its_report_text_agree(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.dat")
    dat = list(DatReader.from_path(str(path)))
    lines = ["cpus=72\n"] + [report_line(r, COMMS[r.pid]) for r in _expected()]
    text = list(TextReader("".join(lines).splitlines(True), "t.txt"))
    assert [((e.ts + 500) // 1000, e.cpu, e.name, e.fields, e.stack) for e in dat] == [
        (e.ts // 1000, e.cpu, e.name, e.fields, e.stack) for e in text]


def test_bad_magic_and_version(tmp_path: Path) -> None:
    (tmp_path / "x.dat").write_bytes(b"not a trace at all")
    with pytest.raises(TraceFormatError, match=r"x.dat@0x0: not a trace.dat file"):
        DatReader.from_path(str(tmp_path / "x.dat"))
    (tmp_path / "v9.dat").write_bytes(b"\x17\x08\x44tracing9\0" + b"\0" * 40)
    with pytest.raises(TraceFormatError, match=r"unsupported trace\.dat version 9"):
        DatReader.from_path(str(tmp_path / "v9.dat"))


def test_truncated_v6_yields_what_was_readable(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.dat", version=6, compression="none")
    whole = list(DatReader.from_path(str(path)))
    data = path.read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: len(data) - 6000])
    r = DatReader.from_path(str(tmp_path / "cut.dat"))
    events = list(r)
    assert 0 < len(events) < len(whole)
    assert len(r.errors) == 1 and "file truncated: CPU 2 data runs to" in str(r.errors[0])


def test_truncated_real_v7_yields_what_was_readable(shared: Path, tmp_path: Path) -> None:
    """trace-cmd writes the v7 CPU table in its last options section, after the data: a
    cut file has lost it, and the reader walks the chunks instead. CPUs 0-1 are read
    whole, CPU 2 in part, CPU 3 not at all."""
    data = (shared / "trace.dat").read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[:2_000_000])
    r = DatReader.from_path(str(tmp_path / "cut.dat"))
    per_cpu: dict[int, int] = {}
    for e in r:
        per_cpu[e.cpu] = per_cpu.get(e.cpu, 0) + 1
    assert per_cpu[0] == 16179 and per_cpu[1] == 25010 and 0 < per_cpu[2] < 109046
    assert 3 not in per_cpu
    assert [e.what for e in r.errors] == [
        "file ends inside section header (file truncated?)",
        "CPU table (BUFFER option) missing: found 3 CPUs' data by walking the chunks",
        "CPU 2: file ends inside CPU 2 chunk 14; read what was there"]


def test_truncated_compressed_chunks(tmp_path: Path) -> None:
    """A v7 file whose last CPU's chunks are cut: the earlier chunks are still read."""
    path = _write(tmp_path / "t.dat", version=7, compression="zstd")
    r0 = DatReader.from_path(str(path))
    cpu, off, _size = r0.cpu_data[-1]
    data = bytearray(path.read_bytes())
    # claim one more chunk than the CPU has: the reader runs into the next section
    count = int.from_bytes(data[off : off + 4], "little")
    data[off : off + 4] = (count + 1).to_bytes(4, "little")
    (tmp_path / "cut.dat").write_bytes(bytes(data))
    r = DatReader.from_path(str(tmp_path / "cut.dat"))
    events = list(r)
    assert len(events) == len(list(DatReader.from_path(str(path))))
    assert len(r.errors) == 1 and f"CPU {cpu}" in str(r.errors[0])


def test_corrupt_page_is_skipped_with_its_offset(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.dat", version=6, compression="none")
    r0 = DatReader.from_path(str(path))
    _cpu, off, _size = r0.cpu_data[2]
    data = bytearray(path.read_bytes())
    data[off + 4096 + 8 : off + 4096 + 16] = (5000).to_bytes(8, "little")  # 2nd page's commit
    (tmp_path / "bad.dat").write_bytes(bytes(data))
    r = DatReader.from_path(str(tmp_path / "bad.dat"))
    events = list(r)
    assert len(events) < len(_expected())
    assert [str(p) for p in r.problems] == [
        f"{tmp_path / 'bad.dat'}@0x{off + 4096:x}: CPU 2 page commit size 5000 exceeds page"]
    with pytest.raises(TraceFormatError, match="exceeds page"):
        list(DatReader.from_path(str(tmp_path / "bad.dat"), strict=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corrupted_bytes_raise_only_trace_format_error(data: st.DataObject) -> None:
    blob = bytearray(_SMALL())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(20, len(blob)))
    try:
        r = DatReader(io.BytesIO(bytes(blob[:cut])), "fuzz.dat")
        list(r)
    except TraceFormatError:
        pass


_CACHE: list[bytes] = []


def _SMALL() -> bytes:
    if not _CACHE:
        out = io.BytesIO()
        write_dat(out, {0: lambda: _cpu0()[:3], 2: lambda: _cpu2()[:40]},
                  DatOptions(version=6, compression="none", symbols=SYMS, comms=COMMS))
        _CACHE.append(out.getvalue())
    return _CACHE[0]


def test_an_offset_past_the_file_is_a_trace_format_error(tmp_path: Path) -> None:
    """A damaged section offset of 2**63 or more: TraceFormatError, not OverflowError."""
    r = DatReader.from_path(str(_write(tmp_path / "t.dat", version=7)))
    for offset in (1 << 63, 1 << 64, -1, r.file_size + 1):
        with pytest.raises(TraceFormatError, match="file ends inside section header"):
            r.read_at(offset, 8, "section header")


def test_merge_goes_on_when_a_stream_goes_back_in_time() -> None:
    """Damaged time stamps that go backwards inside one CPU's buffer: the merge still
    yields every event once and ends (it used to yield empty batches for ever)."""
    from crossmod.trace.events import Event
    from crossmod.trace.merge import merge_blocks

    def ev(ts: int, cpu: int) -> Event:
        return Event(ts, cpu, 1, "x", "n", {})

    streams = [iter([[ev(5, 0), ev(100, 0), ev(3, 0)], [ev(4, 0), ev(1, 0)]]),
               iter([[ev(2, 1), ev(6, 1)]])]
    out = [e for batch in merge_blocks(streams) for e in batch]  # type: ignore[arg-type]
    assert sorted((e.cpu, e.ts) for e in out) == [(0, 1), (0, 3), (0, 4), (0, 5), (0, 100),
                                                  (1, 2), (1, 6)]
