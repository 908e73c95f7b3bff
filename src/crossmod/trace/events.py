"""The trace record contract, written down once (STYLE rule 24).

Owns: `Event` (what every reader yields), the per-event field schema of the events the
analysis understands, `TraceFormatError`, and the small value conventions both readers
must share so that a `trace.dat` and its `trace-cmd report` text give equal records:

* ``ts`` is nanoseconds of the trace clock (text traces carry microseconds: the reader
  multiplies, it does not invent digits);
* pointer fields printed by the kernel with ``%pS`` are ``"symbol+0xoff"``, with ``%ps``
  ``"symbol"``, a NULL pointer is ``"0x0"`` and an unresolved one ``"0x<hex>"``;
* ``cpumask`` is a sorted tuple of CPU numbers;
* ``fields`` is read-only: the readers decode each distinct record once and hand the same
  dict to every event that carries it;
* a stack (``kernel_stack`` record, or ``<stack trace>`` and its ``=> frame`` lines) is not an
  event of its own: it belongs to the event before it on the same CPU and is stored in that
  event's ``stack`` as bare function names, innermost first.

May import: the standard library only (the trace package is a leaf).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Field schema per event the analysis reads; every reader must produce exactly these keys
# with these Python types for these events (other events keep whatever fields they have).
SCHEMA: dict[str, dict[str, type]] = {
    "ipi_send_cpu": {"cpu": int, "callsite": str, "callback": str},
    "ipi_send_cpumask": {"cpumask": tuple, "callsite": str, "callback": str},
    "csd_queue_cpu": {"cpu": int, "callsite": str, "func": str, "csd": int},
    "csd_function_entry": {"func": str, "csd": int},
    "csd_function_exit": {"func": str, "csd": int},
    "call_function_entry": {"vector": int},
    "call_function_exit": {"vector": int},
    "call_function_single_entry": {"vector": int},
    "call_function_single_exit": {"vector": int},
    "reschedule_entry": {"vector": int},
    "reschedule_exit": {"vector": int},
    "local_timer_entry": {"vector": int},
    "local_timer_exit": {"vector": int},
    "irq_work_entry": {"vector": int},
    "irq_work_exit": {"vector": int},
    "tlb_flush": {"pages": int, "reason": int},
    "user_enter": {},
    "user_exit": {},
    "print": {"buf": str},
}

#: The events the issue lists; everything else is counted and otherwise ignored.
RELEVANT = frozenset(SCHEMA)

#: CPU numbers at or above this are damage (the kernel's NR_CPUS tops out at 8192); the
#: analysis keeps lists indexed by CPU, so the readers refuse them.
MAX_CPUS = 1 << 16

#: The largest NR_CPUS a kernel can be built with (x86 MAXSMP, arch/x86/Kconfig NR_CPUS_RANGE_END):
#: the bound of a CPU list a user gives before the trace says how many CPUs it has.
NR_CPUS_MAX = 8192


class TraceFormatError(Exception):
    """Bad input: carries where (``path:line N`` or ``path@offset 0x..``) and what."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


@dataclass(slots=True)
class Event:
    """One trace record (a stack is not a record: it is in the event it belongs to)."""

    ts: int
    cpu: int
    pid: int
    comm: str
    name: str
    # a value's type is SCHEMA's for the event's name and the key (the readers check it),
    # not one type for the dict: hence Any, not object
    fields: dict[str, Any] = field(default_factory=dict)
    stack: tuple[str, ...] | None = None


_FRAME_TAIL = re.compile(r"(\+0x[0-9a-f]+(/0x[0-9a-f]+)?)?(\s+\[[^\]]*\])?(\s+\([0-9a-f]+\))?\s*$")


def frame_name(frame: str) -> str:
    """Bare function name of one stack frame as any backend prints it.

    trace-cmd prints ``name (ffffffff81000000)``, tracefs ``name+0x1d/0x90 [mod]``.
    """
    s = frame.strip()
    if s.startswith("=>"):
        s = s[2:].strip()
    return _FRAME_TAIL.sub("", s) or s


def symbol_name(value: str) -> str:
    """``"func+0x1d"`` -> ``"func"``; addresses stay as they are."""
    plus = value.find("+0x")
    return value[:plus] if plus > 0 else value


def parse_cpulist(text: str, limit: int = MAX_CPUS) -> tuple[int, ...]:
    """``"0,2-3"`` -> ``(0, 2, 3)``, as the kernel's ``cpulist_parse()`` reads a list
    (lib/bitmap-str.c; its ``a-b:used/group`` strides are not taken). Raises ValueError,
    saying what is wrong, on an empty item, a reversed range, or a CPU at or above
    `limit`."""
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return ()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not part:
            raise ValueError(f"empty item in CPU list {text[:40]!r}")
        if not lo.isdigit() or (sep and not hi.isdigit()) or len(part) > 24:
            raise ValueError(f"{part[:24]!r} is not a CPU number or a range like 2-3")
        a = int(lo)
        b = int(hi) if sep else a
        if b < a:
            raise ValueError(f"CPU range {part!r} is reversed (write {b}-{a})")
        if b >= limit:
            raise ValueError(f"CPU {b} is beyond the largest CPU number allowed "
                             f"({limit - 1})")
        cpus.update(range(a, b + 1))
    return tuple(sorted(cpus))


def format_cpulist(cpus: tuple[int, ...] | list[int]) -> str:
    """``(0, 2, 3)`` -> ``"0,2-3"`` (the kernel's ``%*pbl``)."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)
