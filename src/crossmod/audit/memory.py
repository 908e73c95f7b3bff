"""A flat, read-only view of the image's virtual address space.

Owns: address -> bytes translation over a list of mapped ranges (PT_LOAD segments of a
linked vmlinux, or the laid-out sections of a relocated module). Imports: stdlib only.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# A range's contents: a segment of a linked image is a view of the file (not copied).
Data = bytes | bytearray | memoryview


@dataclass(slots=True)
class Memory:
    """Ranges are (start, size, bytes); bytes may be shorter than size (the rest reads as 0,
    like .bss)."""

    ranges: list[tuple[int, int, Data]] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list)

    def add(self, start: int, size: int, data: Data) -> None:
        if size <= 0:
            return
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self.ranges.insert(i, (start, size, data))

    def find(self, addr: int) -> tuple[int, int, Data] | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        start, size, _ = self.ranges[i]
        return self.ranges[i] if addr < start + size else None

    def contains(self, addr: int, length: int = 1) -> bool:
        r = self.find(addr)
        return r is not None and addr + length <= r[0] + r[1]

    def read(self, addr: int, length: int) -> bytes | None:
        """`length` bytes at `addr`, or None when any of them is unmapped."""
        r = self.find(addr)
        if r is None or addr + length > r[0] + r[1]:
            return None
        start, _, data = r
        lo = addr - start
        chunk = bytes(data[lo : lo + length])
        return chunk + bytes(length - len(chunk))

    def read_upto(self, addr: int, length: int) -> bytes | None:
        """Up to `length` bytes at `addr`, fewer at the end of a range; None when unmapped."""
        r = self.find(addr)
        if r is None:
            return None
        return self.read(addr, min(length, r[0] + r[1] - addr))
