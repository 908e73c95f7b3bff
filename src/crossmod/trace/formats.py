"""Event format descriptions (tracefs ``events/*/*/format``, also stored in trace.dat).

Owns: parsing a format file into `EventFormat` (id, name, system, fields with offset,
size, signedness, array/``__data_loc`` kind) and deciding from the ``print fmt`` how a
pointer field is printed (``%pS`` symbol+offset, ``%ps`` symbol, ``%p`` hex), and
`decode_fields`, which turns a record payload into the values of `events.SCHEMA`.
Nothing here knows a field offset in advance: every offset comes from the file.

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from crossmod.trace.events import TraceFormatError

_FIELD = re.compile(
    r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);(?:\s*signed:(?P<sg>\d+);)?"
)
_CONV = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|L)?(?P<c>p[a-zA-Z]?|[a-zA-Z])")


@dataclass(frozen=True, slots=True)
class FieldFormat:
    """One ``field:`` line: C declaration split into type and name."""

    name: str
    ctype: str
    offset: int
    size: int
    signed: bool
    array: int | None  # element count for ``type name[N]``; 0 for ``name[]``
    data_loc: bool  # ``__data_loc``: a u32 (len << 16 | offset) pointing into the record

    @property
    def is_pointer(self) -> bool:
        return "*" in self.ctype and self.array is None


@dataclass(slots=True)
class EventFormat:
    """A parsed format file."""

    id: int
    name: str
    system: str
    fields: list[FieldFormat]
    print_fmt: str
    pointer_style: dict[str, str] = field(default_factory=dict)  # field -> "pS" | "ps" | "p"

    def field(self, name: str) -> FieldFormat | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


def _split_decl(decl: str) -> tuple[str, str, int | None, bool]:
    decl = decl.strip()
    data_loc = decl.startswith("__data_loc")
    if data_loc:
        decl = decl[len("__data_loc") :].strip()
    array: int | None = None
    m = re.match(r"^(?P<t>.*?)(?P<n>\w+)\s*\[(?P<len>[^\]]*)\]$", decl)
    if m:
        ctype, name = m["t"].strip(), m["n"]
        array = int(m["len"]) if m["len"].strip().isdigit() else 0
    else:
        ctype, _, name = decl.rpartition(" ")
        if name.startswith("*"):
            ctype, name = ctype + " *", name.lstrip("*")
    return name, ctype.strip(), array, data_loc


def _split_args(text: str) -> list[str]:
    """Split a C argument list at top-level commas (``__print_symbolic({..}, ..)`` stays whole)."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _pointer_styles(print_fmt: str, fields: list[FieldFormat]) -> dict[str, str]:
    """Map pointer fields to their conversion by pairing ``%`` specs with ``REC->x`` args."""
    lead = re.match(r'\s*((?:"(?:[^"\\]|\\.)*"\s*)+)', print_fmt)
    if not lead:
        return {f.name: "p" for f in fields if f.is_pointer}
    fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', lead[1]))
    args = _split_args(print_fmt[lead.end() :])[1:]
    convs = [m["c"] for m in _CONV.finditer(fmt.replace("%%", ""))]
    styles: dict[str, str] = {}
    for conv, arg in zip(convs, args, strict=False):
        m = re.search(r"REC->(\w+)", arg)
        if m and conv.startswith("p"):
            styles[m[1]] = conv if conv in ("pS", "ps", "pB") else "p"
        elif m and conv in ("d", "i") and re.fullmatch(r"\s*REC->\w+\s*", arg):
            styles[m[1]] = "signed"  # printed signed whatever the declared type
    for f in fields:
        if f.is_pointer and f.name not in styles:
            styles[f.name] = "p"
    return styles


def parse_format(text: str, system: str = "", where: str = "format") -> EventFormat:
    """Parse one format file; raises TraceFormatError naming `where` on junk."""
    name = id_ = None
    fields: list[FieldFormat] = []
    print_fmt = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("name:"):
            name = s[5:].strip()
        elif s.startswith("ID:"):
            try:
                id_ = int(s[3:].strip())
            except ValueError:
                raise TraceFormatError(where, f"bad event ID line {s!r}") from None
        elif s.startswith("field:"):
            m = _FIELD.search(s)
            if not m:
                raise TraceFormatError(where, f"bad field line {s!r}")
            fname, ctype, array, data_loc = _split_decl(m["decl"])
            fields.append(FieldFormat(fname, ctype, int(m["off"]), int(m["size"]),
                                      m["sg"] == "1", array, data_loc))
        elif s.startswith("print fmt:"):
            print_fmt = s[len("print fmt:") :].strip()
    if name is None or id_ is None:
        raise TraceFormatError(where, "event format without name or ID")
    return EventFormat(id_, name, system, fields, print_fmt, _pointer_styles(print_fmt, fields))


_INT = {1: "b", 2: "h", 4: "i", 8: "q"}


class FieldDecoder:
    """Decodes the `events.SCHEMA` fields of one event format from record payloads.

    All fixed-size scalar fields are read with one precompiled struct (offsets from the
    format); pointers are symbolised through a per-field cache, because a trace repeats
    the same few callsites and callbacks millions of times. `symbolize(addr,
    with_offset)` is the file's kallsyms lookup.
    """

    def __init__(self, fmt: EventFormat, wanted: dict[str, type], endian: str, long_size: int,
                 symbolize: Callable[[int, bool], str]) -> None:
        self.symbolize = symbolize
        self.special: list[tuple[str, Callable[[bytes, int, int], object]]] = []
        scalars: list[tuple[FieldFormat, str | None]] = []
        for name, typ in wanted.items():
            f = fmt.field(name)
            if f is None:
                continue
            if f.data_loc and typ is tuple:
                self.special.append((name, _cpumask_reader(f, endian, long_size)))
            elif typ is str and (f.array is not None or f.data_loc):
                self.special.append((name, _string_reader(f, endian)))
            elif f.size in _INT:
                style = fmt.pointer_style.get(f.name, "p")
                scalars.append((f, style if typ is str else ("signed" if style == "signed"
                                                              else None)))
            else:
                raise TraceFormatError("format", f"{fmt.name}.{f.name}: unsupported size {f.size}")
        scalars.sort(key=lambda fs: fs[0].offset)
        code, pos = endian, 0
        for f, _style in scalars:
            if f.offset < pos:
                raise TraceFormatError("format", f"{fmt.name}.{f.name} overlaps another field")
            c = _INT[f.size]
            signed = (f.signed and _style is None) or _style == "signed"
            code += "x" * (f.offset - pos) + (c if signed else c.upper())
            pos = f.offset + f.size
        self.st = struct.Struct(code)
        self.min_size = pos
        self.names = [f.name for f, _ in scalars]
        self.styles = [style if style != "signed" else None for _, style in scalars]
        self.pointers: list[tuple[int, str, dict[int, str], str]] = [
            (i, name, {}, style) for i, (name, style) in enumerate(zip(self.names, self.styles,
                                                                        strict=True)) if style]

    def _pointer(self, addr: int, style: str) -> str:
        if addr == 0:
            return "0x0"
        if style in ("pS", "pB"):
            return self.symbolize(addr, True)
        if style == "ps":
            return self.symbolize(addr, False)
        return f"0x{addr:x}"

    def decode(self, buf: bytes, base: int, end: int) -> dict[str, object]:
        if base + self.min_size > end:
            raise ValueError("record is shorter than its format")
        vals = self.st.unpack_from(buf, base)
        out = dict(zip(self.names, vals, strict=True))
        for i, name, cache, style in self.pointers:
            v = vals[i]
            s = cache.get(v)
            if s is None:
                s = self._pointer(v, style)
                if len(cache) < 4096:
                    cache[v] = s
            out[name] = s
        for name, read in self.special:
            out[name] = read(buf, base, end)
        return out


def _cpumask_reader(f: FieldFormat, endian: str, long_size: int
                    ) -> Callable[[bytes, int, int], object]:
    loc = struct.Struct(endian + "I")
    word = struct.Struct(endian + ("Q" if long_size == 8 else "I"))

    def read(buf: bytes, base: int, end: int) -> object:
        v = loc.unpack_from(buf, base + f.offset)[0]
        start, length = base + (v & 0xFFFF), v >> 16
        if start + length > end:
            raise ValueError("cpumask data_loc points past the record")
        cpus: list[int] = []
        for i in range(length // word.size):
            w = word.unpack_from(buf, start + i * word.size)[0]
            bit = 0
            while w:
                if w & 1:
                    cpus.append(i * 8 * word.size + bit)
                w >>= 1
                bit += 1
        return tuple(cpus)

    return read


def _string_reader(f: FieldFormat, endian: str) -> Callable[[bytes, int, int], object]:
    loc = struct.Struct(endian + "I")

    def read(buf: bytes, base: int, end: int) -> object:
        if f.data_loc:
            v = loc.unpack_from(buf, base + f.offset)[0]
            start, stop = base + (v & 0xFFFF), base + (v & 0xFFFF) + (v >> 16)
        else:
            start = base + f.offset
            stop = start + f.size if f.size else end
        raw = bytes(buf[start:min(stop, end)])
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace").rstrip()

    return read
