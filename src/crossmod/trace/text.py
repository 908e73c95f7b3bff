"""Text trace reader: ``trace-cmd report`` output and raw tracefs ``trace``/``trace_pipe``.

Owns: splitting lines into the common header (comm-pid, optional tgid, [cpu], optional
latency flags, seconds.fraction) and the event, parsing the fields of `events.SCHEMA`
events from their printed form, and attaching stacks (``kernel_stack: <stack trace >``
or ``<stack trace>``, then ``=> frame`` lines) to the event before them on the same CPU.
Events are yielded in file order: an event waits in a small queue only while it is the
latest on its CPU (a stack may still follow it), so memory stays bounded. The text is
scanned a chunk (about 1 MB of whole lines) at a time, by the compiled `_scan.scan_chunk`
when it is built, else by `_scan_chunk_py`, its reference: one regular expression (a whole
stack is one match) and one long loop on purpose, the hot path. An ASCII chunk without CR
reaches the compiled scanner as the bytes read, undecoded.

Bad input: a line that is neither an event, a stack frame nor a known header line, or an
event of `SCHEMA` whose fields do not parse, is recorded in `problems` with its line
number (raised at once when ``strict``) and the rest is still read; so is an event on, or
aimed at, a CPU the trace cannot have (its ``cpus=``/``#P:`` header bounds them), and a line
longer than `_MAX_LINE` (dropped as it streams, never held). The reader never raises
anything but `TraceFormatError`.

Past 400 lines on purpose: the scanner's reference (`_scan_chunk_py`) and the callbacks the
compiled port calls are one unit with `_scan.c`, kept side by side so they stay equal.

May import: the standard library and `crossmod.trace.events/speedups`.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Generator, Iterable, Iterator
from itertools import chain, islice
from typing import Any, AnyStr, Protocol, runtime_checkable

from crossmod.trace.events import (
    MAX_CPUS,
    SCHEMA,
    Event,
    TraceFormatError,
    frame_name,
    parse_cpulist,
)
from crossmod.trace.speedups import STACK as _STACK
from crossmod.trace.speedups import scan as _scan

MAX_PROBLEMS = 100
_HOLD = 4096  # events held back at most while waiting for a possible stack

# the common header "comm-pid [(tgid)] [cpu]" is one group, parsed once per distinct text
_HEAD = r"[^\n]*?-\d++[ \t]++(?:\([ \t]*[\d-]+\)[ \t]+)?\[\d++\]"
_EVENT = (
    r"(?P<head>" + _HEAD + r")[ \t]++(?:[\w.]{4,6}[ \t]+)?(?P<sec>\d++)\.(?P<frac>\d++):[ \t]++"
    r"(?:<stack trace ?>[^\n]*+|(?P<body>[^\s:]++:[^\n]*+))\n"
)
_HEAD_PARTS = re.compile(
    r"[ \t]*+(?P<comm>[^\n]*?)-(?P<pid>\d++)[ \t]++(?:\([ \t]*[\d-]+\)[ \t]+)?\[(?P<cpu>\d++)\]"
)
# One match per line, except that a run of stack-frame lines is one match: the C regex
# engine walks the frames, Python sees one match per stack. Possessive quantifiers keep
# junk lines from backtracking; the leading blanks of a line are skipped once for both
# the frame and the event alternatives (a line that is neither is `other`, whole).
_CHUNK = re.compile(
    r"[ \t]*+(?:(?P<frames>=>[^\n]*+\n(?:[ \t]*+=>[^\n]*+\n)*+)|" + _EVENT
    + r")|(?P<other>[^\n]*\n)"
)
_CHUNK_CHARS = 1 << 20
# No trace line is near this long (the kernel prints an event into one trace_seq page):
# a longer run without a newline is damage, skipped and reported, not held in memory.
_MAX_LINE = 1 << 20
_LONG = "\ufffe long line "  # stands for a skipped long line in the text scanned
_MAX_SEC_DIGITS = 20  # 10**20 s of trace clock is junk, and int() refuses 4300 digits
_EMPTY: dict[str, object] = {}  # the fields of events outside SCHEMA (shared, read-only)
_PARSED = frozenset(k for k, v in SCHEMA.items() if v) | {"print"}
_HEADER = re.compile(
    r"\s*(#|cpus=\d+|version = \d+|CPU \d+ is empty|CPU:\s*\d+ \[LOST|\[LOST|$)"
)
_NCPUS = re.compile(r"cpus=(\d{1,5})\s*$|#.*#P:(\d{1,5})\s*$")
_KV = re.compile(r"(\w+)[=:]\s*(\([^)]*\)|\S*)")


def _sym(v: str) -> str:
    """Drop what only raw tracefs prints after ``%pS``: the ``/0xsize`` and ``[module]``."""
    slash = v.find("/0x")
    return v[:slash] if slash > 0 else v


def _cut_before_frames(piece: AnyStr, cut: int) -> int:
    """Move a chunk cut back before a trailing run of ``=>`` lines, so a stack usually
    stays in one chunk; a piece that is all frames is cut where it was (the reader then
    continues the stack into the next chunk)."""
    nl, blanks, arrow = ("\n", " \t", "=>") if isinstance(piece, str) else (b"\n", b" \t", b"=>")
    end = cut
    while cut > 0:
        start = piece.rfind(nl, 0, cut - 1) + 1
        if piece[start:cut].lstrip(blanks)[:2] != arrow:
            return cut
        if start == 0:
            return end
        cut = start
    return end


def _cpus(v: str, hexmask: bool) -> tuple[int, ...]:
    """A printed cpumask. The kernel prints ``%*pb``, a hex bitmap in 32-bit groups
    (``00000000,0000000c``); libtraceevent (``trace-cmd report``) prints a list (``2-3``).
    A bare ``3`` means CPU 3 in a report and CPUs 0-1 in tracefs, hence `hexmask`."""
    if not hexmask:
        try:
            return parse_cpulist(v)
        except ValueError:
            pass
    digits = v.replace(",", "")
    try:
        if not digits or len(digits) > 4096:
            raise ValueError
        mask = int(digits, 16)
    except ValueError:
        if hexmask and "-" in v:  # not hex, but a list: a report's line without its header
            try:
                return parse_cpulist(v)
            except ValueError:
                pass
        raise ValueError(f"cpumask {v[:40]!r} is neither a CPU list nor a hex bitmap"
                         ) from None
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def _parse_fields(name: str, rest: str, hexmask: bool = False) -> dict[str, object]:
    """Fields of a `SCHEMA` event from its printed form; ValueError if they do not parse."""
    schema = SCHEMA[name]
    if name == "print":
        # trace-cmd prints "tracing_mark_write: text"; tracefs names the event after the ip
        rest = rest.strip()
        head, sep, tail = rest.partition(": ")
        return {"buf": (tail if sep and " " not in head else rest).rstrip()}
    if not schema:
        return {}
    if name == "tlb_flush":  # "pages:%ld reason:%s (%d)": the number is in the parentheses
        pages = rest.partition("pages:")[2].split(None, 1)
        lp, rp = rest.rfind("("), rest.rfind(")")
        if not pages or not 0 <= lp < rp:
            raise ValueError(f"tlb_flush: cannot read {rest.strip()[:60]!r}")
        try:
            return {"pages": int(pages[0]), "reason": int(rest[lp + 1 : rp])}
        except ValueError:
            raise ValueError(f"tlb_flush: cannot read {rest.strip()[:60]!r}") from None
    raw = dict(_KV.findall(rest))
    out: dict[str, object] = {}
    for key, typ in schema.items():
        v = raw.get(key)
        if v is not None:
            v = v.rstrip(",")
        if v is None:
            raise ValueError(f"{name}: no field {key!r} in {rest.strip()[:60]!r}")
        if typ is int:
            try:
                out[key] = int(v, 16) if v.startswith("0x") else int(v)
            except ValueError:
                raise ValueError(f"{name}: field {key}={v[:40]!r} is not a number") from None
        elif typ is tuple:
            out[key] = _cpus(v, hexmask)
        else:
            out[key] = _sym(v)
    return out


@runtime_checkable
class ByteSource(Protocol):
    """Undecoded text read in large pieces (what `source.open_trace` gives a reader)."""

    def read_bytes(self, n: int) -> bytes:
        """Up to `n` bytes; b"" only at the end."""
        ...


class TextReader:
    """Iterate `Event`s of a text trace given as lines (a file object or any iterable), or
    read from a `ByteSource`."""

    def __init__(self, lines: Iterable[str] | ByteSource, path: str = "trace.txt", *,
                 strict: bool = False) -> None:
        self.lines, self.path, self.strict = lines, path, strict
        self.problems: list[TraceFormatError] = []
        self.problem_count = 0
        self.errors: list[TraceFormatError] = []
        self.lost_events = 0
        self.line_count = 0
        self.events_read = 0
        self.ncpus: int | None = None  # from a "cpus=N" or "#P:N" header line
        self.head = b""  # the first bytes read, to say what a file with no events held
        self.size = 0  # bytes (or characters, from a source of str) read
        self.long_lines = 0
        self._stacks: dict[str, tuple[str, ...]] = {}
        # raw tracefs text unless a trace-cmd report header says otherwise
        self.hexmask = True
        # "name: fields" text of an event -> (name, fields), or _STACK for a stack line
        self._bodies: dict[str, tuple[str, dict[str, object]] | object] = {"": _STACK}
        # the compiled scanner's memos in front of the header and body caches
        self._memos = tuple(_scan.LineCache() for _ in range(3)) if _scan is not None else ()

    @classmethod
    def from_path(cls, path: str, *, strict: bool = False) -> TextReader:
        """A plain-text file (`source.open_trace` also handles compressed ones)."""
        return cls(open(path, encoding="utf-8", errors="replace"), path,
                   strict=strict)

    def problem(self, lineno: int, what: str) -> None:
        self.warn(TraceFormatError(f"{self.path}:{lineno}", what))

    def warn(self, err: TraceFormatError) -> None:
        """A problem read past (raised at once when ``strict``)."""
        if self.strict:
            raise err
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(err)

    def describe(self) -> str:
        """What the input looked like, for a file in which no event was found."""
        head = self.head
        if not self.size:
            return ("no text could be decoded from it (see the error above)" if self.errors
                    else "it is empty (0 bytes)")
        if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (
                len(head) >= 8 and head[1::2].count(0) + head[0::2].count(0) >= len(head) // 3):
            return ("it is UTF-16 text; tracefs and trace-cmd write UTF-8 (convert it: "
                    "iconv -f UTF-16 -t UTF-8)")
        text = head.decode("utf-8", "replace")
        junk = sum(1 for ch in text if ch == "\ufffd" or (ch < " " and ch not in "\t\n\r\f\v"))
        if junk * 10 > len(text):
            return (f"it is binary data (it starts {head[:8].hex(' ')}), neither a trace.dat "
                    "nor trace text")
        if self.long_lines and self.line_count <= self.long_lines:
            return (f"{self.size:,} bytes without a line break of their own: not trace text")
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        if self.problem_count:
            return (f"{self.line_count:,} line(s) of text, none of them a trace event "
                    f"(the first: {first.strip()[:50]!r})")
        return f"{self.line_count:,} header line(s) and no event"

    def _pieces(self) -> Iterator[str | bytes]:
        """The text as it comes, in large pieces. From a source that offers ``read_bytes``
        (`source.open_trace` does), a piece that is ASCII without CR is passed on as
        bytes, undecoded (the compiled scanner reads them as they are); any other piece,
        and every one after it, is decoded as ``TextIOWrapper(encoding="utf-8",
        errors="replace", newline=None)`` would."""
        src = self.lines
        if not isinstance(src, ByteSource):
            read = getattr(src, "read", None)
            if read is not None:
                texts = iter(lambda: read(_CHUNK_CHARS), "")
            else:
                lines = iter(src)
                texts = iter(lambda: "".join(islice(lines, 8192)), "")
            for text in texts:
                if not self.size:
                    self.head = text[:512].encode("utf-8", "replace")
                self.size += len(text)
                yield text
            return
        read_bytes = src.read_bytes
        dec: io.IncrementalNewlineDecoder | None = None
        while piece := read_bytes(_CHUNK_CHARS):
            if not self.size:
                self.head = piece[:512]
            self.size += len(piece)
            if dec is None and piece.isascii() and b"\r" not in piece:
                yield piece
                continue
            if dec is None:
                dec = io.IncrementalNewlineDecoder(
                    codecs.getincrementaldecoder("utf-8")("replace"), translate=True)
            yield dec.decode(piece)
        if dec is not None:
            yield dec.decode(b"", final=True)

    def _chunks(self) -> Iterator[str | bytes]:
        """The text in pieces of whole lines, each ending in a newline (str, or ASCII
        bytes where `_pieces` gave bytes)."""
        carry: str | bytes = ""
        skipped = 0  # characters of a too long line dropped so far
        for piece in self._pieces():
            if not piece:
                continue
            # the carried line takes the piece's class (bytes until the first decoded piece)
            if isinstance(piece, str):
                text = (carry.decode("ascii") if isinstance(carry, bytes) else carry) + piece
                carry, skipped = yield from self._whole_lines(text, "\n", skipped)
            else:
                data = (carry.encode() if isinstance(carry, str) else carry) + piece
                carry, skipped = yield from self._whole_lines(data, b"\n", skipped)
        if skipped:
            yield self._long_line(skipped)
        elif carry:
            yield carry + "\n" if isinstance(carry, str) else carry + b"\n"

    def _whole_lines(self, piece: AnyStr, nl: AnyStr, skipped: int
                     ) -> Generator[str | AnyStr, None, tuple[AnyStr, int]]:
        """`_chunks` for one piece (the line carried from the last one in front): yield
        its whole lines; the line it ends inside, and the new `skipped`."""
        if skipped:  # the rest of a too long line, up to its newline, is dropped too
            first = piece.find(nl)
            skipped += len(piece) if first < 0 else first
            if first < 0:
                return piece[:0], skipped
            yield self._long_line(skipped)
            skipped, piece = 0, piece[first + 1 :]
        cut = _cut_before_frames(piece, piece.rfind(nl) + 1)
        carry = piece[cut:]
        if cut:
            yield piece[:cut]
        if len(carry) > _MAX_LINE and carry.find(nl) < 0:
            skipped, carry = len(carry), carry[:0]
        return carry, skipped

    def _long_line(self, n: int) -> str:
        """The line that stands for a dropped line of `n` characters (`_other` reports it)."""
        self.long_lines += 1
        return f"{_LONG}{n}\n"

    def __iter__(self) -> Iterator[Event]:
        return chain.from_iterable(self.batches())

    def batches(self) -> Iterator[list[Event]]:
        """The events in file order, a list at a time (what `Analysis.run` reads)."""
        # Events are yielded a chunk at a time, in file order. The latest event of each
        # CPU may still get a stack from a later line, so the first of those and all
        # after it are held back to the next chunk (at most _HOLD of them).
        evs: list[Event] = []
        latest: dict[int, Event] = {}  # each CPU's latest event: a stack attaches to it
        held: dict[int, int] = {}  # CPU -> index in evs of its latest event, if held
        # line number of the current match; the event a <stack trace> line just claimed;
        # whether a stack cut by the chunk boundary continues in the next chunk
        state: list[Any] = [0, None, False]
        heads: dict[str, tuple[str, int, int]] = {}

        def head(text: str, lineno: int) -> tuple[str, int, int] | None:
            m = _HEAD_PARTS.fullmatch(text)
            assert m is not None  # `text` matched _HEAD, which _HEAD_PARTS splits
            pid, cpu = m["pid"], m["cpu"]
            # a CPU number indexes per-CPU lists: a damaged one must not allocate millions
            if len(cpu) > 6 or int(cpu) >= (self.ncpus or MAX_CPUS):
                self.problem(lineno, f"{self._out_of_range(cpu)} in {text.strip()[:60]!r}")
                return None
            if len(pid) > 10:
                self.problem(lineno, f"pid out of range in {text.strip()[:60]!r}")
                return None
            hit = (m["comm"].strip(), int(pid), int(cpu))
            if len(heads) < 1 << 16:
                heads[text] = hit
            return hit

        ctx = (heads, self._bodies, self._stacks, head, self._body, self._frames, self._other,
               self.problem, *self._memos)
        for chunk in self._chunks():
            if _scan is None or _scan.scan_chunk(chunk, state, evs, held, latest,
                                                 ctx) is NotImplemented:
                if isinstance(chunk, bytes):
                    chunk = chunk.decode("ascii")
                self._scan_chunk_py(chunk, state, evs, held, latest, ctx)
            cut = min(held.values(), default=len(evs))
            if len(evs) - cut > _HOLD:
                cut = len(evs) - _HOLD
                keep = set(held.values())
                while cut < len(evs) and cut not in keep:
                    cut += 1
            if cut:
                self.events_read += cut
                yield evs[:cut]
                evs = evs[cut:]
                held = {c: i - cut for c, i in held.items() if i >= cut}
        self.line_count = state[0]
        if evs:
            self.events_read += len(evs)
            yield evs

    @staticmethod
    def _scan_chunk_py(chunk: str, state: list[Any], evs: list[Event],
                       held: dict[int, int], latest: dict[int, Event], ctx: tuple) -> None:
        """Turn one chunk's lines into events appended to `evs` (the reference
        `_scan.scan_chunk` is ported from; one long loop on purpose, it is the hot path).

        What is already in the caches (`heads`, `bodies`, `stacks` in `ctx`) is used
        directly; anything else goes to the reader's methods in `ctx`, which parse it,
        cache it and report problems."""
        heads, bodies, stacks, head_fn, body_fn, frames_fn, other_fn, problem = ctx[:8]
        lineno, pending, extend = state
        append = evs.append
        try:
            # findall builds the group tuples in C; line numbers are counted alongside
            for g in _CHUNK.findall(chunk):
                frames = g[0]
                if frames:
                    lineno += frames.count("\n")
                    if pending is None:
                        problem(lineno, "stack frame without a <stack trace> line")
                    elif extend or pending.stack is None:
                        got = stacks.get(frames) or frames_fn(frames)
                        pending.stack = pending.stack + got if extend and pending.stack else got
                    # a stack cut by the chunk boundary continues in the next chunk
                    extend = pending is not None and chunk.endswith(frames)
                    if not extend:
                        pending = None
                    continue
                extend = False
                lineno += 1
                pending = None
                _f, headtext, sec, frac, body, other = g
                if other:
                    other_fn(lineno, other)
                    continue
                hd = heads.get(headtext) or head_fn(headtext, lineno)
                if hd is None:
                    continue
                # "name: fields" texts repeat (same callsites, callbacks, csd addresses):
                # each distinct one is parsed once; events with the same text share the
                # fields dict (readers' fields are read-only). A stack line has body ""
                hit = bodies.get(body)
                if hit is None:
                    hit = body_fn(body, lineno)
                    if hit is None:
                        continue
                if hit is _STACK:
                    pending = latest.get(hd[2])
                    continue
                name, fields = hit
                if len(sec) > _MAX_SEC_DIGITS:
                    problem(lineno, f"time stamp {sec[:24]}... out of range")
                    continue
                ts = int(sec) * 1_000_000_000 + int((frac + "00000000")[:9])
                cpu = hd[2]
                ev = Event(ts, cpu, hd[1], hd[0], name, fields)
                held[cpu] = len(evs)
                latest[cpu] = ev
                append(ev)
        finally:
            state[:] = [lineno, pending, extend]

    def _body(self, body: str, lineno: int) -> tuple[str, dict[str, object]] | object | None:
        """(name, fields) of an event's "name: fields" text, _STACK for a stack record,
        None (and a problem) if the fields of a `SCHEMA` event do not parse."""
        name, _, rest = body.partition(":")
        if rest[:1] in (" ", "\t"):
            rest = rest[1:]
        if name == "kernel_stack":
            return _STACK
        if name == "tracing_mark_write":  # raw tracefs names print after its ip
            name, rest = "print", "tracing_mark_write: " + rest
        if name not in _PARSED:
            hit = (name, _EMPTY)
            if len(self._bodies) < 1 << 12:  # other events' texts may all differ:
                self._bodies[body] = hit  # cache them only while the cache is small
            return hit
        try:
            fields = _parse_fields(name, rest, self.hexmask)
            self._check_targets(name, fields)
        except ValueError as exc:
            self.problem(lineno, str(exc))
            return None
        hit = (name, fields)
        if len(self._bodies) < 1 << 16:
            self._bodies[body] = hit
        return hit

    def _out_of_range(self, cpu: object) -> str:
        text = str(cpu)
        text = text if len(text) <= 12 else text[:12] + "..."
        if self.ncpus:
            return f"CPU {text} out of range (the trace has CPUs 0-{self.ncpus - 1})"
        return f"CPU {text} out of range"

    def _check_targets(self, name: str, fields: dict[str, Any]) -> None:
        """A target CPU the trace cannot have is damage: the event is skipped, reported."""
        limit = self.ncpus or MAX_CPUS
        cpu = fields.get("cpu")
        if isinstance(cpu, int) and not 0 <= cpu < limit:
            raise ValueError(f"{name}: target {self._out_of_range(cpu)}")
        mask = fields.get("cpumask")
        if mask and max(mask) >= limit:
            raise ValueError(f"{name}: cpumask names "
                             f"{self._out_of_range(max(mask))}")

    def _frames(self, raw: str) -> tuple[str, ...]:
        key = raw
        hit = self._stacks.get(key)
        if hit is None:
            hit = tuple(frame_name(f) for f in raw.splitlines())
            if len(self._stacks) < 1 << 14:  # distinct stacks are few; bound them anyway
                self._stacks[key] = hit
        return hit

    def _other(self, lineno: int, line: str) -> None:
        if line.startswith(_LONG):
            self.problem(lineno, f"a line of {int(line[len(_LONG):]):,} characters, longer "
                         "than any trace line: skipped")
            return
        if self.ncpus is None and (m := _NCPUS.match(line)):
            self.ncpus = int(m[1] or m[2])
        if line.startswith(("cpus=", "version =")) and self.hexmask:
            self.hexmask = False  # trace-cmd report: cpumasks are lists from here on
            self._bodies.clear()
            self._bodies[""] = _STACK
            for memo in self._memos:
                memo.clear()
        if _HEADER.match(line):
            if "LOST" in line:
                n = re.search(r"LOST (\d+)", line)
                self.lost_events += int(n[1]) if n else 1
            return
        self.problem(lineno, f"unparseable line {line.strip()[:60]!r}")


