"""Open a kernel image and give the auditor one address space to read.

Owns: ELF parsing of a linked vmlinux (PT_LOAD segments) and of a relocatable module
(sections laid out at made-up addresses with their RELA relocations applied, so that relative
table entries and call targets resolve the way the module loader would resolve them), the ELF
symbol table, and the kernel version string. Imports: stdlib, pyelftools, crossmod.audit.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import Section as ElfSection

from crossmod.audit import layout
from crossmod.audit.errors import ImageFormatError
from crossmod.audit.memory import Memory
from crossmod.audit.unpack import Unpacked, unpack

# Where a module's sections are laid out: the x86-64 module area, so addresses look familiar.
MODULE_BASE = 0xFFFFFFFFC0000000
EXTERN_BASE = 0xFFFFFFFFE0000000  # undefined symbols each get a slot here
MAX_MODULE_BSS = 256 << 20
_BANNER = re.compile(rb"Linux version \d+\.\d+[^\0\n]*")
_VERMAGIC = re.compile(rb"vermagic=([^\0]+)")

R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32 = 1, 2, 4
R_X86_64_32, R_X86_64_32S, R_X86_64_PC64 = 10, 11, 24


@dataclass(slots=True)
class Section:
    name: str
    start: int
    end: int
    flags: int


@dataclass(slots=True)
class Image:
    where: str
    unpacked: Unpacked
    relocatable: bool
    memory: Memory
    sections: list[Section]
    elf_symbols: list[tuple[int, str, str]]  # (addr, nm type, name); empty when stripped
    extern_names: dict[int, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return self.unpacked.elf

    def section_at(self, addr: int) -> Section | None:
        for s in self.sections:
            if s.start <= addr < s.end:
                return s
        return None

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def banners(self) -> list[str]:
        """Every `Linux version ...` string (a vmlinux carries two: linux_banner and the one
        built before the final link), or the module's vermagic."""
        if self.relocatable:
            m = _VERMAGIC.search(self.data)
            return [m.group(1).decode("ascii", "replace").strip()] if m else []
        return [m.group(0).decode("ascii", "replace").strip()
                for m in _BANNER.finditer(self.data)]

    def text_base(self) -> int | None:
        """Link address of the first executable section (`_text` on x86-64)."""
        execs = [s.start for s in self.sections if s.flags & SH_FLAGS.SHF_EXECINSTR]
        return min(execs) if execs else None


def open_image(path: str) -> Image:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ImageFormatError(exc.strerror or "cannot read", path) from None
    return load_image(raw, path)


def load_image(raw: bytes, where: str) -> Image:
    unpacked = unpack(raw, where)
    data = unpacked.elf
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.elfclass != 64 or not elf.little_endian or elf["e_machine"] != "EM_X86_64":
            raise ImageFormatError("not an x86-64 little-endian ELF64 file", where, 0)
        sections = list(elf.iter_sections())
        _check_bounds(elf, sections, len(data), where)
        if elf["e_type"] == "ET_REL":
            return _load_relocatable(elf, sections, unpacked, where)
        return _load_linked(elf, sections, unpacked, where)
    except ELFError as exc:
        raise ImageFormatError(f"malformed ELF: {exc}", where) from None
    # pyelftools trusts header fields: a wild e_shoff or sh_link surfaces as one of these.
    except (ValueError, KeyError, IndexError, OverflowError, struct.error, AttributeError,
            TypeError, AssertionError) as exc:
        raise ImageFormatError(f"malformed ELF: {type(exc).__name__}: {exc!s:.60}",
                               where) from None


def _check_bounds(elf: ELFFile, sections: list, size: int, where: str) -> None:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_offset"] + seg["p_filesz"] > size:
            raise ImageFormatError(
                f"truncated: segment at file offset {seg['p_offset']:#x} needs "
                f"{seg['p_filesz']:#x} bytes, file has {size:#x}",
                where,
                size,
            )
    for s in sections:
        if s["sh_type"] != "SHT_NOBITS" and s["sh_offset"] + s["sh_size"] > size:
            raise ImageFormatError(
                f"truncated: section {s.name or '?'} runs past the end of the file",
                where,
                size,
            )


def _load_linked(elf: ELFFile, sections: list, unpacked: Unpacked, where: str) -> Image:
    data = unpacked.elf
    mem = Memory()
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD":
            off, filesz = seg["p_offset"], seg["p_filesz"]
            mem.add(seg["p_vaddr"], seg["p_memsz"], memoryview(data)[off : off + filesz])
    secs = [
        Section(s.name, s["sh_addr"], s["sh_addr"] + s["sh_size"], s["sh_flags"])
        for s in sections
        if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"]
    ]
    symtab = elf.get_section_by_name(".symtab")
    syms = _raw_symbols(elf, symtab, data, lambda shndx, value: value) if symtab else []
    return Image(where, unpacked, False, mem, secs, syms)


def _raw_symbols(elf: ELFFile, symtab: ElfSection, data: bytes,
                 place: Callable[[int, int], int]) -> list[tuple[int, str, str]]:
    """Read .symtab with struct instead of pyelftools: a vmlinux has ~10^5 symbols and the
    object-per-symbol path costs seconds."""
    strtab = elf.get_section(symtab["sh_link"])
    strs = data[strtab["sh_offset"] : strtab["sh_offset"] + strtab["sh_size"]]
    raw = data[symtab["sh_offset"] : symtab["sh_offset"] + symtab["sh_size"]]
    exec_sections = {
        i for i, s in enumerate(elf.iter_sections()) if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
    }
    out = []
    for name_off, info, _, shndx, value, _ in layout.ELF64_SYM.iter_unpack(raw):
        kind = info & 0xF
        if kind in (3, 4) or shndx == 0 or name_off == 0:  # STT_SECTION, STT_FILE, undefined
            continue
        name = strs[name_off : strs.index(b"\0", name_off)].decode("ascii", "replace")
        letter = "t" if shndx in exec_sections else "d"
        if info >> 4 != 0:  # not STB_LOCAL
            letter = letter.upper()
        out.append((place(shndx, value), letter, name))
    return out


def _load_relocatable(elf: ELFFile, sections: list, unpacked: Unpacked, where: str) -> Image:
    data = unpacked.elf
    bases, blobs, secs = _layout_sections(sections, data, where)
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise ImageFormatError("relocatable object without .symtab", where)
    addrs, externs = _symbol_addresses(symtab, data, bases)
    for rel in sections:
        target = rel["sh_info"]
        if rel["sh_type"] == "SHT_RELA" and target in blobs:
            raw = data[rel["sh_offset"] : rel["sh_offset"] + rel["sh_size"]]
            _apply_rela(raw, addrs, blobs[target], bases[target])
    mem = Memory()
    for idx, blob in blobs.items():
        mem.add(bases[idx], len(blob), blob)
    if externs:
        secs.append(Section("(extern)", EXTERN_BASE, EXTERN_BASE + 16 * len(externs), 0))

    def place(shndx: int, value: int) -> int:
        return bases[shndx] + value if shndx in bases else value

    syms = _raw_symbols(elf, symtab, data, place)
    syms += [(a, "U", n) for a, n in externs.items()]
    return Image(where, unpacked, True, mem, secs, syms, externs)


def _layout_sections(
    sections: list, data: bytes, where: str
) -> tuple[dict[int, int], dict[int, bytearray], list[Section]]:
    bases: dict[int, int] = {}
    blobs: dict[int, bytearray] = {}
    secs: list[Section] = []
    cursor = MODULE_BASE
    for idx, s in enumerate(sections):
        if not s["sh_flags"] & SH_FLAGS.SHF_ALLOC or not s["sh_size"]:
            continue
        align = max(s["sh_addralign"], 16)
        cursor = (cursor + align - 1) & ~(align - 1)
        bases[idx] = cursor
        if s["sh_type"] == "SHT_NOBITS":
            # .bss is zero-filled in memory only; a module's is small, so a huge one is junk.
            if s["sh_size"] > MAX_MODULE_BSS:
                raise ImageFormatError(
                    f"section {s.name or '?'} claims {s['sh_size']:#x} bytes of .bss", where)
            blobs[idx] = bytearray(s["sh_size"])
        else:
            blobs[idx] = bytearray(data[s["sh_offset"] : s["sh_offset"] + s["sh_size"]])
        secs.append(Section(s.name, cursor, cursor + s["sh_size"], s["sh_flags"]))
        cursor += s["sh_size"]
    return bases, blobs, secs


def _symbol_addresses(
    symtab: ElfSection, data: bytes, bases: dict[int, int]
) -> tuple[list[int], dict[int, str]]:
    """Address of every symbol index; undefined symbols get distinct slots so that a call to
    an external trampoline still names its target."""
    strtab_off = symtab.elffile.get_section(symtab["sh_link"])["sh_offset"]
    raw = data[symtab["sh_offset"] : symtab["sh_offset"] + symtab["sh_size"]]
    addrs: list[int] = []
    externs: dict[int, str] = {}
    for name_off, _, _, shndx, value, _ in layout.ELF64_SYM.iter_unpack(raw):
        if shndx in bases:
            addrs.append(bases[shndx] + value)
        elif shndx == 0 and name_off:
            end = data.index(b"\0", strtab_off + name_off)
            slot = EXTERN_BASE + 16 * len(externs)
            externs[slot] = data[strtab_off + name_off : end].decode("ascii", "replace")
            addrs.append(slot)
        else:
            addrs.append(value)  # SHN_ABS, or sections that are not loaded
    return addrs, externs


def _apply_rela(raw: bytes, addrs: list[int], blob: bytearray, base: int) -> None:
    for offset, info, addend in layout.ELF64_RELA.iter_unpack(raw):
        kind, sym = info & 0xFFFFFFFF, info >> 32
        s_a = addrs[sym] + addend
        where = base + offset
        if kind in (R_X86_64_PC32, R_X86_64_PLT32):
            blob[offset : offset + 4] = ((s_a - where) & 0xFFFFFFFF).to_bytes(4, "little")
        elif kind in (R_X86_64_32, R_X86_64_32S):
            blob[offset : offset + 4] = (s_a & 0xFFFFFFFF).to_bytes(4, "little")
        elif kind == R_X86_64_64:
            blob[offset : offset + 8] = (s_a & (1 << 64) - 1).to_bytes(8, "little")
        elif kind == R_X86_64_PC64:
            blob[offset : offset + 8] = ((s_a - where) & (1 << 64) - 1).to_bytes(8, "little")
