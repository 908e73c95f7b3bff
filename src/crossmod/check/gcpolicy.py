"""The cyclic garbage collector during a search: young collections only.

Owns: `long_lived_kept()`. Imports: stdlib.

A search stores millions of tuples that live until it ends, and CPython's full (oldest
generation) collections walk every one of them: on x86-int3-batch at 6 CPUs they cost a
quarter of the search's time. A search makes no cyclic garbage of its own (the whole
catalogue explored with the collector off leaves none to collect), but a protocol's
routines might, so the young generations keep being collected as usual; only the full
collections wait until the search is over (SPIN and TLC have no collector to pause; the
parallel search's workers freeze theirs for the same reason, check/parallel.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_NEVER = 1 << 30  # young-to-old promotions before a full collection: none in a search


@contextmanager
def long_lived_kept() -> Iterator[None]:
    """Within the block, no full collection (the young generations as usual)."""
    t0, t1, t2 = gc.get_threshold()
    gc.set_threshold(t0, t1, _NEVER)
    try:
        yield
    finally:
        gc.set_threshold(t0, t1, t2)
