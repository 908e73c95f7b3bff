"""The file-level half of the synthetic trace.dat writer (`synth.write_dat`).

Owns: the v6 and v7 file layouts as trace-cmd.dat.v6(5)/v7(5) describe them: metadata
blocks, v7 sections with optional compression, the strings section, the options section
and the flyrecord CPU data (v7 compressed in chunks of ``chunk_pages`` pages). CPU data
is streamed page group by page group and the offsets are patched afterwards, so a
multi-gigabyte file is written in bounded memory.

May import: the standard library, zstandard, `crossmod.trace.layout/synth`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from typing import BinaryIO

from crossmod.trace import layout as L
from crossmod.trace.synth import (
    HEADER_EVENT,
    HEADER_PAGE,
    SYMBOL_BASE,
    DatOptions,
    Rec,
    _compress,
    _Encoder,
    cpu_pages,
)

_STRINGS_SECTION = 15


class DatWriter:
    def __init__(self, out: BinaryIO, o: DatOptions, enc: _Encoder) -> None:
        self.out, self.o, self.enc = out, o, enc
        self.strings = bytearray()

    # -- metadata blobs -------------------------------------------------------------------
    def header_info(self) -> bytes:
        hp, he = HEADER_PAGE.encode(), HEADER_EVENT.encode()
        return (b"header_page\0" + struct.pack("<Q", len(hp)) + hp + b"header_event\0"
                + struct.pack("<Q", len(he)) + he)

    def ftrace_formats(self) -> bytes:
        texts = [t.encode() for s, t in self.enc.texts if s == "ftrace"]
        return struct.pack("<I", len(texts)) + b"".join(struct.pack("<Q", len(t)) + t
                                                       for t in texts)

    def event_formats(self) -> bytes:
        systems: dict[str, list[bytes]] = {}
        for s, t in self.enc.texts:
            if s != "ftrace":
                systems.setdefault(s, []).append(t.encode())
        out = struct.pack("<I", len(systems))
        for s, texts in systems.items():
            out += s.encode() + b"\0" + struct.pack("<I", len(texts))
            out += b"".join(struct.pack("<Q", len(t)) + t for t in texts)
        return out

    def kallsyms(self) -> bytes:
        lines = "".join(f"{a:016x} T {n}\n" for n, a in sorted(self.enc.addr.items(),
                                                                 key=lambda kv: kv[1]))
        # one symbol past the last so every offset resolves inside a real symbol
        lines += f"{SYMBOL_BASE + len(self.enc.addr) * 0x1000:016x} T _etext\n"
        data = lines.encode()
        return struct.pack("<I", len(data)) + data

    def cmdlines(self) -> bytes:
        data = "".join(f"{p} {c}\n" for p, c in sorted(self.o.comms.items())).encode()
        return struct.pack("<Q", len(data)) + data

    # -- shared helpers -------------------------------------------------------------------
    def _pad_to_page(self) -> None:
        pos = self.out.tell()
        self.out.write(b"\0" * (-pos % self.o.page_size))

    def _cpu_data(self, recs: Iterable[Rec], compressed: bool) -> tuple[int, int]:
        start = self.out.tell()
        if not compressed:
            for group in cpu_pages(self.o, self.enc, recs):
                self.out.write(b"".join(group))
            return start, self.out.tell() - start
        self.out.write(b"\0\0\0\0")
        count = 0
        for group in cpu_pages(self.o, self.enc, recs):
            raw = b"".join(group)
            data = _compress(self.o, raw)
            self.out.write(struct.pack("<II", len(data), len(raw)) + data)
            count += 1
        end = self.out.tell()
        self.out.seek(start)
        self.out.write(struct.pack("<I", count))
        self.out.seek(end)
        return start, end - start

    def write(self, per_cpu: dict[int, Callable[[], Iterable[Rec]]]) -> None:
        if self.o.version == 6:
            self._v6(per_cpu)
        else:
            self._v7(per_cpu)

    # -- version 6 ------------------------------------------------------------------------
    def _v6(self, per_cpu: dict[int, Callable[[], Iterable[Rec]]]) -> None:
        w = self.out.write
        ncpus = max(per_cpu, default=-1) + 1
        w(L.MAGIC + b"6\0\0\x08" + struct.pack("<I", self.o.page_size))
        w(self.header_info() + self.ftrace_formats() + self.event_formats() + self.kallsyms())
        w(struct.pack("<I", 0) + self.cmdlines() + struct.pack("<I", ncpus))
        clock = b"[local] global\0"
        w(L.V6_OPTIONS_TAG + struct.pack("<HI", L.OPT_TRACECLOCK, len(clock)) + clock)
        w(struct.pack("<H", L.OPT_DONE) + L.V6_FLYRECORD_TAG)
        table = self.out.tell()
        w(b"\0" * 16 * ncpus)
        self._pad_to_page()
        spans = []
        for cpu in range(ncpus):
            spans.append(self._cpu_data(per_cpu[cpu]() if cpu in per_cpu else [], False))
        end = self.out.tell()
        self.out.seek(table)
        for off, size in spans:
            w(struct.pack("<QQ", off, size))
        self.out.seek(end)

    # -- version 7 ------------------------------------------------------------------------
    def _string(self, s: str) -> int:
        at = len(self.strings)
        self.strings += s.encode() + b"\0"
        return at

    def _section(self, sid: int, desc: str, body: bytes, compress: bool) -> int:
        at = self.out.tell()
        if compress:
            c = _compress(self.o, body)
            body = struct.pack("<II", len(c), len(body)) + c
        self.out.write(struct.pack("<HHIQ", sid, int(compress), self._string(desc), len(body)))
        self.out.write(body)
        return at

    def _compression_header(self) -> bytes:
        c = self.o.compression
        if c == "zstd":
            import zstandard

            return b"zstd\0" + zstandard.ZSTD_VERSION.__str__().encode() + b"\0"
        if c == "zlib":
            return b"zlib\0" + zlib.ZLIB_VERSION.encode() + b"\0"
        return b"none\0\0"

    def _v7(self, per_cpu: dict[int, Callable[[], Iterable[Rec]]]) -> None:
        w = self.out.write
        comp = self.o.compression != "none"
        w(L.MAGIC + b"7\0\0\x08" + struct.pack("<I", self.o.page_size))
        w(self._compression_header())
        opt_ptr = self.out.tell()
        w(b"\0" * 8)
        offs = {
            L.OPT_HEADER_INFO: self._section(16, "headers", self.header_info(), comp),
            L.OPT_FTRACE_EVENTS: self._section(17, "ftrace events", self.ftrace_formats(), comp),
            L.OPT_EVENT_FORMATS: self._section(18, "events format", self.event_formats(), comp),
            L.OPT_KALLSYMS: self._section(19, "kallsyms", self.kallsyms(), comp),
            L.OPT_PRINTK: self._section(20, "printk", struct.pack("<I", 0), comp),
            L.OPT_CMDLINES: self._section(21, "command lines", self.cmdlines(), comp),
        }
        fly = self.out.tell()
        w(struct.pack("<HHIQ", L.SEC_FLYRECORD, int(comp), self._string("buffer flyrecord"), 0))
        self._pad_to_page()
        cpus = [(cpu, *self._cpu_data(per_cpu[cpu](), comp)) for cpu in sorted(per_cpu)]
        end = self.out.tell()
        self.out.seek(fly + 8)
        w(struct.pack("<Q", end - fly - 16))
        self.out.seek(end)
        self._options(offs, fly, cpus, opt_ptr)

    def _options(self, offs: dict[int, int], fly: int, cpus: list[tuple[int, int, int]],
                 opt_ptr: int) -> None:
        buf = struct.pack("<Q", fly) + b"\0" + b"local\0"
        buf += struct.pack("<II", self.o.page_size, len(cpus))
        buf += b"".join(struct.pack("<IQQ", c, off, size) for c, off, size in cpus)
        opts = b"".join(struct.pack("<HIQ", k, 8, v) for k, v in offs.items())
        opts += struct.pack("<HII", L.OPT_CPUCOUNT, 4, max((c for c, _, _ in cpus),
                                                           default=-1) + 1)
        opts += struct.pack("<HI", L.OPT_BUFFER, len(buf)) + buf
        desc = self._string("options")
        strings_at = self.out.tell()
        body = bytes(self.strings)
        self.out.write(struct.pack("<HHIQ", _STRINGS_SECTION, 0, 0, len(body)) + body)
        opts += struct.pack("<HIQ", _STRINGS_SECTION, 8, strings_at)
        opts += struct.pack("<HIQ", L.OPT_DONE, 8, 0)
        at = self.out.tell()
        self.out.write(struct.pack("<HHIQ", L.SEC_OPTIONS, 0, desc, len(opts)) + opts)
        self.out.seek(opt_ptr)
        self.out.write(struct.pack("<Q", at))
        self.out.seek(0, 2)
