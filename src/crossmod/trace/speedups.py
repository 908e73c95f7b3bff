"""The compiled hot loops, if they were built: `scan` is `crossmod.trace._scan` or None.

Owns: loading and binding the optional C module (`_scan.c`) once. It is optional: without
a C compiler at install time, or with ``CROSSMOD_TRACE_PURE=1`` in the environment, the
readers run their pure-Python references, which give the same events (checked by
tests/trace/test_scan_equivalence.py) at about half the speed. `PURE_ENV` is how the tests
and the benchmark run both.

May import: the standard library and `crossmod.trace.events`.
"""

from __future__ import annotations

import os
import re
from types import ModuleType

from crossmod.trace.events import Event

PURE_ENV = "CROSSMOD_TRACE_PURE"
#: the marker the text reader's body cache maps a ``<stack trace>`` line to
STACK = object()


def _table(pattern: str) -> bytes:
    """Which of the 256 one-byte characters Python's `re` puts in a class."""
    rx = re.compile(pattern)
    return bytes(1 if rx.match(chr(c)) else 0 for c in range(256))


def compiled() -> ModuleType | None:
    """The compiled module, bound, or None if it was not built (whatever `PURE_ENV` says:
    the tests compare it with the references)."""
    try:
        from crossmod.trace import _scan
    except ImportError:
        return None
    _scan.bind(Event, _table(r"\w"), _table(r"\s"), _table(r"\d"), STACK)
    return _scan


scan: ModuleType | None = None if os.environ.get(PURE_ENV, "") not in ("", "0") else compiled()


def backend() -> str:
    """What reads the records: for the command's header line and the benchmark."""
    return "compiled scanner" if scan is not None else "pure Python"
