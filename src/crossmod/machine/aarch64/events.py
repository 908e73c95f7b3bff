"""The events an arm64 thread's instructions make, in program order.

Owns: `Event` (one memory access, fetch, cache maintenance operation or barrier) and `Deps`
(which reads an event depends on, through registers and memory). Imports: stdlib only.

Kinds, in the words of Arm's model (herd/libdir/aarch64*.cat):
  R      an explicit read (LDR)                                  `Exp & R`
  W      an explicit write (STR; STLR has `release`)             `Exp & W` (`& L`)
  F      the fetch of an instruction whose address a test names  `Imp & Instr & R`
  DC     DC CVAU: clean the data cache to the point of unification   `DC.CVAU`
  IC     IC IVAU (`loc` set) or IC IALLU/IALLUIS (`loc` None)    `IC`
  DMB    `strength` full, ld or st                               `dmb.full`, `dmb.ld`, ...
  DSB    likewise                                                `dsb.full`, ...
  ISB    instruction synchronization barrier                     `ISB` (an `IFB`)
  EXC    exception entry (a fault or an SVC with a handler)      `EXC-ENTRY` (an `IFB`)
  ERET   exception return                                        `EXC-RET` (an `IFB`)

A read and a fetch carry the value the thread predicted for them (the machine only lets
them be performed when memory gives that value): this is how one thread's path -- which
branch it takes, which instruction it decodes -- is fixed before its events are ordered,
the way herd7 enumerates each thread's control flow before it picks rf and co.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

MEMORY = frozenset({"R", "W"})
BARRIERS = frozenset({"DMB", "DSB", "ISB", "EXC", "ERET"})
# Instruction fetch barriers: ISB, exception entry and exception return (aarch64hwreqs.cat's
# IFB, without FEAT_ExS).
IFB = frozenset({"ISB", "EXC", "ERET"})


class Invalid:
    """The prediction of a fetch that decodes no instruction the test can hold there
    (herd7's UndefinedInstruction fault): any value outside `Event.decodes` will do."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = Invalid()


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one thread; `text` tells it in the trail ("STR W0,[X1]")."""

    kind: str
    loc: Hashable | None = None
    value: Any = None
    strength: str = ""
    release: bool = False
    decodes: frozenset = frozenset()
    text: str = ""


@dataclass(frozen=True, slots=True)
class Deps:
    """Bit masks (over the thread's events) of the reads an event depends on.

    `addr`/`data`: through the address / data registers (herd's dtrm: register data flow
    and a read of the thread's own po-earlier write to the same location); `ctrl`: reads
    feeding a conditional or indirect branch po-before the event. `p*`: the same with pick
    dependencies (through the condition of CSEL/CSET). `lmrs`: for a read, the thread's
    po-latest write to the same location before it (-1: none).
    """

    addr: int = 0
    data: int = 0
    ctrl: int = 0
    paddr: int = 0
    pdata: int = 0
    pctrl: int = 0
    lmrs: int = -1
