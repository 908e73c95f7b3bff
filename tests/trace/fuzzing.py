"""Damaged copies of a recording and the promise `crossmod trace` must keep on each.

Used by tests/trace/test_fuzz.py (a bounded run in CI) and benchmarks/fuzz_trace.py (the
long run). A mutation is a cut (the file ends at an offset) or a few flipped bytes; every
compressed form of the text (xz, gzip, zstd) is mutated too. `verdict` runs the command on
one mutant, in process, and returns what broke the promise (None if nothing did):

* it raised (anything but the command's own exit);
* it exited with a status other than 0 or 2, or 2 without an ``error:`` line;
* it printed a report that is not JSON;
* it exited 0 reporting fewer events than the undamaged file without a warning.
"""

from __future__ import annotations

import gzip
import json
import lzma
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard
from click.testing import CliRunner

from crossmod.cli import main


@dataclass(frozen=True)
class Mutant:
    form: str  # "trace.dat", "xz", "gzip", "zstd"
    how: str  # "cut at 0x...", "flip 0x..=..", for the failure message
    data: bytes


def forms(shared: Path, text_bytes: int) -> dict[str, bytes]:
    """The recording as trace.dat and its report text (the first `text_bytes` of it, cut at a
    line) in each compressed form."""
    text = lzma.decompress((shared / "report.txt.xz").read_bytes())
    text = text[: text.rfind(b"\n", 0, text_bytes) + 1]
    return {"trace.dat": (shared / "trace.dat").read_bytes(),
            "xz": lzma.compress(text, preset=1),
            "gzip": gzip.compress(text, compresslevel=1),
            "zstd": zstandard.ZstdCompressor(level=1, write_checksum=True).compress(text)}


def mutants(data: bytes, form: str, rng: random.Random, cuts: int, flips: int
            ) -> Iterator[Mutant]:
    """`cuts` cut copies (a few in the first KB, where the headers are) and `flips` copies
    with one to three bytes xor-ed with a random non-zero value."""
    n = len(data)
    offsets = sorted({rng.randrange(1, min(n, 1024)) for _ in range(max(1, cuts // 4))}
                     | {rng.randrange(1, n) for _ in range(cuts - max(1, cuts // 4))})
    for off in offsets:
        yield Mutant(form, f"cut at 0x{off:x}", data[:off])
    for _ in range(flips):
        buf = bytearray(data)
        done = []
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(n)
            buf[at] ^= rng.randrange(1, 256)
            done.append(f"0x{at:x}")
        yield Mutant(form, f"flip {','.join(done)}", bytes(buf))


def events(report: dict) -> int:
    return sum(n for per_cpu in report["events"].values() for n in per_cpu.values())


def baseline(path: Path) -> int:
    r = CliRunner().invoke(main, ["trace", str(path), "--isolated", "2-3", "--json"])
    assert r.exit_code == 0, r.stderr
    return events(json.loads(r.stdout))


def verdict(path: Path, whole: int) -> str | None:
    """What the run on `path` broke (see the module docstring), or None."""
    r = CliRunner().invoke(main, ["trace", str(path), "--isolated", "2-3", "--json"])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return f"raised {r.exception.__class__.__name__}: {r.exception}"
    err = r.stderr
    if r.exit_code not in (0, 2):
        return f"exit {r.exit_code}: {err[-300:]}"
    if r.exit_code == 2 and "error: " not in err:
        return f"exit 2 without an error line: {err[-300:]}"
    if not r.stdout:
        return None if r.exit_code == 2 else "exit 0 without a report"
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        return "the report is not JSON"
    if r.exit_code == 0 and events(rep) < whole and not rep["problem_count"]:
        return f"exit 0 with {events(rep)} of {whole} events and no warning"
    return None
