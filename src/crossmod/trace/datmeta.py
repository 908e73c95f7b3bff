"""Metadata helpers of the trace.dat reader: bounds-checked cursors and kallsyms.

Owns: `_Cursor` (reads over an in-memory metadata blob, offsets reported in the file),
`_FileCursor` (the same reads straight from the file, for v6's sequential header) and
`Kallsyms` (address -> symbol as libtraceevent resolves ``%pS``/``%ps``).

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

import bisect
import re
import struct
import sys
from array import array
from collections.abc import Callable
from typing import BinaryIO

from crossmod.trace.events import TraceFormatError


class _Cursor:
    """Bounds-checked reads over an in-memory metadata blob; offsets reported in the file."""

    def __init__(self, data: bytes, base: int, where: Callable[[int], str], endian: str) -> None:
        self.data, self.pos, self.base, self.where, self.e = data, 0, base, where, endian

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise TraceFormatError(self.where(self.base + self.pos),
                                   f"truncated {what}: need {n} bytes")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u(self, fmt: str, what: str) -> int:
        st = struct.Struct(self.e + fmt)
        return st.unpack(self.take(st.size, what))[0]

    def cstr(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise TraceFormatError(self.where(self.base + self.pos), f"unterminated {what}")
        s = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return s


class _FileCursor(_Cursor):
    """The same reads straight from the file: v6 metadata is sequential, CPU data follows."""

    def __init__(self, f: BinaryIO, base: int, where: Callable[[int], str], endian: str) -> None:
        super().__init__(b"", base, where, endian)
        self.f = f
        try:
            here = f.tell()
            self.size: int | None = f.seek(0, 2)
            f.seek(here)
        except (OSError, ValueError):
            self.size = None  # a pipe: sizes are checked by the short read instead

    def take(self, n: int, what: str) -> bytes:
        # A corrupted size field can claim more than the file (or than an index) can hold.
        limit = sys.maxsize if self.size is None else self.size - self.f.tell()
        if n > limit:
            raise TraceFormatError(self.where(self.base + self.pos),
                                   f"truncated {what}: need {n} bytes, "
                                   f"{max(limit, 0)} left in the file")
        b = self.f.read(n) if n >= 0 else b""
        if len(b) != n:
            raise TraceFormatError(self.where(self.base + self.pos),
                                   f"truncated {what}: need {n} bytes")
        self.pos += n
        return b

    def cstr(self, what: str) -> str:
        out = bytearray()
        while (ch := self.take(1, what)) != b"\0":
            out += ch
        return out.decode("utf-8", "replace")


class Kallsyms:
    """Address -> symbol, as libtraceevent resolves ``%pS``/``%ps`` from the file's kallsyms.

    A distribution kernel has ~160,000 symbols: they are kept as two arrays (addresses and
    the offset of each name in the file's own text, sorted by address) over that text, not
    as 160,000 Python ints and strings, so the table costs about the text's size once
    (names are decoded when looked up, and cached)."""

    _LINE = re.compile(rb"^([0-9a-fA-F]{1,16})[ \t]+([^aA \t\n])[ \t]+([^ \t\n]+)", re.M)

    def __init__(self, text: bytes) -> None:
        self.text = text
        addrs, starts = array("Q"), array("Q")
        for m in self._LINE.finditer(text):
            addrs.append(int(m[1], 16))
            starts.append(m.start(3))
        if any(addrs[i] > addrs[i + 1] for i in range(len(addrs) - 1)):  # modules, mostly
            order = sorted(range(len(addrs)), key=addrs.__getitem__)
            addrs = array("Q", (addrs[i] for i in order))
            starts = array("Q", (starts[i] for i in order))
        self.addrs, self._starts = addrs, starts
        self._cache: dict[tuple[int, bool], str] = {}

    def name(self, i: int) -> str:
        """The i-th symbol's name (in address order)."""
        start = self._starts[i]
        end = start
        text = self.text
        while end < len(text) and text[end] not in b" \t\n":
            end += 1
        return text[start:end].decode("utf-8", "replace")

    def lookup(self, addr: int, with_offset: bool) -> str:
        key = (addr, with_offset)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0:
            s = f"0x{addr:x}"
        elif with_offset:
            s = f"{self.name(i)}+0x{addr - self.addrs[i]:x}"
        else:
            s = self.name(i)
        if len(self._cache) < 1 << 16:
            self._cache[key] = s
        return s
