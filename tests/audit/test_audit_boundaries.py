"""Region and ro_after_init boundaries, byte by byte, on an image laid out like x86-64 vmlinux.

Each region must be bounded by exactly its own marker symbols, half-open: `__X_start` is the
first byte inside, `__X_end` the first byte outside. The image is written byte by byte by
builder.write_elf() (no compiler), so sites can sit on the exact bytes around each marker.

Text, in the order v6.1's arch/x86/kernel/vmlinux.lds.S links it (the "x86" layout):
TEXT_TEXT, whose NOINSTR_TEXT holds .noinstr.text, then SCHED_TEXT, CPUIDLE_TEXT (separate,
as in Debian's 6.1; newer kernels link .cpuidle.text inside NOINSTR_TEXT, which
test_audit_image covers), LOCK_TEXT, (KPROBES_TEXT,) ENTRY_TEXT, SOFTIRQENTRY_TEXT and
STATIC_CALL_TEXT, one function standing for each. So on x86 noinstr text comes
*before* entry text; the "entry-first" layout puts .entry.text first (the order the issue
describes) so that a borrowed end marker is caught whichever way round the regions are.
Every region is two functions of 0x40 bytes and every region has an ordinary function of 0x40
bytes on each side (a region never touches another):

    x86          startup_64 | noinstr: irqentry_enter, irqentry_exit | schedule |
                 cpuidle: default_idle, mwait_idle | _raw_spin_lock |
                 entry: entry_SYSCALL_64, asm_exc_page_fault | __do_softirq | __SCT__ trampolines
    entry-first  startup_64 | entry | schedule | noinstr | _raw_spin_lock | cpuidle |
                 __do_softirq | __SCT__ trampolines

Around each region [S, E) there are sites on four bytes, all with writable keys, so a site is
a hazard exactly when it is inside one of the regions:

    S-1  jump entry, `eb e9`: a JMP rel8 whose displacement byte is the opcode at S
    S    `e9 rel32` to a trampoline: a jump entry (target: the trampoline) and a static call
         tail site (key __SCK__<region>_first) on the same instruction
    E-1  jump entry, `eb e9` again: the last byte inside the region
    E    `e9 rel32`, jump entry and tail site (key __SCK__<region>_after): the first byte of
         the ordinary function that follows

Data: on x86, RO_AFTER_INIT_DATA (__start_ro_after_init, .data..ro_after_init, __jump_table,
.static_call_sites, __end_ro_after_init) sits at the end of .rodata. Here the range sits in
the middle of one writable .data section, with writable keys right against both markers, so
only the markers can tell the keys apart (not section names or flags). The tables are inside
the range, as in the kernel, but between two ordinary ro_after_init keys:

    __start_ro_after_init - 4   __SCK__below_ro    writable
    __start_ro_after_init       __SCK__ro_first    ro_after_init
    (the two tables)
    __end_ro_after_init - 4     __SCK__ro_last     ro_after_init
    __end_ro_after_init         __SCK__past_ro     writable

A key address cannot be __end_ro_after_init - 1: both records keep flags in the key's two low
bits (jump_entry_key() and static_call_key() mask them off), so with the markers 8-aligned,
as RO_AFTER_INIT_DATA leaves them, end - 4 is the last key address inside. The byte-exact
end - 1 case is checked on `Regions` directly. Each key has a jump entry (a NOP5) and a
static call site (a CALL to its trampoline) in irqentry_enter, so each is in noinstr.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crossmod.audit import Options, audit_image
from crossmod.audit.rules import Regions

from . import builder

TEXT, RODATA, DATA = 0xFFFFFFFF81000000, 0xFFFFFFFF82000000, 0xFFFFFFFF82200000
FUNC = 0x40  # bytes per function; a region holds two
INT3, JMP8, JMP32, CALL32 = 0xCC, 0xEB, 0xE9, 0xE8
NOP5 = bytes.fromhex("0f1f440000")
# The kernel's names (include/asm-generic/vmlinux.lds.h), spelled out here rather than taken
# from crossmod.audit.rules: a wrong name there must not rename the fixture's symbols too.
REGION_MARKERS = {
    "entry": ("__entry_text_start", "__entry_text_end"),
    "noinstr": ("__noinstr_text_start", "__noinstr_text_end"),
    "cpuidle": ("__cpuidle_text_start", "__cpuidle_text_end"),
}
RO_MARKERS = ("__start_ro_after_init", "__end_ro_after_init")
BANNER = "Linux version 6.99.0-crossmod-boundaries (test@crossmod) #1 SMP"

# (region or None for ordinary text, function names) in link order.
LAYOUTS = {
    "x86": (
        (None, ("startup_64",)),
        ("noinstr", ("irqentry_enter", "irqentry_exit")),
        (None, ("schedule",)),
        ("cpuidle", ("default_idle", "mwait_idle")),
        (None, ("_raw_spin_lock",)),
        ("entry", ("entry_SYSCALL_64", "asm_exc_page_fault")),
        (None, ("__do_softirq",)),
    ),
    "entry-first": (
        (None, ("startup_64",)),
        ("entry", ("entry_SYSCALL_64", "asm_exc_page_fault")),
        (None, ("schedule",)),
        ("noinstr", ("irqentry_enter", "irqentry_exit")),
        (None, ("_raw_spin_lock",)),
        ("cpuidle", ("default_idle", "mwait_idle")),
        (None, ("__do_softirq",)),
    ),
}
RO_KEYS = ("__SCK__below_ro", "__SCK__ro_first", "__SCK__ro_last", "__SCK__past_ro")

# Written out by hand, not derived from the layout: (kind, function+offset) -> region.
# Static call sites are identified by their key, which names the boundary they sit on.
EXPECTED = {
    "x86": {
        ("jump", "startup_64+0x3f"): "other",  # __noinstr_text_start - 1
        ("jump", "irqentry_enter"): "noinstr",  # __noinstr_text_start
        ("static_call", "irqentry_enter"): "noinstr",
        ("jump", "irqentry_exit+0x3f"): "noinstr",  # __noinstr_text_end - 1
        ("jump", "schedule"): "other",  # __noinstr_text_end
        ("static_call", "schedule"): "other",
        ("jump", "schedule+0x3f"): "other",  # __cpuidle_text_start - 1
        ("jump", "default_idle"): "cpuidle",
        ("static_call", "default_idle"): "cpuidle",
        ("jump", "mwait_idle+0x3f"): "cpuidle",
        ("jump", "_raw_spin_lock"): "other",  # __cpuidle_text_end
        ("static_call", "_raw_spin_lock"): "other",
        ("jump", "_raw_spin_lock+0x3f"): "other",  # __entry_text_start - 1
        ("jump", "entry_SYSCALL_64"): "entry",
        ("static_call", "entry_SYSCALL_64"): "entry",
        ("jump", "asm_exc_page_fault+0x3f"): "entry",
        ("jump", "__do_softirq"): "other",  # __entry_text_end
        ("static_call", "__do_softirq"): "other",
    },
    "entry-first": {
        ("jump", "startup_64+0x3f"): "other",  # __entry_text_start - 1
        ("jump", "entry_SYSCALL_64"): "entry",
        ("static_call", "entry_SYSCALL_64"): "entry",
        ("jump", "asm_exc_page_fault+0x3f"): "entry",
        ("jump", "schedule"): "other",  # __entry_text_end
        ("static_call", "schedule"): "other",
        ("jump", "schedule+0x3f"): "other",  # __noinstr_text_start - 1
        ("jump", "irqentry_enter"): "noinstr",
        ("static_call", "irqentry_enter"): "noinstr",
        ("jump", "irqentry_exit+0x3f"): "noinstr",
        ("jump", "_raw_spin_lock"): "other",  # __noinstr_text_end
        ("static_call", "_raw_spin_lock"): "other",
        ("jump", "_raw_spin_lock+0x3f"): "other",  # __cpuidle_text_start - 1
        ("jump", "default_idle"): "cpuidle",
        ("static_call", "default_idle"): "cpuidle",
        ("jump", "mwait_idle+0x3f"): "cpuidle",
        ("jump", "__do_softirq"): "other",  # __cpuidle_text_end
        ("static_call", "__do_softirq"): "other",
    },
}
# Static call keys of the boundary sites, in the same order as the rows above that have them.
EXPECTED_CALL_KEYS = {
    "x86": ["__SCK__noinstr_first", "__SCK__noinstr_after", "__SCK__cpuidle_first",
            "__SCK__cpuidle_after", "__SCK__entry_first", "__SCK__entry_after"],
    "entry-first": ["__SCK__entry_first", "__SCK__entry_after", "__SCK__noinstr_first",
                    "__SCK__noinstr_after", "__SCK__cpuidle_first", "__SCK__cpuidle_after"],
}
# key -> (key_ro, key section as reported, hazard) for the sites in irqentry_enter.
EXPECTED_KEYS = {
    "__SCK__below_ro": (False, ".data", True),
    "__SCK__ro_first": (True, "ro_after_init", False),
    "__SCK__ro_last": (True, "ro_after_init", False),
    "__SCK__past_ro": (False, ".data", True),
}


@dataclass
class Layout:
    text: bytearray = field(default_factory=bytearray)
    at: dict[str, int] = field(default_factory=dict)  # every symbol's address
    jumps: list[tuple[int, int, str, int]] = field(default_factory=list)  # code, target, key
    calls: list[tuple[int, str, int]] = field(default_factory=list)  # site, key, flags
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def put(self, addr: int, code: bytes) -> None:
        self.text[addr - TEXT : addr - TEXT + len(code)] = code

    def jmp32(self, addr: int, target: str) -> bytes:
        return bytes([JMP32]) + struct.pack("<i", self.at[target] - (addr + 5))

    def call32(self, addr: int, target: str) -> bytes:
        return bytes([CALL32]) + struct.pack("<i", self.at[target] - (addr + 5))


def lay_out(order: str) -> tuple[bytes, Layout]:
    lay = Layout()
    funcs, cursor = [], TEXT
    for region, names in LAYOUTS[order]:
        start = cursor
        for name in names:
            funcs.append(name)
            lay.at[name] = cursor
            cursor += FUNC
        if region is not None:
            lay.regions[region] = (start, cursor)
            lo, hi = REGION_MARKERS[region]
            lay.at[lo], lay.at[hi] = start, cursor
    boundary_keys = [f"__SCK__{r}_{edge}" for r in lay.regions for edge in ("first", "after")]
    call_keys = boundary_keys + list(RO_KEYS)
    for key in call_keys:  # STATIC_CALL_TEXT: JMP.d32 to a function, INT3, as in fixture.c
        lay.at["__SCT__" + key[len("__SCK__") :]] = cursor
        cursor += 8
    lay.text = bytearray([INT3]) * (cursor - TEXT)
    for key in call_keys:
        tramp = lay.at["__SCT__" + key[len("__SCK__") :]]
        lay.put(tramp, lay.jmp32(tramp, "__do_softirq"))

    for region, (start, end) in lay.regions.items():
        # Marker M = S or E: `eb` at M - 1 (a JMP rel8 whose displacement is the next byte,
        # 0xe9 = -23) and `e9 rel32` at M, a jump entry on each and a tail call site on M.
        for edge, marker in (("first", start), ("after", end)):
            tramp = "__SCT__" + f"{region}_{edge}"
            lay.put(marker - 1, bytes([JMP8]))
            lay.put(marker, lay.jmp32(marker, tramp))
            lay.jumps.append((marker - 1, marker + 1 + (JMP32 - 0x100), "rw_key", 1))
            lay.jumps.append((marker, lay.at[tramp], "rw_key", 1))
            lay.calls.append((marker, f"__SCK__{region}_{edge}", 1))  # STATIC_CALL_SITE_TAIL

    addr = lay.at["irqentry_enter"] + 8
    for key in RO_KEYS:
        lay.put(addr, NOP5)
        lay.jumps.append((addr, addr + 5, key, 0))
        addr += 5
    for key in RO_KEYS:
        tramp = "__SCT__" + key[len("__SCK__") :]
        lay.put(addr, lay.call32(addr, tramp))
        lay.calls.append((addr, key, 0))
        addr += 5
    assert addr <= lay.at["irqentry_exit"]

    # .data: writable keys, then the ro_after_init range with the tables, then one more key.
    objects = ["rw_key", *boundary_keys]
    for i, name in enumerate(objects):
        lay.at[name] = DATA + 16 * i
    ro_start = DATA + 0x100
    jump_table = ro_start + 0x10
    call_table = jump_table + 16 * len(lay.jumps)
    ro_end = call_table + 8 * len(lay.calls) + 0x10
    lay.at.update({
        "__SCK__below_ro": ro_start - 4, RO_MARKERS[0]: ro_start, "__SCK__ro_first": ro_start,
        "__start___jump_table": jump_table, "__stop___jump_table": call_table,
        "__start_static_call_sites": call_table,
        "__stop_static_call_sites": call_table + 8 * len(lay.calls),
        "__SCK__ro_last": ro_end - 4, RO_MARKERS[1]: ro_end, "__SCK__past_ro": ro_end,
    })
    data = bytearray(ro_end + 0x10 - DATA)
    for i, (code, target, key, flags) in enumerate(lay.jumps):
        at = jump_table + 16 * i
        struct.pack_into("<iiq", data, at - DATA, code - at, target - (at + 4),
                         (lay.at[key] - (at + 8)) | flags)
    for i, (site, key, flags) in enumerate(lay.calls):
        at = call_table + 8 * i
        struct.pack_into("<ii", data, at - DATA, site - at, (lay.at[key] - (at + 4)) | flags)

    lay.at["linux_banner"] = RODATA
    rodata = (BANNER + "\n").encode().ljust(0x200, b"\0")
    # Functions and objects before markers, so that the table lists them first wherever a
    # marker shares their address (Symbols prefers them anyway).
    text_names = [*funcs, *(n for n in lay.at if n.startswith("__SCT__"))]
    markers = ["_text", "_stext", *(n for r in lay.regions for n in REGION_MARKERS[r]),
               "__start___jump_table", "__stop___jump_table", "__start_static_call_sites",
               "__stop_static_call_sites", *RO_MARKERS]
    lay.at["_text"] = lay.at["_stext"] = TEXT
    symbols = [(n, lay.at[n], ".text", "func") for n in text_names]
    symbols.append(("linux_banner", RODATA, ".rodata", "object"))
    symbols += [(n, lay.at[n], ".data", "object") for n in (*objects, *RO_KEYS)]
    symbols += [(n, lay.at[n], ".text" if lay.at[n] < RODATA else ".data", "notype")
                for n in markers]
    image = builder.write_elf([(".text", TEXT, bytes(lay.text), "ax"),
                               (".rodata", RODATA, rodata, "a"),
                               (".data", DATA, bytes(data), "wa")], symbols, TEXT)
    return image, lay


@pytest.fixture(scope="module", params=list(LAYOUTS))
def laid(request, tmp_path_factory):
    image, lay = lay_out(request.param)
    path = tmp_path_factory.mktemp("boundaries") / f"vmlinux-{request.param}"
    path.write_bytes(image)
    return request.param, str(path), lay


def test_markers_found_and_every_site_verifies(laid):
    _, path, lay = laid
    report = audit_image(path)
    assert report.symbol_source == "ELF .symtab"
    assert report.version == BANNER
    assert report.regions == {r: list(lay.regions[r]) for r in ("noinstr", "cpuidle", "entry")}
    assert report.ro_after_init == [lay.at[m] for m in RO_MARKERS]
    assert [s for s in report.sites if not s.verified] == []
    assert (report.counts["jump_entries"], report.counts["static_call_sites"]) == (16, 10)


def test_each_region_bounded_by_its_own_markers(laid):
    """Sites on the last byte before, the first byte of, the last byte of and the first byte
    after each region: only the middle two are inside, and only they are hazards."""
    order, path, _ = laid
    report = audit_image(path)
    edges = [s for s in report.sites if s.key_name not in RO_KEYS]
    got = {(s.kind, s.func): s.region for s in edges}
    assert got == EXPECTED[order]
    assert len(edges) == len(got)  # no two sites share a (kind, function+offset)
    calls = [s.key_name for s in sorted(edges, key=lambda s: s.addr) if s.kind == "static_call"]
    assert calls == EXPECTED_CALL_KEYS[order]
    hazards = {(s.kind, s.func) for s in report.hazards if s.key_name not in RO_KEYS}
    assert hazards == {k for k, region in EXPECTED[order].items() if region != "other"}
    assert all(s.key_section == ".data" and not s.key_ro for s in edges)


def test_region_filter_counts_only_that_region(laid):
    """`--region entry`: the entry sites fail, the noinstr and cpuidle ones do not."""
    order, path, _ = laid
    report = audit_image(path, Options(regions=("entry",)))
    failing = {(s.kind, s.func) for s in report.failing}
    assert failing == {k for k, region in EXPECTED[order].items() if region == "entry"}
    assert report.exit_code == 1


def test_key_is_ro_exactly_inside_the_ro_after_init_markers(laid):
    _, path, lay = laid
    report = audit_image(path)
    sites = [s for s in report.sites if s.key_name in RO_KEYS]
    assert {s.region for s in sites} == {"noinstr"}
    assert sorted((s.kind, s.key_name) for s in sites) == sorted(
        (kind, k) for kind in ("jump", "static_call") for k in RO_KEYS)
    for s in sites:
        assert s.key == lay.at[s.key_name]
        assert (s.key_ro, s.key_section, s.hazard) == EXPECTED_KEYS[s.key_name], s.key_name
    start, end = (lay.at[m] for m in RO_MARKERS)
    assert [lay.at[k] for k in RO_KEYS] == [start - 4, start, end - 4, end]
    assert report.counts["ro_after_init_keys"] == 4
    assert report.counts["hazard_keys"] == sorted(
        ["rw_key", "__SCK__below_ro", "__SCK__past_ro",
         *(k for k in EXPECTED_CALL_KEYS["x86"] if k.endswith("_first"))])


@pytest.mark.parametrize("shift", [0, 0x2A000000], ids=["System.map", "kallsyms-KASLR"])
def test_same_edges_from_a_symbol_file(laid, tmp_path, shift):
    """The markers read from a System.map, or from a KASLR-shifted kallsyms dump, bound the
    regions and the ro_after_init range exactly as the image's own .symtab does."""
    order, path, _ = laid
    table = tmp_path / "symbols"
    table.write_text(builder.system_map(builder.elf_symbols(Path(path)), shift))
    report = audit_image(path, Options(symbols_path=str(table)))
    assert report.symbol_source.startswith("kallsyms dump" if shift else "System.map")
    got = {(s.kind, s.func): s.region for s in report.sites if s.key_name not in RO_KEYS}
    assert got == EXPECTED[order]
    keys = {s.key_name: (s.key_ro, s.key_section, s.hazard) for s in report.sites
            if s.key_name in RO_KEYS}
    assert keys == EXPECTED_KEYS


def test_half_open_ranges_to_the_byte():
    """The byte-exact edges, including `__end_ro_after_init - 1`, which no jump entry or
    static call site can name as a key."""
    lo, hi = 0xFFFFFFFF81000040, 0xFFFFFFFF810000C0
    regions = Regions(text={"noinstr": (lo, hi)}, ro_after_init=(lo, hi))
    assert [regions.region_of(a) for a in (lo - 1, lo, hi - 1, hi)] == [
        "other", "noinstr", "noinstr", "other"]
    assert [regions.key_is_ro(a) for a in (lo - 1, lo, hi - 1, hi)] == [False, True, True,
                                                                         False]
