"""Ring-buffer page walking for `dat.DatReader`: the hot path of the binary reader.

Owns: turning one CPU's pages into `Event`s: the page header (offsets from the file's
``header_page``), event headers (type_len / time_delta, time extends, absolute time
stamps, padding), the ``common_type``/``common_pid`` fields (offsets from the event
formats), and attaching ``kernel_stack`` records to the event before them on the CPU.
It mirrors libtraceevent's ``kbuffer`` (``translate_data``): padding adds its delta, an
absolute time stamp keeps the running stamp's top 5 bits.

Irrelevant events cost one header decode and a dict miss; only events of `SCHEMA` get
their fields decoded. `_block` is one long function on purpose: it is the hot loop, and in
CPython a call per record would cost more than the work it does.

May import: the standard library and `crossmod.trace.events/layout`.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING

from crossmod.trace import layout as L
from crossmod.trace.events import Event

if TYPE_CHECKING:
    from crossmod.trace.dat import DatReader


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
        self.names = {fid: f.name for fid, f in r.formats.items()}
        self.decoders = r.decoders()
        self._stacks: dict[bytes, tuple[str, ...]] = {}
        self._fields: dict[bytes, tuple[str, int, str, dict[str, object]]] = {}
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
        e = r.e
        ps = r.page_size
        u64 = struct.Struct(e + "Q").unpack_from
        commit_u = struct.Struct(e + ("Q" if self.commit_size == 8 else "I")).unpack_from
        # common_type and common_pid in one read (their offsets come from the formats)
        lo = min(self.type_off, self.pid_off)
        if self.type_off < self.pid_off:
            gap = self.pid_off - self.type_off - struct.calcsize(self.type_fmt[1:])
            head_u = struct.Struct(f"{self.type_fmt}{gap}xi").unpack_from
            swap = False
        else:
            gap = self.type_off - self.pid_off - 4
            head_u = struct.Struct(f"{e}i{gap}x{self.type_fmt[1:]}").unpack_from
            swap = True
        ts_off, commit_off, data_off = self.ts_off, self.commit_off, self.data_off
        decoders, names, cmdlines = self.decoders, self.names, r.cmdlines
        stack_id, ts_add = self.stack_id, r.ts_offset
        big = e == ">"
        # event headers read as an array of host-order u32 (records are 4-byte aligned):
        # indexing is several times cheaper than struct.unpack_from per header
        if big != (sys.byteorder == "big"):
            arr = array("I", blob)
            arr.byteswap()
            words = memoryview(arr)
        else:
            words = memoryview(blob).cast("I")
        fcache = self._fields
        out: list[Event] = []
        append = out.append
        for p in range(0, len(blob) - ps + 1, ps):
            ts = u64(blob, p + ts_off)[0] + ts_add  # ts carries the file's offset
            flags = commit_u(blob, p + commit_off)[0]
            pos = p + data_off
            end = pos + (flags & L.COMMIT_MASK)
            if flags & L.MISSING_EVENTS:
                r.lost_events += 1
            if end > p + ps:
                r.problem(r.where(foff + p) + label,
                          f"CPU {cpu} page commit size {flags & L.COMMIT_MASK} exceeds page")
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
                elif tl == 0:
                    data = pos + 8
                    nxt = data + ((words[(pos >> 2) + 1] - 1) & ~3)
                    if nxt <= data:
                        nxt = end + 1  # a length of 0: reported just below
                elif tl == L.TYPE_TIME_EXTEND:
                    ts += (words[(pos >> 2) + 1] << L.TS_SHIFT) + delta
                    pos += 8
                    continue
                elif tl == L.TYPE_TIME_STAMP:
                    ts = (((words[(pos >> 2) + 1] << L.TS_SHIFT) + delta)
                          | ((ts - ts_add) & L.TS_MSB)) + ts_add
                    pos += 8
                    continue
                else:  # padding: a discarded event keeps its delta; delta 0 = page tail
                    if not delta:
                        break
                    ts += delta
                    pos += 4 + words[(pos >> 2) + 1]
                    continue
                ts += delta
                if nxt > end:
                    r.problem(r.where(foff + pos) + label,
                              f"CPU {cpu} record length runs past the page")
                    break
                # a record's bytes (common header and payload) decode to the same name,
                # pid and fields every time they recur, and traces repeat a few payloads
                # millions of times: decode each distinct record once; the fields dict is
                # shared by the events that carry it (readers' fields are read-only)
                raw = blob[data:nxt]
                hit = fcache.get(raw)
                if hit is None:
                    if swap:
                        pid, etype = head_u(blob, data + lo)
                    else:
                        etype, pid = head_u(blob, data + lo)
                    dec = decoders.get(etype)
                    if dec is None:
                        if etype == stack_id:
                            target = out[-1] if out else prev
                            if target is not None and target.stack is None:
                                target.stack = self._stack(blob, data, nxt)
                            pos = nxt
                            continue
                        name = names.get(etype)
                        if name is None:
                            r.problem(r.where(foff + pos) + label,
                                      f"CPU {cpu} record of unknown event id {etype}")
                            pos = nxt
                            continue
                        hit = (name, pid, cmdlines.get(pid, "<...>"), {})
                        if len(fcache) < 1 << 12:  # irrelevant payloads may all differ:
                            fcache[raw] = hit  # cache them only while the cache is small
                    else:
                        name = names[etype]
                        try:
                            fields = dec.decode(blob, data, nxt)
                        except (ValueError, struct.error) as exc:
                            r.problem(r.where(foff + pos) + label, f"CPU {cpu} {name}: {exc}")
                            pos = nxt
                            continue
                        hit = (name, pid, cmdlines.get(pid, "<...>"), fields)
                        if len(fcache) < 1 << 16:
                            fcache[raw] = hit
                append(Event(ts, cpu, hit[1], hit[2], hit[0], hit[3]))
                pos = nxt
        return out
