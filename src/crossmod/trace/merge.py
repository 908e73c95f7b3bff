"""Merge per-CPU event streams into timestamp order, a block at a time.

Owns: `merge_blocks`, which yields the merged events as sorted lists. Each stream yields
*lists* of one CPU's events in time order (a page block or a compressed chunk). Rather
than one heap operation per event, every round emits all buffered events older than the
smallest "newest buffered timestamp" of the streams still running, sorted in C by a
stable sort (so equal timestamps keep the CPU order, as ``trace-cmd report`` does). The
newest event of a running stream is always held back, so a ``kernel_stack`` record at
the start of its next block can still attach to it. Memory: at most about one block per
stream.

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from operator import attrgetter

from crossmod.trace.events import Event

_TS = attrgetter("ts")


def merge_blocks(streams: list[Iterator[list[Event]]]) -> Iterator[list[Event]]:
    """The events of all streams in timestamp order, as a sequence of sorted lists."""
    n = len(streams)
    bufs: list[list[Event]] = [[] for _ in range(n)]
    pos = [0] * n
    live = [True] * n
    while True:
        for i in range(n):
            while live[i] and len(bufs[i]) - pos[i] < 2:
                block = next(streams[i], None)
                if block is None:
                    live[i] = False
                    break
                bufs[i] = bufs[i][pos[i] :] + block
                pos[i] = 0
        heads = [bufs[i][-1].ts for i in range(n) if live[i] and bufs[i]]
        if not heads:
            batch = [e for i in range(n) for e in bufs[i][pos[i] :]]
            batch.sort(key=_TS)
            if batch:
                yield batch
            return
        batch = _take(bufs, pos, min(heads), bisect_left)
        if not batch:  # every held event shares the watermark timestamp
            batch = _take(bufs, pos, min(heads), bisect_right)
        if not batch:
            # a damaged stream whose time stamps go backwards: bisect finds nothing to
            # take, so take all but each stream's newest event (there is one such, as a
            # running stream buffers two or more) and go on in a different order rather
            # than not at all
            for i in range(n):
                if live[i] and len(bufs[i]) - pos[i] > 1:
                    batch.extend(bufs[i][pos[i] : -1])
                    pos[i] = len(bufs[i]) - 1
        batch.sort(key=_TS)
        yield batch


def _take(bufs: list[list[Event]], pos: list[int], watermark: int,
          cut: Callable[..., int]) -> list[Event]:
    batch: list[Event] = []
    for i, b in enumerate(bufs):
        k = cut(b, watermark, lo=pos[i], key=_TS)
        if k > pos[i]:
            batch.extend(b[pos[i] : k])
            pos[i] = k
    return batch
