"""Open a trace file of any supported kind, telling the kind from its first bytes.

Owns: format detection (trace.dat magic; otherwise text, optionally xz/gzip/zstd
compressed, streamed without unpacking to disk) and `open_trace`, the one entry point
the CLI and tests use. Several files are merged by timestamp.

May import: the standard library and `crossmod.trace.dat/decompress/text/events/layout/merge`.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from itertools import chain, islice
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from crossmod.trace.dat import DatReader
from crossmod.trace.decompress import Decompressed, kind_of
from crossmod.trace.events import Event, TraceFormatError
from crossmod.trace.layout import MAGIC
from crossmod.trace.merge import merge_blocks
from crossmod.trace.text import TextReader

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class Reader(Protocol):
    """What every backend offers besides iteration (STYLE rule 24)."""

    path: str
    problems: list[TraceFormatError]
    problem_count: int
    errors: list[TraceFormatError]
    lost_events: int
    events_read: int
    ncpus: int | None  # the CPUs the trace says it has (header), None if it does not say

    def __iter__(self) -> Iterator[Event]: ...

    def describe(self) -> str: ...


def open_trace(path: str, *, strict: bool = False) -> tuple[Reader, str]:
    """Return (reader, description of the format). Raises TraceFormatError if unreadable.

    ``-`` is standard input (``trace-cmd report | crossmod trace -``): text streams through
    as from a file; a trace.dat, which is read out of order, is first copied to an
    anonymous temporary file."""
    if path == "-":
        raw, head = _stdin()
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - the reader owns it until the process ends
            head = raw.read(16)
            raw.seek(0)
        except OSError as exc:
            raise TraceFormatError(path, f"cannot open: {exc.strerror or exc}") from None
    if head.startswith(MAGIC):
        dat = DatReader(raw, path, strict=strict)
        comp = getattr(dat, "compression", "none")
        extra = f", {comp}-compressed" if comp not in ("none", "") else ""
        return dat, f"trace.dat v{dat.version}{extra}"
    if head and len(head) < len(MAGIC) and MAGIC.startswith(head):
        raise TraceFormatError(path, f"the first {len(head)} bytes of a trace.dat file and "
                               "nothing more: it was cut inside its file header")
    kind = kind_of(head)
    stream: _Readable = raw
    if kind:
        stream = Decompressed(raw, kind, path)
    checked = _CheckedText(stream, path)
    reader = TextReader(checked, path, strict=strict)
    checked.errors = reader.errors
    if isinstance(stream, Decompressed):
        stream.errors = reader.errors
        stream.warn = reader.warn
    comp = f"{kind} " if kind else ""
    if path == "-":
        return reader, f"{comp}text from standard input"
    peek, ncpus = _peek(path)
    reader.ncpus = ncpus
    return reader, f"{comp}{peek}"


def _stdin() -> tuple[BinaryIO, bytes]:
    """Standard input as a seekable binary stream and its first 16 bytes."""
    src = sys.stdin.buffer
    head = src.read(16)
    if head.startswith(MAGIC):
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - the reader owns it
        spool.write(head)
        shutil.copyfileobj(src, spool, 1 << 20)
        spool.seek(0)
        return spool, head
    # typeshed says BinaryIO; a process's stdin.buffer is a buffered reader (read1)
    buffered = cast(io.BufferedIOBase, src)
    return io.BufferedReader(_Prepended(head, buffered), 1 << 16), head


class _Prepended(io.RawIOBase):
    """`head` (bytes already read from `rest`) followed by the rest of the stream."""

    def __init__(self, head: bytes, rest: io.BufferedIOBase) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with memoryview(buffer) as buf:
            if self.head:
                n = min(len(buf), len(self.head))
                buf[:n] = self.head[:n]
                self.head = self.head[n:]
                return n
            data = self.rest.read1(len(buf))  # what the pipe has now, not a full buffer
            buf[: len(data)] = data
            return len(data)


_NCPUS = re.compile(r"^cpus=(\d+)|#P:(\d+)", re.M)


def _peek(path: str) -> tuple[str, int | None]:
    """(trace-cmd report or tracefs text, the CPU count its header gives) from the first
    lines (best effort, for the report's header and the --isolated bound)."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(16)
            raw.seek(0)
            kind = kind_of(head)
            stream = Decompressed(raw, kind, path) if kind else raw
            first = stream.read(4096).decode("utf-8", "replace")
    except OSError:
        return "text", None
    m = _NCPUS.search(first)
    ncpus = int(m[1] or m[2]) if m and len(m[1] or m[2]) < 6 else None
    if first.startswith(("cpus=", "version =")):
        return "trace-cmd report text", ncpus
    if "# tracer:" in first or "#P:" in first:
        return "tracefs trace text", ncpus
    return "ftrace text", ncpus


class _Readable(Protocol):
    """A binary file, or the `Decompressed` stream over one."""

    def read(self, n: int = -1, /) -> bytes: ...


class _CheckedText:
    """A (possibly compressed) text read in large pieces through `read_bytes`; a read
    error of the file is recorded in the reader's `errors` (via `errors`), not raised."""

    def __init__(self, raw: _Readable, path: str) -> None:
        self.raw, self.path = raw, path
        self.errors: list[TraceFormatError] = []

    def read_bytes(self, n: int) -> bytes:
        """Up to `n` undecoded bytes, what one read gives (so a live pipe's events are
        analysed as they come, not once a whole chunk has arrived); b"" only at the end
        (or after a read error, recorded)."""
        read1 = getattr(self.raw, "read1", None)
        try:
            return read1(n) if read1 is not None else self.raw.read(n)
        except (OSError, ValueError) as exc:
            self.errors.append(TraceFormatError(
                self.path, f"cannot read: {getattr(exc, 'strerror', None) or exc}; "
                "read what came before"))
            return b""


class _Single:
    """One reader's events; `batches` lets `Analysis.run` read them a list at a time."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def __iter__(self) -> Iterator[Event]:
        return iter(self.reader)

    def batches(self) -> Iterator[list[Event]]:
        batches = getattr(self.reader, "batches", None)
        if batches is not None:
            return batches()
        it = iter(self.reader)
        return iter(lambda: list(islice(it, 4096)), [])


class _Merged:
    """Several readers' events in timestamp order, merged a block at a time
    (`merge.merge_blocks`; ties: the order the files were given)."""

    def __init__(self, readers: list[Reader]) -> None:
        self.readers = readers

    def __iter__(self) -> Iterator[Event]:
        return chain.from_iterable(self.batches())

    def batches(self) -> Iterator[list[Event]]:
        return merge_blocks([_Single(r).batches() for r in self.readers])


class Events(Protocol):
    """Events in timestamp order, one at a time or a list at a time (`Analysis.run`
    prefers the lists)."""

    def __iter__(self) -> Iterator[Event]: ...

    def batches(self) -> Iterator[list[Event]]: ...


def merged(readers: list[Reader]) -> Events:
    """All readers' events in timestamp order (ties: the order the files were given)."""
    if len(readers) == 1:
        return _Single(readers[0])
    return _Merged(readers)
