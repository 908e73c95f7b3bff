"""The guest's root file system: the project's guest sources, compiled, and the host's tools.

Owns: `Entry` (one file, directory or symlink of the image, as data), `contents` (the
whole list: /init and load.sh from guest/, spin and bpfload compiled with ``gcc -static``,
static busybox, trace-cmd and hackbench with the shared libraries ``ldd`` names, three
modules of the guest kernel, /etc/crossmod/lab.conf and record.sh), and the newc cpio
writer and reader (usr/gen_init_cpio.c's format; every timestamp 0 and the entries sorted,
so one plan gives one byte-identical image).

May import: the standard library and `crossmod.lab.guest/record/tools`.
"""

from __future__ import annotations

import gzip
import lzma
import re
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from crossmod.lab.guest import MODULES, PORT_MODULES, Plan, lab_conf, record_script
from crossmod.lab.record import Capabilities
from crossmod.lab.tools import LabError


@dataclass(frozen=True)
class Entry:
    """One member of the image; `data` is a file's bytes, `target` a symlink's."""

    path: str  # absolute, in the guest
    mode: int  # full st_mode (type and permissions)
    data: bytes = b""
    target: str = ""


def _dir(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def _file(path: str, data: bytes, exe: bool = False) -> Entry:
    return Entry(path, stat.S_IFREG | (0o755 if exe else 0o644), data)


def guest_source(name: str) -> bytes:
    return (resources.files("crossmod.lab") / "guest" / name).read_bytes()


def compile_static(source: str, work: Path, gcc: str = "gcc") -> bytes:
    """One of guest/*.c compiled with ``gcc -O2 -static``."""
    src = work / source
    src.write_bytes(guest_source(source))
    out = work / source.removesuffix(".c")
    r = subprocess.run([gcc, "-O2", "-static", "-o", str(out), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        first = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"gcc -static {source} failed: {first} (static libc: apt-get "
                         "install libc6-dev)")
    return out.read_bytes()


_LDD_PATH = re.compile(r"(/\S+)")


def shared_libraries(binary: str) -> list[str]:
    """The files `binary` loads, as ``ldd`` names them (the dynamic loader included)."""
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode != 0:
        return []  # static
    out: list[str] = []
    for line in r.stdout.splitlines():
        if "=>" in line:
            line = line.split("=>", 1)[1]
        m = _LDD_PATH.search(line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def with_libraries(binary: str, dest: str) -> list[Entry]:
    out = [_file(dest, Path(binary).read_bytes(), exe=True)]
    for lib in shared_libraries(binary):
        out.append(_file(lib, Path(lib).resolve().read_bytes(), exe=True))
    return out


def module_file(modules_dir: Path, rel: str) -> bytes | None:
    """A kernel module of the package, uncompressed (busybox insmod reads plain .ko)."""
    base = modules_dir / rel
    if base.exists():
        return base.read_bytes()
    xz = base.with_name(base.name + ".xz")
    if xz.exists():
        return lzma.decompress(xz.read_bytes())
    zst = base.with_name(base.name + ".zst")
    if zst.exists():
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(zst.read_bytes())
    return None


def contents(plan: Plan, caps: Capabilities, isolated: Sequence[int],
             housekeeping: Sequence[int], work: Path, *, busybox: str = "/bin/busybox",
             trace_cmd: str, hackbench: str | None, modules_dir: Path | None) -> list[Entry]:
    """Every member of the guest image, sorted by path."""
    entries = [_dir(d) for d in ("/bin", "/sbin", "/usr", "/usr/bin", "/proc", "/sys",
                                 "/dev", "/tmp", "/etc", "/etc/crossmod", "/lib",
                                 "/lib/modules")]
    entries.append(_file("/init", guest_source("init"), exe=True))
    entries.append(_file("/bin/load.sh", guest_source("load.sh"), exe=True))
    entries.append(_file("/bin/busybox", Path(busybox).read_bytes(), exe=True))
    entries.append(_file("/bin/spin", compile_static("spin.c", work), exe=True))
    entries.append(_file("/bin/bpfload", compile_static("bpfload.c", work), exe=True))
    entries.extend(with_libraries(trace_cmd, "/bin/trace-cmd"))
    if hackbench:
        entries.extend(with_libraries(hackbench, "/bin/hackbench"))
    if modules_dir is not None:
        for name, rel in MODULES.items():
            data = module_file(modules_dir, rel)
            if data is not None:
                entries.append(_file(f"/lib/modules/{name}.ko", data))
        for name, rel in PORT_MODULES.items():
            data = module_file(modules_dir, rel)
            if data is not None:  # else built in (or absent: the guest says so)
                entries.append(_file(f"/lib/modules/port/{name}.ko", data))
    entries.append(_file("/etc/crossmod/lab.conf",
                         lab_conf(plan, caps, isolated, housekeeping).encode()))
    entries.append(_file("/etc/crossmod/record.sh",
                         record_script(caps, isolated).encode(), exe=True))
    return _with_parents(entries)


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    by_path = {e.path: e for e in entries}
    for p in list(by_path):
        parent = str(Path(p).parent)
        while parent != "/" and parent not in by_path:
            by_path[parent] = _dir(parent)
            parent = str(Path(parent).parent)
    return [by_path[p] for p in sorted(by_path)]


def _newc_header(ino: int, mode: int, size: int, namesize: int) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, namesize, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_newc(entries: Sequence[Entry]) -> bytes:
    """The entries as an uncompressed newc archive (usr/gen_init_cpio.c), then TRAILER!!!."""
    out = bytearray()
    for ino, e in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = (e.path.lstrip("/") or ".").encode() + b"\0"
        body = e.target.encode() if stat.S_ISLNK(e.mode) else e.data
        out += _newc_header(ino if e.path != "TRAILER!!!" else 0, e.mode, len(body),
                            len(name))
        out += name + _pad(110 + len(name)) + body + _pad(len(body))
    return bytes(out)


def read_newc(data: bytes) -> list[Entry]:
    """The members of a newc archive (gzip-compressed or not), without the trailer."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out: list[Entry] = []
    pos = 0
    while pos + 110 <= len(data):
        if data[pos:pos + 6] != b"070701":
            raise ValueError(f"not a newc cpio header at offset {pos}")
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name_end = pos + 110 + namesize
        name = data[pos + 110: name_end - 1].decode()
        body_at = name_end + (-(110 + namesize) % 4)
        body = data[body_at: body_at + size]
        pos = body_at + size + (-size % 4)
        if name == "TRAILER!!!":
            break
        path = "/" + name if name != "." else "/"
        out.append(Entry(path, mode, target=body.decode()) if stat.S_ISLNK(mode)
                   else Entry(path, mode, data=body))
    return out


def write_image(entries: Sequence[Entry], path: Path) -> None:
    """The gzip-compressed archive the kernel unpacks (mtime 0: reproducible)."""
    path.write_bytes(gzip.compress(write_newc(entries), compresslevel=6, mtime=0))
