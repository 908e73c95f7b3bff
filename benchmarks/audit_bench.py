"""Benchmark `crossmod audit` on real kernel images (not a test; results go to BENCHMARKS.md).

Usage:
    python benchmarks/audit_bench.py IMAGE [IMAGE ...] [--repeat N]

Each image is audited end to end N times in-process (read, decompress, ELF, kallsyms
recovery, table decoding, capstone verification), then once more through the real command
line (`crossmod audit IMAGE --json`, so Python start-up and imports are included). The phase
breakdown times decompression and kallsyms recovery on their own.

To get the images used in BENCHMARKS.md (Debian bookworm, in /tmp, never committed):
    apt-get download linux-image-6.1.0-56-amd64 linux-image-6.12.117+deb12-amd64
    dpkg-deb -x linux-image-6.1.0-56-amd64_*.deb x && dpkg-deb -x linux-image-6.12.117*.deb x
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from crossmod.audit import audit_image
from crossmod.audit.kallsyms import read_kallsyms
from crossmod.audit.unpack import unpack


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def bench(path: str, repeat: int) -> None:
    with open(path, "rb") as f:
        raw = f.read()
    t_unpack, unpacked = _timed(lambda: unpack(raw, path), repeat)
    t_ksyms, syms = _timed(lambda: read_kallsyms(unpacked.elf, path), repeat)
    t_total, report = _timed(lambda: audit_image(path), repeat)
    t = time.perf_counter()
    cli = subprocess.run([sys.executable, "-c", "from crossmod.cli import main; main()",
                          "audit", path, "--json"], capture_output=True)
    t_cli = time.perf_counter() - t
    c = report.counts
    print(f"{os.path.basename(path)}: {len(raw) / 1e6:.1f} MB "
          f"({unpacked.compression or 'uncompressed'}) -> ELF {len(unpacked.elf) / 1e6:.1f} MB")
    print(f"  decompress {t_unpack:6.2f} s   kallsyms ({len(syms)} symbols) {t_ksyms:6.2f} s")
    print(f"  audit_image end to end (median of {repeat}) {t_total:6.2f} s; "
          f"CLI incl. start-up {t_cli:6.2f} s (exit {cli.returncode})")
    print(f"  {c['total']} sites ({c['jump_entries']} jump, {c['static_call_sites']} static "
          f"call), {c['verified']} verified, {c['hazards']} hazards")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for path in args.images:
        bench(path, args.repeat)


if __name__ == "__main__":
    main()
