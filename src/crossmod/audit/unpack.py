"""Turn whatever file the user gave into ELF bytes: a vmlinux as is, a bzImage/vmlinuz through
its boot header and compressed payload, a `.ko.xz`/`.ko.zst`/`.ko.gz` module through its
compression.

Owns: boot-header parsing and the six kernel compression formats (gzip, xz, lzma, bzip2,
lz4 legacy, zstd), each through the library made for it. Imports: stdlib, zstandard, lz4.
Mirrors: Documentation/arch/x86/boot.rst (protocol 2.08+ payload fields) and
lib/decompress.c (the magic table).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import lz4.block
import zstandard

from crossmod.audit import layout
from crossmod.audit.errors import ImageFormatError


@dataclass(frozen=True, slots=True)
class Unpacked:
    """ELF bytes plus how they were obtained."""

    elf: bytes
    container: str  # "elf", "bzImage", "compressed module"
    compression: str | None
    boot_version: str | None  # the setup header's kernel_version string, when there is one


def sniff_compression(data: bytes) -> str | None:
    for magic, name in layout.COMPRESSION_MAGICS:
        if data.startswith(magic):
            return name
    return None


def unpack(data: bytes, where: str) -> Unpacked:
    """Return the ELF inside `data`, or raise ImageFormatError naming `where`."""
    if data.startswith(layout.ELF_MAGIC):
        return Unpacked(data, "elf", None, None)
    if is_bzimage(data):
        return unpack_bzimage(data, where)
    fmt = sniff_compression(data)
    if fmt is not None:
        elf = decompress(fmt, data, where, 0)
        if not elf.startswith(layout.ELF_MAGIC):
            raise ImageFormatError(f"{fmt} data does not hold an ELF file", where, 0)
        return Unpacked(elf, "compressed module", fmt, None)
    if len(data) < 4:
        raise ImageFormatError(f"file too short ({len(data)} bytes) for any image", where, 0)
    raise ImageFormatError("not an ELF file, a bzImage or a compressed module", where, 0)


def is_bzimage(data: bytes) -> bool:
    end = layout.BOOT_HEADER_MAGIC_OFFSET + len(layout.BOOT_HEADER_MAGIC)
    return len(data) >= end and data[layout.BOOT_HEADER_MAGIC_OFFSET : end] == (
        layout.BOOT_HEADER_MAGIC
    )


def unpack_bzimage(data: bytes, where: str) -> Unpacked:
    """Find the payload through the setup header and decompress it."""
    fields_end = layout.BOOT_PAYLOAD + layout.BOOT_PAYLOAD_FIELDS.size
    if len(data) < fields_end:
        raise ImageFormatError("bzImage truncated inside its setup header", where, len(data))
    (proto,) = struct.unpack_from("<H", data, layout.BOOT_VERSION)
    if proto < layout.BOOT_MIN_PAYLOAD_PROTOCOL:
        raise ImageFormatError(
            f"boot protocol {proto >> 8}.{proto & 0xff:02d} has no payload fields (need 2.08+)",
            where,
            layout.BOOT_VERSION,
        )
    # setup_sects == 0 means 4 for historical reasons; +1 for the boot sector itself.
    setup_sects = data[layout.BOOT_SETUP_SECTS] or 4
    start = (setup_sects + 1) * 512
    off, length = layout.BOOT_PAYLOAD_FIELDS.unpack_from(data, layout.BOOT_PAYLOAD)
    begin, end = start + off, start + off + length
    if length == 0 or end > len(data):
        raise ImageFormatError(
            f"bzImage truncated: payload {begin:#x}+{length:#x} runs past the end of the file",
            where,
            len(data),
        )
    payload = data[begin:end]
    fmt = sniff_compression(payload)
    if fmt is None:
        raise ImageFormatError(
            f"unknown payload compression (magic {payload[:6].hex()})", where, begin
        )
    elf = decompress(fmt, payload, where, begin)
    if not elf.startswith(layout.ELF_MAGIC):
        raise ImageFormatError("decompressed payload is not an ELF vmlinux", where, begin)
    return Unpacked(elf, "bzImage", fmt, boot_version_string(data))


def boot_version_string(data: bytes) -> str | None:
    (ptr,) = struct.unpack_from("<H", data, layout.BOOT_KERNEL_VERSION)
    at = ptr + 0x200
    if ptr == 0 or at >= len(data):
        return None
    raw = data[at : at + 256].split(b"\0", 1)[0]
    return raw.decode("ascii", "replace") or None


def decompress(fmt: str, payload: bytes, where: str, offset: int) -> bytes:
    """Decompress one stream; a stream that stops early or fails its checks is an error.

    The kernel build appends the decompressed size as a little-endian u32 after the stream
    (scripts/Makefile.lib `size_append`); when exactly those four bytes are left over they
    must match, which catches corruption that a format without a checksum would let through.
    """
    try:
        out, rest = _DECODERS[fmt](payload)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zstandard.ZstdError,
            lz4.block.LZ4BlockError) as exc:
        raise ImageFormatError(f"corrupt {fmt} payload: {exc}", where, offset) from None
    if rest is None:
        raise ImageFormatError(f"truncated {fmt} payload: stream ends early", where, offset)
    if len(rest) == 4 and struct.unpack("<I", rest)[0] != len(out) & 0xFFFFFFFF:
        raise ImageFormatError(
            f"corrupt {fmt} payload: size trailer says {struct.unpack('<I', rest)[0]:#x} "
            f"bytes, stream gave {len(out):#x}",
            where,
            offset + len(payload) - 4,
        )
    return out


def _stream(obj: zlib._Decompress | lzma.LZMADecompressor | bz2.BZ2Decompressor,
            payload: bytes) -> tuple[bytes, bytes | None]:
    out = obj.decompress(payload)
    return out, (obj.unused_data if obj.eof else None)


def _gzip(payload: bytes) -> tuple[bytes, bytes | None]:
    return _stream(zlib.decompressobj(wbits=31), payload)


def _xz(payload: bytes) -> tuple[bytes, bytes | None]:
    return _stream(lzma.LZMADecompressor(format=lzma.FORMAT_XZ), payload)


def _lzma(payload: bytes) -> tuple[bytes, bytes | None]:
    return _stream(lzma.LZMADecompressor(format=lzma.FORMAT_ALONE), payload)


def _bzip2(payload: bytes) -> tuple[bytes, bytes | None]:
    return _stream(bz2.BZ2Decompressor(), payload)


def _zstd(payload: bytes) -> tuple[bytes, bytes | None]:
    # `zstd -22 --ultra` (the kernel's setting) may use windows beyond the library default.
    obj = zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()
    out = obj.decompress(payload)
    return out, (obj.unused_data if obj.eof else None)


def _lz4_legacy(payload: bytes) -> tuple[bytes, bytes | None]:
    """lz4 legacy frames have no end marker: blocks run until the input does
    (lib/decompress_unlz4.c)."""
    pos = 4
    chunks: list[bytes] = []
    while len(payload) - pos > 4:
        (size,) = struct.unpack_from("<I", payload, pos)
        if size == layout.LZ4_LEGACY_MAGIC:  # concatenated legacy streams restart here
            pos += 4
            continue
        if pos + 4 + size > len(payload):
            return b"".join(chunks), None
        block = payload[pos + 4 : pos + 4 + size]
        chunks.append(lz4.block.decompress(block, uncompressed_size=layout.LZ4_LEGACY_BLOCK))
        pos += 4 + size
    return b"".join(chunks), payload[pos:]


_DECODERS: dict[str, Callable[[bytes], tuple[bytes, bytes | None]]] = {
    "gzip": _gzip,
    "xz": _xz,
    "lzma": _lzma,
    "bzip2": _bzip2,
    "lz4": _lz4_legacy,
    "zstd": _zstd,
}
