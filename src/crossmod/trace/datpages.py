"""Ring-buffer page walking for `dat.DatReader`: the hot path of the binary reader.

Owns: turning one CPU's pages into `Event`s: the page header (offsets from the file's
``header_page``), event headers (type_len / time_delta, time extends, absolute time
stamps, padding), the ``common_type``/``common_pid`` fields (offsets from the event
formats), and attaching ``kernel_stack`` records to the event before them on the CPU.
It mirrors libtraceevent's ``kbuffer`` (``translate_data``): padding adds its delta, an
absolute time stamp keeps the running stamp's top 5 bits.

Each distinct record (its bytes: common header and payload) is decoded once, by `miss`,
and cached with what it decodes to; only events of `SCHEMA` get their fields decoded. The
page walk itself, where a cached record becomes an Event, is `_scan.walk_block` when the
compiled module is built, else `_walk_py`, its reference: one long function on purpose, as
in CPython a call per record would cost more than the work it does.

May import: the standard library and `crossmod.trace.events/layout/speedups`.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from crossmod.trace import layout as L
from crossmod.trace.events import MAX_CPUS, Event
from crossmod.trace.formats import EventFormat
from crossmod.trace.speedups import scan as _scan

if TYPE_CHECKING:
    from crossmod.trace.dat import DatReader

_EMPTY: dict[str, object] = {}  # the fields of events outside SCHEMA (shared, read-only)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


# rb_calculate_event_length() (kernel/trace/ring_buffer.c) pads a record's payload to the
# arch alignment (8 where RB_FORCE_8BYTE_ALIGNMENT), plus 4 for a 12-byte event: a payload
# longer than the format's size by more than this is a damaged length field
_RB_SLACK = 8


def _fixed_size(fmt: EventFormat) -> int | None:
    """The payload size of an event whose records all have one size (no ``__data_loc`` or
    flexible array; ftrace's own events, such as print and kernel_stack, vary), or None."""
    if fmt.system == "ftrace" or not fmt.fields:
        return None
    if any(f.data_loc or f.array == 0 for f in fmt.fields):
        return None
    return max(f.offset + f.size for f in fmt.fields)


def _bad_target(fields: dict[str, Any], limit: int) -> int | None:
    """The target CPU (``cpu`` or the highest of ``cpumask``) the file cannot have."""
    cpu = fields.get("cpu")
    if isinstance(cpu, int) and not 0 <= cpu < limit:
        return cpu
    mask = fields.get("cpumask")
    if mask and max(mask) >= limit:
        return max(mask)
    return None


class PageDecoder:
    """Per-file constants for page decoding, taken from the file's own descriptions."""

    def __init__(self, r: DatReader) -> None:
        self.r = r
        pf = r.page_fields
        try:
            self.ts_off = pf["timestamp"].offset
            self.commit_off, self.commit_size = pf["commit"].offset, pf["commit"].size
            self.data_off = pf["data"].offset
        except KeyError as exc:
            from crossmod.trace.events import TraceFormatError

            raise TraceFormatError(r.path, f"header_page lacks field {exc}") from None
        any_fmt = next(iter(r.formats.values()), None)
        ct = any_fmt.field("common_type") if any_fmt else None
        cp = any_fmt.field("common_pid") if any_fmt else None
        self.type_off = ct.offset if ct else 0
        self.type_fmt = r.e + ({1: "B", 2: "H", 4: "I"}.get(ct.size if ct else 2, "H"))
        self.pid_off = cp.offset if cp else 4
        ps = r.page_size
        if not (self.commit_size in (4, 8) and 0 <= self.ts_off <= ps - 8
                and 0 <= self.commit_off <= ps - self.commit_size and 0 <= self.data_off <= ps):
            from crossmod.trace.events import TraceFormatError

            raise TraceFormatError(r.path, "header_page fields do not fit a page of "
                                   f"{ps} bytes")
        # common_type and common_pid in one read (their offsets come from the formats)
        if self.type_off < self.pid_off:
            gap = self.pid_off - self.type_off - struct.calcsize(self.type_fmt[1:])
            head = struct.Struct(f"{self.type_fmt}{gap}xi")
            self._head_u, self._head_swap = head.unpack_from, False
        else:
            gap = self.type_off - self.pid_off - 4
            head = struct.Struct(f"{r.e}i{gap}x{self.type_fmt[1:]}")
            self._head_u, self._head_swap = head.unpack_from, True
        self._head_lo = min(self.type_off, self.pid_off)
        self._head_end = self._head_lo + head.size  # a record shorter than this is damaged
        self.names = {fid: f.name for fid, f in r.formats.items()}
        self._fixed = {fid: size for fid, f in r.formats.items()
                       if (size := _fixed_size(f)) is not None}
        self.decoders = r.decoders()
        self._stacks: dict[bytes, tuple[str, ...]] = {}
        # a record's bytes -> (name, pid, comm, fields), or (frames,) for a kernel_stack
        self._fields: dict[bytes, tuple[str, int, str, dict[str, Any]] | tuple[tuple[str, ...]]
                           ] = {}
        self._memo = _scan.LineCache() if _scan is not None else None  # in front of _fields
        self.stack_id, self.stack_size_off, self.stack_caller_off = -1, 0, 0
        for fid, f in r.formats.items():
            if f.name == "kernel_stack" and f.system == "ftrace":
                size_f, caller_f = f.field("size"), f.field("caller")
                if size_f and caller_f:
                    self.stack_id = fid
                    self.stack_size_off, self.stack_caller_off = size_f.offset, caller_f.offset

    def _stack(self, blob: bytes, data: int, end: int) -> tuple[str, ...]:
        r = self.r
        ls = r.long_size
        (n,) = struct.unpack_from(r.e + "i", blob, data + self.stack_size_off)
        start = data + self.stack_caller_off
        n = max(0, min(n, (end - start) // ls))
        raw = blob[start : start + n * ls]
        hit = self._stacks.get(raw)
        if hit is not None:
            return hit
        word = struct.Struct(r.e + ("Q" if ls == 8 else "I"))
        sentinel = (1 << (8 * ls)) - 1
        look = r.kallsyms.lookup
        frames = tuple(look(a, False) for (a,) in word.iter_unpack(raw) if a and a != sentinel)
        if len(self._stacks) < 1 << 14:  # distinct stacks are few; bound them anyway
            self._stacks[raw] = frames
        return frames

    def cpu_blocks(self, cpu: int, offset: int, size: int) -> Iterator[list[Event]]:
        """One CPU's events, a list per block of pages; stacks attached across blocks."""
        prev: Event | None = None
        for blob, foff, label in self.r.blocks(cpu, offset, size):
            events = self._block(blob, foff, label, cpu, prev)
            if events:
                prev = events[-1]
                yield events

    def _block(self, blob: bytes, foff: int, label: str, cpu: int, prev: Event | None
               ) -> list[Event]:
        r = self.r
        out: list[Event] = []
        lo, head_u, swap = self._head_lo, self._head_u, self._head_swap

        def problem(pos: int, what: str) -> None:
            r.problem(r.where(foff + pos) + label, what)

        def miss(data: int, nxt: int, pos: int, ts: int) -> None:
            """A record whose bytes are not in the cache: decode it, cache what it
            decodes to, append its event (or attach its stack)."""
            if nxt - data < self._head_end:
                problem(pos, f"CPU {cpu} record of {nxt - data} bytes is shorter than its header")
                return
            raw = blob[data:nxt]
            if swap:
                pid, etype = head_u(blob, data + lo)
            else:
                etype, pid = head_u(blob, data + lo)
            dec = self.decoders.get(etype)
            fcache = self._fields
            fixed = self._fixed.get(etype)
            if fixed is not None and nxt - data > fixed + _RB_SLACK:
                problem(pos, f"CPU {cpu} {self.names[etype]} record of {nxt - data} bytes, "
                        f"its format's {fixed}: a damaged length (what it covers is lost)")
                return
            if dec is None:
                if etype == self.stack_id:
                    try:
                        frames = self._stack(blob, data, nxt)
                    except struct.error:
                        problem(pos, f"CPU {cpu} kernel_stack record is too short")
                        return
                    if len(fcache) < 1 << 16:
                        fcache[raw] = (frames,)
                    target = out[-1] if out else prev
                    if target is not None and target.stack is None:
                        target.stack = frames
                    return
                name = self.names.get(etype)
                if name is None:
                    problem(pos, f"CPU {cpu} record of unknown event id {etype}")
                    return
                hit = (name, pid, r.cmdlines.get(pid, "<...>"), _EMPTY)
                if len(fcache) < 1 << 12:  # irrelevant payloads may all differ:
                    fcache[raw] = hit  # cache them only while the cache is small
            else:
                name = self.names[etype]
                try:
                    fields = dec.decode(blob, data, nxt)
                except (ValueError, struct.error) as exc:
                    problem(pos, f"CPU {cpu} {name}: {exc}")
                    return
                bad = _bad_target(fields, r.ncpus or MAX_CPUS)
                if bad is not None:
                    problem(pos, f"CPU {cpu} {name}: target CPU {bad} out of range (the file "
                            f"has CPUs 0-{(r.ncpus or MAX_CPUS) - 1})")
                    return
                hit = (name, pid, r.cmdlines.get(pid, "<...>"), fields)
                if len(fcache) < 1 << 16:
                    fcache[raw] = hit
            out.append(Event(ts, cpu, hit[1], hit[2], hit[0], hit[3]))

        params = (r.page_size, self.ts_off, self.commit_off, self.commit_size, self.data_off,
                  r.e == ">", r.ts_offset, prev)
        if _scan is not None and _INT64_MIN <= r.ts_offset <= _INT64_MAX:
            r.lost_events += _scan.walk_block(blob, cpu, params, self._fields, self._memo, out,
                                              miss, problem)
        else:
            r.lost_events += self._walk_py(blob, cpu, params, out, miss, problem)
        return out

    def _walk_py(self, blob: bytes, cpu: int, params: tuple[int, int, int, int, int, bool,
                 int, Event | None], out: list[Event], miss: Callable[[int, int, int, int],
                 None], problem: Callable[[int, str], None]) -> int:
        """Walk the pages of `blob` (the reference `_scan.walk_block` is ported from):
        a record already in the cache becomes an Event here, any other goes to `miss`.
        Returns the number of pages flagged with lost events."""
        ps, ts_off, commit_off, commit_size, data_off, big, ts_add, prev = params
        e = ">" if big else "<"
        u64 = struct.Struct(e + "Q").unpack_from
        commit_u = struct.Struct(e + ("Q" if commit_size == 8 else "I")).unpack_from
        # event headers read as an array of host-order u32 (records are 4-byte aligned):
        # indexing is several times cheaper than struct.unpack_from per header
        if big != (sys.byteorder == "big"):
            arr = array("I", blob)
            arr.byteswap()
            words = memoryview(arr)
        else:
            words = memoryview(blob).cast("I")
        fcache = self._fields
        append = out.append
        lost = 0
        for p in range(0, len(blob) - ps + 1, ps):
            ts = u64(blob, p + ts_off)[0] + ts_add  # ts carries the file's offset
            flags = commit_u(blob, p + commit_off)[0]
            pos = p + data_off
            end = pos + (flags & L.COMMIT_MASK)
            if flags & L.MISSING_EVENTS:
                lost += 1
            if end > p + ps:
                problem(p, f"CPU {cpu} page commit size {flags & L.COMMIT_MASK} exceeds page")
                continue
            while pos < end:
                w = words[pos >> 2]
                if big:
                    tl, delta = w >> 27, w & 0x7FFFFFF
                else:
                    tl, delta = w & 31, w >> 5
                if 0 < tl <= 28:
                    data = pos + 4
                    nxt = data + (tl << 2)
                else:
                    if ((pos >> 2) + 1) * 4 + 4 > end:  # the second word is off the page
                        problem(pos, f"CPU {cpu} record header runs past the page")
                        break
                    w1 = words[(pos >> 2) + 1]
                    if tl == 0:
                        data = pos + 8
                        nxt = data + ((w1 - 1) & ~3)
                        if nxt <= data:
                            nxt = end + 1  # a length of 0: reported just below
                    elif tl == L.TYPE_TIME_EXTEND:
                        ts += (w1 << L.TS_SHIFT) + delta
                        pos += 8
                        continue
                    elif tl == L.TYPE_TIME_STAMP:
                        ts = (((w1 << L.TS_SHIFT) + delta) | ((ts - ts_add) & L.TS_MSB)) + ts_add
                        pos += 8
                        continue
                    else:  # padding: a discarded event keeps its delta; 0 = page tail
                        if not delta:
                            break
                        ts += delta
                        pos += 4 + w1
                        continue
                ts += delta
                if nxt > end:
                    problem(pos, f"CPU {cpu} record length runs past the page")
                    break
                # a record's bytes (common header and payload) decode to the same name,
                # pid and fields every time they recur, and traces repeat a few payloads
                # millions of times: each distinct record is decoded once (by `miss`); the
                # fields dict is shared by the events that carry it (fields are read-only)
                hit = fcache.get(blob[data:nxt])
                if hit is None:
                    miss(data, nxt, pos, ts)
                elif len(hit) == 4:
                    append(Event(ts, cpu, hit[1], hit[2], hit[0], hit[3]))
                else:  # a kernel_stack record seen before
                    target = out[-1] if out else prev
                    if target is not None and target.stack is None:
                        target.stack = hit[0]
                pos = nxt
        return lost
