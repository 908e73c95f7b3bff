"""The arm64 instruction-level machine: events performed one at a time, in any order that
extends ordered-before.

Owns: `A64Config`, the state layout, `A64Machine.moves(state)` / `step(state, move)`, and
the instruction side of memory (what a fetch may still see); a step reports what it
performed as a `Performed` event (machine/events.py). Imports: machine.aarch64,
machine.events.

State = (paths, done, mem, icache, fwd, icneed, cse)
  paths   per thread, which of its paths (order.ThreadOrder) it runs
  done    per thread, the mask of its performed events
  mem     per location, the value of the coherence-last write performed (flat memory: a
          write is visible to every other thread at once -- arm64 is other-multi-copy
          atomic; only its own thread may read it earlier, by forwarding)
  icache  per fetched location, the writes a fetch may still read, oldest first, each with
          whether a DC CVAU has cleaned it: Arm's IC-coherence-after (see `fetchable`)
  fwd     per thread, the mask of its reads that took their value from an own unperformed
          write
  icneed  ((thread, ic event, masks per thread), ...): IC-ordered-before's debt -- the
          fetches po-before a fetch that was performed before that IC, which must be
          performed before anything the IC's DSB orders after it
  cse     fetch="cse" only: per thread, per fetched location, the oldest write still
          fetchable (the one memory held at the thread's last context synchronization)

A move is (thread, event index). Barriers (DMB, DSB, ISB, exception entry and return) have
no effect of their own: they are performed as soon as their predecessors are, which loses
no execution (performing one earlier only lets its successors go earlier).

The instruction side, by CTR_EL0 (herd7's `CacheType=`, DIC implying IDC):
  DIC=0 IDC=0  a fetch may read any write to its location newer than the newest write
               that was cleaned (DC CVAU after the write) and then invalidated (an IC,
               followed by a DSB, after the clean): `IC-ca`'s [IC];IC-after;[F];ca;[W];
               DC-after;[DC.CVAU]
  IDC=1        the clean is implied: newer than the newest write invalidated by an IC
  DIC=1        fetch is coherent: the newest write only

`fetch="cse"` is crossmod's own earlier reading instead (machine/text.py's arm64 rule): a
fetch may read any value the location held since the thread's last context synchronization
event, whatever the cache maintenance; kept to show, test by test, where the two differ.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

from crossmod.machine.aarch64.events import BARRIERS, IFB, INVALID
from crossmod.machine.aarch64.order import ThreadOrder
from crossmod.machine.events import Event as StepEvent

FETCH_MODELS = ("arm", "cse")
Move = tuple[int, int]
PATHS, DONE, MEM, ICACHE, FWD, ICNEED, CSE = range(7)


@dataclass(frozen=True)
class A64Config:
    """What one run is made of: every thread's possible paths, the locations with their
    initial values and names, which of them instructions are fetched from, CTR_EL0."""

    threads: tuple[tuple[ThreadOrder, ...], ...]
    locs: tuple[Hashable, ...]
    init: tuple[Any, ...]
    names: tuple[str, ...]
    fetched: frozenset[Hashable] = frozenset()
    dic: bool = False
    idc: bool = False
    fetch: str = "arm"
    lidx: dict[Hashable, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.fetch not in FETCH_MODELS:
            raise ValueError(f"unknown fetch model {self.fetch!r}; valid: {FETCH_MODELS}")
        object.__setattr__(self, "lidx", {loc: i for i, loc in enumerate(self.locs)})


@dataclass(frozen=True, slots=True)
class Performed(StepEvent):
    """Thread `cpu` performed one event of its instruction `insn`: `kind` R, W, F, DC or IC
    at location `loc` (None: IC IALLU). A read of `value` (`forwarded`: from its own
    po-earlier write), a write of `value`, a fetch of `value` while memory held `latest`
    (`invalid`: no instruction the test can hold there), a clean, or an invalidation
    (`effect` "pou"; "none" when no DSB follows it; "" under fetch="cse"). `then`: the
    barriers performed after it, as (thread, instruction)."""

    insn: str
    kind: str
    loc: str | None
    value: Any = None
    forwarded: bool = False
    latest: Any = None
    invalid: bool = False
    effect: str = ""
    then: tuple[tuple[int, str], ...] = ()

    def who(self) -> str:
        return f"P{self.cpu}"

    def words(self) -> str:
        out = f"{self.insn}: {self._what()}"
        if self.then:
            out += "; then " + ", ".join(f"P{t} {b}" for t, b in self.then)
        return out

    def _what(self) -> str:
        if self.kind == "R":
            own = " (its own po-earlier write)" if self.forwarded else ""
            return f"reads {self.loc} = {self.value}{own}"
        if self.kind == "W":
            return f"{self.loc} := {self.value}"
        if self.kind == "F":
            stale = "" if self.value == self.latest else f" (stale: memory holds {self.latest})"
            bad = ": no instruction, UndefinedInstruction" if self.invalid else ""
            return f"fetches {self.loc} = {self.value}{stale}{bad}"
        if self.kind == "DC":
            return f"{self.loc} cleaned to the point of unification"
        where = self.loc if self.loc is not None else "all instructions"
        return {"pou": f"{where} invalidated to the point of unification",
                "none": f"{where} invalidated (no DSB follows: no effect)"}.get(
                    self.effect, f"{where} invalidated")


class _Path:
    """One thread path's order with the per-location indexes the dynamic checks use."""

    __slots__ = ("barriers", "events", "fetches_at", "full", "loc", "o", "reads_at")

    def __init__(self, o: ThreadOrder, cfg: A64Config) -> None:
        self.o = o
        self.events = o.events
        self.full = o.full
        self.loc = tuple(cfg.lidx.get(e.loc, -1) if e.loc is not None else -1
                         for e in o.events)
        self.barriers = sum(1 << i for i, e in enumerate(o.events) if e.kind in BARRIERS)
        self.reads_at: dict[int, tuple[int, ...]] = {}
        self.fetches_at: dict[int, tuple[int, ...]] = {}
        for i, e in enumerate(o.events):
            table = {"R": self.reads_at, "F": self.fetches_at}.get(e.kind)
            if table is not None:
                table[self.loc[i]] = (*table.get(self.loc[i], ()), i)


class A64Machine:
    """A machine built from an `A64Config`; stateless."""

    def __init__(self, cfg: A64Config) -> None:
        self.cfg = cfg
        self.paths = tuple(tuple(_Path(o, cfg) for o in ts) for ts in cfg.threads)
        self.fetched = tuple(sorted(cfg.lidx[loc] for loc in cfg.fetched))
        self.fidx = {li: k for k, li in enumerate(self.fetched)}
        self.narrate = True

    # ---- states ----------------------------------------------------------------------
    def initial_states(self) -> list[Hashable]:
        """One initial state per combination of thread paths (tuples; typed as
        `check.outcomes.Walkable` asks)."""
        n = len(self.paths)
        if self.cfg.fetch == "cse":
            icache = tuple((self.cfg.init[li],) for li in self.fetched)
            cse = ((0,) * len(self.fetched),) * n
        else:
            icache = tuple(((self.cfg.init[li], True),) for li in self.fetched)
            cse = ()
        out: list[Hashable] = []
        for combo in product(*(range(len(ps)) for ps in self.paths)):
            s = [combo, (0,) * n, tuple(self.cfg.init), icache, (0,) * n, (), cse]
            self._barriers(s)
            out.append(tuple(s))
        return out

    def final(self, s: tuple) -> bool:
        return all(d == self.paths[t][p].full for t, (p, d) in enumerate(zip(s[PATHS], s[DONE],
                                                                                strict=True)))

    def path(self, s: tuple, t: int) -> ThreadOrder:
        return self.paths[t][s[PATHS][t]].o

    # ---- moves -----------------------------------------------------------------------
    def moves(self, s: tuple) -> list[Move]:
        out = []
        for t, p in enumerate(s[PATHS]):
            path, done = self.paths[t][p], s[DONE][t]
            todo = path.full & ~done & ~path.barriers
            while todo:
                low = todo & -todo
                todo ^= low
                i = low.bit_length() - 1
                if path.o.preds[i] & ~done == 0 and self._ready(s, t, path, i):
                    out.append((t, i))
        return out

    def _ready(self, s: tuple, t: int, path: _Path, i: int) -> bool:
        for c in path.o.gates[i]:
            if not self._paid(s, t, c):
                return False
        k = path.events[i].kind
        if k == "R":
            return self._read_value(s, t, path, i)[0] == path.events[i].value
        if k == "F":
            return self._fetchable(s, t, path, i)
        if k == "W":
            return self._write_allowed(s, t, path.loc[i])
        return True

    def _paid(self, s: tuple, t: int, c: int) -> bool:
        for tt, cc, masks in s[ICNEED]:
            if tt == t and cc == c:
                return all(m & ~d == 0 for m, d in zip(masks, s[DONE], strict=True))
        return True

    def _read_value(self, s: tuple, t: int, path: _Path, i: int) -> tuple[Any, bool]:
        """A read takes its own thread's po-latest write to the location when that write is
        not yet performed (forwarding), else what memory holds."""
        f = path.o.fwd[i]
        if f >= 0 and not s[DONE][t] >> f & 1:
            return path.events[f].value, True
        return s[MEM][path.loc[i]], False

    def fetchable(self, s: tuple, t: int, loc: int) -> tuple:
        """The values a fetch by thread t of location `loc` may read now."""
        k = self.fidx[loc]
        if self.cfg.fetch == "cse":
            return s[ICACHE][k][s[CSE][t][k]:]
        return tuple(v for v, _ in s[ICACHE][k])

    def _fetchable(self, s: tuple, t: int, path: _Path, i: int) -> bool:
        e = path.events[i]
        values = self.fetchable(s, t, path.loc[i])
        if e.value is INVALID:
            return any(v not in e.decodes for v in values)
        return e.value in values

    def _write_allowed(self, s: tuple, t: int, loc: int) -> bool:
        """Hazard-ordered-before, checked when the write that would break it is performed:
        a po-later read that already read an older value of `loc` holds the write back until
        the po-earlier reads of that location are done (Exp-haz-ob: CoRR); under DIC, a
        fetch of `loc` already performed holds it back until the fetches po-before it are
        (IC-ob's `ca` clause)."""
        for tt, p in enumerate(s[PATHS]):
            path, done = self.paths[tt][p], s[DONE][tt]
            if tt != t:
                for r in path.reads_at.get(loc, ()):
                    if done >> r & 1 and path.o.corr[r] & ~done and self._sourced(s, tt, path, r):
                        return False
            if self.cfg.dic and self.cfg.fetch == "arm":
                for f in path.fetches_at.get(loc, ()):
                    if done >> f & 1 and path.o.before[f] & ~done:
                        return False
        return True

    def _sourced(self, s: tuple, t: int, path: _Path, r: int) -> bool:
        """The write read r took its value from is performed (so a new write is
        coherence-after it)."""
        return not s[FWD][t] >> r & 1 or bool(s[DONE][t] >> path.o.fwd[r] & 1)

    # ---- step ------------------------------------------------------------------------
    def step(self, s: tuple, move: Move) -> tuple[tuple, tuple[Performed, ...]]:
        """Perform one event; returns the next state and, while the machine narrates, what
        happened (`()` when it does not)."""
        t, i = move
        path = self.paths[t][s[PATHS][t]]
        w = list(s)
        w[DONE] = _set(s[DONE], t, s[DONE][t] | 1 << i)
        told = self._apply(w, s, t, path, i)
        done = self._barriers(w)
        if told is None:
            return tuple(w), ()
        return tuple(w), (replace(told, then=tuple(done)),)

    def _apply(self, w: list, s: tuple, t: int, path: _Path, i: int) -> Performed | None:
        e, loc = path.events[i], path.loc[i]
        told = Performed(t, e.text, e.kind, self._name(loc) if loc >= 0 else None) \
            if self.narrate else None
        if e.kind == "R":
            value, fwd = self._read_value(s, t, path, i)
            if fwd:
                w[FWD] = _set(s[FWD], t, s[FWD][t] | 1 << i)
            return told and replace(told, value=value, forwarded=fwd)
        if e.kind == "W":
            w[MEM] = _set(s[MEM], loc, e.value)
            if loc in self.fidx:
                self._write_icache(w, t, loc, e.value)
            return told and replace(told, value=e.value)
        if e.kind == "F":
            if told is None:
                return None
            got = e.value if e.value is not INVALID else next(
                v for v in self.fetchable(s, t, loc) if v not in e.decodes)
            return replace(told, value=got, latest=s[MEM][loc], invalid=e.value is INVALID)
        if e.kind == "DC":
            if loc in self.fidx and self.cfg.fetch == "arm":
                k = self.fidx[loc]
                w[ICACHE] = _set(w[ICACHE], k, tuple((v, True) for v, _ in w[ICACHE][k]))
            return told
        effect = self._invalidate(w, s, t, path, i)
        return told and replace(told, effect=effect)

    def _write_icache(self, w: list, t: int, loc: int, value: Any) -> None:
        k = self.fidx[loc]
        if self.cfg.fetch == "cse":
            entry = (*w[ICACHE][k], value)
        elif self.cfg.dic:
            entry = ((value, True),)
        else:
            entry = (*w[ICACHE][k], (value, False))
        w[ICACHE] = _set(w[ICACHE], k, entry)

    def _invalidate(self, w: list, s: tuple, t: int, path: _Path, i: int) -> str:
        """IC IVAU / IALLU: only an IC that a full DSB follows (`C_IC`) makes newer writes
        the only fetchable ones, and records IC-ordered-before's debt. Returns what it
        did: "pou", "none" (no DSB follows) or "" (fetch="cse": the IC orders nothing)."""
        loc = path.loc[i]
        if self.cfg.fetch == "cse":
            return ""
        if not path.o.c_ic[i]:
            return "none"
        locs = [loc] if loc >= 0 else list(self.fetched)
        for li in locs:
            if li in self.fidx:
                k = self.fidx[li]
                w[ICACHE] = _set(w[ICACHE], k, _after_invalidate(w[ICACHE][k], self.cfg.idc))
        self._owe(w, s, t, i, locs)
        return "pou"

    def _owe(self, w: list, s: tuple, t: int, c: int, locs: list[int]) -> None:
        masks = []
        for tt, p in enumerate(s[PATHS]):
            path, done, m = self.paths[tt][p], s[DONE][tt], 0
            for li in locs:
                for f in path.fetches_at.get(li, ()):
                    if done >> f & 1:
                        m |= path.o.before[f]
            masks.append(m & ~done)
        if any(masks):
            w[ICNEED] = tuple(sorted((*w[ICNEED], (t, c, tuple(masks)))))

    def _barriers(self, w: list) -> list[tuple[int, str]]:
        """Perform every barrier whose predecessors are all performed (returns them, as
        (thread, instruction)); a context synchronization event refreshes the thread's fetch view
        under fetch="cse"."""
        changed, out = True, []
        while changed:
            changed = False
            for t, p in enumerate(w[PATHS]):
                path, done = self.paths[t][p], w[DONE][t]
                todo = path.barriers & ~done
                while todo:
                    low = todo & -todo
                    todo ^= low
                    i = low.bit_length() - 1
                    if path.o.preds[i] & ~done == 0:
                        done |= low
                        changed = True
                        out.append((t, path.events[i].text))
                        if self.cfg.fetch == "cse" and path.events[i].kind in IFB:
                            w[CSE] = _set(w[CSE], t, tuple(len(c) - 1 for c in w[ICACHE]))
                w[DONE] = _set(w[DONE], t, done)
        if w[ICNEED]:
            w[ICNEED] = tuple(x for x in w[ICNEED]
                              if any(m & ~d for m, d in zip(x[2], w[DONE], strict=True)))
        return out

    def performed_first(self, s: tuple) -> list[str]:
        """The barriers an initial state has already performed (nothing orders them after
        anything)."""
        return [f"P{t} {e.text}" for t, p in enumerate(s[PATHS])
                for i, e in enumerate(self.paths[t][p].events) if s[DONE][t] >> i & 1]

    def _name(self, loc: int) -> str:
        return self.cfg.names[loc]


def _after_invalidate(entries: tuple, idc: bool) -> tuple:
    """The writes still fetchable after an IC: from the newest cleaned one (IDC: the
    newest) on."""
    last = len(entries) - 1
    if not idc:
        while last > 0 and not entries[last][1]:
            last -= 1
    return entries[last:]


def _set(t: tuple, i: int, v: Any) -> tuple:
    return (*t[:i], v, *t[i + 1:])
