"""Compressed CPU data of a trace.dat v7: its chunks, decompressed one at a time.

Owns: `chunks`, the walk over one CPU's chunk count and chunks (each an 8-byte header, the
compressed size and the unpacked size, then a zstd or zlib stream of whole ring-buffer
pages). A chunk that does not decompress is lost alone: the walk goes on at the next chunk,
found from its header or, when the header itself is damaged, by the next zstd frame's magic
after a plausible header. Each loss is recorded in the reader's `errors` with its offset and
what was lost.

May import: the standard library and `crossmod.trace.events/layout`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from crossmod.trace import layout as L
from crossmod.trace.events import TraceFormatError

if TYPE_CHECKING:
    from crossmod.trace.dat import DatReader


def chunks(r: DatReader, cpu: int, offset: int, size: int) -> Iterator[tuple[bytes, int, str]]:
    """One CPU's compressed chunks, decompressed. A chunk that does not decompress is
    lost alone (recorded, with its size); the walk goes on at the next chunk, found by
    its header, or, when the header itself is damaged, by the next zstd frame."""
    # the size trace-cmd records leaves out the 4-byte chunk count
    end = min(offset + 4 + size, r.file_size)
    try:
        (count,) = struct.unpack(r.e + "I", r.read_at(offset, 4, "chunk count"))
    except TraceFormatError as err:
        r.cpu_error(cpu, err)
        return
    pos, i = offset + 4, 0
    while i < count and pos < end:
        try:
            csize, usize = struct.unpack(r.e + L.COMPRESS_HEADER,
                                         r.read_at(pos, 8, f"CPU {cpu} chunk header"))
            if pos + 8 + csize > r.file_size and offset + 4 + size > r.file_size:
                r.cpu_error(cpu, TraceFormatError(r.where(r.file_size),
                                                  f"file ends inside CPU {cpu} chunk {i}"))
                return
            if pos + 8 + csize > end or usize > 1 << 30 or usize % r.page_size:
                raise TraceFormatError(r.where(pos), f"CPU {cpu} chunk {i} header "
                                       f"damaged ({csize:,} bytes, {usize:,} unpacked)")
        except TraceFormatError as err:
            nxt = _next_frame(r, pos + 9, end)
            lost = (f"its data from 0x{pos:x} to 0x{nxt:x} is lost" if nxt < end
                    else "the rest of its data is lost")
            r.cpu_error(cpu, err, lost=lost)
            pos, i = nxt, i + 1
            continue
        try:
            data = r.read_at(pos + 8, csize, f"CPU {cpu} chunk {i}")
            yield r.decompress(data, usize, pos), pos, f" (CPU {cpu} chunk {i})"
        except TraceFormatError as err:
            r.cpu_error(cpu, err, lost=f"chunk {i} ({usize // r.page_size} pages) is lost")
        pos, i = pos + 8 + csize, i + 1
    if i < count:
        r.cpu_error(cpu, TraceFormatError(r.where(end), f"file ends inside CPU {cpu} chunk {i} "
                                          f"of {count}"), lost="the rest is lost")


def _next_frame(r: DatReader, start: int, end: int) -> int:
    """The header offset of the next chunk after damage: a zstd frame's magic right
    after a plausible (compressed size, unpacked size) header; `end` if none."""
    if r.compression != "zstd":
        return end
    magic = b"\x28\xb5\x2f\xfd"
    pos = start
    while pos < end:
        r.f.seek(pos)
        window = r.f.read(min(1 << 20, end - pos) + 3)
        j = window.find(magic)
        while j >= 0:
            at = pos + j
            if at >= start:
                r.f.seek(at - 8)
                csize, usize = struct.unpack(r.e + L.COMPRESS_HEADER, r.f.read(8))
                if at + csize <= end and usize and not usize % r.page_size:
                    return at - 8
            j = window.find(magic, j + 1)
        pos += max(len(window) - 3, 1)
    return end
