"""Output files the commands write (``--perfetto``, ``--plot``): checked before the work.

Owns: `unwritable`, the one check every command makes on an output path before it starts
(so a long analysis or search is never lost to a typo in the last argument), and the
image formats ``--plot`` can write. Imports: the standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

#: what matplotlib's Agg-based savefig writes (FigureCanvasBase.get_supported_filetypes)
IMAGE_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff",
                 "webp", "pgf", "raw", "rgba")


def unwritable(path: str, option: str) -> str | None:
    """Why `path` cannot be written as `option`'s output (one line), or None if it can."""
    p = Path(path)
    if p.is_dir():
        return f"{option} {path}: is a directory; give a file name"
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        return f"{option} {path}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return f"{option} {path}: not writable"
    return None


def image_format(path: str) -> tuple[str | None, str | None]:
    """(format, None) for a ``--plot`` path, or (None, why not). A name without a suffix
    is written as PNG under exactly that name."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png", None
    if suffix not in IMAGE_FORMATS:
        return None, (f"--plot {path}: cannot draw a .{suffix} file; use .png, .svg or .pdf "
                      f"(or any of {', '.join(IMAGE_FORMATS)})")
    return suffix, None
