"""Every way an image can arrive: stripped with embedded kallsyms (both table orders), each
bzImage compression, a System.map, a KASLR-shifted kallsyms dump, a compressed module; and
every way it can be wrong (truncated, corrupted, unknown, mismatched symbols): exit 2."""

from __future__ import annotations

import gzip
import lzma
import struct

import pytest

from crossmod.audit import ImageFormatError, Options, SymbolsError, audit_image
from crossmod.audit.kallsyms import read_kallsyms

from . import builder
from .test_audit_image import assert_fixture_counts


@pytest.mark.parametrize("order", ["v6.1", "v6.12"])
def test_embedded_kallsyms_recovered(fx, order):
    report = audit_image(str(fx.kallsyms[order]))
    assert report.symbol_source == "embedded kallsyms"
    assert_fixture_counts(report)


@pytest.mark.parametrize("order", ["v6.1", "v6.12"])
def test_kallsyms_reader_matches_symtab(fx, order):
    """Differential check: every ELF symbol comes back with the same address and letter."""
    recovered = read_kallsyms(fx.kallsyms[order].read_bytes(), "x")
    assert len(recovered) == len(fx.symbols) + builder.PAD_SYMBOLS
    got = {(a, k, n) for a, k, n in recovered}
    assert set(fx.symbols) <= got


@pytest.mark.parametrize("fmt", builder.FORMATS)
def test_bzimage_each_compression(fx, tmp_path, fmt):
    image = tmp_path / f"vmlinuz.{fmt}"
    image.write_bytes(builder.bzimage_of(fx.kallsyms["v6.12"].read_bytes(), fmt))
    report = audit_image(str(image))
    assert (report.kind, report.compression) == ("bzImage", fmt)
    assert report.version.startswith("Linux version 6.99.0-crossmod-fixture")
    assert_fixture_counts(report)


@pytest.mark.parametrize("fmt", builder.FORMATS)
def test_truncated_payload_is_an_error(fx, tmp_path, fmt):
    payload = builder.compress(fmt, fx.kallsyms["v6.1"].read_bytes())
    image = tmp_path / "vmlinuz"
    image.write_bytes(builder.bzimage(payload[: len(payload) * 2 // 3]))
    with pytest.raises(ImageFormatError, match=r"truncated|corrupt"):
        audit_image(str(image))


@pytest.mark.parametrize("fmt", ["gzip", "xz", "bzip2"])
def test_corrupted_payload_is_an_error(fx, tmp_path, fmt):
    payload = bytearray(builder.compress(fmt, fx.kallsyms["v6.1"].read_bytes()))
    mid = len(payload) // 2
    payload[mid : mid + 8] = bytes(b ^ 0x5A for b in payload[mid : mid + 8])
    image = tmp_path / "vmlinuz"
    image.write_bytes(builder.bzimage(bytes(payload)))
    with pytest.raises(ImageFormatError, match="corrupt"):
        audit_image(str(image))


def test_size_trailer_mismatch_is_an_error(fx, tmp_path):
    elf = fx.vmlinux.read_bytes()
    image = tmp_path / "vmlinuz"
    image.write_bytes(builder.bzimage(gzip.compress(elf) + struct.pack("<I", len(elf) + 1)))
    with pytest.raises(ImageFormatError, match="size trailer"):
        audit_image(str(image))


def test_unknown_compression(tmp_path):
    image = tmp_path / "vmlinuz"
    image.write_bytes(builder.bzimage(b"\x89PNG not a kernel payload"))
    with pytest.raises(ImageFormatError, match="unknown payload compression"):
        audit_image(str(image))


def test_bzimage_cut_inside_payload(fx, tmp_path):
    data = builder.bzimage_of(fx.vmlinux.read_bytes(), "gzip")
    image = tmp_path / "vmlinuz"
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFormatError, match="runs past the end"):
        audit_image(str(image))


@pytest.mark.parametrize("cut", [3, 40, 0x1800])
def test_truncated_elf(fx, tmp_path, cut):
    image = tmp_path / "vmlinux"
    image.write_bytes(fx.vmlinux.read_bytes()[:cut])
    with pytest.raises(ImageFormatError):
        audit_image(str(image))


def test_not_an_image(tmp_path):
    image = tmp_path / "notes.txt"
    image.write_text("this is not a kernel\n")
    with pytest.raises(ImageFormatError, match="not an ELF file, a bzImage"):
        audit_image(str(image))


def test_stripped_without_kallsyms_needs_symbols(fx):
    with pytest.raises(SymbolsError, match="give --symbols"):
        audit_image(str(fx.nosyms))


def test_system_map(fx, tmp_path):
    smap = tmp_path / "System.map"
    smap.write_text(builder.system_map(fx.symbols))
    report = audit_image(str(fx.nosyms), Options(symbols_path=str(smap)))
    assert report.symbol_source.startswith("System.map")
    assert_fixture_counts(report)


def test_kallsyms_dump_with_kaslr_shift(fx, tmp_path):
    dump = tmp_path / "kallsyms"
    shift = 0x2E00000
    dump.write_text(builder.system_map(fx.symbols, shift) + "ffffffffc0001000 t f\t[kvm]\n")
    report = audit_image(str(fx.kallsyms["v6.1"]), Options(symbols_path=str(dump)))
    assert "KASLR 0x2e00000" in report.symbol_source
    assert_fixture_counts(report)


def test_symbols_from_another_build_are_detected(fx, tmp_path):
    moved = [(a + 0x40 if n == "linux_banner" else a, k, n) for a, k, n in fx.symbols]
    smap = tmp_path / "System.map"
    smap.write_text(builder.system_map(moved))
    with pytest.raises(SymbolsError, match="do not match the image"):
        audit_image(str(fx.nosyms), Options(symbols_path=str(smap)))


def test_symbols_not_page_shifted_are_detected(fx, tmp_path):
    smap = tmp_path / "kallsyms"
    smap.write_text(builder.system_map(fx.symbols, 0x123))
    with pytest.raises(SymbolsError, match="page-aligned"):
        audit_image(str(fx.nosyms), Options(symbols_path=str(smap)))


@pytest.mark.parametrize("text", ["", "0000000000000000 T _text\n", "garbage line\n"])
def test_unusable_symbol_files(fx, tmp_path, text):
    smap = tmp_path / "System.map"
    smap.write_text(text)
    with pytest.raises(SymbolsError):
        audit_image(str(fx.nosyms), Options(symbols_path=str(smap)))


def test_compressed_module(fx, tmp_path):
    ko = tmp_path / "fixture.ko.xz"
    ko.write_bytes(lzma.compress(fx.obj.read_bytes(), check=lzma.CHECK_CRC32))
    report = audit_image(str(ko))
    assert (report.kind, report.compression) == ("module", "xz")
    assert report.counts["hazards"] == 7


def test_module_rejects_symbols_option(fx, tmp_path):
    smap = tmp_path / "System.map"
    smap.write_text(builder.system_map(fx.symbols))
    with pytest.raises(SymbolsError, match="not a module"):
        audit_image(str(fx.obj), Options(symbols_path=str(smap)))


def test_debian_placeholder_system_map(fx, tmp_path):
    smap = tmp_path / "System.map-6.1.0-56-amd64"
    smap.write_text("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg "
                    "package\n")
    with pytest.raises(SymbolsError, match=r"placeholder System\.map"):
        audit_image(str(fx.nosyms), Options(symbols_path=str(smap)))
