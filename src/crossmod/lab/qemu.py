"""The guest kernel and QEMU: fetching a Debian kernel, the command lines, the boot.

Owns: `Kernel` (a vmlinuz, its release read from the bzImage header, and the package's
modules if it came from one), `fetch_kernel` (``apt-get download`` + ``dpkg-deb -x``
into a cache), `kernel_cmdline` and `qemu_argv` (pure), and `boot` (QEMU run with the
console saved and each ``crossmod-lab:`` line of the guest handed to a progress callback).

The isolation is the shared capture's: ``nohz_full= isolcpus=nohz,domain,managed_irq,
rcu_nocbs= irqaffinity=`` (Documentation/admin-guide/kernel-parameters.txt).

May import: the standard library and `crossmod.lab.tools`, `crossmod.trace.events`.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crossmod.lab.tools import LabError
from crossmod.trace.events import format_cpulist


@dataclass(frozen=True)
class Kernel:
    vmlinuz: Path
    release: str  # uname -r
    modules_dir: Path | None  # lib/modules/<release> of the package


def bzimage_release(path: Path) -> str:
    """``uname -r`` of a bzImage, from its setup header's kernel_version string
    (Documentation/arch/x86/boot.rst: offset 0x20E, relative to 0x200)."""
    with open(path, "rb") as f:
        head = f.read(0x8000)
    if head[0x202:0x206] != b"HdrS":
        raise LabError(f"{path}: not an x86 bzImage (no HdrS setup header)")
    ptr = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    with open(path, "rb") as f:
        f.seek(ptr)
        text = f.read(256).split(b"\0", 1)[0].decode(errors="replace")
    return text.split()[0] if text.split() else "unknown"


def cache_dir() -> Path:
    base = os.environ.get("CROSSMOD_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "crossmod", "lab")
    return Path(base)


_PKG = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def fetch_kernel(spec: str, echo: Callable[[str], None]) -> Kernel:
    """`spec` is a vmlinuz file or a Debian package name (``linux-image-...``)."""
    p = Path(spec)
    if p.is_file():
        return Kernel(p, bzimage_release(p), None)
    if not _PKG.match(spec):
        raise LabError(f"--kernel {spec}: neither a file nor a Debian package name")
    root = cache_dir() / spec
    if not (root / "unpacked").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        debs = sorted(root.glob("*.deb"))
        if not debs:
            echo(f"apt-get download {spec}")
            r = subprocess.run(["apt-get", "download", spec], cwd=root, capture_output=True,
                               text=True)
            debs = sorted(root.glob("*.deb"))
            if r.returncode != 0 or not debs:
                last = (r.stderr.strip().splitlines() or ["no package"])[-1]
                raise LabError(f"apt-get download {spec} failed: {last}")
        tmp = root / "unpacking"
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        r = subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise LabError(f"dpkg-deb -x {debs[-1].name} failed: {r.stderr.strip()}")
        tmp.rename(root / "unpacked")
    un = root / "unpacked"
    images = sorted((un / "boot").glob("vmlinuz-*"))
    if not images:
        raise LabError(f"{spec}: the package has no boot/vmlinuz-*")
    vmlinuz = images[-1]
    release = vmlinuz.name.removeprefix("vmlinuz-")
    mods = un / "lib" / "modules" / release
    return Kernel(vmlinuz, release, mods if mods.is_dir() else None)


def kernel_cmdline(isolated: Sequence[int], housekeeping: Sequence[int]) -> str:
    iso = format_cpulist(tuple(isolated))
    hk = format_cpulist(tuple(housekeeping))
    return (f"console=ttyS0 loglevel=4 panic=5 nohz_full={iso} "
            f"isolcpus=nohz,domain,managed_irq,{iso} rcu_nocbs={iso} irqaffinity={hk} "
            "pti=on tsc=reliable")


def qemu_argv(kernel: Path, initrd: Path, out_tar: Path, cmdline: str, *, cpus: int,
              memory_mb: int = 2048, accel: str = "tcg") -> list[str]:
    """QEMU with the results port: the guest writes its tar stream to the virtio serial
    port named ``out``, which lands in `out_tar`."""
    return ["qemu-system-x86_64", "-accel", accel, "-cpu", "max", "-smp", str(cpus),
            "-m", str(memory_mb), "-nographic", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
            "-device", "virtio-serial-pci",
            "-chardev", f"file,id=out,path={out_tar}",
            "-device", "virtserialport,chardev=out,name=out", "-nic", "none"]


def boot(argv: Sequence[str], console: Path, progress: Callable[[str], None],
         timeout: float) -> int:
    """Run QEMU until the guest powers off (or `timeout` s); the console goes to `console`,
    each ``crossmod-lab: ...`` line to `progress`. Returns QEMU's exit status (124 on
    timeout)."""
    t_end = time.monotonic() + timeout
    with open(console, "w", encoding="utf-8", errors="replace") as log:
        p = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        assert p.stdout is not None
        buf = b""
        os.set_blocking(p.stdout.fileno(), False)
        while True:
            if time.monotonic() > t_end:
                p.kill()
                p.wait()
                return 124
            chunk = p.stdout.read(65536)
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    log.write(line + "\n")
                    at = line.find("crossmod-lab: ")
                    if at >= 0:
                        progress(line[at + len("crossmod-lab: "):])
                log.flush()
            elif p.poll() is not None:
                break
            else:
                time.sleep(0.1)
        if buf:
            log.write(buf.decode(errors="replace"))
        return p.wait()
