"""Locally-ordered-before: which of a thread's events must be performed before which.

Owns: `order_thread(events, deps)` -> `ThreadOrder`, Arm's `aarch64hwreqs.cat` (lob and
local-hw-reqs) for the events of events.py, plus the static facts the machine's dynamic
checks need (store forwarding, read-read coherence, the fetches po-before a fetch, the
instruction-cache invalidations whose IC-ordered-before applies to an event).
Imports: machine.aarch64.events.

Each clause of the cat file becomes "a po-later event of this kind has these predecessors";
barriers are events with predecessors and successors of the kinds the clause names, so that
`X < barrier < Y` gives exactly the `X ob Y` of the clause (a barrier constrains nothing
else). The clauses that arm64 litmus tests of instruction fetch exercise:

  f-ib, f-ob   a fetch before every non-fetch event of its own and later instructions
  DSB-ob       M | DC | IC (full; R for ld, W for st) before a DSB before later non-fetches
  IFB-ob       ctrl/addr reads and DSBs before an ISB / exception entry / return, before
               everything after it -- fetches included
  bob          DMB full / ld / st; a release store after every earlier access
  dob, pob     addr, data, ctrl (to W, DC, IC), addr;po;W, (addr|data);lmrs;R, and pick forms
  lmws         an access before a later write to the same location
  po-scl-ob    accesses and DC CVAU to the same location, in program order
  pick-lob     a pick dependency into X, with X lob W, orders the read before W

`sc=True` adds every earlier explicit access before every explicit access: sequentially
consistent data memory, instruction fetch left weak.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

from crossmod.machine.aarch64.events import IFB, Deps, Event


@dataclass(frozen=True, slots=True)
class ThreadOrder:
    """A thread's events with their static order; masks are over the thread's events.

    preds[i]   events that must be performed before event i
    fwd[i]     R: the po-latest own write to its location before it (-1: none)
    corr[i]    R: the po-earlier explicit reads of the same location
    before[i]  F: the po-earlier fetches
    gates[i]   the IC events po-before i, followed by a DSB (and, for a fetch, then an IFB)
               before i: IC-ordered-before holds i back until the fetches they name are done
    c_ic[i]    IC: a full DSB follows it (only such an IC invalidates: `C_IC`)
    """

    events: tuple[Event, ...]
    preds: tuple[int, ...]
    fwd: tuple[int, ...]
    corr: tuple[int, ...]
    before: tuple[int, ...]
    gates: tuple[tuple[int, ...], ...]
    c_ic: tuple[bool, ...]

    @property
    def full(self) -> int:
        return (1 << len(self.events)) - 1


class _Acc:
    """Masks of the events seen so far, by the role later events give them."""

    __slots__ = ("addr", "by_loc", "dc_by_loc", "dc_mask", "dmb_full", "dmb_ld", "dmb_st",
                 "dsb", "fetch", "ic", "ics", "ics_dsb", "ics_ifb", "ifb", "mem", "reads",
                 "writes")

    def __init__(self) -> None:
        self.addr = self.dmb_full = self.dmb_ld = self.dmb_st = self.dsb = 0
        self.fetch = self.ic = self.ifb = self.mem = self.reads = self.writes = 0
        self.dc_mask = 0
        self.by_loc: dict[Hashable, int] = {}
        self.dc_by_loc: dict[Hashable, int] = {}
        self.ics: list[int] = []       # ICs not yet followed by a full DSB
        self.ics_dsb: list[int] = []   # ICs followed by a full DSB
        self.ics_ifb: list[int] = []   # ... and then by an IFB


def order_thread(events: Sequence[Event], deps: Sequence[Deps], sc: bool = False,
                 strong_cse: bool = False) -> ThreadOrder:
    """The static order of one thread's path (see the module docstring).

    `strong_cse`: a context synchronization event waits for every earlier event -- the
    in-order CPU of crossmod's earlier arm64 reading (machine/text.py), kept for
    comparison; Arm's ISB is ordered only as IFB-ob says.
    """
    acc = _Acc()
    preds, gates = [], []
    for i, (e, d) in enumerate(zip(events, deps, strict=True)):
        gates.append(tuple(acc.ics_ifb if e.kind == "F" else acc.ics_dsb))
        p = _preds(e, d, deps, acc, sc)
        if strong_cse and e.kind in IFB:
            p |= (1 << i) - 1
        preds.append(p & ~(1 << i))
        _account(i, e, d, acc)
    preds = _pick_lob(events, deps, preds)
    return ThreadOrder(tuple(events), tuple(preds), *_statics(events),
                       tuple(gates), _c_ic(events))


def _preds(e: Event, d: Deps, deps: Sequence[Deps], acc: _Acc, sc: bool) -> int:
    k = e.kind
    if k == "F":
        return acc.ifb
    p = acc.fetch | acc.dsb | acc.ifb
    if k in ("R", "W", "DC"):
        p |= acc.dmb_full | acc.dc_by_loc.get(e.loc, 0)
    if k in ("R", "W"):
        p |= acc.dmb_ld
    if k == "R":
        p |= d.addr
        if d.lmrs >= 0:  # (addr | data); [Exp & M]; lmrs; [Exp & R]
            p |= deps[d.lmrs].addr | deps[d.lmrs].data
    elif k == "W":
        p |= acc.dmb_st | acc.by_loc.get(e.loc, 0) | d.addr | d.data | d.ctrl
        p |= d.paddr | d.pdata | d.pctrl | acc.addr
        if e.release:
            p |= acc.mem
    elif k == "DC":
        p |= acc.by_loc.get(e.loc, 0) | d.addr | d.ctrl | d.paddr | d.pctrl
    elif k == "IC":
        p |= d.addr | d.ctrl | d.paddr | d.pctrl
    elif k == "DMB":
        p |= {"full": acc.mem | acc.dc_mask, "ld": acc.reads, "st": acc.writes}[e.strength]
    elif k == "DSB":
        p |= {"full": acc.mem | acc.dc_mask | acc.ic, "ld": acc.reads,
              "st": acc.writes}[e.strength]
    elif k in IFB:
        p |= d.ctrl | d.pctrl | acc.addr
    if sc and k in ("R", "W"):
        p |= acc.mem
    return p


def _account(i: int, e: Event, d: Deps, acc: _Acc) -> None:
    """Record event i in the masks later events read."""
    bit, k = 1 << i, e.kind
    if k == "F":
        acc.fetch |= bit
    elif k in ("R", "W"):
        acc.mem |= bit
        acc.by_loc[e.loc] = acc.by_loc.get(e.loc, 0) | bit
        acc.addr |= d.addr | d.paddr
        if k == "R":
            acc.reads |= bit
        else:
            acc.writes |= bit
    elif k == "DC":
        acc.dc_mask |= bit
        acc.dc_by_loc[e.loc] = acc.dc_by_loc.get(e.loc, 0) | bit
    elif k == "IC":
        acc.ic |= bit
        acc.ics.append(i)
    elif k == "DMB":
        setattr(acc, f"dmb_{e.strength}", getattr(acc, f"dmb_{e.strength}") | bit)
    elif k == "DSB":
        acc.dsb |= bit
        if e.strength == "full":
            acc.ics_dsb += acc.ics
            acc.ics = []
    elif k in IFB:
        acc.ifb |= bit
        acc.ics_ifb = list(acc.ics_dsb)


def _pick_lob(events: Sequence[Event], deps: Sequence[Deps], preds: list[int]) -> list[int]:
    """local-hw-reqs' `pick-dep; lob; [Exp & W]`: a write after X in lob also waits for the
    reads X pick-depends on (its address, data, and branches before it)."""
    closure: list[int] = []
    out = list(preds)
    for i, p in enumerate(preds):
        c = p
        for j in _bits(p):
            c |= closure[j]
        closure.append(c)
        if events[i].kind == "W":
            for j in _bits(c):
                d = deps[j]
                out[i] |= (d.paddr | d.pdata | d.pctrl) & ~(1 << j)
    return out


def _statics(events: Sequence[Event]
             ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """`fwd`, `corr` and `before` of `ThreadOrder`."""
    fwd, corr, before = [], [], []
    last_w: dict[Hashable, int] = {}
    reads: dict[Hashable, int] = {}
    fetches = 0
    for i, e in enumerate(events):
        fwd.append(last_w.get(e.loc, -1) if e.kind == "R" else -1)
        corr.append(reads.get(e.loc, 0) if e.kind == "R" else 0)
        before.append(fetches if e.kind == "F" else 0)
        if e.kind == "W":
            last_w[e.loc] = i
        elif e.kind == "R":
            reads[e.loc] = reads.get(e.loc, 0) | (1 << i)
        elif e.kind == "F":
            fetches |= 1 << i
    return tuple(fwd), tuple(corr), tuple(before)


def _c_ic(events: Sequence[Event]) -> tuple[bool, ...]:
    out, dsb_later = [], False
    for e in reversed(events):
        out.append(e.kind == "IC" and dsb_later)
        dsb_later = dsb_later or (e.kind == "DSB" and e.strength == "full")
    return tuple(reversed(out))


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
