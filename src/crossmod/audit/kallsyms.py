"""Recover the kernel's own symbol table (kallsyms) from a stripped vmlinux.

Owns: finding and decoding kallsyms_{token_table,token_index,markers,names,num_syms,offsets,
relative_base}. This is a reader written for crossmod (no vmlinux-to-elf): it needs no
architecture guesswork because it only accepts tables that check each other.
Imports: stdlib and crossmod.audit only.
Mirrors: scripts/kallsyms.c write_src() and kernel/kallsyms.c kallsyms_sym_address() from
v6.1 through v6.12 (both table orders: offsets before the names, and after the token index).

How the tables are found, each step checked by the next:
  1. the token table, by the run "0\\0" .. "9\\0" (tokens are stored in byte order and a byte
     used in a name is its own token), walking back to token 0; the token index that follows
     must list exactly those 256 string offsets;
  2. the markers, a u32 array starting at 0 and strictly increasing, before the token table
     (possibly with kallsyms_seqs_of_names in between);
  3. the names: num_syms precedes them, and decoding the last 256-name chunk from its marker
     must end exactly where the markers start;
  4. the offsets and relative_base, before num_syms or after the token index; the decoded
     addresses must come out sorted, which is how kallsyms.c emits them.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from crossmod.audit import layout
from crossmod.audit.errors import SymbolsError
from crossmod.audit.symbols import KERNEL_HALF

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
ALIGN = layout.KALLSYMS_ALIGN
STRIDE = layout.KALLSYMS_MARKER_STRIDE
# Longest compressed name chunk we accept between two markers: 256 names of at most 512 bytes.
MAX_CHUNK = STRIDE * 512
SCAN_LIMIT = 32 << 20
MAX_CANDIDATES = 4096


@dataclass(frozen=True, slots=True)
class TokenTable:
    start: int
    index: int
    tokens: tuple[bytes, ...]


def _align(x: int) -> int:
    return (x + ALIGN - 1) & ~(ALIGN - 1)


def read_kallsyms(data: bytes, where: str) -> list[tuple[int, str, str]]:
    """Return (address, type letter, name) for every kallsyms entry, or raise SymbolsError."""
    table = find_token_table(data, where)
    for markers_at, markers in _marker_candidates(data, table.start):
        found = _find_names(data, table.tokens, markers_at, markers)
        if found is None:
            continue
        names_at, count = found
        names = decode_names(data, table.tokens, names_at, count)
        addrs = _find_addresses(data, table, names_at, count)
        if addrs is None:
            raise SymbolsError("kallsyms names found but no sorted offsets table", where)
        return [(a, n[:1], n[1:]) for a, n in zip(addrs, names, strict=True)]
    raise SymbolsError("kallsyms token table found but no names/markers match it", where,
                       table.start)


def find_token_table(data: bytes, where: str) -> TokenTable:
    hit = data.find(layout.KALLSYMS_DIGIT_RUN)
    while hit != -1:
        table = _token_table_at(data, hit)
        if table is not None:
            return table
        hit = data.find(layout.KALLSYMS_DIGIT_RUN, hit + 1)
    raise SymbolsError(
        "no symbol table: not in the ELF, and no embedded kallsyms (give --symbols)", where
    )


def _token_table_at(data: bytes, digits: int) -> TokenTable | None:
    start = digits
    for _ in range(ord("0")):  # back over tokens 0x00..0x2f
        start = data.rfind(b"\0", 0, start - 1) + 1
        if start <= 0:
            return None
    if start % ALIGN:
        return None
    pos, offsets, tokens = start, [], []
    for _ in range(layout.KALLSYMS_TOKENS):
        end = data.find(b"\0", pos)
        if end == -1:
            return None
        offsets.append(pos - start)
        tokens.append(data[pos:end])
        pos = end + 1
    index = _align(pos)
    if index + 512 > len(data) or any(o > 0xFFFF for o in offsets):
        return None
    if list(struct.unpack_from("<256H", data, index)) != offsets:
        return None
    return TokenTable(start, index, tuple(tokens))


def _marker_candidates(data: bytes, token_table: int) -> Iterator[tuple[int, list[int]]]:
    """Yield (offset, markers) for every plausible kallsyms_markers array before the tokens.

    At least two markers are required (a kernel has far more than 256 symbols); that keeps
    zero-filled data from turning into thousands of one-entry candidates.
    """
    hi = token_table
    lo = max(0, token_table - SCAN_LIMIT)
    tried = 0
    while tried < MAX_CANDIDATES:
        z = data.rfind(b"\0\0\0\0", lo, hi)
        if z == -1:
            return
        hi = z + 3  # the next search may overlap this word by three bytes
        if z % ALIGN:
            continue
        markers = _increasing_run(data, z, token_table)
        if len(markers) >= 2:
            tried += 1
            yield z, markers


def _increasing_run(data: bytes, at: int, limit: int) -> list[int]:
    run, prev, pos = [0], 0, at + 4
    while pos + 4 <= limit:
        (v,) = _U32.unpack_from(data, pos)
        if not prev < v <= prev + MAX_CHUNK:
            break
        run.append(v)
        prev, pos = v, pos + 4
    return run


def _skip_names(data: bytes, pos: int, count: int) -> int:
    for _ in range(count):
        n = data[pos]
        if n & 0x80:  # ULEB128 length for names of 128+ token bytes (v6.1+)
            n = (n & 0x7F) | (data[pos + 1] << 7)
            pos += 1
        if n == 0:
            return -1
        pos += 1 + n
    return pos


def _find_names(
    data: bytes, tokens: tuple[bytes, ...], markers_at: int, markers: list[int]
) -> tuple[int, int] | None:
    """Locate kallsyms_names for these markers; return (offset, num_syms)."""
    k = len(markers)
    last = markers[-1]
    top = (markers_at - last) & ~(ALIGN - 1)
    for start in range(top, max(ALIGN, top - MAX_CHUNK), -ALIGN):
        (count,) = _U32.unpack_from(data, start - ALIGN)
        if not STRIDE * (k - 1) < count <= STRIDE * k:
            continue
        try:
            end = _skip_names(data, start + last, count - STRIDE * (k - 1))
            if end == -1 or _align(end) != markers_at:
                continue
            if k >= 2 and _skip_names(data, start, STRIDE) != start + markers[1]:
                continue
        except IndexError:
            continue
        return start, count
    return None


def decode_names(data: bytes, tokens: tuple[bytes, ...], pos: int, count: int) -> list[str]:
    names = []
    get = tokens.__getitem__
    join = b"".join
    for _ in range(count):
        n = data[pos]
        if n & 0x80:
            n = (n & 0x7F) | (data[pos + 1] << 7)
            pos += 1
        names.append(join(map(get, data[pos + 1 : pos + 1 + n])).decode("ascii", "replace"))
        pos += 1 + n
    return names


def _find_addresses(
    data: bytes, table: TokenTable, names_at: int, count: int
) -> list[int] | None:
    before_base = names_at - 2 * ALIGN  # relative_base, then num_syms, then names
    before = before_base - 4 * count
    before -= before % ALIGN
    after = _align(table.index + 512)
    for offsets_at, base_at in ((before, before_base), (after, _align(after + 4 * count))):
        if offsets_at < 0 or base_at + 8 > len(data):
            continue
        (base,) = _U64.unpack_from(data, base_at)
        if base < KERNEL_HALF:
            continue
        offs = array("i", data[offsets_at : offsets_at + 4 * count])
        for addrs in (_relative(offs, base), _absolute_percpu(offs, base)):
            if all(a <= b for a, b in pairwise(addrs)):
                return addrs
    return None


def _relative(offs: array, base: int) -> list[int]:
    return [base + (o & 0xFFFFFFFF) for o in offs]


def _absolute_percpu(offs: array, base: int) -> list[int]:
    # CONFIG_KALLSYMS_ABSOLUTE_PERCPU: non-negative entries are absolute (per-CPU offsets),
    # negative ones count down from relative_base - 1.
    return [o if o >= 0 else base - 1 - o for o in offs]
