"""Compressed text traces (xz, gzip, zstd) decoded as they are read, damage reported.

Owns: `Decompressed`, a binary stream over a compressed one that hands on every byte that
can be decoded before a cut or a damaged block stops it, and then *records* what stopped it
(a `TraceFormatError` in `errors`, with the compressed offset) instead of raising: the
reader reports what was readable and the command then fails. Concatenated streams are read
one after another, as ``xzcat``/``zcat``/``zstdcat`` do (gzip members, xz streams and their
zero padding, zstd frames); bytes after the last stream that start no new one are what
``zcat`` calls "trailing garbage": decoded data is kept and they are recorded in `problems`
(a warning, through `warn`), not in `errors`.

The standard library's ``LZMAFile``/``GzipFile`` are not used: they raise on a cut stream
and drop the text they had decoded in that read, and a ``GzipFile`` rejects a stream
followed by trailing garbage whole.

May import: the standard library, zstandard and `crossmod.trace.events`.
"""

from __future__ import annotations

import io
import lzma
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Protocol

from crossmod.trace.events import TraceFormatError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

XZ = b"\xfd7zXZ\x00"
GZ = b"\x1f\x8b"
ZSTD = b"\x28\xb5\x2f\xfd"
_READ = 1 << 16
_FEED = 1 << 12


def kind_of(head: bytes) -> str:
    """"xz", "gzip", "zstd" or "" (not compressed) from a file's first bytes."""
    for magic, name in ((XZ, "xz"), (GZ, "gzip"), (ZSTD, "zstd")):
        if head.startswith(magic):
            return name
    return ""


class _Decompressor(Protocol):
    """What the decompress objects of lzma, zlib and zstandard have in common."""

    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, /) -> bytes: ...


def _decompressor(kind: str) -> _Decompressor:
    if kind == "xz":
        return lzma.LZMADecompressor()
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


def _errors() -> tuple[type[BaseException], ...]:
    import zstandard

    return (lzma.LZMAError, zlib.error, zstandard.ZstdError, EOFError, OSError, ValueError)


class Decompressed(io.RawIOBase):
    """`raw` (compressed as `kind`) decoded; see the module docstring. `errors` and
    `warn` are the reader's (the caller replaces them before reading)."""

    def __init__(self, raw: BinaryIO, kind: str, path: str) -> None:
        self.raw, self.kind, self.path = raw, kind, path
        self.errors: list[TraceFormatError] = []
        self.warnings: list[TraceFormatError] = []
        self.warn: Callable[[TraceFormatError], None] = self.warnings.append
        self.dec: _Decompressor | None = _decompressor(kind)  # None between two streams
        self.consumed = 0  # compressed bytes decoded so far
        self.produced = 0  # decoded bytes handed on so far
        self.pending = b""  # decoded bytes not yet handed on
        self.leftover = b""  # compressed bytes read past the end of a stream
        self.done = False
        self._catch = _errors()

    def readable(self) -> bool:
        return True

    def _stop(self, what: str, *, error: bool = True) -> None:
        self.done = True
        err = TraceFormatError(f"{self.path}@0x{self.consumed:x}", what)
        if error:
            self.errors.append(err)
        else:
            self.warn(err)

    def _raw_read(self) -> bytes:
        read1 = getattr(self.raw, "read1", None)
        try:
            return read1(_READ) if read1 is not None else self.raw.read(_READ)
        except (OSError, ValueError) as exc:
            self._stop(f"cannot read: {getattr(exc, 'strerror', None) or exc}")
            return b""

    def _next_stream(self, data: bytes) -> bytes:
        """Between two streams: `data` starts the next one (returned, with a fresh
        decompressor), is xz stream padding (b""), or is trailing garbage (b"", a
        warning, and the end)."""
        if self.kind == "xz":
            stripped = data.lstrip(b"\0")
            self.consumed += len(data) - len(stripped)
            if not stripped:
                return b""
            data = stripped
        magic = {"xz": XZ, "gzip": GZ, "zstd": ZSTD}[self.kind]
        if data[: len(magic)] == magic[: len(data)]:
            self.dec = _decompressor(self.kind)
            return data
        self._stop(f"trailing garbage after the {self.kind} data ignored "
                   f"({self.produced + len(self.pending):,} bytes of text decoded)",
                   error=False)
        return b""

    def _fill(self) -> None:
        """Decode until there is output, or the input ends, or damage stops it."""
        while not self.pending and not self.done:
            data, self.leftover = self.leftover or self._raw_read(), b""
            if self.done:
                return
            if not data:
                if self.dec is not None:
                    self._stop(f"{self.kind} data cut short: the file ends inside a "
                               f"compressed stream; read the {self.produced:,} bytes of text "
                               "before the cut")
                self.done = True
                return
            if self.dec is None and not (data := self._next_stream(data)):
                continue
            # fed a small piece at a time: a decompressor that raises returns nothing of
            # that call, so damage loses at most the text of one piece before it
            piece, self.leftover = data[:_FEED], data[_FEED:]
            dec = self.dec
            assert dec is not None  # a stream is open, or `_next_stream` has started one
            try:
                out = dec.decompress(piece)
            except self._catch as exc:
                self._stop(f"{self.kind} data damaged ({exc}); read the "
                           f"{self.produced + len(self.pending):,} bytes of text before it")
                return
            if dec.eof:
                self.leftover = dec.unused_data + self.leftover
                self.dec = None
                self.consumed += len(piece) - len(dec.unused_data)
            else:
                self.consumed += len(piece)
            self.pending += out

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self._fill()
        with memoryview(buffer) as buf:
            n = min(len(buf), len(self.pending))
            buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.produced += n
        return n

    def read1(self, n: int = -1) -> bytes:
        self._fill()
        n = len(self.pending) if n < 0 else n
        out, self.pending = self.pending[:n], self.pending[n:]
        self.produced += len(out)
        return out

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read1(), b""))
        out = bytearray()
        while len(out) < n and (piece := self.read1(n - len(out))):
            out += piece
        return bytes(out)
