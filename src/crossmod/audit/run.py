"""The audit itself: open the image, pick the symbol source, decode both tables, classify
and verify every site.

Owns: `audit_image()` and the choice of symbol source (--symbols, then the ELF .symtab, then
the embedded kallsyms), including the KASLR shift and the check that the symbols belong to
this image. Imports: stdlib and crossmod.audit only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from elftools.elf.constants import SH_FLAGS

from crossmod.audit.errors import ImageFormatError, SymbolsError
from crossmod.audit.image import Image, open_image
from crossmod.audit.kallsyms import read_kallsyms
from crossmod.audit.report import AuditReport
from crossmod.audit.rules import (
    SENSITIVE,
    Checker,
    Regions,
    Site,
    regions_from_markers,
    regions_from_sections,
)
from crossmod.audit.symbols import Symbols, parse_symbol_file, undo_kaslr
from crossmod.audit.tables import decode_jump_table, decode_static_call_sites

JUMP_MARKERS = ("__start___jump_table", "__stop___jump_table")
CALL_MARKERS = ("__start_static_call_sites", "__stop_static_call_sites")
TEXT_ANCHORS = ("_text", "_stext", "startup_64")


@dataclass(frozen=True, slots=True)
class Options:
    symbols_path: str | None = None
    allow: frozenset[str] = frozenset()
    tracepoints_fail: bool = False  # count tracepoint hazards towards the exit status
    # Regions whose writable keys count as hazards; v8 of the deferral series narrows
    # objtool's check to ("entry",) (KERNEL.md I.3).
    regions: tuple[str, ...] = SENSITIVE


def audit_image(path: str, options: Options | None = None) -> AuditReport:
    opts = options or Options()
    image = open_image(path)
    if image.relocatable:
        if opts.symbols_path:
            raise SymbolsError("--symbols applies to a vmlinux/bzImage, not a module", path)
        symbols = Symbols.build("module .symtab", image.elf_symbols)
        version = next(iter(image.banners()), None)
        regions, tables = _module_layout(image)
    else:
        symbols = _vmlinux_symbols(image, opts.symbols_path)
        version = _check_banner(image, symbols)
        regions = regions_from_markers(symbols)
        tables = _marker_bounds(symbols)
    checker = Checker(image.memory, symbols, regions, _section_namer(image), _text_test(image))
    sites = []
    if tables["jump"] is not None:
        entries = decode_jump_table(image.memory, *tables["jump"], path)
        sites += [checker.jump_site(e) for e in entries]
    if tables["static_call"] is not None:
        calls = decode_static_call_sites(image.memory, *tables["static_call"], path)
        sites += [checker.call_site(c) for c in calls]
    _check_decode(sites, symbols)
    return AuditReport.build(image, version, symbols, regions, sites, opts.allow,
                             opts.tracepoints_fail, opts.regions)


def _check_decode(sites: list[Site], symbols: Symbols) -> None:
    """Symbols from another build put the table markers in the wrong place; then most
    "entries" are noise. A real table verifies almost entirely."""
    jumps = [s for s in sites if s.kind == "jump"]
    good = sum(1 for s in jumps if s.verified)
    if len(jumps) >= 16 and good * 2 < len(jumps):
        raise SymbolsError(
            f"only {good} of {len(jumps)} jump entries decode to a NOP/JMP in the text: "
            "the symbols do not match the image", symbols.source)


def _vmlinux_symbols(image: Image, symbols_path: str | None) -> Symbols:
    if symbols_path:
        symbols = _from_file(image, symbols_path)
    elif image.elf_symbols:
        symbols = Symbols.build("ELF .symtab", image.elf_symbols)
    else:
        symbols = Symbols.build("embedded kallsyms", read_kallsyms(image.data, image.where))
    return symbols


def _from_file(image: Image, path: str) -> Symbols:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise SymbolsError(exc.strerror or "cannot read", path) from None
    entries, has_modules = parse_symbol_file(text, path)
    names = {n: a for a, _, n in entries}
    anchor = next((n for n in TEXT_ANCHORS if n in names), None)
    base = image.text_base()
    if anchor is None or base is None:
        raise SymbolsError("no _text/_stext symbol to line the file up with the image", path)
    # kallsyms dumps are taken from a running, KASLR-shifted kernel: undo the shift, which
    # is page aligned; a System.map has no shift and comes out with delta 0.
    delta = names[anchor] - (_image_anchor(image, anchor) or base)
    if delta % 0x1000:
        raise SymbolsError(
            f"{anchor} at {names[anchor]:#x} is not a page-aligned shift of the image's "
            f"{base:#x}: symbols do not match the image", path)
    kind = "kallsyms dump" if delta or has_modules else "System.map"
    return Symbols.build(f"{kind} {path}" + (f" (KASLR {delta:#x})" if delta else ""),
                         undo_kaslr(entries, delta))


def _image_anchor(image: Image, name: str) -> int | None:
    return next((a for a, _, n in image.elf_symbols if n == name), None)


def _check_banner(image: Image, symbols: Symbols) -> str | None:
    """Detect, not guess, that the symbols belong to this build: `linux_banner` must point at
    one of this image's own "Linux version ..." strings. Returns that string."""
    banners = image.banners()
    at = symbols.get("linux_banner")
    if at is None:
        if symbols.source.startswith("ELF"):
            return banners[-1] if banners else None  # the image's own table: nothing to check
        raise SymbolsError("no linux_banner symbol, so the symbols cannot be checked "
                           "against the image", symbols.source)
    raw = image.memory.read(at, 256)
    text = raw.split(b"\0", 1)[0].decode("ascii", "replace").strip() if raw else None
    if text not in banners:
        found = f"{text[:40]!r}" if text else "unmapped memory"
        raise SymbolsError(
            f"symbols do not match the image: linux_banner ({at:#x}) holds {found}",
            symbols.source)
    return text


def _bounds(symbols: Symbols, names: tuple[str, str]) -> tuple[int, int] | None:
    start, stop = symbols.get(names[0]), symbols.get(names[1])
    return None if start is None or stop is None else (start, stop)


def _marker_bounds(symbols: Symbols) -> dict[str, tuple[int, int] | None]:
    jump = _bounds(symbols, JUMP_MARKERS)
    if jump is None:
        raise SymbolsError(
            "no __start___jump_table/__stop___jump_table symbols (kernel without "
            "CONFIG_JUMP_LABEL, or symbols without data; kallsyms needs KALLSYMS_ALL)",
            symbols.source)
    # Static call markers are optional: a kernel without HAVE_STATIC_CALL_INLINE has none.
    return {"jump": jump, "static_call": _bounds(symbols, CALL_MARKERS)}


def _module_layout(image: Image) -> tuple[Regions, dict[str, tuple[int, int] | None]]:
    spans = {s.name: (s.start, s.end) for s in image.sections}
    return regions_from_sections(spans), {
        "jump": spans.get("__jump_table"),
        "static_call": spans.get(".static_call_sites"),
    }


def _section_namer(image: Image) -> Callable[[int], str]:
    def name(addr: int) -> str:
        s = image.section_at(addr)
        return s.name if s is not None else "?"

    return name


def _text_test(image: Image) -> Callable[[int], bool]:
    execs = [(s.start, s.end) for s in image.sections if s.flags & SH_FLAGS.SHF_EXECINSTR]

    def is_text(addr: int) -> bool:
        return any(lo <= addr < hi for lo, hi in execs) and image.memory.contains(addr, 2)

    return is_text


__all__ = ["ImageFormatError", "Options", "audit_image"]
