"""Open a trace file of any supported kind, telling the kind from its first bytes.

Owns: format detection (trace.dat magic; otherwise text, optionally xz/gzip/zstd
compressed, streamed without unpacking to disk) and `open_trace`, the one entry point
the CLI and tests use. Several files are merged by timestamp.

May import: the standard library, zstandard, and `crossmod.trace.dat/text/events/layout/merge`.
"""

from __future__ import annotations

import gzip
import io
import lzma
import shutil
import sys
import tempfile
from collections.abc import Iterator
from itertools import chain, islice
from typing import BinaryIO, Protocol

from crossmod.trace.dat import DatReader
from crossmod.trace.events import Event, TraceFormatError
from crossmod.trace.layout import MAGIC
from crossmod.trace.merge import merge_blocks
from crossmod.trace.text import TextReader

_XZ = b"\xfd7zXZ\x00"
_GZ = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


class Reader(Protocol):
    """What every backend offers besides iteration (STYLE rule 24)."""

    path: str
    problems: list[TraceFormatError]
    problem_count: int
    errors: list[TraceFormatError]
    lost_events: int

    def __iter__(self) -> Iterator[Event]: ...


def _decompressed(raw: BinaryIO, head: bytes) -> tuple[BinaryIO, str]:
    if head.startswith(_XZ):
        return lzma.LZMAFile(raw), "xz "
    if head.startswith(_GZ):
        return gzip.GzipFile(fileobj=raw), "gzip "
    if head.startswith(_ZSTD):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw), "zstd "  # type: ignore[return-value]
    return raw, ""


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
        except OSError as exc:
            raise TraceFormatError(path, f"cannot open: {exc.strerror or exc}") from None
        head = raw.read(16)
        raw.seek(0)
    if head.startswith(MAGIC):
        reader = DatReader(raw, path, strict=strict)
        comp = getattr(reader, "compression", "none")
        extra = f", {comp}-compressed" if comp not in ("none", "") else ""
        return reader, f"trace.dat v{reader.version}{extra}"
    stream, comp = _decompressed(raw, head)
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)
    peek = _peek_kind(path, comp) if path != "-" else "text from standard input"
    return TextReader(_CheckedText(text, path, stream), path, strict=strict), f"{comp}{peek}"


def _stdin() -> tuple[BinaryIO, bytes]:
    """Standard input as a seekable binary stream and its first 16 bytes."""
    src = sys.stdin.buffer
    head = src.read(16)
    if head.startswith(MAGIC):
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - the reader owns it
        spool.write(head)
        shutil.copyfileobj(src, spool, 1 << 20)
        spool.seek(0)
        return spool, head  # type: ignore[return-value]
    return io.BufferedReader(_Prepended(head, src), 1 << 16), head  # type: ignore[arg-type]


class _Prepended(io.RawIOBase):
    """`head` (bytes already read from `rest`) followed by the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read1(len(buf))  # what the pipe has now, not a full buffer
        buf[: len(data)] = data
        return len(data)


def _peek_kind(path: str, comp: str) -> str:
    """trace-cmd report or tracefs text, from the first lines (best effort, for the header)."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(16)
            raw.seek(0)
            stream, _ = _decompressed(raw, head)
            first = stream.read(4096).decode("utf-8", "replace")
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return "text"
    if first.startswith(("cpus=", "version =")):
        return "trace-cmd report text"
    if "# tracer:" in first or "#P:" in first:
        return "tracefs trace text"
    return "ftrace text"


class _CheckedText:
    """A (possibly compressed) text read in large pieces (the text reader uses `read`);
    a damaged archive is reported as a `TraceFormatError`, not raised raw."""

    _ERRORS = (EOFError, lzma.LZMAError, OSError, ValueError)

    def __init__(self, text: io.TextIOWrapper, path: str, raw: BinaryIO) -> None:
        self.text, self.path, self.raw = text, path, raw

    def _damaged(self, exc: Exception) -> TraceFormatError:
        return TraceFormatError(self.path, f"compressed text is damaged or truncated: {exc}")

    def read_bytes(self, n: int) -> bytes:
        """The undecoded bytes under `text` (the reader uses one or the other, never both):
        up to `n`, what one read gives (so a live pipe's events are analysed as they come,
        not once a whole chunk has arrived); b"" only at the end."""
        read1 = getattr(self.raw, "read1", None)
        try:
            return read1(n) if read1 is not None else self.raw.read(n)
        except self._ERRORS as exc:
            raise self._damaged(exc) from None

    def read(self, n: int) -> str:
        try:
            return self.text.read(n)
        except self._ERRORS as exc:
            raise self._damaged(exc) from None

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.text
        except self._ERRORS as exc:
            raise self._damaged(exc) from None


class _Single:
    """One reader's events; `batches` lets `Analysis.run` read them a list at a time."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def __iter__(self) -> Iterator[Event]:
        return iter(self.reader)

    def batches(self) -> Iterator[list[Event]]:
        batches = getattr(self.reader, "batches", None)
        if batches is not None:
            return batches()  # type: ignore[no-any-return]
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
