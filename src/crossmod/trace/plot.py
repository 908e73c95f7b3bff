"""``--plot``: IPIs aimed at each isolated CPU over time, stacked by callback (PNG).

Owns: turning the analysis' bounded histograms into one matplotlib figure (Agg backend,
no display needed): one panel per isolated CPU, IPIs per second stacked by cause,
deferrable causes in cool colours and the rest in warm ones, phases shaded and named.

May import: the standard library, matplotlib, `crossmod.trace.analyze/whatif`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossmod.trace.analyze import Analysis, Histogram
from crossmod.trace.whatif import Classifier

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_COOL = ["#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#8c9eff", "#006d5b", "#4e79a7"]
_WARM = ["#d62728", "#ff7f0e", "#e377c2", "#bcbd22", "#8c564b", "#f28e2b", "#b07aa1"]
_MAX_CAUSES = 8


def _rebinned(h: Histogram, width: int, n: int) -> list[float]:
    k = width // h.width
    out = [0.0] * n
    for i, v in enumerate(h.bins):
        j = i // k
        if j < n:
            out[j] += v
    return [v / (width / 1e9) for v in out]


def _causes(a: Analysis, cpu: int) -> list[str]:
    totals: dict[str, int] = {}
    for (c, cause), h in a.hist.items():
        if c == cpu:
            totals[cause] = totals.get(cause, 0) + sum(h.bins)
    return sorted(totals, key=lambda k: -totals[k])


def _color(cause: str, cls: Classifier, used: dict[str, str]) -> str:
    if cause not in used:
        cool = cls.deferrable(tuple(cause.split("+")))
        pal = _COOL if cool else _WARM
        n = sum(1 for k in used if cls.deferrable(tuple(k.split("+"))) == cool)
        used[cause] = pal[n % len(pal)]
    return used[cause]


def plot(a: Analysis, cls: Classifier, path: str, title: str = "", fmt: str = "png") -> None:
    """Write the figure to `path` as `fmt` (a matplotlib format; raises OSError if it
    cannot be written)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpus = sorted(a.iso)
    hists = list(a.hist.values())
    origin = a.first_ts or 0
    # every histogram's width is its initial width times a power of two: pick the
    # smallest such width that holds the widest one and gives at most ~400 bars
    width = max((h.width for h in hists), default=100_000_000)
    while (a.last_ts - origin) // width > 400:
        width *= 2
    n = max(1, (a.last_ts - origin) // width + 1)
    xs = [(i * width) / 1e9 for i in range(n)]
    fig, axes = plt.subplots(len(cpus) or 1, 1, figsize=(12, 2.6 * max(1, len(cpus)) + 0.8),
                             sharex=True, squeeze=False)
    used: dict[str, str] = {}
    for ax, cpu in zip((row[0] for row in axes), cpus, strict=False):
        causes = _causes(a, cpu)
        shown, rest = causes[:_MAX_CAUSES], causes[_MAX_CAUSES:]
        bottom = [0.0] * n
        for cause in shown + (["other"] if rest else []):
            keys = [cause] if cause != "other" else rest
            ys = [0.0] * n
            for k in keys:
                for i, v in enumerate(_rebinned(a.hist[(cpu, k)], width, n)):
                    ys[i] += v
            kind = "deferrable" if cause != "other" and cls.deferrable(
                tuple(cause.split("+"))) else "not deferrable"
            ax.bar(xs, ys, width=width / 1e9, bottom=bottom, align="edge", linewidth=0,
                   color=_color(cause, cls, used) if cause != "other" else "#999999",
                   label=f"{cause} ({kind})" if cause != "other" else "other")
            bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
        _phases(ax, a, origin)
        ax.set_ylabel(f"CPU {cpu}\nIPIs/s")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        ax.grid(axis="y", alpha=0.3)
    axes[-1][0].set_xlabel(f"seconds since first event (bins of {width / 1e9:g} s)")
    fig.suptitle(title or "IPIs aimed at isolated CPUs, by callback")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110, format=fmt)
    finally:
        plt.close(fig)


def _phases(ax: Axes, a: Analysis, origin: int) -> None:
    for i, p in enumerate(a.phases):
        start_ns = p["start_ns"]
        assert start_ns is not None  # the analysis has seen an event before any marker
        start = (int(start_ns) - origin) / 1e9
        end_ns = p["end_ns"] if p["end_ns"] is not None else a.last_ts
        end = (int(end_ns) - origin) / 1e9
        ax.axvspan(start, end, color="#000000", alpha=0.04 if i % 2 else 0.08,
                   linewidth=0)
        ax.text(start, 1.0, f" {p['name']}", transform=ax.get_xaxis_transform(),
                fontsize=7, va="top", ha="left", color="#444444")
