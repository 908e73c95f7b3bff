"""Helpers for the litmus tests: the project's own cases, and herdtools7's catalogue read
from a fetched snapshot when there is one.

herdtools7's files stay out of the project: `herdtools7(tmp_path_factory)` copies the
directories a test needs out of a herdtools7 git directory -- $CROSSMOD_HERDTOOLS7, or
the snapshot the `fetch` tool leaves at /work/.mirror/herd+herdtools7/repo -- or a
checkout, and the tests that need it skip, saying so, when there is none.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parent / "cases"
KERNEL = Path(__file__).resolve().parents[2] / "examples" / "litmus"
SNAPSHOT = "/work/.mirror/herd+herdtools7/repo"
DIRS = ("catalogue/aarch64-ifetch", "catalogue/aarch64", "catalogue/aarch64-readers-guide",
        "catalogue/aarch64-pick", "herd/tests/instructions/AArch64.self")


def expectations(path: Path) -> dict[str, str]:
    """The verdicts a case's comment gives: Arm's, and with --memory sc / --fetch cse."""
    text = path.read_text()
    return {m.group(1): m.group(2) for m in re.finditer(
        r"\b(Arm|SC|CSE):\s*(Allowed|Forbidden|Required)\b", text)}


def _source() -> Path | None:
    root = Path(os.environ.get("CROSSMOD_HERDTOOLS7", SNAPSHOT))
    if (root / "catalogue" / "aarch64-ifetch").is_dir() or (root / "HEAD").is_file():
        return root
    return None


def _extract(git_dir: Path, dest: Path) -> None:
    """Copy DIRS out of a (bare) git directory with one ls-tree and one cat-file: `git
    archive` would honour herdtools7's export-ignore of catalogue/."""
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "HEAD",
                              *DIRS], capture_output=True, check=True).stdout
    entries = [e.split(b"\t", 1) for e in listing.split(b"\0") if e]
    blobs = [(meta.split()[2].decode(), path.decode()) for meta, path in entries
             if meta.split()[1] == b"blob"]
    out = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                         input="".join(f"{sha}\n" for sha, _ in blobs).encode(),
                         capture_output=True, check=True).stdout
    pos = 0
    for _, path in blobs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        body = out[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


@pytest.fixture(scope="session")
def herdtools7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _source()
    if root is None:
        pytest.skip(f"no herdtools7 snapshot at {SNAPSHOT} (fetch github:herd/herdtools7, or "
                    "point CROSSMOD_HERDTOOLS7 at a checkout): its catalogue stays out of "
                    "the project")
    if (root / "catalogue" / "aarch64-ifetch").is_dir():
        return root
    dest = tmp_path_factory.mktemp("herdtools7")
    _extract(root, dest)
    return dest
