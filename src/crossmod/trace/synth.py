"""Synthetic traces for tests and the benchmark: a trace.dat writer and a report-text writer.

Owns: `Rec` (one record to write), event format texts in the kernel's ``format`` syntax
(copied in shape from a Debian 6.12 kernel: same fields, offsets and print formats),
`write_dat` (file versions 6 and 7; compression none, zlib or zstd; time extends,
absolute time stamps and discarded-event padding on request) and `report_line`, which
prints a record the way ``trace-cmd report`` does. The writer encodes fields from the
format descriptions it writes, so the reader's offset handling is tested, not mirrored.

May import: the standard library, zstandard, `crossmod.trace.events/formats/layout`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from crossmod.trace import layout as L
from crossmod.trace.events import format_cpulist
from crossmod.trace.formats import EventFormat, parse_format

_COMMON = ("\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
           "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
           "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
           "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n")
_VEC = (["int vector;8;4;1"], '"vector=%d", REC->vector')
_PTR_PAIR = (["void * func;8;8;0", "void * csd;16;8;0"], '"func=%ps, csd=%p", REC->func, REC->csd')
# (system, id, name, [decl;offset;size;signed], print fmt)
EVENTS: list[tuple[str, int, str, list[str], str]] = [
    ("ftrace", 4, "kernel_stack", ["int size;8;4;1", "unsigned long caller[8];16;64;0"],
     '"\\t=> %ps\\n", (void *)REC->caller[0]'),
    ("ftrace", 5, "print", ["unsigned long ip;8;8;0", "char buf[];16;0;0"],
     '"%ps: %s", (void *)REC->ip, REC->buf'),
    ("irq_vectors", 78, "call_function_single_entry", *_VEC),
    ("irq_vectors", 80, "call_function_entry", *_VEC),
    ("irq_vectors", 81, "call_function_exit", *_VEC),
    ("irq_vectors", 82, "reschedule_entry", *_VEC),
    ("irq_vectors", 84, "irq_work_entry", *_VEC),
    ("irq_vectors", 92, "local_timer_entry", *_VEC),
    ("ipi", 287, "ipi_send_cpumask", ["__data_loc cpumask_t cpumask;8;4;0",
                                      "void * callsite;16;8;0", "void * callback;24;8;0"],
     '"cpumask=%s callsite=%pS callback=%pS", __get_cpumask(cpumask), REC->callsite, '
     "REC->callback"),
    ("ipi", 288, "ipi_send_cpu", ["unsigned int cpu;8;4;0", "void * callsite;16;8;0",
                                  "void * callback;24;8;0"],
     '"cpu=%u callsite=%pS callback=%pS", REC->cpu, REC->callsite, REC->callback'),
    ("csd", 480, "csd_function_exit", *_PTR_PAIR),
    ("csd", 481, "csd_function_entry", *_PTR_PAIR),
    ("csd", 482, "csd_queue_cpu", ["unsigned int cpu;8;4;0", "void * callsite;16;8;0",
                                   "void * func;24;8;0", "void * csd;32;8;0"],
     '"cpu=%u callsite=%pS func=%ps csd=%p", REC->cpu, REC->callsite, REC->func, REC->csd'),
    ("context_tracking", 562, "user_exit", ["int dummy;8;4;1"], '"%s", ""'),
    ("context_tracking", 563, "user_enter", ["int dummy;8;4;1"], '"%s", ""'),
    ("tlb", 684, "tlb_flush", ["int reason;8;4;1", "unsigned long pages;16;8;0"],
     '"pages:%ld reason:%s (%d)", REC->pages, __print_symbolic(REC->reason, '
     '{ 1, "remote shootdown" }), REC->reason'),
    ("sched", 320, "sched_waking", ["char comm[16];8;16;0", "pid_t pid;24;4;1",
                                    "int prio;28;4;1", "int target_cpu;32;4;1"],
     '"comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, '
     "REC->target_cpu"),
]
HEADER_PAGE = ("\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
               "\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n"
               "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
               "\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n")
HEADER_EVENT = ("# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n"
                "\tarray       :   32 bits\n\n\tpadding     : type == 29\n"
                "\ttime_extend : type == 30\n\ttime_stamp : type == 31\n"
                "\tdata max type_len  == 28\n")
SYMBOL_BASE = 0xFFFFFFFF81000000


def format_text(system: str, eid: int, name: str, decls: list[str], pfmt: str) -> str:
    lines = [f"name: {name}", f"ID: {eid}", "format:", _COMMON.rstrip("\n"), ""]
    for d in decls:
        decl, off, size, signed = d.split(";")
        lines.append(f"\tfield:{decl};\toffset:{off};\tsize:{size};\tsigned:{signed};")
    return "\n".join(lines) + f"\n\nprint fmt: {pfmt}\n"


@dataclass(slots=True)
class Rec:
    """One record to write. Pointer fields are given as the reader prints them."""

    ts: int
    cpu: int
    name: str
    pid: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # as `events.Event.fields`
    stack: tuple[str, ...] | None = None


@dataclass
class DatOptions:
    version: int = 7
    compression: str = "zstd"  # none | zlib | zstd
    page_size: int = 4096
    chunk_pages: int = 16
    absolute_every: int = 0  # emit an absolute TIME_STAMP before every n-th record
    padding_every: int = 0  # emit a discarded-event padding before every n-th record
    symbols: list[str] = field(default_factory=list)
    comms: dict[int, str] = field(default_factory=dict)


class _Encoder:
    def __init__(self, symbols: list[str]) -> None:
        self.formats: dict[str, EventFormat] = {}
        self.texts: list[tuple[str, str]] = []
        for system, eid, name, decls, pfmt in EVENTS:
            text = format_text(system, eid, name, decls, pfmt)
            self.formats[name] = parse_format(text, system)
            self.texts.append((system, text))
        self.addr = {s: SYMBOL_BASE + i * 0x1000 for i, s in enumerate(sorted(set(symbols)))}

    def pointer(self, value: object) -> int:
        if isinstance(value, int):
            return value
        s = str(value)
        if s.startswith("0x"):
            return int(s, 16)
        name, _, off = s.partition("+0x")
        return self.addr[name] + (int(off, 16) if off else 0)

    def payload(self, r: Rec) -> bytes:
        fmt = self.formats[r.name]
        size = max(f.offset + f.size for f in fmt.fields)
        buf = bytearray(size)
        struct.pack_into("<HBBi", buf, 0, fmt.id, 0, 0, r.pid)
        tail = bytearray()
        for f in fmt.fields:
            if f.name.startswith("common_") or (f.name not in r.fields and f.name != "ip"):
                continue
            v = r.fields.get(f.name, "tracing_mark_write" if "tracing_mark_write" in self.addr
                             else 0)
            if f.data_loc:
                mask = sum(1 << c for c in v)
                words = max(1, (max(v, default=0) // 64) + 1)
                data = mask.to_bytes(8 * words, "little")
                struct.pack_into("<I", buf, f.offset, (len(data) << 16) | (size + len(tail)))
                tail += data
            elif f.array == 0:
                tail += str(v).encode() + b"\n\0"
            elif f.is_pointer or f.name in ("ip",):
                struct.pack_into("<Q", buf, f.offset, self.pointer(v))
            else:
                code = {1: "b", 2: "h", 4: "i", 8: "q"}[f.size]
                n = int(v)
                struct.pack_into("<" + (code if f.signed else code.upper()), buf, f.offset,
                                 n if f.signed else n & ((1 << (8 * f.size)) - 1))
        out = bytes(buf + tail)
        return out + b"\0" * (-len(out) % 4)

    def stack_payload(self, frames: tuple[str, ...], pid: int) -> bytes:
        fmt = self.formats["kernel_stack"]
        addrs = [self.pointer(f) for f in frames]
        return struct.pack(f"<HBBii4x{len(addrs)}Q", fmt.id, 0, 0, pid, len(addrs), *addrs)


def _event_words(payload: bytes, delta: int) -> bytes:
    n = len(payload)
    if n <= 28 * 4:
        return struct.pack("<I", (n // 4) | (delta << 5)) + payload
    return struct.pack("<II", delta << 5, n + 4) + payload


class _Pager:
    """Packs records of one CPU into ring-buffer pages, time extends included."""

    def __init__(self, opts: DatOptions, enc: _Encoder) -> None:
        self.o, self.enc = opts, enc
        self.cap = opts.page_size - 16
        self.pages: list[bytes] = []
        self.cur = bytearray()
        self.page_ts = self.last_ts = 0
        self.count = 0

    def _flush(self) -> None:
        if self.cur:
            page = struct.pack("<QQ", self.page_ts, len(self.cur)) + bytes(self.cur)
            self.pages.append(page + b"\0" * (self.o.page_size - len(page)))
        self.cur = bytearray()

    def add(self, ts: int, payload: bytes) -> None:
        self.count += 1
        o = self.o
        pad = bool(o.padding_every) and self.count % o.padding_every == 0
        absolute = bool(o.absolute_every) and self.count % o.absolute_every == 0
        if not self.cur or len(self.cur) + len(payload) + 36 > self.cap:
            self._flush()
            self.page_ts = self.last_ts = ts
        delta = ts - self.last_ts
        if pad and delta >= 1:
            # a discarded event keeps its time delta: readers must add it (kbuffer does)
            self.cur += struct.pack("<II", L.TYPE_PADDING | (1 << 5), 8) + b"\0" * 4
            delta -= 1
        if absolute:
            self.cur += struct.pack("<II", L.TYPE_TIME_STAMP | ((ts & (2**27 - 1)) << 5),
                                    (ts >> 27) & 0xFFFFFFFF)
            delta = 0
        elif delta >= 1 << 27:
            self.cur += struct.pack("<II", L.TYPE_TIME_EXTEND | ((delta & (2**27 - 1)) << 5),
                                    delta >> 27)
            delta = 0
        self.cur += _event_words(payload, delta)
        self.last_ts = ts

    def take(self) -> list[bytes]:
        out, self.pages = self.pages, []
        return out

    def finish(self) -> list[bytes]:
        self._flush()
        return self.take()


def _compress(opts: DatOptions, data: bytes) -> bytes:
    if opts.compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=1).compress(data)
    if opts.compression == "zlib":
        return zlib.compress(data, 1)
    return data


def write_dat(out: BinaryIO, per_cpu: dict[int, Callable[[], Iterable[Rec]]],
              opts: DatOptions | None = None) -> None:
    """Write a trace.dat; `per_cpu[cpu]()` yields that CPU's records in time order."""
    from crossmod.trace.synthdat import DatWriter

    o = opts or DatOptions()
    DatWriter(out, o, _Encoder(o.symbols)).write(per_cpu)


def cpu_pages(o: DatOptions, enc: _Encoder, recs: Iterable[Rec]) -> Iterator[list[bytes]]:
    """Pages of one CPU, in groups of `chunk_pages` (the unit of v7 compression)."""
    pager = _Pager(o, enc)
    for r in recs:
        pager.add(r.ts, enc.payload(r))
        if r.stack:
            pager.add(r.ts + 1, enc.stack_payload(r.stack, r.pid))
        if len(pager.pages) >= o.chunk_pages:
            yield pager.take()
    last = pager.finish()
    if last:
        yield last


def report_line(r: Rec, comm: str) -> str:
    """The record as ``trace-cmd report`` prints it (microsecond timestamps)."""
    us = (r.ts + 500) // 1000
    f = r.fields
    n = r.name
    if n == "ipi_send_cpumask":
        body = (f"cpumask={format_cpulist(f['cpumask'])} callsite={f['callsite']} "
                f"callback={f['callback']}")
    elif n in ("ipi_send_cpu",):
        body = f"cpu={f['cpu']} callsite={f['callsite']} callback={f['callback']}"
    elif n == "csd_queue_cpu":
        body = f"cpu={f['cpu']} callsite={f['callsite']} func={f['func']} csd=0x{f['csd']:x}"
    elif n.startswith("csd_function"):
        body = f"func={f['func']}, csd=0x{f['csd']:x}"
    elif "vector" in f:
        body = f"vector={f['vector']}"
    elif n == "print":
        body = f"tracing_mark_write: {f['buf']}"
    elif n == "tlb_flush":
        body = f"pages:{f['pages']} reason:remote shootdown ({f['reason']})"
    else:
        body = " ".join(f"{k}={v}" for k, v in f.items())
    head = f"{comm:>16}-{r.pid:<6}[{r.cpu:03d}] {us // 1_000_000:6d}.{us % 1_000_000:06d}: "
    line = f"{head}{n + ':':<21} {body}\n"
    if r.stack:
        sus = (r.ts + 1 + 500) // 1000
        line += (f"{comm:>16}-{r.pid:<6}[{r.cpu:03d}] {sus // 1_000_000:6d}."
                 f"{sus % 1_000_000:06d}: {'kernel_stack:':<21} <stack trace >\n")
        line += "".join(f"=> {fr} (ffffffff81000000)\n" for fr in r.stack)
    return line
