"""Record decoding arithmetic on hand-made bytes, and fuzzing: no input may end in anything
but a report or ImageFormatError (STYLE rule 25)."""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crossmod.audit import ImageFormatError, audit_image
from crossmod.audit.memory import Memory
from crossmod.audit.rules import Checker, Regions
from crossmod.audit.symbols import Symbols, parse_symbol_file
from crossmod.audit.tables import JumpEntry, decode_jump_table, decode_static_call_sites
from crossmod.audit.unpack import unpack

BASE = 0xFFFFFFFF82000000


def test_jump_entry_fields_are_relative_to_themselves():
    # entry 0 at BASE: code = BASE - 0x1000, target = BASE + 4 - 0x0ff0, key = BASE + 8 + 0x40
    # with the branch flag; entry 1 at BASE + 16 with the init flag.
    raw = struct.pack("<iiq", -0x1000, -0x0FF0, 0x40 | 1) + struct.pack("<iiq", -8, 8, -8 | 2)
    mem = Memory()
    mem.add(BASE, len(raw), raw)
    e0, e1 = decode_jump_table(mem, BASE, BASE + 32, "t")
    assert (e0.code, e0.target, e0.key, e0.flags) == (BASE - 0x1000, BASE - 0xFEC, BASE + 0x48, 1)
    assert (e1.code, e1.target, e1.key, e1.flags) == (BASE + 8, BASE + 28, BASE + 16, 2)


def test_static_call_site_flags():
    raw = struct.pack("<ii", -0x20, 0x100 | 1) + struct.pack("<ii", 0x10, -0x100 | 2)
    mem = Memory()
    mem.add(BASE, len(raw), raw)
    s0, s1 = decode_static_call_sites(mem, BASE, BASE + 16, "t")
    assert (s0.addr, s0.key, s0.flags) == (BASE - 0x20, BASE + 4 + 0x100, 1)
    assert (s1.addr, s1.key, s1.flags) == (BASE + 8 + 0x10, BASE + 12 - 0x100, 2)


def _checker(code: bytes) -> Checker:
    mem = Memory()
    mem.add(BASE, len(code), code)
    syms = Symbols.build("t", [(BASE, "T", "f"), (BASE + 0x100, "D", "k")])
    return Checker(mem, syms, Regions(), lambda a: ".data", lambda a: BASE <= a < BASE + 16)


def test_objtool_nop_mark_requires_a_nop():
    """Bit 1 set means objtool NOPed the site (JUMP_LABEL_HACK); a JMP there is wrong."""
    jmp = b"\xeb\x03" + b"\x90" * 14  # jmp +3 -> BASE + 5
    site = _checker(jmp).jump_site(JumpEntry(BASE + 0x80, BASE, BASE + 5, BASE + 0x100, 2))
    assert site.problem == "jmp2 where objtool should have left a NOP"
    ok = _checker(jmp).jump_site(JumpEntry(BASE + 0x80, BASE, BASE + 5, BASE + 0x100, 1))
    assert ok.verified and ok.flags == ("branch",)
    nop = _checker(b"\x66\x90" + bytes(14)).jump_site(
        JumpEntry(BASE + 0x80, BASE, BASE + 5, BASE + 0x100, 3))
    assert nop.verified and nop.flags == ("branch", "objtool_nop") and nop.insn == "nop2"


def test_table_bounds_must_be_whole_records():
    mem = Memory()
    mem.add(BASE, 64, bytes(64))
    for stop in (BASE + 20, BASE - 16):
        try:
            decode_jump_table(mem, BASE, stop, "t")
        except ImageFormatError as exc:
            assert "whole number" in str(exc)
        else:
            raise AssertionError("accepted bad bounds")


def test_symbol_lookup_prefers_functions_over_markers():
    syms = Symbols.build("t", [(0x1000, "T", "__entry_text_start"), (0x1000, "T", "entry_fn"),
                               (0x1010, "t", "local_fn"), (0x2000, "D", "key")])
    assert syms.function_at(0x1004) == "entry_fn+0x4"
    assert syms.function_at(0x1010) == "local_fn"
    assert syms.object_at(0x2008) == "key+0x8"


def test_kallsyms_dump_lines():
    entries, modules = parse_symbol_file(
        "ffffffff81000000 T _text\nffffffffc0000000 t x\t[kvm]\n0000000000000000 A fixed\n", "f")
    assert entries == [(0xFFFFFFFF81000000, "T", "_text"), (0, "A", "fixed")]
    assert modules


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_unpack_never_crashes(data):
    with contextlib.suppress(ImageFormatError):
        unpack(data, "fuzz")


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, (1 << 32) - 1),
       st.integers(0, (1 << 32) - 1), st.binary(max_size=512))
def test_bzimage_header_fields_never_crash(sects, proto, off, length, tail):
    head = bytearray(0x300)
    head[0x1F1] = sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<HxxxxxxH", head, 0x206, proto, 0x50)
    struct.pack_into("<II", head, 0x248, off, length)
    with contextlib.suppress(ImageFormatError):
        unpack(bytes(head) + tail, "fuzz")


def _audit_bytes(data: bytes) -> None:
    fd, path = tempfile.mkstemp()
    try:
        os.write(fd, data)
        os.close(fd)
        with contextlib.suppress(ImageFormatError):
            audit_image(path)
    finally:
        os.unlink(path)


# Flips land in the ELF header and program headers, or in the section header table at the end.
_POSITIONS = st.one_of(st.integers(0, 0x200), st.integers(-0x300, -1))
_FLIPS = st.lists(st.tuples(_POSITIONS, st.integers(0, 255)), min_size=1, max_size=8)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_FLIPS)
@example(flips=[(40, 36)])  # e_shoff past any seekable offset (found by this test)
def test_corrupted_elf_gives_report_or_format_error(fx, flips):
    data = bytearray(fx.vmlinux.read_bytes())
    for pos, value in flips:
        data[pos] = value
    _audit_bytes(bytes(data))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 0x6000), st.integers(0, 255)), min_size=1,
                max_size=8))
def test_corrupted_kallsyms_gives_report_or_format_error(fx, flips):
    """Damage the embedded kallsyms tables: the linker script puts .rodata, and the reserve
    that holds them, at file offset 0x2000."""
    data = bytearray(fx.kallsyms["v6.1"].read_bytes())
    start = 0x2000
    for pos, value in flips:
        data[start + pos] = value
    _audit_bytes(bytes(data))
