"""Symbol tables from any of the three sources, and address -> `name+off` lookup.

Owns: the `Symbols` table, parsing of System.map and kallsyms dumps (`/proc/kallsyms`), and
the KASLR shift of a dump back to link addresses. Imports: stdlib and crossmod.audit only.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from crossmod.audit.errors import SymbolsError

TEXT_TYPES = frozenset("tTwW")
# Only kernel-half addresses move with KASLR; per-CPU symbols are small absolute offsets.
KERNEL_HALF = 0xFFFF800000000000
_LINE = re.compile(r"^([0-9a-fA-F]{1,16})\s+([a-zA-Z?])\s+(\S+)(\s+\[\S+\])?\s*$")
_MARKER = re.compile(r"^__(start|stop|end)_|_(start|end)$")


@dataclass(slots=True)
class Symbols:
    """Names with addresses and nm-style type letters, searchable both ways."""

    source: str
    by_name: dict[str, int] = field(default_factory=dict)
    _text: tuple[list[int], list[str]] = field(default_factory=lambda: ([], []))
    _all: tuple[list[int], list[str]] = field(default_factory=lambda: ([], []))

    @classmethod
    def build(cls, source: str, entries: Iterable[tuple[int, str, str]]) -> Symbols:
        """`entries` are (address, type letter, name)."""
        self = cls(source)
        text: dict[int, tuple[int, str]] = {}
        every: dict[int, tuple[int, str]] = {}
        for addr, kind, name in entries:
            self.by_name.setdefault(name, addr)
            # Several names share an address; prefer a real object/function over a linker
            # marker, and a global over a local, so tables read like objtool's warnings.
            rank = (0 if _MARKER.search(name) else 2) + (1 if kind.isupper() else 0)
            if kind in TEXT_TYPES and rank > text.get(addr, (-1, ""))[0]:
                text[addr] = (rank, name)
            if rank > every.get(addr, (-1, ""))[0]:
                every[addr] = (rank, name)
        self._text = _sorted(text)
        self._all = _sorted(every)
        return self

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str) -> int | None:
        return self.by_name.get(name)

    def function_at(self, addr: int) -> str:
        """`func+0xoff` for a code address, objtool style."""
        return _describe(self._text, addr)

    def object_at(self, addr: int) -> str:
        """`sym` or `sym+0xoff` for a data address (a key embedded in a tracepoint is +0x8)."""
        return _describe(self._all, addr)


def _sorted(best: dict[int, tuple[int, str]]) -> tuple[list[int], list[str]]:
    addrs = sorted(best)
    return addrs, [best[a][1] for a in addrs]


def _describe(table: tuple[list[int], list[str]], addr: int) -> str:
    addrs, names = table
    i = bisect.bisect_right(addrs, addr) - 1
    if i < 0:
        return f"{addr:#x}"
    off = addr - addrs[i]
    return names[i] if off == 0 else f"{names[i]}+{off:#x}"


def parse_symbol_file(text: str, where: str) -> tuple[list[tuple[int, str, str]], bool]:
    """Parse a System.map or a kallsyms dump into entries; also say whether it is a dump.

    A kallsyms dump is recognised by module lines (`[mod]`) or by addresses that sit above
    the x86-64 link base, which a System.map never has; either way KASLR is worked out later.
    Module symbols are dropped: they are not in the image being audited.
    """
    entries: list[tuple[int, str, str]] = []
    has_modules = False
    if "The real System.map is in" in text[:200]:
        raise SymbolsError("this is Debian's placeholder System.map (the real one is in the "
                           "-dbg package); leave --symbols out to use the embedded kallsyms",
                           where)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise SymbolsError(
                f"line {lineno} is not 'ADDRESS TYPE NAME': {line[:60]!r}", where
            )
        if m.group(4):
            has_modules = True
            continue
        entries.append((int(m.group(1), 16), m.group(2), m.group(3)))
    if not entries:
        raise SymbolsError("no symbols in file", where)
    if all(a == 0 for a, _, _ in entries):
        raise SymbolsError("every address is zero (read /proc/kallsyms as root)", where)
    return entries, has_modules


def undo_kaslr(
    entries: list[tuple[int, str, str]], delta: int
) -> list[tuple[int, str, str]]:
    return [(a - delta if a >= KERNEL_HALF else a, k, n) for a, k, n in entries]
