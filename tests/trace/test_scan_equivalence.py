"""The compiled scanner (`crossmod.trace._scan`) against its pure-Python references.

`_scan.walk_block` claims to be `datpages.PageDecoder._walk_py` and `_scan.scan_chunk`
`text.TextReader._scan_chunk_py`, for any input: the same events (every attribute), the
same problems, problem count, lost events, errors and text line count, and no exception
but the same `TraceFormatError`. Each input here is read twice in one process, once with
the compiled module and once with the module globals that hold it set to None (what
``CROSSMOD_TRACE_PURE=1`` does at import), and the two readings must be equal: on every
fixture, on synthetic trace.dat files, on the shared recording, and on hypothesis-made
text lines and page bytes that are mostly valid and partly junk (the hand-written regex
port and the page walk's bounds checks are where the two can part).

Without a built scanner the tests skip, except in CI (``CI=true``), which installs with a
compiler: there a missing scanner must fail, not pass silently.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import random
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossmod.trace.datpages as datpages
import crossmod.trace.text as text
from crossmod.trace import speedups
from crossmod.trace.dat import DatReader
from crossmod.trace.datpages import PageDecoder
from crossmod.trace.events import Event, TraceFormatError
from crossmod.trace.source import open_trace
from crossmod.trace.synth import DatOptions, Rec, report_line, write_dat
from crossmod.trace.text import TextReader

from .conftest import FIXTURES, need_compiled

SCAN = speedups.compiled()


@pytest.fixture(autouse=True)
def _need_scan() -> None:
    need_compiled()


@contextlib.contextmanager
def _backend(compiled: bool) -> Iterator[None]:
    """Readers built inside use the compiled scanner or the references (the readers take
    their memos from the module global in __init__, so build them in here)."""
    old = text._scan, datpages._scan
    text._scan = datpages._scan = SCAN if compiled else None
    try:
        yield
    finally:
        text._scan, datpages._scan = old


# -- canonical form of a whole reading ------------------------------------------------

_STALL = 100  # empty batches in a row: the merge makes no progress (see _events)


def _event(e: Event) -> tuple[object, ...]:
    return (e.ts, e.cpu, e.pid, e.comm, e.name, e.fields, e.stack)


def _errs(errs: list[TraceFormatError]) -> list[tuple[str, str]]:
    return [(x.where, x.what) for x in errs]


def _events(batches: Iterable[list[Event]], out: list[Event]) -> str | None:
    """Collect the events; stop (and say so) if the batches stop making progress.

    merge.merge_blocks yields empty batches forever when a CPU's damaged time stamps run
    backwards inside its buffer (a reference bug shared by both backends, reported
    separately): both readings stop the same way, and the comparison goes on."""
    empty = 0
    for batch in batches:
        out.extend(batch)
        empty = 0 if batch else empty + 1
        if empty > _STALL:
            return "merge made no progress"
    return None


def _reading(open_reader: Callable[[], object], compiled: bool) -> tuple[object, ...]:
    """Everything a reader reports, in a comparable form. Only TraceFormatError may be
    raised, by opening or by reading; anything else fails the test here."""
    evs: list[Event] = []
    raised = stall = None
    r = None
    with _backend(compiled):
        try:
            r = open_reader()
            stall = _events(r.batches(), evs)  # type: ignore[attr-defined]
        except TraceFormatError as exc:
            raised = (exc.where, exc.what)
    facts: tuple[object, ...] = ()
    if r is not None:
        facts = (_errs(r.problems), r.problem_count, r.lost_events,  # type: ignore[attr-defined]
                 _errs(r.errors), getattr(r, "line_count", None))  # type: ignore[attr-defined]
    return ([_event(e) for e in evs], facts, raised, stall)


def _same(open_reader: Callable[[], object]) -> tuple[object, ...]:
    """Read both ways and require equal readings; returns the compiled one."""
    fast = _reading(open_reader, compiled=True)
    ref = _reading(open_reader, compiled=False)
    if fast != ref:
        _explain(fast, ref)
    return fast


def _explain(fast: tuple[object, ...], ref: tuple[object, ...]) -> None:
    fe, re_ = fast[0], ref[0]
    for i, (a, b) in enumerate(zip(fe, re_, strict=False)):  # type: ignore[call-overload]
        if a != b:
            pytest.fail(f"event {i} differs:\n compiled  {a}\n reference {b}")
    if len(fe) != len(re_):  # type: ignore[arg-type]
        pytest.fail(f"{len(fe)} events compiled, {len(re_)} reference")  # type: ignore[arg-type]
    pytest.fail(f"readings differ:\n compiled  {fast[1:]}\n reference {ref[1:]}")


def _text(data: str, strict: bool = False) -> tuple[object, ...]:
    return _same(lambda: TextReader(io.StringIO(data), "fuzz.txt", strict=strict))


def _dat(blob: bytes, strict: bool = False) -> tuple[object, ...]:
    return _same(lambda: DatReader(io.BytesIO(blob), "fuzz.dat", strict=strict))


# -- fixtures and the shared recording -------------------------------------------------


@pytest.mark.parametrize("path", sorted(p for p in FIXTURES.iterdir() if p.is_file()),
                         ids=lambda p: p.name)
def test_fixture_files(path: Path) -> None:
    reading = _same(lambda: open_trace(str(path))[0])
    assert reading[0] or reading[1][1]  # type: ignore[index]  # events or problems: read


SYMS = ["on_each_cpu_cond_mask", "do_sync_core", "generic_smp_call_function_single_interrupt",
        "text_poke_bp_batch", "tracepoint_add_func", "smp_call_function_many_cond"]
COMMS = {10: "sh", 20: "spin", 30: "kworker/0:1-é"}
STACK = ("smp_call_function_many_cond", "text_poke_bp_batch", "tracepoint_add_func")


def _recs(cpu: int, n: int) -> list[Rec]:
    """Every kind of record the page walk meets, repeated so the caches get hits, with
    gaps that need time extends and stacks that land at page starts."""
    out: list[Rec] = []
    ts = 1_000_000_000 + cpu
    kinds = [
        ("csd_queue_cpu", {"cpu": 2, "callsite": "on_each_cpu_cond_mask+0x24",
                           "func": "do_sync_core", "csd": 0x1234}, STACK),
        ("ipi_send_cpumask", {"cpumask": (2, 3), "callsite": "on_each_cpu_cond_mask+0x24",
                              "callback": "generic_smp_call_function_single_interrupt+0x0"},
         None),
        ("print", {"buf": "PHASE p start"}, None),
        ("user_exit", {}, None), ("user_enter", {}, STACK[1:]),
        ("tlb_flush", {"pages": -1, "reason": 1}, None),
        ("sched_waking", {"pid": 5, "prio": 120, "target_cpu": 1}, None),
        ("print", {"buf": "y" * 150}, None),
        ("call_function_entry", {"vector": 252}, None),
    ]
    for i in range(n):
        name, fields, stack = kinds[i % len(kinds)]
        ts += 3_000_000_000 if i % 97 == 50 else 700 + i % 13
        out.append(Rec(ts, cpu, name, (10, 20, 30)[i % 3], fields, stack))
    return out


def _write_dat(n: int = 400, **kw: object) -> bytes:
    out = io.BytesIO()
    opts = DatOptions(symbols=SYMS, comms=COMMS, chunk_pages=2, **kw)  # type: ignore[arg-type]
    write_dat(out, {0: lambda: _recs(0, n), 1: lambda: _recs(1, n // 3), 3: lambda: _recs(3, n)},
              opts)
    return out.getvalue()


DAT_CASES = [(6, "none", 0, 0), (7, "none", 0, 0), (7, "zlib", 0, 0), (7, "zstd", 0, 0),
             (6, "none", 3, 5), (7, "zstd", 4, 3)]


@pytest.mark.parametrize(("version", "compression", "absolute", "padding"), DAT_CASES)
def test_synthetic_dat(version: int, compression: str, absolute: int, padding: int) -> None:
    blob = _write_dat(version=version, compression=compression, absolute_every=absolute,
                      padding_every=padding)
    events, facts, raised, stall = _dat(blob)
    assert raised is None and stall is None and facts[0] == []  # type: ignore[index]
    assert len(events) == 400 + 133 + 400  # type: ignore[arg-type]
    assert sum(e[6] is not None for e in events) > 100  # type: ignore[union-attr,index]


def test_synthetic_report_text() -> None:
    recs = sorted(_recs(0, 500) + _recs(2, 500), key=lambda r: (r.ts, r.cpu))
    data = "cpus=4\n" + "".join(report_line(r, COMMS[r.pid]) for r in recs)
    events, facts, raised, _ = _text(data)
    assert raised is None and facts[0] == [] and len(events) == 1000  # type: ignore[index,arg-type]


def test_shared_recording_dat(shared: Path) -> None:
    events, facts, raised, _ = _same(lambda: open_trace(str(shared / "trace.dat"))[0])
    assert raised is None and facts[0] == [] and len(events) > 250_000  # type: ignore[index,arg-type]


def test_shared_recording_report_text(shared: Path) -> None:
    events, facts, raised, _ = _same(lambda: open_trace(str(shared / "report.txt.xz"))[0])
    assert raised is None and facts[0] == [] and len(events) > 250_000  # type: ignore[index,arg-type]


def test_shared_report_text_damaged(shared: Path) -> None:
    """A slice of the real report (ending mid-stack, mid-line) with junk bytes poked in,
    read through the chunking of a file larger than one chunk."""
    with lzma.open(shared / "report.txt.xz", "rt", encoding="utf-8") as f:
        data = list(f.read(3 << 20))
    rnd = random.Random(7)
    for _ in range(3000):
        data[rnd.randrange(len(data))] = rnd.choice("-:[]().=> \t\n\r0é\xa0\x85")
    _text("".join(data))


# -- hand-picked lines: the corners of the regex port ------------------------------------

H = "            spin-183   [002]    19.168315: "
EDGE_LINES = [
    H + "user_exit:            ",
    "            spin-183     (    183) [002] d..1.    50.000000001: user_enter: ",
    "            spin-183 (  183) [002] d.h1. 50.1: user_enter: ",
    "            spin-183 (-------) [002] dNh2. 50.1: user_enter: ",
    "  spin-183 (1-2) [002] d.h1 50.1: user_enter: x",
    "  spin-183 (x) [002] d.h1 50.1: user_enter: x",
    "  spin-183 (12)[002] 50.1: user_enter: x",
    "  spin-183 [002] abcdefg 50.1: user_enter: x",
    "  spin-183 [002] abc 50.1: user_enter: x",
    "  spin-183 [002] 1234 50.1: user_enter: x",
    "  spin-183 [002] 12345678 50.1: user_enter: x",
    "  spin-183 [002] d.h1.50.1: user_enter: x",
    "  spin-183 [002] é.h1. 50.1: user_enter: x",
    "  spin-183 [002] d\xa0h1. 50.1: user_enter: x",
    "  a-b-c-d-183 [002] 50.1: user_enter: x",
    "  a-1-2 [3] 4.5: c-6 [7] 8.9: user_exit: ",
    "  a-1 [3] 4.5: b-2 [7] 8.9:user_exit: ",
    "  kworker/0:1-20-30 [000] 1.2: user_exit: ",
    "  --1 [000] 1.2: user_exit: ",
    "  - -1 [000] 1.2: user_exit: ",
    "-1 [000] 1.2: user_exit: ",
    "  x-1 [000] 1.2: user_exit",
    "  x-1 [000] 1.2: user_exit:",
    "  x-1 [000] 1.2:user_exit: ",
    "  x-1 [000] 1.2: : user_exit",
    "  x-1 [000] 1.2: user exit: ",
    "  x-1 [000] 1.2: user_exit\xa0: ",
    "  x-1 [000] 1.2: user_exit\x85: ",
    "  x-1 [000] 1.2: \xa0user_exit: ",
    "  x-1 [000] 1.2: user_exit: \r",
    "  x-1 [000] 1.2\r: user_exit: ",
    "  x-1\r [000] 1.2: user_exit: ",
    "\r  x-1 [000] 1.2: user_exit: ",
    "  x-1 [000] 1.: user_exit: ",
    "  x-1 [000] .2: user_exit: ",
    "  x-1 [000] 1.123: user_exit: ",
    "  x-1 [000] 1.123456: user_exit: ",
    "  x-1 [000] 1.123456789: user_exit: ",
    "  x-1 [000] 1.1234567891234: user_exit: ",
    "  x-1 [000] 18446744073709551616.5: user_exit: ",
    "  x-1 [000] 99999999999999999999.999999999: user_exit: ",
    "  x-1 [000] 999999999999999999999.999999999: user_exit: ",
    "  x-1 [000] 00000000000000000000000000000001.0: user_exit: ",
    "  x-1 [000] 1.2: <stack trace>",
    "  x-1 [000] 1.2: <stack trace >",
    "  x-1 [000] 1.2: <stack trace  >",
    "  x-1 [000] 1.2: <stack trace>junk after",
    "  x-1 [000] 1.2: <stack trac",
    "  x-1 [000] 1.2: <stack:x",
    "  x-1 [000] 1.2: kernel_stack: <stack trace >",
    "  x-1 [000] 1.2: kernel_stack:",
    "=> f (ffffffff81000000)",
    "   => f+0x1/0x2 [mod]",
    "\t=> é",
    "=>",
    " =",
    "=",
    "  x-1 [000] 1.2: print: tracing_mark_write: PHASE é start",
    "  x-1 [000] 1.2: tracing_mark_write: PHASE \xa0 end",
    "  x-1 [000] 1.2: csd_queue_cpu: cpu=two callsite=a func=b csd=0x1",
    "  x-1 [000] 1.2: ipi_send_cpumask: cpumask=00000000,0000000c callsite=a callback=b",
    "  x-1 [000] 1.2: tlb_flush: pages:-1 reason:remote shootdown (1)",
    "  x-1 [000] 1.2: sched_waking: comm=spin pid=183",
    "cpus=4",
    "version = 6",
    "CPU:1 [LOST 3 EVENTS]",
    "[LOST 5]",
    "# tracer: nop",
    "",
    "\x1c\x1d\x1e\x1f\x0b\x0c",
    "  x-1 [000] 1.2: user_exit: €",
    "  x-€ [000] 1.2: user_exit: ",
    "  x-1 [000] 1.2: user_\U0001d518: ",
    "  x-١٢ [٣] ٤.٥: user_exit: ",
]


@pytest.mark.parametrize("line", EDGE_LINES)
def test_edge_line(line: str) -> None:
    # the line alone, after an event on each CPU it may name, and before a stack
    before = "  a-9 [000] 0.5: user_exit: \n  a-9 [002] 0.5: csd_queue_cpu: cpu=2 callsite=a " \
             "func=b csd=0x1\n"
    after = "  a-9 [000] 0.6: <stack trace>\n => g (ffff)\n=> h+0x1/0x2\n"
    for data in (line + "\n", line, before + line + "\n" + after, before + after + line + "\n"):
        _text(data)
        _text(data.replace("cpus=4", "cpus=2") + "cpus=4\n" + data)


def test_all_edge_lines_together() -> None:
    _text("\n".join(EDGE_LINES * 3) + "\n")
    _text("\n".join(EDGE_LINES * 3) + "\n", strict=True)


def test_stacks_at_the_chunk_boundary() -> None:
    """Chunks are 1 MB of text cut before a trailing run of frames: a stack longer than a
    chunk continues into the next one; Latin-1 and wider chunks (the compiled scanner
    hands those to the reference) alternate."""
    line = "   sh-{}  [{:03d}] {}.{:06d}: csd_queue_cpu: cpu=2 callsite=a+0x1 func=b csd=0x{}\n"
    rnd = random.Random(3)
    parts = ["cpus=4\n"]
    size, i = 0, 0
    while size < 3 << 20:
        cpu = rnd.randrange(3)
        piece = line.format(i % 7, cpu, i // 1000, i % 1000, i % 5)
        if rnd.random() < 0.2:
            piece += f"   sh-1  [{cpu:03d}] 1.0: kernel_stack: <stack trace >\n"
            piece += "".join(f"{' ' * rnd.randrange(3)}=> f{j} (ffff)\n"
                             for j in range(rnd.randrange(1, 40)))
        if i == 9000:  # one stack longer than a chunk, straddling the first boundary
            piece += "   sh-1  [001] 9.0: <stack trace>\n" + "".join(
                f"=> g{j} é\n" for j in range(120_000))
        if i % 4000 == 100:
            piece += rnd.choice(["é junk ü\n", "€ wide\n", "=> orphan\n"])
        parts.append(piece)
        size += len(piece)
        i += 1
    events, facts, *_ = _text("".join(parts))
    assert max(len(e[6] or ()) for e in events) >= 120_000  # type: ignore[union-attr,index]
    assert facts[1] > 0  # type: ignore[index]


# -- hypothesis: text ---------------------------------------------------------------

_BODIES = [
    ("user_exit", ""), ("user_enter", "   "), ("call_function_entry", "vector=252"),
    ("csd_queue_cpu", "cpu=2 callsite=on_each_cpu_cond_mask+0x24 func=do_sync_core csd=0x1"),
    ("csd_queue_cpu", "cpu=two callsite=a func=b csd=0x1"),
    ("ipi_send_cpumask", "cpumask=2-3 callsite=a+0x1/0x2 callback=b+0x0"),
    ("ipi_send_cpumask", "cpumask=00000000,0000000c callsite=a callback=b"),
    ("ipi_send_cpu", "cpu=3 callsite=resched_cpu+0x6d/0x80 callback=0x0"),
    ("csd_function_entry", "func=do_sync_core, csd=0xff1d"), ("tlb_flush", "pages:-1 reason:x (1)"),
    ("tlb_flush", "pages:1"), ("print", "tracing_mark_write: PHASE é start"),
    ("tracing_mark_write", "PHASE x end"), ("sched_waking", "comm=spin pid=1 prio=120"),
    ("kernel_stack", "<stack trace >"), ("kernel_stack", "x"), ("x", "é\xa0"),
]
_COMMS = ["sh", "spin", "kworker/0:1", "Web Content", "a-b-c", "x--1", "é-ü", "<idle>", "",
          "a\xa0b", "1-2"]
_LAT = ["", "", "", "d.h1. ", "dNh2. ", "..... ", "d..1 ", "...1.  ", "abcdefg ", "ab ", "é.h1. "]
_TGID = ["", "", "", "(  123) ", "(-------) ", "( 4-5) ", "(x) ", "(1)"]
_SEC = st.one_of(st.integers(0, 10**6).map(str),
                 st.sampled_from(["9" * 20, "9" * 21, "1" * 30, "000012", "18446744073709551616"]))
_FRAC = st.text(alphabet="0123456789", min_size=1, max_size=12)
_BLANK = st.sampled_from([" ", " ", "  ", "\t", ""])


@st.composite
def _event_line(draw: st.DrawFn) -> str:
    name, body = draw(st.sampled_from(_BODIES))
    if draw(st.integers(0, 9)) == 0:
        name, body = "", draw(st.sampled_from(["<stack trace>", "<stack trace >"]))
    return (" " * draw(st.integers(0, 12)) + draw(st.sampled_from(_COMMS))
            + f"-{draw(st.integers(0, 99999))}" + draw(_BLANK) + draw(st.sampled_from(_TGID))
            + f"[{draw(st.integers(0, 4)):03d}]" + draw(_BLANK) + draw(st.sampled_from(_LAT))
            + draw(_SEC) + "." + draw(_FRAC) + ":" + draw(_BLANK)
            + (f"{name}:{draw(_BLANK)}{body}" if name else body))


_FRAME = st.builds(lambda lead, f: lead + "=> " + f, st.sampled_from(["", " ", "\t", "  "]),
                   st.sampled_from(["f (ffffffff81000000)", "g+0x1d/0x90 [mod]", "é", "", "=>"]))
_OTHER = st.one_of(st.sampled_from(["cpus=4", "version = 6", "# tracer: nop", "",
                                    "CPU:1 [LOST 3 EVENTS]", "[LOST 2]", "CPU 2 is empty"]),
                   st.text(alphabet="ab-:[]().=> \t\r0123456789é\xa0\x85\x1c€", max_size=40))
_LINES = st.lists(st.one_of(_event_line(), _event_line(), _event_line(), _FRAME, _FRAME,
                            _OTHER), max_size=30)
# junk poked in: the regex's own punctuation, blanks \s and \w of Latin-1, wide characters
_JUNK = st.one_of(st.sampled_from(list("-:[]().=>< \t\n\r0123456789é\xa0\x85\x1cüß²ª€")),
                  st.characters())
_EDITS = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]),
                            st.floats(0, 1), _JUNK), max_size=6)


def _edit(data: str, edits: list[tuple[str, float, str]]) -> str:
    chars = list(data)
    for op, at, c in edits:
        i = min(int(at * len(chars)), len(chars))
        if op == "insert":
            chars.insert(i, c)
        elif i < len(chars):
            if op == "delete":
                del chars[i]
            else:
                chars[i] = c
    return "".join(chars)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LINES, _EDITS, st.booleans(), st.booleans())
def test_text_fuzz(lines: list[str], edits: list[tuple[str, float, str]], newline: bool,
                   strict: bool) -> None:
    data = _edit("\n".join(lines) + ("\n" if newline else ""), edits)
    _text(data, strict=strict)


# -- hypothesis: trace.dat --------------------------------------------------------------

_SMALL: dict[tuple[int, int, int], bytes] = {}


def _small(version: int, absolute: int, padding: int) -> bytes:
    key = (version, absolute, padding)
    if key not in _SMALL:
        _SMALL[key] = _write_dat(200, version=version, compression="none",
                                 absolute_every=absolute, padding_every=padding)
    return _SMALL[key]


def _data_spans(blob: bytes) -> list[tuple[int, int]]:
    r = DatReader(io.BytesIO(blob), "t.dat")
    return [(off, size) for _cpu, off, size in r.cpu_data if size]


def _locate(spans: list[tuple[int, int]], k: int) -> tuple[int, int]:
    """The span holding byte `k` of the spans laid end to end, and `k` inside it."""
    for off, size in spans:
        if k < size:
            return off, k
        k -= size
    raise AssertionError(k)


_WORDS = st.one_of(
    st.integers(0, 2**32 - 1),
    # event headers: type_len 0 (length word follows), 1-28, padding, time extend, stamp
    st.builds(lambda tl, d: tl | d << 5, st.sampled_from([0, 1, 2, 5, 28, 29, 30, 31]),
              st.integers(0, 2**27 - 1)),
    st.sampled_from([0, 1, 2, 3, 4, 5, 0x7FF, 4080, 4096, 0x8000_0000, 0xFFFF_FFFF]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([(6, 0, 0), (7, 0, 0), (6, 3, 5), (7, 2, 3)]),
       st.lists(st.tuples(st.floats(0, 1), st.booleans(), _WORDS, st.integers(0, 255)),
                min_size=1, max_size=10),
       st.one_of(st.none(), st.floats(0, 1)), st.booleans())
def test_dat_fuzz(case: tuple[int, int, int], edits: list[tuple[float, bool, int, int]],
                  cut: float | None, strict: bool) -> None:
    """Byte and word mutations of the CPU data (page headers and records) of a small
    uncompressed trace.dat, optionally cut short. The metadata is left alone: its parsing
    is shared by both backends (and fuzzed in test_dat_reader)."""
    blob = bytearray(_small(*case))
    spans = _data_spans(bytes(blob))
    total = sum(size for _off, size in spans)
    for at, word, value, byte in edits:
        k = min(int(at * total), total - 1)
        off, k = _locate(spans, k)
        if word:
            i = off + (k & ~3)
            blob[i : i + 4] = struct.pack("<I", value)
        else:
            blob[off + k] = byte
    if cut is not None:
        blob = blob[: spans[0][0] + int(cut * (len(blob) - spans[0][0]))]
    _dat(bytes(blob), strict=strict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(0, 1), _WORDS), max_size=12),
       st.booleans(), st.sampled_from([0, 5, -(10**12), 2**63 - 1, -(2**63), 2**63]),
       st.integers(1, 3))
def test_page_walk_fuzz(edits: list[tuple[float, int]], big: bool, ts_offset: int,
                        blocks: int) -> None:
    """`_block` straight on mutated pages: both byte orders, time offsets at the ends of
    int64 (past them the reference runs for both), stacks carried across blocks."""
    base = _small(6, 3, 5)
    off, size = _data_spans(base)[-1]
    pages = bytearray(base[off : off + size])
    for at, value in edits:
        i = min(int(at * len(pages)), len(pages) - 4) & ~3
        pages[i : i + 4] = struct.pack("<I", value)
    ps = 4096
    chunks = [bytes(pages[i : i + ps * k]) for i, k in zip(range(0, len(pages), ps * 2),
                                                          (1, 2, 1), strict=False)][:blocks]

    def walk() -> _Walk:
        r = DatReader(io.BytesIO(base), "walk.dat")
        r.ts_offset = ts_offset
        if big:
            r.e = ">"
        return _Walk(r, chunks)

    _same(walk)


class _Walk:
    """A reader-shaped view of `PageDecoder._block` over given blocks of pages."""

    def __init__(self, r: DatReader, chunks: list[bytes]) -> None:
        self.r, self.chunks = r, chunks
        self.dec = PageDecoder(r)
        self.problems, self.errors = r.problems, r.errors

    @property
    def problem_count(self) -> int:
        return self.r.problem_count

    @property
    def lost_events(self) -> int:
        return self.r.lost_events

    def batches(self) -> Iterator[list[Event]]:
        prev = None
        for n, blob in enumerate(self.chunks):
            evs = self.dec._block(blob, n * len(blob), f" (block {n})", 3, prev)
            if evs:
                prev = evs[-1]
            yield evs
