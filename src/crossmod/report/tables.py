"""Plain-text tables that fit a 100-column terminal.

Owns: column layout (widths from content, a cap for the widest column, right-aligned
numbers). Imports: stdlib only.
"""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int = 100,
          shrink: int = -1, sep: str = "  ") -> str:
    """Render `rows` under `headers`; column `shrink` is cut to make the table fit `width`."""
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    over = sum(widths) + len(sep) * (len(widths) - 1) - width
    if over > 0:
        i = shrink % len(widths)
        widths[i] = max(len(headers[i]), widths[i] - over)
    numeric = [all(_is_num(r[i]) for r in cells) and cells for i in range(len(headers))]
    out = [sep.join(_cell(h, w, bool(n)) for h, w, n in zip(headers, widths, numeric,
                                                             strict=True)).rstrip()]
    out.append(sep.join("-" * w for w in widths))
    for r in cells:
        out.append(sep.join(_cell(v, w, bool(n)) for v, w, n in zip(r, widths, numeric,
                                                                    strict=True)).rstrip())
    return "\n".join(out)


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _is_num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s == "-"


def _cell(v: str, w: int, right: bool) -> str:
    if len(v) > w:
        v = v[: max(1, w - 1)] + "~"
    return v.rjust(w) if right else v.ljust(w)
