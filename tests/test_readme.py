"""README's "Check your own protocol" section runs as written: its Python blocks are one
session, in order, and each `print` prints what its comment says (the comment at the end of
the line, or alone on the next line)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Check your own protocol"


def blocks() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def expected(block: str) -> list[str]:
    """Each print's promised output, in order."""
    lines = block.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not re.match(r"\s*print\(", line):
            continue
        same = re.search(r"\)\s+# (.*)$", line)
        if same:
            out.append(same.group(1))
        else:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            assert nxt.startswith("# "), f"no promised output for: {line}"
            out.append(nxt[2:])
    return out


def test_the_section_has_its_examples():
    assert len(blocks()) == 6


def test_every_block_prints_what_its_comments_say():
    printed: list[str] = []
    session = {"print": lambda *a: printed.append(" ".join(str(x) for x in a))}
    for i, block in enumerate(blocks()):
        printed.clear()
        exec(compile(block, f"README.md block {i}", "exec"), session)
        assert printed == expected(block), f"block {i}"
