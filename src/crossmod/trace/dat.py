"""trace-cmd ``trace.dat`` reader (file versions 6 and 7, zlib/zstd-compressed sections).

Owns: reading the file header and metadata (header_page, event formats, kallsyms, saved
command lines, options), walking each CPU's ring-buffer pages in bounded memory (one block
of pages or one compressed chunk per CPU at a time), decoding records into `events.Event`
and merging the CPUs by timestamp as ``trace-cmd report`` does (ties go to the lower CPU).

Bad input: metadata the events cannot be read without raises `TraceFormatError` at once;
a damaged kallsyms or cmdlines section is recorded in `errors` and the events are read
without it. A corrupt page or record is recorded in `problems` (with its file offset) and
skipped, or raised when ``strict``. A compressed chunk that does not decompress is lost
alone (the walk resumes at the next chunk, found past a damaged header by the next zstd
frame), and CPU data cut short by the end of the file is recorded in `errors`, each after
everything before it was yielded.

May import: the standard library, zstandard, and `crossmod.trace.events/formats/layout`.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from crossmod.trace import layout as L
from crossmod.trace.datmeta import Kallsyms, _Cursor, _FileCursor
from crossmod.trace.events import MAX_CPUS, SCHEMA, Event, TraceFormatError
from crossmod.trace.formats import EventFormat, FieldDecoder, parse_format

_BLOCK_PAGES = 64  # pages read per CPU per I/O for uncompressed data
MAX_PROBLEMS = 100


class DatReader:
    """A trace.dat opened for streaming. Iterate it for `Event`s in timestamp order."""

    def __init__(self, stream: BinaryIO, path: str = "trace.dat", *, strict: bool = False) -> None:
        self.f, self.path, self.strict = stream, path, strict
        self.problems: list[TraceFormatError] = []
        self.problem_count = 0
        self.errors: list[TraceFormatError] = []
        self.lost_events = 0
        self.events_read = 0
        self.ncpus: int | None = None  # the CPUs the file holds data for
        self.formats: dict[int, EventFormat] = {}
        self.cmdlines: dict[int, str] = {0: "<idle>"}
        self.cpu_data: list[tuple[int, int, int]] = []  # (cpu, file offset, size)
        self.compressed = False
        self.compression = "none"
        self._cpu_count = 0  # the CPUCOUNT option (v7)
        self.section_offsets: dict[int, int] = {}  # v7: option id -> its section's offset
        self.ts_offset = 0
        self._section_end = 0
        self._kallsyms_blob = b""
        self._kallsyms: Kallsyms | None = None
        self.file_size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        self._read_header()
        if self.cpu_data:
            self.ncpus = max(self._cpu_count, *(cpu + 1 for cpu, _o, _s in self.cpu_data))

    @classmethod
    def from_path(cls, path: str, *, strict: bool = False) -> DatReader:
        return cls(open(path, "rb"), path, strict=strict)

    def close(self) -> None:
        self.f.close()

    def where(self, offset: int) -> str:
        return f"{self.path}@0x{offset:x}"

    # -- metadata ---------------------------------------------------------------------
    def read_at(self, offset: int, n: int, what: str) -> bytes:
        if not 0 <= offset <= self.file_size:  # cut short, or damaged past what seek() takes
            raise TraceFormatError(self.where(offset), f"file ends inside {what}")
        self.f.seek(offset)
        b = self.f.read(n)
        if len(b) != n:
            raise TraceFormatError(self.where(offset), f"file ends inside {what}")
        return b

    def _read_header(self) -> None:
        head = self.f.read(64)
        if not head.startswith(L.MAGIC):
            raise TraceFormatError(self.where(0), "not a trace.dat file (bad magic)")
        end = head.find(b"\0", len(L.MAGIC))
        if end < 0 or end + 7 > len(head):
            raise TraceFormatError(self.where(len(L.MAGIC)), "truncated file header")
        try:
            self.version = int(head[len(L.MAGIC) : end])
        except ValueError:
            raise TraceFormatError(self.where(len(L.MAGIC)), "bad version string") from None
        if self.version not in (6, 7):
            raise TraceFormatError(self.where(len(L.MAGIC)),
                                   f"unsupported trace.dat version {self.version}")
        self.e = ">" if head[end + 1] else "<"
        self.long_size = head[end + 2]
        self.page_size = struct.unpack_from(self.e + "I", head, end + 3)[0]
        if self.page_size < 64 or self.page_size > 1 << 24 or self.page_size % 4:
            raise TraceFormatError(self.where(end + 3), f"implausible page size {self.page_size}")
        pos = end + 7
        if self.version == 6:
            self._read_v6(pos)
        else:
            self._read_v7(pos)
        if not self.page_fields:
            raise TraceFormatError(self.where(0), "no header_page description in file")

    def _cursor_from_file(self, pos: int) -> _Cursor:
        self.f.seek(pos)
        return _FileCursor(self.f, pos, self.where, self.e)

    def _read_v6(self, pos: int) -> None:
        c = self._cursor_from_file(pos)
        self._parse_header_info(c)
        self._parse_ftrace_formats(c)
        self._parse_event_formats(c)
        self._kallsyms_blob = c.take(c.u("I", "kallsyms size"), "kallsyms")
        c.take(c.u("I", "printk size"), "printk formats")
        self._parse_cmdlines(c.take(c.u("Q", "cmdlines size"), "saved cmdlines"))
        ncpus = c.u("I", "CPU count")
        tag = c.take(10, "section tag")
        if tag == L.V6_OPTIONS_TAG:
            while (opt := c.u("H", "option id")) != L.OPT_DONE:
                self._option(opt, c.take(c.u("I", "option size"), "option"), v6=True)
            tag = c.take(10, "section tag")
        if tag == L.V6_LATENCY_TAG:
            raise TraceFormatError(self.where(c.base + c.pos), "latency-format trace.dat "
                                   "holds text: use the text reader on its report")
        if tag != L.V6_FLYRECORD_TAG:
            raise TraceFormatError(self.where(c.base + c.pos - 10), f"unknown section {tag!r}")
        for cpu in range(ncpus):
            self.cpu_data.append((cpu, c.u("Q", "CPU data offset"), c.u("Q", "CPU data size")))
        del c

    def _read_v7(self, pos: int) -> None:
        head = self.read_at(pos, 256, "compression header")
        name_end = head.find(b"\0")
        ver_end = head.find(b"\0", name_end + 1)
        if name_end < 0 or ver_end < 0:
            raise TraceFormatError(self.where(pos), "bad compression header")
        self.compression = head[:name_end].decode("ascii", "replace")
        if self.compression not in ("none", "zstd", "zlib"):
            raise TraceFormatError(self.where(pos), f"unsupported compression {self.compression!r}")
        opts = struct.unpack_from(self.e + "Q", head, ver_end + 1)[0]
        sections: dict[int, int] = {}
        seen: set[int] = set()
        first_end = 0
        while opts and opts not in seen:
            seen.add(opts)
            try:
                c = self._section(opts, L.SEC_OPTIONS)
            except TraceFormatError as err:
                # trace-cmd writes a last options section after the CPU data: a cut file
                # loses it but still has the first one, which locates the data
                if not seen - {opts} or self.strict:
                    raise
                self.errors.append(TraceFormatError(err.where, f"{err.what} (file truncated?)"))
                break
            first_end = first_end or self._section_end
            opts = 0
            while True:
                opt = c.u("H", "option id")
                data = c.take(c.u("I", "option size"), "option")
                if opt == L.OPT_DONE:
                    opts = struct.unpack(self.e + "Q", data[:8])[0] if len(data) >= 8 else 0
                    break
                if L.OPT_HEADER_INFO <= opt <= L.OPT_CMDLINES and len(data) >= 8:
                    sections[opt] = struct.unpack(self.e + "Q", data[:8])[0]
                else:
                    self._option(opt, data, v6=False)
        self.section_offsets = sections
        for opt, parse in ((L.OPT_HEADER_INFO, self._parse_header_info),
                           (L.OPT_FTRACE_EVENTS, self._parse_ftrace_formats),
                           (L.OPT_EVENT_FORMATS, self._parse_event_formats)):
            if opt in sections:
                parse(self._section(sections[opt], opt))
        if L.OPT_KALLSYMS in sections:
            with self._optional("kallsyms", "callbacks, callsites and stacks are shown as "
                                "addresses"):
                c = self._section(sections[L.OPT_KALLSYMS], L.OPT_KALLSYMS)
                self._kallsyms_blob = c.take(c.u("I", "kallsyms size"), "kallsyms")
        if L.OPT_CMDLINES in sections:
            with self._optional("saved cmdlines", "sending tasks are shown as <...>"):
                c = self._section(sections[L.OPT_CMDLINES], L.OPT_CMDLINES)
                self._parse_cmdlines(c.take(c.u("Q", "cmdlines size"), "saved cmdlines"))
        if not self.cpu_data and first_end:
            self._recover_cpu_table(first_end)

    @contextlib.contextmanager
    def _optional(self, what: str, consequence: str) -> Iterator[None]:
        """A section the events can be read without: damage there is an error recorded
        (the command fails after the report), not a reason to reject the trace."""
        try:
            yield
        except TraceFormatError as err:
            if self.strict:
                raise
            self.errors.append(TraceFormatError(err.where, f"{what} section unreadable "
                                                f"({err.what}): {consequence}"))

    def _recover_cpu_table(self, offset: int) -> None:
        """Find the CPU data of a cut v7 file whose CPU table (the BUFFER option, which
        trace-cmd writes in its last options section) is gone: the flyrecord section
        follows the first options section; each CPU's compressed data is a chunk count
        and chunks, CPUs in order, each starting on a page boundary."""
        hdr = struct.Struct(self.e + L.SECTION_HEADER)
        try:
            sid, flags, _d, _s = hdr.unpack(self.read_at(offset, hdr.size, "flyrecord"))
        except TraceFormatError:
            return
        if sid != L.SEC_FLYRECORD or not flags & L.SECTION_FLAG_COMPRESSED:
            return
        self.compressed = True
        pos = -(-(offset + hdr.size) // self.page_size) * self.page_size
        cpu = 0
        while pos + 4 <= self.file_size and cpu < 4096:
            start = pos
            (count,) = struct.unpack(self.e + "I", self.read_at(pos, 4, "chunk count"))
            pos += 4
            for _ in range(count):
                if pos + 8 > self.file_size:
                    break
                csize, _u = struct.unpack(self.e + "II", self.read_at(pos, 8, "chunk"))
                pos += 8 + csize
            self.cpu_data.append((cpu, start, pos - start))
            cpu += 1
            pos = -(-pos // self.page_size) * self.page_size
        self.errors.append(TraceFormatError(self.where(offset), "CPU table (BUFFER option) "
                           f"missing: found {cpu} CPUs' data by walking the chunks"))

    def _section(self, offset: int, expect: int) -> _Cursor:
        hdr = struct.Struct(self.e + L.SECTION_HEADER)
        sid, flags, _desc, size = hdr.unpack(self.read_at(offset, hdr.size, "section header"))
        if sid != expect:
            raise TraceFormatError(self.where(offset), f"expected section {expect}, found {sid}")
        body = offset + hdr.size
        self._section_end = body + size
        if not flags & L.SECTION_FLAG_COMPRESSED:
            return _Cursor(self.read_at(body, size, f"section {sid}"), body, self.where, self.e)
        csize, usize = struct.unpack(self.e + L.COMPRESS_HEADER,
                                     self.read_at(body, 8, "compression header"))
        data = self.decompress(self.read_at(body + 8, csize, f"section {sid}"), usize, body)
        # offsets inside a decompressed section are reported as the section's offset
        return _Cursor(data, body, lambda _o: f"{self.path}@0x{body:x} (compressed section)",
                       self.e)

    def decompress(self, data: bytes, usize: int, offset: int) -> bytes:
        try:
            if self.compression == "zstd":
                import zstandard

                out = zstandard.ZstdDecompressor().decompress(data, max_output_size=usize)
            elif self.compression == "zlib":
                out = zlib.decompress(data)
            else:
                out = data
        except Exception as exc:  # zstd/zlib raise their own error types
            raise TraceFormatError(self.where(offset), f"cannot decompress: {exc}") from None
        if len(out) != usize:
            raise TraceFormatError(self.where(offset),
                                   f"decompressed {len(out)} bytes, header says {usize}")
        return out

    def _option(self, opt: int, data: bytes, *, v6: bool) -> None:
        if opt == L.OPT_BUFFER and not v6:
            self._parse_buffer_option(data)
        elif opt == L.OPT_CPUCOUNT and len(data) >= 4:
            count = struct.unpack(self.e + "I", data[:4])[0]
            self._cpu_count = count if count < MAX_CPUS else 0
        elif opt == L.OPT_OFFSET:
            with contextlib.suppress(ValueError):
                self.ts_offset = int(data.split(b"\0")[0].strip() or b"0")

    def _parse_buffer_option(self, data: bytes) -> None:
        c = _Cursor(data, 0, lambda _o: f"{self.path} (BUFFER option)", self.e)
        offset = c.u("Q", "buffer offset")
        name = c.cstr("buffer name")
        c.cstr("clock")
        if name:
            return  # another tracefs instance; the analysis reads the top instance only
        c.u("I", "page size")
        ncpus = c.u("I", "CPU count")
        hdr = struct.Struct(self.e + L.SECTION_HEADER)
        _sid, flags, _d, _s = hdr.unpack(self.read_at(offset, hdr.size, "flyrecord header"))
        self.compressed = bool(flags & L.SECTION_FLAG_COMPRESSED)
        for _ in range(ncpus):
            cpu = c.u("I", "CPU id")
            if cpu >= MAX_CPUS:
                raise TraceFormatError(c.where(c.base + c.pos - 4), f"CPU id {cpu} out of range")
            self.cpu_data.append((cpu, c.u("Q", "CPU data offset"), c.u("Q", "CPU data size")))

    def _parse_header_info(self, c: _Cursor) -> None:
        if c.take(12, "header_page tag") != b"header_page\0":
            raise TraceFormatError(c.where(c.base + c.pos - 12), "missing header_page")
        text = c.take(c.u("Q", "header_page size"), "header_page").decode("utf-8", "replace")
        self.page_fields = {f.name: f for f in parse_format("name: header_page\nID: 0\n" + text,
                                                              where=self.path).fields}
        if c.take(13, "header_event tag") != b"header_event\0":
            raise TraceFormatError(c.where(c.base + c.pos - 13), "missing header_event")
        c.take(c.u("Q", "header_event size"), "header_event")

    def _add_format(self, text: bytes, system: str, where: str) -> None:
        fmt = parse_format(text.decode("utf-8", "replace"), system, where)
        self.formats[fmt.id] = fmt

    def _parse_ftrace_formats(self, c: _Cursor) -> None:
        for _ in range(c.u("I", "ftrace format count")):
            self._add_format(c.take(c.u("Q", "format size"), "ftrace format"), "ftrace",
                             self.where(c.base + c.pos))

    def _parse_event_formats(self, c: _Cursor) -> None:
        for _ in range(c.u("I", "event system count")):
            system = c.cstr("system name")
            for _ in range(c.u("I", "event count")):
                self._add_format(c.take(c.u("Q", "format size"), "event format"), system,
                                 self.where(c.base + c.pos))

    def _parse_cmdlines(self, blob: bytes) -> None:
        for line in blob.decode("utf-8", "replace").splitlines():
            pid, _, comm = line.strip().partition(" ")
            if pid.isdigit() and comm:
                self.cmdlines[int(pid)] = comm

    @property
    def kallsyms(self) -> Kallsyms:
        if self._kallsyms is None:
            self._kallsyms = Kallsyms(self._kallsyms_blob)
            self._kallsyms_blob = b""
        return self._kallsyms

    # -- problems ---------------------------------------------------------------------
    def problem(self, where: str, what: str) -> None:
        err = TraceFormatError(where, what)
        if self.strict:
            raise err
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(err)

    # -- data -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        return chain.from_iterable(self.batches())

    def batches(self) -> Iterator[list[Event]]:
        """The events in timestamp order, a list at a time (what `Analysis.run` reads)."""
        from crossmod.trace.datpages import PageDecoder
        from crossmod.trace.merge import merge_blocks

        dec = PageDecoder(self)
        for batch in merge_blocks([dec.cpu_blocks(cpu, off, size)
                                   for cpu, off, size in sorted(self.cpu_data)]):
            self.events_read += len(batch)
            yield batch

    def describe(self) -> str:
        """What the file looked like, when no event was found in it."""
        sizes = sum(size for _c, _o, size in self.cpu_data)
        return (f"a trace.dat v{self.version} whose {len(self.cpu_data)} CPU data section(s) "
                f"({sizes:,} bytes) hold no event"
                + (" that could be read" if self.errors or self.problem_count else ""))

    def decoders(self) -> dict[int, FieldDecoder]:
        sym = self.kallsyms.lookup
        return {fid: FieldDecoder(fmt, SCHEMA[fmt.name], self.e, self.long_size, sym)
                for fid, fmt in self.formats.items() if SCHEMA.get(fmt.name)}

    def blocks(self, cpu: int, offset: int, size: int) -> Iterator[tuple[bytes, int, str]]:
        """Yield (bytes holding whole pages, file offset, label) for one CPU, bounded."""
        if self.compressed:
            yield from self._chunks(cpu, offset, size)
            return
        step = self.page_size * _BLOCK_PAGES
        end = offset + size
        if size and end > self.file_size:  # an empty CPU loses nothing to a cut
            self.errors.append(TraceFormatError(
                self.where(self.file_size), f"file truncated: CPU {cpu} data runs to "
                f"0x{end:x}, file ends at 0x{self.file_size:x}; read what was there"))
        pos = offset
        while pos < min(end, self.file_size):
            self.f.seek(pos)
            blob = self.f.read(min(step, end - pos))
            whole = len(blob) - len(blob) % self.page_size
            if whole <= 0:
                break
            yield blob[:whole], pos, ""
            pos += whole

    def _chunks(self, cpu: int, offset: int, size: int) -> Iterator[tuple[bytes, int, str]]:
        from crossmod.trace.datchunks import chunks

        return chunks(self, cpu, offset, size)

    def cpu_error(self, cpu: int, err: TraceFormatError, lost: str = "") -> None:
        what = err.what if err.what.startswith(f"CPU {cpu}") else f"CPU {cpu}: {err.what}"
        err = TraceFormatError(err.where, f"{what}; {lost or 'read what was there'}")
        if self.strict:
            raise err from None
        self.errors.append(err)
