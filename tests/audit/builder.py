"""Builds the audit test fixtures at test time: a miniature kernel compiled by gcc from
data/fixture.c (real asm-goto `__jump_table` entries and `.static_call_sites`), linked with a
kernel-shaped script, optionally stripped with an embedded kallsyms table written here in
either table order, and wrapped in a bzImage-like boot header with each compression.
`write_elf()` lays out an image byte by byte instead, without a compiler, for fixtures whose
bytes must sit at exact addresses (test_audit_boundaries.py).

The kallsyms writer follows scripts/kallsyms.c write_src() closely enough for the reader to
be exercised on both layouts; the real-kernel check is the opt-in Debian test.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import lz4.block
import zstandard
from elftools.elf.elffile import ELFFile

DATA = Path(__file__).parent / "data"
CFLAGS = [
    "-O2", "-mcmodel=kernel", "-fno-pic", "-fno-pie", "-ffreestanding", "-fno-common",
    "-fno-asynchronous-unwind-tables", "-fno-stack-protector", "-fcf-protection=none", "-c",
]
KALLSYMS_SPACE = 0x10000
PAD_SYMBOLS = 600  # more than two kallsyms markers' worth (256 names each)
IDLE = ". = ALIGN(16); __cpuidle_text_start = .; *(.cpuidle.text) __cpuidle_text_end = .;"
FORMATS = ("gzip", "xz", "lzma", "bzip2", "lz4", "zstd")


def have_toolchain() -> bool:
    return all(shutil.which(t) for t in ("gcc", "ld", "objcopy"))


def compile_objects(out: Path) -> tuple[Path, Path]:
    objs = []
    for name in ("fixture", "ext"):
        obj = out / f"{name}.o"
        subprocess.run(["gcc", *CFLAGS, str(DATA / f"{name}.c"), "-o", str(obj)], check=True)
        objs.append(obj)
    return objs[0], objs[1]


def link(out: Path, objs: tuple[Path, Path], name: str, idle_in_noinstr: bool = False) -> Path:
    script = (DATA / "vmlinux.lds.in").read_text()
    script = script.replace("@IDLE_INSIDE@", IDLE if idle_in_noinstr else "")
    script = script.replace("@IDLE_OUTSIDE@", "" if idle_in_noinstr else IDLE)
    script = script.replace("@KALLSYMS_SPACE@", hex(KALLSYMS_SPACE))
    lds = out / f"{name}.lds"
    lds.write_text(script)
    elf = out / name
    subprocess.run(["ld", "-static", "-nostdlib", "-z", "max-page-size=4096", "-z",
                    "noexecstack", "-T", str(lds), *map(str, objs), "-o", str(elf)], check=True)
    return elf


def elf_symbols(path: Path) -> list[tuple[int, str, str]]:
    """(address, nm type letter, name) from the ELF symbol table, sorted like kallsyms."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        secs = {i: s for i, s in enumerate(elf.iter_sections())}
        out = []
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            shndx = sym["st_shndx"]
            if not sym.name or sym["st_info"]["type"] in ("STT_FILE", "STT_SECTION"):
                continue
            if not isinstance(shndx, int):
                continue
            sec = secs[shndx]
            if sec["sh_flags"] & 0x4:
                letter = "t"
            elif sec["sh_type"] == "SHT_NOBITS":
                letter = "b"
            elif sec["sh_flags"] & 0x1:
                letter = "d"
            else:
                letter = "r"
            if sym["st_info"]["bind"] != "STB_LOCAL":
                letter = letter.upper()
            out.append((sym["st_value"], letter, sym.name))
    return sorted(out, key=lambda e: e[0])


def system_map(symbols: list[tuple[int, str, str]], shift: int = 0) -> str:
    return "".join(f"{a + shift:016x} {k} {n}\n" for a, k, n in symbols)


# ---- kallsyms --------------------------------------------------------------------------


def _token_table(names: list[bytes]) -> list[bytes]:
    used = set(b"".join(names))
    table = [b""] * 256
    for b in used:
        table[b] = bytes([b])
    pairs = Counter(n[i : i + 2] for n in names for i in range(len(n) - 1))
    free = [i for i in range(255, -1, -1) if i not in used]
    for (pair, _), slot in zip(pairs.most_common(len(free)), free, strict=False):
        table[slot] = pair
    return table


def _encode(name: bytes, lookup: dict[bytes, int]) -> bytes:
    out, i = bytearray(), 0
    while i < len(name):
        pair = name[i : i + 2]
        if len(pair) == 2 and pair in lookup:
            out.append(lookup[pair])
            i += 2
        else:
            out.append(lookup[name[i : i + 1]])
            i += 1
    return bytes(out)


def _pad8(buf: bytearray) -> None:
    buf.extend(b"\0" * (-len(buf) % 8))


def kallsyms_blob(symbols: list[tuple[int, str, str]], order: str) -> bytes:
    """Tables in v6.1 order (offsets, relative_base, num_syms, names, markers, seqs, tokens,
    absolute-percpu offsets) or v6.12 order (num_syms, names, markers, tokens, then plain
    relative offsets and relative_base)."""
    names = [(k + n).encode() for _, k, n in symbols]
    tokens = _token_table(names)
    lookup = {t: i for i, t in enumerate(tokens) if t}
    base = min(a for a, _, _ in symbols)
    packed, markers = bytearray(), []
    for i, name in enumerate(names):
        if i % 256 == 0:
            markers.append(len(packed))
        enc = _encode(name, lookup)
        packed += bytes([len(enc)]) + enc
    token_bytes = bytearray(b"".join(t + b"\0" for t in tokens))
    index, off = [], 0
    for t in tokens:
        index.append(off)
        off += len(t) + 1
    parts = {
        "names": struct.pack("<I", len(names)) + b"\0" * 4 + packed,
        "markers": struct.pack(f"<{len(markers)}I", *markers),
        "seqs": b"".join(i.to_bytes(3, "big") for i in range(len(names))),
        "tokens": bytes(token_bytes),
        "index": struct.pack("<256H", *index),
        "base": struct.pack("<Q", base),
    }
    if order == "v6.1":
        parts["offsets"] = struct.pack(f"<{len(names)}i", *(base - a - 1 for a, _, _ in symbols))
        seq = ("offsets", "base", "names", "markers", "seqs", "tokens", "index")
    else:
        parts["offsets"] = struct.pack(f"<{len(names)}I", *(a - base for a, _, _ in symbols))
        seq = ("names", "markers", "tokens", "index", "offsets", "base", "seqs")
    blob = bytearray()
    for part in seq:
        blob += parts[part]
        _pad8(blob)
    return bytes(blob)


def with_kallsyms(elf: Path, order: str, out: Path) -> Path:
    """Write kallsyms into the reserved space (addresses do not move), then strip .symtab."""
    symbols = elf_symbols(elf)
    space = next(a for a, _, n in symbols if n == "__kallsyms_space")
    pads = [(space + i, "r", f"__fixture_pad_{i:04d}") for i in range(PAD_SYMBOLS)]
    table = sorted(symbols + pads, key=lambda e: e[0])
    blob = kallsyms_blob(table, order)
    assert len(blob) <= KALLSYMS_SPACE
    data = bytearray(elf.read_bytes())
    with open(elf, "rb") as f:
        rodata = ELFFile(f).get_section_by_name(".rodata")
        at = rodata["sh_offset"] + space - rodata["sh_addr"]
    data[at : at + len(blob)] = blob
    tmp = out / f"{elf.name}.{order}.unstripped"
    tmp.write_bytes(data)
    stripped = out / f"{elf.name}.{order}"
    subprocess.run(["objcopy", "--strip-all", str(tmp), str(stripped)], check=True)
    return stripped


def stripped(elf: Path, out: Path) -> Path:
    dest = out / f"{elf.name}.nosyms"
    subprocess.run(["objcopy", "--strip-all", str(elf), str(dest)], check=True)
    return dest


# ---- hand-laid ELF ----------------------------------------------------------------------

ELF_SECTION_FLAGS = {"ax": 0x6, "a": 0x2, "wa": 0x3}  # SHF_ALLOC | SHF_EXECINSTR / SHF_WRITE
ELF_SEGMENT_FLAGS = {"ax": 0x5, "a": 0x4, "wa": 0x6}  # PF_R | PF_X / PF_W
ELF_SYMBOL_TYPES = {"notype": 0, "object": 1, "func": 2}


def write_elf(sections: list[tuple[str, int, bytes, str]],
              symbols: list[tuple[str, int, str, str]], entry: int) -> bytes:
    """An x86-64 ET_EXEC file: each section (name, address, bytes, "ax"/"a"/"wa") gets its own
    PT_LOAD segment at a file offset congruent to its address; symbols are (name, address,
    section name, "func"/"object"/"notype"), all global, in the order given."""
    page = 0x1000
    ehdr, phdr, shdr = struct.Struct("<16sHHIQQQIHHHHHH"), struct.Struct("<IIQQQQQQ"), \
        struct.Struct("<IIQQQQIIQQ")
    sym = struct.Struct("<IBBHQQ")
    body = bytearray(ehdr.size + phdr.size * len(sections))
    placed = []
    for name, addr, data, kind in sections:
        body.extend(b"\0" * ((addr - len(body)) % page))
        placed.append((name, addr, len(body), data, kind))
        body += data
    index = {name: i + 1 for i, (name, *_) in enumerate(placed)}
    strtab, symtab = bytearray(b"\0"), bytearray(sym.size)
    for name, addr, section, kind in symbols:
        symtab += sym.pack(len(strtab), 0x10 | ELF_SYMBOL_TYPES[kind], 0, index[section], addr, 0)
        strtab += name.encode() + b"\0"
    names = [n for n, *_ in placed] + [".symtab", ".strtab", ".shstrtab"]
    shstrtab, name_at = bytearray(b"\0"), {}
    for n in names:
        name_at[n] = len(shstrtab)
        shstrtab += n.encode() + b"\0"
    tails = {}
    for n, blob in ((".symtab", symtab), (".strtab", strtab), (".shstrtab", shstrtab)):
        body.extend(b"\0" * (-len(body) % 8))
        tails[n] = (len(body), len(blob))
        body += blob
    body.extend(b"\0" * (-len(body) % 8))
    shoff = len(body)
    heads = [shdr.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    for name, addr, off, data, kind in placed:
        heads.append(shdr.pack(name_at[name], 1, ELF_SECTION_FLAGS[kind], addr, off, len(data),
                               0, 0, 16, 0))
    strndx = len(placed) + 2  # .strtab; .shstrtab follows it
    heads.append(shdr.pack(name_at[".symtab"], 2, 0, 0, *tails[".symtab"], strndx, 1, 8,
                           sym.size))
    heads.append(shdr.pack(name_at[".strtab"], 3, 0, 0, *tails[".strtab"], 0, 0, 1, 0))
    heads.append(shdr.pack(name_at[".shstrtab"], 3, 0, 0, *tails[".shstrtab"], 0, 0, 1, 0))
    body += b"".join(heads)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    body[: ehdr.size] = ehdr.pack(ident, 2, 62, 1, entry, ehdr.size, shoff, 0, ehdr.size,
                                  phdr.size, len(placed), shdr.size, len(heads), strndx + 1)
    for i, (_, addr, off, data, kind) in enumerate(placed):
        at = ehdr.size + i * phdr.size
        body[at : at + phdr.size] = phdr.pack(1, ELF_SEGMENT_FLAGS[kind], off, addr, addr,
                                              len(data), len(data), page)
    return bytes(body)


# ---- bzImage -----------------------------------------------------------------------------


def compress(fmt: str, data: bytes) -> bytes:
    if fmt == "gzip":
        return gzip.compress(data, mtime=0)
    if fmt == "xz":  # the kernel's `xz --check=crc32 --x86 --lzma2`
        filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 6}]
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                             filters=filters)
    if fmt == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    if fmt == "bzip2":
        return bz2.compress(data)
    if fmt == "lz4":  # `lz4 -l`: legacy frame, 8 MiB blocks
        out = bytearray(struct.pack("<I", 0x184C2102))
        for i in range(0, len(data), 8 << 20):
            block = lz4.block.compress(data[i : i + (8 << 20)], store_size=False)
            out += struct.pack("<I", len(block)) + block
        return bytes(out)
    if fmt == "zstd":
        return zstandard.ZstdCompressor(level=19).compress(data)
    raise ValueError(fmt)


def bzimage(payload: bytes, version: str = "6.99.0-crossmod-fixture #1 SMP") -> bytes:
    """A boot sector + setup header (protocol 2.15) + stub + payload, as arch/x86/boot/
    tools/build.c lays them out; the setup area holds the kernel_version string."""
    setup_sects = 3
    head = bytearray(512 * (setup_sects + 1))
    head[0:2] = b"MZ"
    head[0x1F1] = setup_sects
    head[0x1FE:0x200] = b"\x55\xaa"
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, 0x020F)
    head[0x300 : 0x300 + len(version) + 1] = version.encode() + b"\0"
    struct.pack_into("<H", head, 0x20E, 0x300 - 0x200)
    stub = b"\x90" * 256  # stands in for the decompressor
    struct.pack_into("<II", head, 0x248, len(stub), len(payload))
    return bytes(head) + stub + payload + b"\0" * 64


def bzimage_of(elf: bytes, fmt: str) -> bytes:
    return bzimage(compress(fmt, elf) + struct.pack("<I", len(elf)))
