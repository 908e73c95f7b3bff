"""Decode `__jump_table` and `.static_call_sites` into absolute addresses.

Owns: turning the relative records of layout.py into (code, target, key, flags) and
(site, key, flags). Imports: stdlib and crossmod.audit only.
Mirrors: include/linux/jump_label.h jump_entry_code()/jump_entry_target()/jump_entry_key()
and kernel/static_call_inline.c static_call_addr()/static_call_key().
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmod.audit import layout
from crossmod.audit.errors import ImageFormatError
from crossmod.audit.memory import Memory

MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class JumpEntry:
    entry: int  # address of the record itself
    code: int
    target: int
    key: int
    flags: int  # JUMP_FLAG_BRANCH | JUMP_FLAG_OBJTOOL_NOP


@dataclass(frozen=True, slots=True)
class StaticCallSite:
    entry: int
    addr: int
    key: int
    flags: int  # STATIC_CALL_SITE_TAIL | STATIC_CALL_SITE_INIT


def _table_bytes(mem: Memory, start: int, stop: int, size: int, what: str, where: str) -> bytes:
    if stop < start or (stop - start) % size:
        raise ImageFormatError(
            f"{what} bounds {start:#x}..{stop:#x} are not a whole number of {size}-byte records",
            where,
        )
    raw = mem.read(start, stop - start) if stop > start else b""
    if raw is None:
        raise ImageFormatError(f"{what} {start:#x}..{stop:#x} is not inside the image", where)
    return raw


def decode_jump_table(mem: Memory, start: int, stop: int, where: str) -> list[JumpEntry]:
    rec = layout.JUMP_ENTRY
    raw = _table_bytes(mem, start, stop, rec.size, "__jump_table", where)
    out = []
    for i, (code, target, key) in enumerate(rec.iter_unpack(raw)):
        at = start + i * rec.size
        flags = key & layout.JUMP_FLAGS
        out.append(
            JumpEntry(
                entry=at,
                code=(at + code) & MASK64,
                target=(at + layout.JUMP_ENTRY_TARGET_OFFSET + target) & MASK64,
                key=(at + layout.JUMP_ENTRY_KEY_OFFSET + (key & ~layout.JUMP_FLAGS)) & MASK64,
                flags=flags,
            )
        )
    return out


def decode_static_call_sites(
    mem: Memory, start: int, stop: int, where: str
) -> list[StaticCallSite]:
    rec = layout.STATIC_CALL_SITE
    raw = _table_bytes(mem, start, stop, rec.size, ".static_call_sites", where)
    out = []
    for i, (addr, key) in enumerate(rec.iter_unpack(raw)):
        at = start + i * rec.size
        flags = key & layout.STATIC_CALL_SITE_FLAGS
        key_at = at + layout.STATIC_CALL_KEY_OFFSET + (key & ~layout.STATIC_CALL_SITE_FLAGS)
        out.append(StaticCallSite(at, (at + addr) & MASK64, key_at & MASK64, flags))
    return out
