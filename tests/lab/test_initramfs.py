"""The guest image: built for real (gcc -static, busybox, trace-cmd) and read back."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from crossmod.lab import guest, initramfs, tools
from crossmod.lab.initramfs import Entry, read_newc, write_image, write_newc
from crossmod.lab.record import Capabilities

NEED = (tools.GCC, tools.LIBC_A, tools.BUSYBOX, tools.TRACE_CMD, tools.LDD)
_missing = tools.missing(NEED)
needs_tools = pytest.mark.skipif(bool(_missing), reason="; ".join(_missing) or "-")


def test_newc_round_trip_and_reproducible(tmp_path):
    entries = [Entry("/bin", stat.S_IFDIR | 0o755),
               Entry("/bin/x", stat.S_IFREG | 0o755, b"abc"),
               Entry("/bin/sh", stat.S_IFLNK | 0o777, target="busybox"),
               Entry("/e", stat.S_IFREG | 0o644, b"")]
    raw = write_newc(entries)
    assert raw.startswith(b"070701") and b"TRAILER!!!" in raw
    assert read_newc(raw) == entries
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    write_image(entries, a)
    write_image(entries, b)
    assert a.read_bytes() == b.read_bytes()
    assert read_newc(a.read_bytes()) == entries


@pytest.mark.skipif(shutil.which("cpio") is None, reason="no cpio (apt-get install cpio)")
def test_newc_is_what_cpio_reads(tmp_path):
    entries = [Entry("/d", stat.S_IFDIR | 0o755), Entry("/d/f", stat.S_IFREG | 0o600, b"x" * 5)]
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=write_newc(entries),
                             capture_output=True, check=True).stdout.decode().split()
    assert listing == ["d", "d/f"]


@needs_tools
def test_built_image_holds_the_guest_and_its_tools(tmp_path):
    plan = guest.Plan.make(7, ("bpf_jit", "module"), 5, 10000)
    caps = Capabilities.for_release((6, 12))
    mods = tmp_path / "modules"
    (mods / "kernel/drivers/net").mkdir(parents=True)
    (mods / "kernel/drivers/net/dummy.ko").write_bytes(b"\x7fELF dummy")
    work = tmp_path / "work"
    work.mkdir()
    entries = initramfs.contents(plan, caps, (2, 3), (0, 1), work,
                                 trace_cmd=str(tools.TRACE_CMD.found()),
                                 hackbench=None, modules_dir=mods)
    image = tmp_path / "initramfs.cpio.gz"
    write_image(entries, image)
    got = {e.path: e for e in read_newc(image.read_bytes())}
    for path in ("/init", "/bin/load.sh", "/bin/busybox", "/bin/spin", "/bin/bpfload",
                 "/bin/trace-cmd", "/etc/crossmod/lab.conf", "/etc/crossmod/record.sh",
                 "/lib/modules/dummy.ko", "/proc", "/sys", "/dev", "/tmp"):
        assert path in got, path
    assert "/lib/modules/minix.ko" not in got  # not in this package: the phase is skipped
    assert got["/lib/modules/dummy.ko"].data == b"\x7fELF dummy"
    assert got["/init"].data == initramfs.guest_source("init")
    assert got["/init"].mode == stat.S_IFREG | 0o755
    # the load programs are static: the guest has no libc of their own
    for prog in ("/bin/spin", "/bin/bpfload"):
        data = got[prog].data
        assert data[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in data, prog
    # trace-cmd's libraries, at the paths ldd gives (the loader among them)
    libs = initramfs.shared_libraries(str(tools.TRACE_CMD.found()))
    assert libs and any("ld-linux" in lib for lib in libs)
    for lib in libs:
        assert lib in got, lib
    conf = got["/etc/crossmod/lab.conf"].data.decode()
    assert "ISOLATED=2-3\n" in conf and "ISOLATED_CPUS='2 3'\n" in conf
    assert "HOUSEKEEPING=0-1\n" in conf and "PHASES='bpf_jit module'\n" in conf
    assert "ARMED_FILTER=events/csd/csd_queue_cpu/filter\n" in conf
    rec = got["/etc/crossmod/record.sh"].data.decode()
    assert "exec trace-cmd record -q -o \"$1\" -b 16384 -e csd:csd_queue_cpu -f " \
        "'cpu & CPUS{2-3}'" in rec
    # one plan, one image
    again = initramfs.contents(plan, caps, (2, 3), (0, 1), work,
                               trace_cmd=str(tools.TRACE_CMD.found()),
                               hackbench=None, modules_dir=mods)
    assert write_newc(again) == write_newc(entries)


def test_plan_is_the_seeds():
    a = guest.Plan.make(1, ("tracepoint", "module"), 10, 0)
    assert a == guest.Plan.make(1, ("tracepoint", "module"), 10, 0)
    others = {guest.Plan.make(s, ("tracepoint", "module"), 10, 0) for s in range(2, 12)}
    assert a not in others and len(others) > 1
    assert sorted(a.tracepoints) == sorted(guest.TRACEPOINTS)
    assert sorted(a.modules) == sorted(guest.MODULES)


def test_phases_parse():
    assert guest.parse_phases("bpf_jit, module") == ("bpf_jit", "module")
    with pytest.raises(ValueError, match="unknown phase 'bpf'"):
        guest.parse_phases("bpf")


def test_module_file_reads_xz(tmp_path):
    import lzma

    (tmp_path / "kernel/lib").mkdir(parents=True)
    (tmp_path / "kernel/lib/crc7.ko.xz").write_bytes(lzma.compress(b"module"))
    assert initramfs.module_file(tmp_path, "kernel/lib/crc7.ko") == b"module"
    assert initramfs.module_file(tmp_path, "kernel/fs/minix/minix.ko") is None


def test_guest_sources_are_shipped():
    for name in ("init", "load.sh", "spin.c", "bpfload.c"):
        assert initramfs.guest_source(name)
    assert Path(initramfs.__file__).with_name("guest").is_dir()
